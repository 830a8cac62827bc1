//! Every API call a simulator answered, in arrival-of-answer order, in a ring buffer of bounded
//! size, with counters that are never dropped. Tests read them back through `/control/ledger` and
//! `/control/stats` to assert "every document exactly once" or "no 429".

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One call: the fields every simulator records, and its own (`reason`, `realmId`, ...) in
/// `detail`, serialized beside them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry<E> {
    /// Set by [`Ledger::record`]: 1, 2, ... in recording order.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: Option<String>,
    pub status: u16,
    /// An injected fault fired on it.
    pub injected: bool,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub detail: E,
}

/// The counters a simulator keeps over its calls (and, through [`Ledger::stats_mut`], over the
/// effects its handlers report).
pub trait Tally<E>: Default + Send + 'static {
    fn count(&mut self, entry: &LedgerEntry<E>);
}

/// `requests`, `byStatus` and `injected`: embed with `#[serde(flatten)]`.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub injected: u64,
}

impl CallCounts {
    pub fn count<E>(&mut self, entry: &LedgerEntry<E>) {
        self.requests += 1;
        *self.by_status.entry(entry.status).or_default() += 1;
        self.injected += u64::from(entry.injected);
    }
}

impl<E> Tally<E> for CallCounts {
    fn count(&mut self, entry: &LedgerEntry<E>) {
        CallCounts::count(self, entry);
    }
}

#[derive(Debug)]
pub struct Ledger<E, T> {
    entries: VecDeque<LedgerEntry<E>>,
    capacity: usize,
    next_seq: u64,
    stats: T,
}

impl<E: Clone, T: Tally<E>> Ledger<E, T> {
    /// Keeps the last `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            stats: T::default(),
        }
    }

    /// Numbers the entry, counts it, and drops the oldest when full.
    pub fn record(&mut self, mut entry: LedgerEntry<E>) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.stats.count(&entry);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries with `seq > after`, at most `limit`.
    pub fn read(&self, after: u64, limit: usize) -> Vec<LedgerEntry<E>> {
        self.read_where(after, limit, |_| true)
    }

    /// Entries with `seq > after` that `keep` accepts, at most `limit`.
    pub fn read_where(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&LedgerEntry<E>) -> bool,
    ) -> Vec<LedgerEntry<E>> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries
            .range(start..)
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> &T {
        &self.stats
    }

    /// For effects counted when they happen (so a lost response still counts).
    pub fn stats_mut(&mut self) -> &mut T {
        &mut self.stats
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Forgets entries and counters; `seq` keeps counting up.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.stats = T::default();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(status: u16, realm: &str) -> LedgerEntry<String> {
        entry_with(status, realm.to_owned())
    }

    fn entry_with<E>(status: u16, detail: E) -> LedgerEntry<E> {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "POST".into(),
            path: "/upload".into(),
            query: None,
            status,
            injected: status == 429,
            duration_ms: 0,
            detail,
        }
    }

    #[test]
    fn counts_and_bounded_reads() {
        let mut ledger: Ledger<String, CallCounts> = Ledger::new(2);
        ledger.record(entry(200, "a"));
        ledger.record(entry(429, "b"));
        ledger.record(entry(200, "a"));
        let stats = ledger.stats();
        assert_eq!(
            (stats.requests, stats.injected, stats.by_status[&200]),
            (3, 1, 2)
        );
        let kept = ledger.read(0, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ledger.read(2, 10).len(), 1);
        assert_eq!(ledger.read(0, 1).len(), 1);
        assert_eq!(ledger.read_where(0, 10, |e| e.detail == "a").len(), 1);
        assert_eq!(ledger.last_seq(), 3);
        ledger.clear();
        assert_eq!((ledger.read(0, 10).len(), ledger.stats().requests), (0, 0));
        ledger.record(entry(200, "a"));
        assert_eq!(ledger.last_seq(), 4);
    }

    #[test]
    fn detail_sits_beside_the_common_fields() {
        #[derive(Clone, Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Detail {
            realm_id: &'static str,
        }
        let entry = entry_with(503, Detail { realm_id: "7" });
        let value = serde_json::to_value(&entry).unwrap();
        assert_eq!(value["realmId"], json!("7"));
        assert_eq!(value["durationMs"], json!(0));
        let counts = serde_json::to_value(CallCounts::default()).unwrap();
        assert_eq!(
            counts,
            json!({"requests": 0, "byStatus": {}, "injected": 0})
        );
    }
}
