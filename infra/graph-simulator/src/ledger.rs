//! Every `/v1.0` and token call, in order of completion, with what it was answered, and counters
//! per mailbox. Tests read it back through `/control/ledger` and `/control/stats` to assert
//! "exactly once", "no 429" or "only this mailbox was throttled". A call whose client went away
//! before the answer (a client timeout on a held request) is recorded with status 499.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Status recorded for a request whose client disconnected before it was answered.
pub const CLIENT_CLOSED: u16 = 499;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The mailbox in the path (its id when known).
    pub user_id: Option<String>,
    pub status: u16,
    /// `error.code` when the answer was an error.
    pub error_code: Option<String>,
    /// `transactionId` of an event create.
    pub transaction_id: Option<String>,
    pub request_id: String,
    pub client_request_id: Option<String>,
    /// Refused by the mailbox concurrency limit (not an injected 429).
    pub throttled: bool,
    /// An injected fault fired on it.
    pub injected: bool,
    /// A create answered with the existing event of its `transactionId`.
    pub replayed: bool,
    pub duration_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub throttled: u64,
    pub injected: u64,
    pub replayed: u64,
    /// Successful event creates that made an event (replays excluded).
    pub events_created: u64,
}

#[derive(Debug)]
pub struct Ledger {
    entries: VecDeque<LedgerEntry>,
    capacity: usize,
    next_seq: u64,
    users: HashMap<String, UserCounts>,
    total: UserCounts,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity,
            next_seq: 1,
            users: HashMap::new(),
            total: UserCounts::default(),
        }
    }

    pub fn record(&mut self, mut entry: LedgerEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let created = entry.method == "POST" && entry.path.ends_with("/events");
        let created = created && entry.status == 201 && !entry.replayed;
        let count = |c: &mut UserCounts| {
            c.requests += 1;
            *c.by_status.entry(entry.status).or_default() += 1;
            c.throttled += u64::from(entry.throttled);
            c.injected += u64::from(entry.injected);
            c.replayed += u64::from(entry.replayed);
            c.events_created += u64::from(created);
        };
        count(&mut self.total);
        if let Some(user) = &entry.user_id {
            count(self.users.entry(user.clone()).or_default());
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries with `seq > after`, optionally of one mailbox, at most `limit`.
    pub fn read(&self, after: u64, user_id: Option<&str>, limit: usize) -> Vec<LedgerEntry> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries
            .range(start..)
            .filter(|e| user_id.is_none_or(|u| e.user_id.as_deref() == Some(u)))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn counts(&self, user_id: &str) -> UserCounts {
        self.users.get(user_id).cloned().unwrap_or_default()
    }

    pub fn total(&self) -> &UserCounts {
        &self.total
    }

    pub fn all_counts(&self) -> BTreeMap<String, UserCounts> {
        self.users
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.users.clear();
        self.total = UserCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, status: u16, replayed: bool) -> LedgerEntry {
        LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: "POST".into(),
            path: format!("/v1.0/users/{user}/events"),
            query: None,
            user_id: Some(user.into()),
            status,
            error_code: None,
            transaction_id: Some("t1".into()),
            request_id: "r".into(),
            client_request_id: None,
            throttled: status == 429,
            injected: false,
            replayed,
            duration_ms: 0,
        }
    }

    #[test]
    fn counts_per_user_and_bounded_reads() {
        let mut ledger = Ledger::new(2);
        ledger.record(entry("a", 201, false));
        ledger.record(entry("b", 429, false));
        ledger.record(entry("a", 201, true));
        let a = ledger.counts("a");
        assert_eq!((a.requests, a.events_created, a.replayed), (2, 1, 1));
        assert_eq!(ledger.counts("b").throttled, 1);
        let kept = ledger.read(0, None, 10);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ledger.read(2, Some("a"), 10).len(), 1);
    }
}
