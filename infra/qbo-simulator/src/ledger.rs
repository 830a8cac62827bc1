//! Every `/v3` and `/oauth2` call, in arrival-of-answer order, with what it was answered, and
//! counters per realm. Tests read it back through `/control/ledger` and `/control/stats` to
//! assert "exactly once", "no 429" or "only this realm was paused".

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The raw query string (`query=...&minorversion=75`, `requestid=...`).
    pub query: Option<String>,
    pub realm_id: Option<String>,
    pub status: u16,
    pub request_id: Option<String>,
    /// `Fault.Error[0].code` when the answer was a Fault (also inside a 200).
    pub fault_code: Option<String>,
    /// Refused by the rate or concurrency limit (not an injected 429).
    pub throttled: bool,
    /// An injected fault fired on it.
    pub injected: bool,
    /// The answer was replayed for a repeated `requestid`.
    pub replayed: bool,
    pub duration_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmCounts {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub throttled: u64,
    pub injected: u64,
    pub writes: u64,
    pub replayed: u64,
    pub token_refreshes: u64,
}

#[derive(Debug)]
pub struct Ledger {
    entries: VecDeque<LedgerEntry>,
    capacity: usize,
    next_seq: u64,
    realms: HashMap<String, RealmCounts>,
    total: RealmCounts,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity,
            next_seq: 1,
            realms: HashMap::new(),
            total: RealmCounts::default(),
        }
    }

    pub fn record(&mut self, mut entry: LedgerEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let write = entry.method == "POST" && entry.path.starts_with("/v3/");
        let refresh = entry.path.starts_with("/oauth2/");
        let count = |c: &mut RealmCounts| {
            c.requests += 1;
            *c.by_status.entry(entry.status).or_default() += 1;
            c.throttled += u64::from(entry.throttled);
            c.injected += u64::from(entry.injected);
            c.writes += u64::from(write && !entry.path.ends_with("/query"));
            c.replayed += u64::from(entry.replayed);
            c.token_refreshes += u64::from(refresh);
        };
        count(&mut self.total);
        if let Some(realm) = &entry.realm_id {
            count(self.realms.entry(realm.clone()).or_default());
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries with `seq > after`, optionally of one realm, at most `limit`.
    pub fn read(&self, after: u64, realm_id: Option<&str>, limit: usize) -> Vec<LedgerEntry> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries
            .range(start..)
            .filter(|e| realm_id.is_none_or(|r| e.realm_id.as_deref() == Some(r)))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn counts(&self, realm_id: &str) -> RealmCounts {
        self.realms.get(realm_id).cloned().unwrap_or_default()
    }

    pub fn total(&self) -> &RealmCounts {
        &self.total
    }

    pub fn all_counts(&self) -> BTreeMap<String, RealmCounts> {
        self.realms
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.realms.clear();
        self.total = RealmCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(realm: &str, status: u16) -> LedgerEntry {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "GET".into(),
            path: format!("/v3/company/{realm}/query"),
            query: None,
            realm_id: Some(realm.into()),
            status,
            request_id: None,
            fault_code: None,
            throttled: status == 429,
            injected: false,
            replayed: false,
            duration_ms: 0,
        }
    }

    #[test]
    fn counts_per_realm_and_bounded_reads() {
        let mut ledger = Ledger::new(2);
        ledger.record(entry("a", 200));
        ledger.record(entry("b", 429));
        ledger.record(entry("a", 200));
        assert_eq!(ledger.counts("a").requests, 2);
        assert_eq!(ledger.counts("b").throttled, 1);
        let kept = ledger.read(0, None, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ledger.read(2, Some("a"), 10).len(), 1);
    }
}
