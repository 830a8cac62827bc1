//! What the Cloud Storage simulator's ledger (`simulator_kit::Ledger`) records beyond every
//! simulator's fields, and the effects it counts (objects stored, read, deleted). Tests read them
//! back through `/control/ledger` and `/control/stats` to assert "every photo exactly once".

use std::collections::BTreeMap;

use serde::Serialize;
use simulator_kit::{CallCounts, LedgerEntry, Tally};

/// A ledger entry's Cloud Storage fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// `error.errors[0].reason` (`notFound`, `rateLimitExceeded`, ...), when the answer was one.
    pub reason: Option<String>,
    /// `bucket/object` a successful upload or delete changed.
    pub target: Option<String>,
}

/// What a successful API call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Upload,
    Download,
    Metadata,
    List,
    Delete,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// `requests`, `byStatus`, `injected`.
    #[serde(flatten)]
    pub calls: CallCounts,
    /// Objects written through the API (not `/control`).
    pub uploads: u64,
    pub downloads: u64,
    pub metadata_reads: u64,
    pub lists: u64,
    pub deletes: u64,
    /// Uploads stored, per `bucket/object`.
    pub uploads_by_object: BTreeMap<String, u64>,
}

impl Tally<Detail> for Stats {
    fn count(&mut self, entry: &LedgerEntry<Detail>) {
        self.calls.count(entry);
    }
}

impl Stats {
    /// Counts an effect when it happens (so a lost response still counts).
    pub fn effect(&mut self, effect: Effect, target: &str) {
        match effect {
            Effect::Upload => {
                self.uploads += 1;
                *self.uploads_by_object.entry(target.to_owned()).or_default() += 1;
            }
            Effect::Download => self.downloads += 1,
            Effect::Metadata => self.metadata_reads += 1,
            Effect::List => self.lists += 1,
            Effect::Delete => self.deletes += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry(status: u16) -> LedgerEntry<Detail> {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "POST".into(),
            path: "/upload/storage/v1/b/b/o".into(),
            query: None,
            status,
            injected: status == 429,
            duration_ms: 0,
            detail: Detail {
                reason: None,
                target: None,
            },
        }
    }

    #[test]
    fn counts_calls_and_effects() {
        let mut ledger: simulator_kit::Ledger<Detail, Stats> = simulator_kit::Ledger::new(2);
        ledger.record(entry(200));
        ledger.record(entry(429));
        ledger.record(entry(200));
        let stats = ledger.stats_mut();
        stats.effect(Effect::Upload, "b/u/1.jpg");
        stats.effect(Effect::Upload, "b/u/1.jpg");
        stats.effect(Effect::Download, "b/u/1.jpg");
        let stats = ledger.stats();
        assert_eq!(
            (
                stats.calls.requests,
                stats.calls.injected,
                stats.calls.by_status[&200]
            ),
            (3, 1, 2)
        );
        assert_eq!((stats.uploads, stats.downloads), (2, 1));
        assert_eq!(stats.uploads_by_object["b/u/1.jpg"], 2);
        let value = serde_json::to_value(stats).unwrap();
        assert_eq!(
            (value["requests"].as_u64(), value["metadataReads"].as_u64()),
            (Some(3), Some(0))
        );
        let kept = ledger.read(0, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    }
}
