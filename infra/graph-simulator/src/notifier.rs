//! Change-notification delivery. Every event change queues one notification per matching live
//! subscription; each is POSTed alone (`{"value":[one]}`) to the subscription's URL. Like Graph,
//! an answer that is not 2xx within `timeout` (3 s) failed the attempt and it is retried (up to
//! `max_attempts`, backing off). Drops and repeats are injected (`dropNext`/`duplicateNext`
//! counts first, then the seeded percentages): a dropped notification is never sent; a repeated
//! one is sent twice, same body. Every POST (validation handshakes too) is logged with its
//! answer and latency, readable through `/control/notifications`.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    config::NotificationConfig,
    delivery,
    state::lock,
    subscriptions::{ChangeType, Subscription},
};

const QUEUE_CAPACITY: usize = 100_000;
const MAX_LOGGED: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Validation,
    Notification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// 2xx within the timeout (for a validation: 200, `text/plain`, the token echoed).
    Delivered,
    /// Answered, but not as required.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// No connection (or a broken one).
    Unreachable,
    /// Injected drop: never sent.
    Dropped,
}

/// One POST (or one dropped notification).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: Kind,
    /// Shared by the attempts and the repeat of one notification.
    pub notification_id: Option<String>,
    pub subscription_id: Option<String>,
    pub url: String,
    pub change_type: Option<ChangeType>,
    pub resource: Option<String>,
    pub event_id: Option<String>,
    pub attempt: u32,
    pub repeat: bool,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    /// The receiver's answer body (first 1,000 characters).
    pub answer: Option<String>,
    pub detail: Option<String>,
    /// The body sent (notifications only).
    pub body: Option<Value>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Notifications queued (one per change and subscription).
    pub notifications: u64,
    pub posts: u64,
    pub delivered: u64,
    pub refused: u64,
    pub timed_out: u64,
    pub unreachable: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Notifications (or repeats) never answered 2xx after every attempt.
    pub abandoned: u64,
    pub overflowed: u64,
    pub validations: u64,
    pub validations_failed: u64,
}

/// Run-time settings: the configured ones plus one-shot drop and repeat counts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: NotificationConfig,
    pub drop_next: u32,
    pub duplicate_next: u32,
}

#[derive(Debug, Default)]
struct Log {
    records: VecDeque<Record>,
    next_seq: u64,
    counts: Counts,
}

/// A notification waiting for delivery.
pub struct Job {
    pub subscription: Subscription,
    pub change: ChangeType,
    pub user_id: String,
    pub event_id: String,
    pub etag: String,
}

pub struct Notifier {
    tx: mpsc::Sender<Job>,
    settings: Mutex<Settings>,
    rng: Mutex<StdRng>,
    log: Mutex<Log>,
    pending: AtomicUsize,
    pub http: reqwest::Client,
}

/// The receiving end of the queue, consumed by [`run`].
pub struct Queue(pub mpsc::Receiver<Job>);

impl Notifier {
    pub fn new(config: NotificationConfig, seed: u64, http: reqwest::Client) -> (Self, Queue) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let notifier = Self {
            tx,
            settings: Mutex::new(Settings {
                config,
                drop_next: 0,
                duplicate_next: 0,
            }),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x4752_4150_484e_4f54)),
            log: Mutex::default(),
            pending: AtomicUsize::new(0),
            http,
        };
        (notifier, Queue(rx))
    }

    pub fn enqueue(
        &self,
        subscription: Subscription,
        change: ChangeType,
        user_id: &str,
        event_id: &str,
        etag: &str,
    ) {
        let job = Job {
            subscription,
            change,
            user_id: user_id.to_owned(),
            event_id: event_id.to_owned(),
            etag: etag.to_owned(),
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        lock(&self.log).counts.notifications += 1;
        if self.tx.try_send(job).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            lock(&self.log).counts.overflowed += 1;
            tracing::warn!("notification queue full; a change notification is lost");
        }
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: Settings, reseed: Option<u64>) {
        *lock(&self.settings) = settings;
        if let Some(seed) = reseed {
            *lock(&self.rng) = StdRng::seed_from_u64(seed);
        }
    }

    /// Notifications queued or being delivered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> Counts {
        lock(&self.log).counts.clone()
    }

    pub fn records(&self, after: u64, limit: usize) -> Vec<Record> {
        let log = lock(&self.log);
        let start = log.records.partition_point(|r| r.seq <= after);
        log.records.range(start..).take(limit).cloned().collect()
    }

    pub fn clear_log(&self) {
        let mut log = lock(&self.log);
        log.records.clear();
        log.counts = Counts::default();
    }

    pub fn record(&self, mut record: Record) {
        let mut log = lock(&self.log);
        log.next_seq += 1;
        record.seq = log.next_seq;
        let c = &mut log.counts;
        match record.kind {
            Kind::Validation => {
                c.validations += 1;
                c.validations_failed += u64::from(record.outcome != Outcome::Delivered);
            }
            Kind::Notification => {
                c.posts += u64::from(record.outcome != Outcome::Dropped);
                c.duplicated += u64::from(record.repeat && record.attempt == 1);
                match record.outcome {
                    Outcome::Delivered => c.delivered += 1,
                    Outcome::Refused => c.refused += 1,
                    Outcome::TimedOut => c.timed_out += 1,
                    Outcome::Unreachable => c.unreachable += 1,
                    Outcome::Dropped => c.dropped += 1,
                }
            }
        }
        if log.records.len() >= MAX_LOGGED {
            log.records.pop_front();
        }
        log.records.push_back(record);
    }

    /// A notification is done: `results` says, per sending, whether it was answered 2xx.
    pub fn finished(&self, results: &[bool]) {
        let abandoned = results.iter().filter(|delivered| !**delivered).count();
        lock(&self.log).counts.abandoned += abandoned as u64;
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Decides, in queue order, whether the next notification is dropped or repeated.
    pub fn plan(&self) -> (bool, bool, NotificationConfig) {
        let mut settings = lock(&self.settings);
        let mut rng = lock(&self.rng);
        let mut roll = |next: &mut u32, percent: f64| {
            if *next > 0 {
                *next -= 1;
                true
            } else {
                rng.random::<f64>() * 100.0 < percent
            }
        };
        let s = &mut *settings;
        let dropped = roll(&mut s.drop_next, s.config.drop_percent);
        let repeated = !dropped && roll(&mut s.duplicate_next, s.config.duplicate_percent);
        (dropped, repeated, s.config.clone())
    }

    /// The validation handshake with a new subscription's URL.
    pub async fn validate(&self, url: &str) -> Result<(), String> {
        let timeout = lock(&self.settings).config.validation_timeout;
        let record = delivery::validate(&self.http, url, timeout).await;
        let result = match record.outcome {
            Outcome::Delivered => Ok(()),
            _ => Err(record.detail.clone().unwrap_or_default()),
        };
        self.record(record);
        result
    }
}
