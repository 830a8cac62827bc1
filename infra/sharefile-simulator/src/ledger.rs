//! Every `/oauth`, `/sf/v3` and `ChunkUri` call, in arrival-of-answer order, with what it was
//! answered, and the effects the simulator received (folders created, uploads stored, per path).
//! Tests read them back through `/control/ledger` and `/control/stats` to assert "every document
//! exactly once" or "no 429".

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
    /// The raw query string (`path=/Clients/Acme`, `uploadid=...`).
    pub query: Option<String>,
    pub status: u16,
    /// The ShareFile error `reason` (`NotFound`, `Throttled`, ...), when the answer was one.
    pub reason: Option<String>,
    /// The answer was HTTP 200 `ERROR: ...` (a failed `ChunkUri` upload).
    pub upload_error: bool,
    /// An injected fault fired on it.
    pub injected: bool,
    /// The path of the folder created or the file stored by this call.
    pub target: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub injected: u64,
    pub upload_errors: u64,
    /// Folders created through the API (not `/control`).
    pub folders_created: u64,
    /// Files stored through `ChunkUri`.
    pub uploads_stored: u64,
    /// Stored under `name (1).ext` because the name existed and `Overwrite` was false.
    pub uploads_renamed: u64,
    /// Replaced an existing file (`Overwrite` true).
    pub uploads_replaced: u64,
    /// Folders created, per path.
    pub folders_by_path: BTreeMap<String, u64>,
    /// Uploads stored, per requested path (folder path + `FileName`, before any renaming).
    pub uploads_by_path: BTreeMap<String, u64>,
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
        s.upload_errors += u64::from(entry.upload_error);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn folder_created(&mut self, path: &str) {
        self.stats.folders_created += 1;
        *self
            .stats
            .folders_by_path
            .entry(path.to_owned())
            .or_default() += 1;
    }

    pub fn upload_stored(&mut self, requested_path: &str, renamed: bool, replaced: bool) {
        let s = &mut self.stats;
        s.uploads_stored += 1;
        s.uploads_renamed += u64::from(renamed);
        s.uploads_replaced += u64::from(replaced);
        *s.uploads_by_path
            .entry(requested_path.to_owned())
            .or_default() += 1;
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
            path: "/upload.aspx".into(),
            query: None,
            status,
            reason: None,
            upload_error: false,
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
        ledger.upload_stored("/Clients/Acme/a.pdf", false, false);
        ledger.upload_stored("/Clients/Acme/a.pdf", true, false);
        let stats = ledger.stats();
        assert_eq!(
            (stats.requests, stats.injected, stats.by_status[&200]),
            (3, 1, 2)
        );
        assert_eq!(stats.uploads_by_path["/Clients/Acme/a.pdf"], 2);
        assert_eq!(stats.uploads_renamed, 1);
        let kept = ledger.read(0, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ledger.read(2, 10).len(), 1);
    }
}
