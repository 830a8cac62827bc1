//! Webhook delivery: every change (API write or `/control` change) is queued, gathered for
//! `batch_delay` into deliveries of at most `max_events`, and POSTed to the configured URL,
//! signed. Like Intuit, a delivery that is not answered 2xx within `timeout` is retried (up to
//! `max_attempts`, backing off). Drops and repeats are injected with a seeded RNG: a dropped
//! delivery is never sent (CDC must catch it up); a repeated one is sent twice, same body.
//! Every delivery, with its events and outcome, is readable through `/control/webhooks/deliveries`.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{WebhookConfig, WebhookFormat},
    notifications::{self, Format},
    realm::Change,
    state::{SharedState, lock},
};

/// Changes waiting for delivery; beyond this, new ones are counted as overflowed and lost.
const QUEUE_CAPACITY: usize = 1_000_000;
const MAX_LOGGED_DELIVERIES: usize = 200_000;
const CONCURRENT_DELIVERIES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Delivered,
    /// Injected drop: never sent.
    Dropped,
    /// Every attempt failed.
    Failed,
    /// No URL configured.
    Undeliverable,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub format: Format,
    pub outcome: Outcome,
    pub attempts: u32,
    pub last_status: Option<u16>,
    /// The second sending of a repeated delivery.
    pub repeat: bool,
    pub events: Vec<DeliveredEvent>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredEvent {
    #[serde(flatten)]
    pub change: Change,
    /// The CloudEvent `id` (CloudEvents deliveries only).
    pub event_id: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryCounts {
    pub deliveries: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub repeated: u64,
    pub failed: u64,
    pub undeliverable: u64,
    pub overflowed: u64,
    pub events_delivered: u64,
}

#[derive(Debug, Default)]
struct Log {
    deliveries: VecDeque<Delivery>,
    next_seq: u64,
    counts: DeliveryCounts,
}

pub struct Webhooks {
    tx: mpsc::Sender<Change>,
    settings: Mutex<WebhookConfig>,
    rng: Mutex<StdRng>,
    log: Mutex<Log>,
    /// Changes queued or being delivered.
    pending: AtomicUsize,
    http: reqwest::Client,
}

/// The receiving end of the queue, consumed by [`run`].
pub struct Queue(mpsc::Receiver<Change>);

impl Webhooks {
    pub fn new(settings: WebhookConfig, seed: u64, http: reqwest::Client) -> (Self, Queue) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let webhooks = Self {
            tx,
            settings: Mutex::new(settings),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5745_4248_4f4f_4b53)),
            log: Mutex::default(),
            pending: AtomicUsize::new(0),
            http,
        };
        (webhooks, Queue(rx))
    }

    pub fn notify(&self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if self.tx.try_send(change).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                lock(&self.log).counts.overflowed += 1;
                tracing::warn!("webhook queue full; a change notification is lost");
            }
        }
    }

    pub fn settings(&self) -> WebhookConfig {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: WebhookConfig, reseed: Option<u64>) {
        *lock(&self.settings) = settings;
        if let Some(seed) = reseed {
            *lock(&self.rng) = StdRng::seed_from_u64(seed);
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> DeliveryCounts {
        lock(&self.log).counts.clone()
    }

    pub fn deliveries(&self, after: u64, limit: usize) -> Vec<Delivery> {
        let log = lock(&self.log);
        let start = log.deliveries.partition_point(|d| d.seq <= after);
        log.deliveries.range(start..).take(limit).cloned().collect()
    }

    pub fn clear_log(&self) {
        let mut log = lock(&self.log);
        log.deliveries.clear();
        log.counts = DeliveryCounts::default();
    }

    fn record(&self, mut delivery: Delivery) {
        let mut log = lock(&self.log);
        log.next_seq += 1;
        delivery.seq = log.next_seq;
        let c = &mut log.counts;
        c.deliveries += 1;
        c.repeated += u64::from(delivery.repeat);
        match delivery.outcome {
            Outcome::Delivered => {
                c.delivered += 1;
                c.events_delivered += delivery.events.len() as u64;
            }
            Outcome::Dropped => c.dropped += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Undeliverable => c.undeliverable += 1,
        }
        if log.deliveries.len() >= MAX_LOGGED_DELIVERIES {
            log.deliveries.pop_front();
        }
        log.deliveries.push_back(delivery);
    }
}

/// Gathers queued changes into deliveries until `shutdown`; in-flight deliveries are abandoned
/// at shutdown (a real sender would retry them later; the simulator is gone by then).
pub async fn run(state: SharedState, Queue(mut rx): Queue, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            change = rx.recv() => match change { Some(c) => c, None => break },
        };
        let settings = state.webhooks.settings();
        let mut batch = vec![first];
        drain(&mut rx, &mut batch, settings.max_events);
        if batch.len() < settings.max_events {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(settings.batch_delay) => {}
            }
            drain(&mut rx, &mut batch, settings.max_events);
        }
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
        };
        // Decided here, in queue order, so a seed gives the same drops and repeats every run.
        let plan = plan(&state.webhooks, &settings, batch.len());
        let state = state.clone();
        tasks.spawn(async move {
            deliver(&state, batch, plan, settings).await;
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}

fn drain(rx: &mut mpsc::Receiver<Change>, batch: &mut Vec<Change>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(change) => batch.push(change),
            Err(_) => break,
        }
    }
}

