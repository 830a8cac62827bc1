//! The change feed: every change (API or control) appends one entry carrying a snapshot of the
//! entity after the change. Sequence numbers are contiguous and start at 1.
//!
//! A cursor is opaque to clients; it names the last sequence number a client has seen plus the
//! feed's epoch (a new epoch starts on `/control/reset`, so cursors from before a reset expire
//! rather than silently skipping or repeating changes). Only the newest `retention` entries are
//! kept; a cursor (or no cursor) from before the oldest kept entry is `410 CURSOR_EXPIRED`.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    Loan,
    Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Created,
    StatusChanged,
    Updated,
    ConditionUpdated,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub seq: u64,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub loan_id: String,
    pub change_type: ChangeType,
    pub changed_at: DateTime<Utc>,
    /// The entity's version after the change.
    pub version: u64,
    pub data: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub changes: Vec<Change>,
    pub next_cursor: String,
    pub has_more: bool,
}

#[derive(Debug)]
pub struct Feed {
    epoch: u32,
    entries: VecDeque<Change>,
    /// Highest sequence number dropped by retention or trimming (0: nothing dropped yet).
    dropped_upto: u64,
    retention: usize,
}

impl Feed {
    pub fn new(retention: usize) -> Self {
        Self {
            epoch: rand::random(),
            entries: VecDeque::new(),
            dropped_upto: 0,
            retention: retention.max(1),
        }
    }

    /// Starts a new epoch with an empty feed.
    pub fn reset(&mut self) {
        *self = Self::new(self.retention);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn last_seq(&self) -> u64 {
        self.dropped_upto + self.entries.len() as u64
    }

    pub fn append(&mut self, mut change: Change) {
        change.seq = self.last_seq() + 1;
        self.entries.push_back(change);
        self.trim(self.retention);
    }

    /// Keeps only the newest `keep_last` entries.
    pub fn trim(&mut self, keep_last: usize) {
        while self.entries.len() > keep_last {
            self.entries.pop_front();
            self.dropped_upto += 1;
        }
    }

    /// Cursor at the newest change: continuing from it yields only later changes.
    pub fn head_cursor(&self) -> String {
        encode(self.epoch, self.last_seq())
    }

    pub fn page(&self, cursor: Option<&str>, limit: usize) -> Result<Page, ApiError> {
        let after = match cursor {
            None => 0,
            Some(c) => {
                let (epoch, seq) =
                    decode(c).ok_or_else(|| ApiError::bad_request("malformed cursor"))?;
                if epoch != self.epoch || seq > self.last_seq() {
                    return Err(ApiError::cursor_expired());
                }
                seq
            }
        };
        if after < self.dropped_upto {
            return Err(ApiError::cursor_expired());
        }
        let start = (after - self.dropped_upto) as usize;
        let changes: Vec<Change> = self
            .entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect();
        let last = changes.last().map_or(after, |c| c.seq);
        Ok(Page {
            has_more: last < self.last_seq(),
            next_cursor: encode(self.epoch, last),
            changes,
        })
    }
}

fn encode(epoch: u32, seq: u64) -> String {
    format!("{epoch:08x}{seq:016x}")
}

fn decode(cursor: &str) -> Option<(u32, u64)> {
    if cursor.len() != 24 || !cursor.is_ascii() {
        return None;
    }
    let epoch = u32::from_str_radix(&cursor[..8], 16).ok()?;
    let seq = u64::from_str_radix(&cursor[8..], 16).ok()?;
    Some((epoch, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u64) -> Change {
        Change {
            seq: 0,
            entity_type: EntityType::Loan,
            entity_id: format!("L{n}"),
            loan_id: format!("L{n}"),
            change_type: ChangeType::Created,
            changed_at: Utc::now(),
            version: 1,
            data: Value::Null,
        }
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.changes.iter().map(|c| c.seq).collect()
    }

    #[test]
    fn pages_through_in_order_and_polls_at_the_head() {
        let mut feed = Feed::new(10);
        (1..=5).for_each(|n| feed.append(change(n)));
        let p1 = feed.page(None, 2).unwrap();
        assert_eq!((seqs(&p1), p1.has_more), (vec![1, 2], true));
        let p2 = feed.page(Some(&p1.next_cursor), 10).unwrap();
        assert_eq!((seqs(&p2), p2.has_more), (vec![3, 4, 5], false));
        let idle = feed.page(Some(&p2.next_cursor), 10).unwrap();
        assert!(idle.changes.is_empty());
        assert_eq!(idle.next_cursor, p2.next_cursor);
        assert_eq!(feed.head_cursor(), p2.next_cursor);
    }

    #[test]
    fn retention_expires_old_cursors() {
        let mut feed = Feed::new(3);
        let start = feed.head_cursor();
        (1..=5).for_each(|n| feed.append(change(n)));
        assert_eq!(feed.len(), 3);
        assert_eq!(feed.page(None, 10).unwrap_err().code, "CURSOR_EXPIRED");
        assert_eq!(
            feed.page(Some(&start), 10).unwrap_err().code,
            "CURSOR_EXPIRED"
        );
        // A cursor at seq 2 has seen everything dropped so far: still valid.
        let at2 = encode(feed.epoch, 2);
        assert_eq!(seqs(&feed.page(Some(&at2), 10).unwrap()), vec![3, 4, 5]);
    }

    #[test]
    fn reset_expires_cursors_and_garbage_is_rejected() {
        let mut feed = Feed::new(10);
        feed.append(change(1));
        let cursor = feed.head_cursor();
        feed.reset();
        feed.append(change(2));
        assert_eq!(
            feed.page(Some(&cursor), 10).unwrap_err().code,
            "CURSOR_EXPIRED"
        );
        assert_eq!(feed.page(Some("nope"), 10).unwrap_err().status, 400);
    }
}
