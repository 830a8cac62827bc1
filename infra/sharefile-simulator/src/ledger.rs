//! What the ShareFile simulator's ledger (`simulator_kit::Ledger`) records beyond every
//! simulator's fields, and the effects it counts (folders created, uploads stored, per path).
//! Tests read them back through `/control/ledger` and `/control/stats` to assert "every document
//! exactly once" or "no 429".

use std::collections::BTreeMap;

use serde::Serialize;
use simulator_kit::{CallCounts, LedgerEntry, Tally};

/// A ledger entry's ShareFile fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// The ShareFile error `reason` (`NotFound`, `Throttled`, ...), when the answer was one.
    pub reason: Option<String>,
    /// The answer was HTTP 200 `ERROR: ...` (a failed `ChunkUri` upload).
    pub upload_error: bool,
    /// The path of the folder created or the file stored by this call.
    pub target: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// `requests`, `byStatus`, `injected`.
    #[serde(flatten)]
    pub calls: CallCounts,
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

impl Tally<Detail> for Stats {
    fn count(&mut self, entry: &LedgerEntry<Detail>) {
        self.calls.count(entry);
        self.upload_errors += u64::from(entry.detail.upload_error);
    }
}

impl Stats {
    pub fn folder_created(&mut self, path: &str) {
        self.folders_created += 1;
        *self.folders_by_path.entry(path.to_owned()).or_default() += 1;
    }

    pub fn upload_stored(&mut self, requested_path: &str, renamed: bool, replaced: bool) {
        self.uploads_stored += 1;
        self.uploads_renamed += u64::from(renamed);
        self.uploads_replaced += u64::from(replaced);
        *self
            .uploads_by_path
            .entry(requested_path.to_owned())
            .or_default() += 1;
    }
}

pub type Ledger = simulator_kit::Ledger<Detail, Stats>;

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry(status: u16, upload_error: bool) -> LedgerEntry<Detail> {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "POST".into(),
            path: "/upload.aspx".into(),
            query: None,
            status,
            injected: status == 429,
            duration_ms: 0,
            detail: Detail {
                reason: None,
                upload_error,
                target: None,
            },
        }
    }

    #[test]
    fn counts_calls_and_effects() {
        let mut ledger = Ledger::new(2);
        ledger.record(entry(200, true));
        ledger.record(entry(429, false));
        ledger.record(entry(200, false));
        ledger
            .stats_mut()
            .upload_stored("/Clients/Acme/a.pdf", false, false);
        ledger
            .stats_mut()
            .upload_stored("/Clients/Acme/a.pdf", true, false);
        ledger.stats_mut().folder_created("/Clients/Acme");
        let stats = ledger.stats();
        assert_eq!(
            (
                stats.calls.requests,
                stats.calls.injected,
                stats.upload_errors
            ),
            (3, 1, 1)
        );
        assert_eq!(stats.uploads_by_path["/Clients/Acme/a.pdf"], 2);
        assert_eq!((stats.uploads_renamed, stats.folders_created), (1, 1));
        let value = serde_json::to_value(stats).unwrap();
        assert_eq!(value["byStatus"]["200"], 2);
        assert_eq!(value["foldersByPath"]["/Clients/Acme"], 1);
        let entry = serde_json::to_value(&ledger.read(0, 10)[1]).unwrap();
        assert_eq!(
            (entry["seq"].as_u64(), entry["uploadError"].as_bool()),
            (Some(3), Some(false))
        );
    }
}
