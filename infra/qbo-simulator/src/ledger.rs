//! What the QBO simulator's ledger (`simulator_kit::Ledger`) records beyond every simulator's
//! fields, and its counters per realm. Tests read them back through `/control/ledger` and
//! `/control/stats` to assert "exactly once", "no 429" or "only this realm was paused".

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use simulator_kit::{CallCounts, LedgerEntry, Tally};

/// A ledger entry's QBO fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    pub realm_id: Option<String>,
    pub request_id: Option<String>,
    /// `Fault.Error[0].code` when the answer was a Fault (also inside a 200).
    pub fault_code: Option<String>,
    /// Refused by the rate or concurrency limit (not an injected 429).
    pub throttled: bool,
    /// The answer was replayed for a repeated `requestid`.
    pub replayed: bool,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmCounts {
    /// `requests`, `byStatus`, `injected`.
    #[serde(flatten)]
    pub calls: CallCounts,
    pub throttled: u64,
    pub writes: u64,
    pub replayed: u64,
    pub token_refreshes: u64,
}

/// The counters over all calls and per realm.
#[derive(Debug, Default)]
pub struct Counts {
    realms: HashMap<String, RealmCounts>,
    total: RealmCounts,
}

impl Tally<Detail> for Counts {
    fn count(&mut self, entry: &LedgerEntry<Detail>) {
        let write = entry.method == "POST" && entry.path.starts_with("/v3/");
        let refresh = entry.path.starts_with("/oauth2/");
        let count = |c: &mut RealmCounts| {
            c.calls.count(entry);
            c.throttled += u64::from(entry.detail.throttled);
            c.writes += u64::from(write && !entry.path.ends_with("/query"));
            c.replayed += u64::from(entry.detail.replayed);
            c.token_refreshes += u64::from(refresh);
        };
        count(&mut self.total);
        if let Some(realm) = &entry.detail.realm_id {
            count(self.realms.entry(realm.clone()).or_default());
        }
    }
}

impl Counts {
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
}

pub type Ledger = simulator_kit::Ledger<Detail, Counts>;

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry(realm: &str, status: u16) -> LedgerEntry<Detail> {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "GET".into(),
            path: format!("/v3/company/{realm}/query"),
            query: None,
            status,
            injected: false,
            duration_ms: 0,
            detail: Detail {
                realm_id: Some(realm.into()),
                request_id: None,
                fault_code: None,
                throttled: status == 429,
                replayed: false,
            },
        }
    }

    #[test]
    fn counts_per_realm_and_bounded_reads() {
        let mut ledger = Ledger::new(2);
        ledger.record(entry("a", 200));
        ledger.record(entry("b", 429));
        ledger.record(entry("a", 200));
        assert_eq!(ledger.stats().counts("a").calls.requests, 2);
        assert_eq!(ledger.stats().counts("b").throttled, 1);
        assert_eq!(ledger.stats().total().calls.requests, 3);
        let kept = ledger.read(0, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        let of_a = ledger.read_where(2, 10, |e| e.detail.realm_id.as_deref() == Some("a"));
        assert_eq!(of_a.len(), 1);
        let value = serde_json::to_value(ledger.stats().counts("b")).unwrap();
        assert_eq!(
            (value["requests"].as_u64(), value["throttled"].as_u64()),
            (Some(1), Some(1))
        );
    }
}
