//! A staff member's mailbox: identity, working hours, seeded busy items, the events created
//! through the API (or "in Outlook" through `/control`), and the `transactionId` index that makes
//! a retried create return the event it already made.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{event::Event, time};

/// `freeBusyStatus` (`showAs`, `scheduleItem.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FreeBusy {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

impl FreeBusy {
    /// The `availabilityView` digit.
    pub fn digit(self) -> char {
        match self {
            Self::Free | Self::Unknown => '0',
            Self::Tentative => '1',
            Self::Busy => '2',
            Self::Oof => '3',
            Self::WorkingElsewhere => '4',
        }
    }

    /// Which status shows when items overlap (the more unavailable wins).
    pub fn rank(self) -> u8 {
        match self {
            Self::Free | Self::Unknown => 0,
            Self::WorkingElsewhere => 1,
            Self::Tentative => 2,
            Self::Busy => 3,
            Self::Oof => 4,
        }
    }
}

/// A seeded item of the calendar (a meeting the staff member already has).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusyItem {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: FreeBusy,
    pub subject: String,
    pub location: String,
    pub is_private: bool,
    pub is_meeting: bool,
}

/// `workingHours` as getSchedule reports it; not used for `availabilityView` (nor by Graph).
#[derive(Debug, Clone)]
pub struct WorkingHours {
    pub days_of_week: Vec<String>,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub time_zone: String,
}

impl Default for WorkingHours {
    fn default() -> Self {
        let days = ["monday", "tuesday", "wednesday", "thursday", "friday"];
        Self {
            days_of_week: days.map(str::to_owned).to_vec(),
            start_time: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            end_time: NaiveTime::from_hms_opt(17, 0, 0).expect("valid time"),
            time_zone: "UTC".to_owned(),
        }
    }
}

impl WorkingHours {
    pub fn to_json(&self) -> Value {
        json!({
            "daysOfWeek": self.days_of_week,
            "startTime": time::format_time_of_day(self.start_time),
            "endTime": time::format_time_of_day(self.end_time),
            "timeZone": {"name": self.time_zone},
        })
    }
}

/// Creates under one `transactionId`: how many create requests carried it, which events it made.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionStats {
    pub requests: u64,
    pub event_ids: Vec<String>,
}

#[derive(Debug)]
pub struct Staff {
    pub id: String,
    pub display_name: String,
    pub mail: String,
    pub working_hours: WorkingHours,
    pub busy: Vec<BusyItem>,
    events: HashMap<String, Event>,
    /// `transactionId` → the event it made (removed when the event is deleted).
    by_transaction: HashMap<String, String>,
    pub transactions: BTreeMap<String, TransactionStats>,
    pub events_created: u64,
    next_seq: u64,
}

impl Staff {
    pub fn new(id: String, display_name: String, mail: String) -> Self {
        Self {
            id,
            display_name,
            mail,
            working_hours: WorkingHours::default(),
            busy: Vec::new(),
            events: HashMap::new(),
            by_transaction: HashMap::new(),
            transactions: BTreeMap::new(),
            events_created: 0,
            next_seq: 0,
        }
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.events.get(id)
    }

    pub fn event_mut(&mut self, id: &str) -> Option<&mut Event> {
        self.events.get_mut(id)
    }

    /// Events in creation order, cancelled ones included.
    pub fn events(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self.events.values().collect();
        events.sort_by_key(|e| e.seq);
        events
    }

    /// The live event an earlier create with `transaction_id` made; counts the repeat.
    pub fn replay(&mut self, transaction_id: &str) -> Option<&Event> {
        let id = self.by_transaction.get(transaction_id)?;
        let event = self.events.get(id)?;
        self.transactions
            .entry(transaction_id.to_owned())
            .or_default()
            .requests += 1;
        Some(event)
    }

    pub fn insert(&mut self, mut event: Event) -> &Event {
        self.next_seq += 1;
        event.seq = self.next_seq;
        self.events_created += 1;
        if let Some(txn) = &event.transaction_id {
            self.by_transaction.insert(txn.clone(), event.id.clone());
            let stats = self.transactions.entry(txn.clone()).or_default();
            stats.requests += 1;
            stats.event_ids.push(event.id.clone());
        }
        let id = event.id.clone();
        self.events.entry(id).or_insert(event)
    }

    pub fn remove(&mut self, id: &str) -> Option<Event> {
        let event = self.events.remove(id)?;
        if let Some(txn) = &event.transaction_id {
            self.by_transaction.remove(txn);
        }
        Some(event)
    }

    /// Everything that makes the staff member unavailable: seeded items, then live events
    /// (neither cancelled nor shown as free).
    pub fn schedule_items(&self) -> Vec<BusyItem> {
        let events = self
            .events()
            .into_iter()
            .filter(|e| !e.is_cancelled && e.show_as != FreeBusy::Free)
            .map(Event::as_busy_item);
        self.busy.iter().cloned().chain(events).collect()
    }

    /// Whether `[start, end)` overlaps any item that is not free.
    pub fn conflicts(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.schedule_items()
            .iter()
            .any(|i| i.status.rank() > 0 && i.start < end && i.end > start)
    }

    /// Pairs of live events (API or `/control`) that overlap: double bookings.
    pub fn overlapping_events(&self) -> usize {
        let live: Vec<&Event> = self
            .events()
            .into_iter()
            .filter(|e| !e.is_cancelled)
            .collect();
        live.iter()
            .enumerate()
            .map(|(i, a)| {
                live[i + 1..]
                    .iter()
                    .filter(|b| a.start < b.end && b.start < a.end)
                    .count()
            })
            .sum()
    }

    pub fn organizer(&self) -> Value {
        json!({"emailAddress": {"name": self.display_name, "address": self.mail}})
    }
}
