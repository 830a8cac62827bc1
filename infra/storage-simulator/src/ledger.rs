//! Every `/storage`, `/upload` and `/download` call, in arrival-of-answer order, with what it was
//! answered, and the effects the simulator received (objects stored, read, deleted). Tests read
//! them back through `/control/ledger` and `/control/stats` to assert "every photo exactly once".

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The raw query string (`uploadType=media&name=...`, `alt=media`).
    pub query: Option<String>,
    pub status: u16,
    /// `error.errors[0].reason` (`notFound`, `rateLimitExceeded`, ...), when the answer was one.
    pub reason: Option<String>,
    /// An injected fault fired on it.
    pub injected: bool,
    /// `bucket/object` a successful upload or delete changed.
    pub target: Option<String>,
    pub duration_ms: u64,
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
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub injected: u64,
    /// Objects written through the API (not `/control`).
    pub uploads: u64,
    pub downloads: u64,
    pub metadata_reads: u64,
    pub lists: u64,
    pub deletes: u64,
    /// Uploads stored, per `bucket/object`.
    pub uploads_by_object: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Ledger {
    entries: VecDeque<LedgerEntry>,
    capacity: usize,
    next_seq: u64,
    stats: Stats,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity,
            next_seq: 1,
            stats: Stats::default(),
        }
    }

    pub fn record(&mut self, mut entry: LedgerEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let s = &mut self.stats;
        s.requests += 1;
        *s.by_status.entry(entry.status).or_default() += 1;
        s.injected += u64::from(entry.injected);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Counts an effect when it happens (so a lost response still counts).
    pub fn effect(&mut self, effect: Effect, target: &str) {
        let s = &mut self.stats;
        match effect {
            Effect::Upload => {
                s.uploads += 1;
                *s.uploads_by_object.entry(target.to_owned()).or_default() += 1;
            }
            Effect::Download => s.downloads += 1,
            Effect::Metadata => s.metadata_reads += 1,
            Effect::List => s.lists += 1,
            Effect::Delete => s.deletes += 1,
        }
    }

    /// Entries with `seq > after`, at most `limit`.
    pub fn read(&self, after: u64, limit: usize) -> Vec<LedgerEntry> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries.range(start..).take(limit).cloned().collect()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.stats = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: u16) -> LedgerEntry {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "POST".into(),
            path: "/upload/storage/v1/b/b/o".into(),
            query: None,
            status,
            reason: None,
            injected: status == 429,
            target: None,
            duration_ms: 0,
        }
    }

    #[test]
    fn counts_and_bounded_reads() {
        let mut ledger = Ledger::new(2);
        ledger.record(entry(200));
        ledger.record(entry(429));
        ledger.record(entry(200));
        ledger.effect(Effect::Upload, "b/u/1.jpg");
        ledger.effect(Effect::Upload, "b/u/1.jpg");
        ledger.effect(Effect::Download, "b/u/1.jpg");
        let stats = ledger.stats();
        assert_eq!(
            (stats.requests, stats.injected, stats.by_status[&200]),
            (3, 1, 2)
        );
        assert_eq!((stats.uploads, stats.downloads), (2, 1));
        assert_eq!(stats.uploads_by_object["b/u/1.jpg"], 2);
        let kept = ledger.read(0, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    }
}