/// How one delivery goes: its format, event ids, and whether it is dropped or repeated.
struct Plan {
    format: Format,
    dropped: bool,
    repeated: bool,
    ids: Vec<String>,
}

fn plan(webhooks: &Webhooks, settings: &WebhookConfig, events: usize) -> Plan {
    let mut rng = lock(&webhooks.rng);
    let format = match settings.format {
        WebhookFormat::Legacy => Format::Legacy,
        WebhookFormat::CloudEvents => Format::CloudEvents,
        WebhookFormat::Mixed if rng.random_bool(0.5) => Format::Legacy,
        WebhookFormat::Mixed => Format::CloudEvents,
    };
    let dropped = rng.random::<f64>() * 100.0 < settings.drop_percent;
    let repeated = rng.random::<f64>() * 100.0 < settings.duplicate_percent;
    let ids = (0..events)
        .map(|_| {
            uuid::Builder::from_random_bytes(rng.random())
                .into_uuid()
                .to_string()
        })
        .collect();
    Plan {
        format,
        dropped,
        repeated,
        ids,
    }
}

async fn deliver(state: &SharedState, batch: Vec<Change>, plan: Plan, settings: WebhookConfig) {
    let webhooks = &state.webhooks;
    let Plan {
        format,
        dropped,
        repeated,
        ids,
    } = plan;
    let events: Vec<DeliveredEvent> = batch
        .iter()
        .zip(&ids)
        .map(|(change, id)| DeliveredEvent {
            change: change.clone(),
            event_id: (format == Format::CloudEvents).then(|| id.clone()),
        })
        .collect();
    let mut delivery = Delivery {
        seq: 0,
        at: Utc::now(),
        format,
        outcome: Outcome::Undeliverable,
        attempts: 0,
        last_status: None,
        repeat: false,
        events,
    };
    let count = batch.len();
    let Some(url) = settings.url.clone() else {
        webhooks.record(delivery);
        webhooks.pending.fetch_sub(count, Ordering::SeqCst);
        return;
    };
    if dropped {
        delivery.outcome = Outcome::Dropped;
        webhooks.record(delivery);
        webhooks.pending.fetch_sub(count, Ordering::SeqCst);
        return;
    }
    let body = match format {
        Format::Legacy => notifications::legacy(&batch, &state.clock),
        Format::CloudEvents => notifications::cloud_events(&batch, &ids, &state.clock),
    };
    let body = serde_json::to_vec(&body).expect("JSON values serialize");
    let signature = notifications::sign(settings.verifier_token.expose_secret(), &body);
    let content_type = match format {
        Format::Legacy => "application/json",
        Format::CloudEvents => settings.cloudevents_content_type.as_str(),
    };
    for repeat in [false, true].into_iter().take(if repeated { 2 } else { 1 }) {
        let (outcome, attempts, last_status) = send(
            &webhooks.http,
            &settings,
            &url,
            content_type,
            &signature,
            &body,
        )
        .await;
        let mut sent = delivery.clone();
        (sent.outcome, sent.attempts, sent.last_status, sent.repeat) =
            (outcome, attempts, last_status, repeat);
        sent.at = Utc::now();
        webhooks.record(sent);
    }
    webhooks.pending.fetch_sub(count, Ordering::SeqCst);
}

async fn send(
    http: &reqwest::Client,
    settings: &WebhookConfig,
    url: &str,
    content_type: &str,
    signature: &str,
    body: &[u8],
) -> (Outcome, u32, Option<u16>) {
    let mut last_status = None;
    let mut backoff = settings.retry_delay;
    for attempt in 1..=settings.max_attempts {
        let result = http
            .post(url)
            .timeout(settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("intuit-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                return (
                    Outcome::Delivered,
                    attempt,
                    Some(response.status().as_u16()),
                );
            }
            Ok(response) => {
                last_status = Some(response.status().as_u16());
                tracing::debug!(
                    status = response.status().as_u16(),
                    attempt,
                    "webhook refused"
                );
            }
            Err(error) => {
                last_status = None;
                tracing::debug!(%error, attempt, "webhook delivery failed");
            }
        }
        if attempt < settings.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
    (Outcome::Failed, settings.max_attempts, last_status)
}
