//! One task per assigned partition: take a batch, decode, handle, retry what failed, dead-letter
//! what cannot succeed, store the offset of the finished prefix.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use brain_events::Codec;
use futures::FutureExt;
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer, stream_consumer::StreamPartitionQueue},
    message::{Headers, OwnedMessage},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    ConsumerConfig, Delivery, ErrorClass, Handler, HandlerError, Source, TopicPartition,
    context::{LoopContext, PartitionQueue},
    dead_letter, fair,
    gate::{self, Holding},
};
use crate::{ops::Check, producer::EventProducer, retry::sleep_or_cancel, telemetry};

pub(super) struct Shared<H> {
    pub config: ConsumerConfig,
    pub consumer: Arc<StreamConsumer<LoopContext>>,
    pub codec: Codec,
    pub producer: EventProducer,
    pub handler: Arc<H>,
    /// The readiness check that fails while a partition waits on an unavailable dependency.
    pub health: Check,
    pub dead_letter_topic: String,
    /// The consumer group's real (namespaced) name.
    pub group: String,
}

/// Messages fresh from the partition, or held ones being drained (their offsets were stored when
/// they were held, so none is stored again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Live,
    Drain,
}

/// Whether the worker finished its batch or gave it up (shutdown or revoke).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Disposition {
    Done,
    Abandoned,
}

pub(super) async fn run<H: Handler>(
    shared: Arc<Shared<H>>,
    tp: TopicPartition,
    queue: PartitionQueue,
    stop: CancellationToken,
    busy: Arc<AtomicBool>,
) {
    // The worker before this one on the partition (aborted on revoke or restart) may not be
    // dropped yet: take turns, so no two workers ever read the partition at once.
    let queue = tokio::select! {
        biased;
        _ = stop.cancelled() => return,
        queue = queue.lock_owned() => queue,
    };
    tracing::debug!(topic = %tp.0, partition = tp.1, "partition worker started");
    let Some(mut holding) = Holding::load(&shared, &tp, &stop).await else { return };
    loop {
        let recheck = (!holding.tenants.is_empty()).then_some(gate::RECHECK);
        let Some(batch) = collect(&shared.config, &queue, &stop, &busy, recheck).await else { break };
        let disposition = handle(&shared, &tp, batch, &mut holding, &stop).await;
        busy.store(false, Ordering::Release);
        if disposition == Disposition::Abandoned {
            break;
        }
    }
    tracing::debug!(topic = %tp.0, partition = tp.1, "partition worker stopped");
}

/// Flags first (wait while the integration is off, drain released tenants), then the batch with
/// the switched-off tenants' messages parked.
async fn handle<H: Handler>(shared: &Shared<H>, tp: &TopicPartition, batch: Vec<OwnedMessage>, holding: &mut Holding, stop: &CancellationToken) -> Disposition {
    if !gate::admit(shared, stop).await || gate::drain(shared, tp, holding, stop).await == Disposition::Abandoned {
        return Disposition::Abandoned;
    }
    if batch.is_empty() {
        return Disposition::Done;
    }
    let holds = gate::may_hold(shared, holding);
    let fair = shared.config.fair_window > 0;
    let tenants = if holds || fair { tenants_of(shared, &batch).await } else { Vec::new() };
    let held = if holds {
        let Some(held) = gate::hold_off(shared, &batch, &tenants, holding, stop).await else { return Disposition::Abandoned };
        held
    } else {
        vec![false; batch.len()]
    };
    if held.iter().all(|h| *h) {
        let last = batch.iter().max_by_key(|m| m.offset()).expect("a batch is not empty");
        store_offset(shared, last.topic(), last.partition(), last.offset());
        return Disposition::Done;
    }
    let (batch, held) = if fair { fair::order(batch, held, &tenants) } else { (batch, held) };
    process_with(shared, tp, &batch, stop, Mode::Live, held).await
}

/// The tenant of each message (`None` when it does not decode or has none).
async fn tenants_of<H: Handler>(shared: &Shared<H>, batch: &[OwnedMessage]) -> Vec<Option<String>> {
    let mut tenants = Vec::with_capacity(batch.len());
    for message in batch {
        tenants.push(decode::<H::Event>(&shared.codec, message).await.ok().and_then(|e| shared.handler.tenant(&e)));
    }
    tenants
}

/// The next batch: waits for one message, then takes what else is ready, up to `max_batch`,
/// waiting at most `batch_linger`. `None` once told to stop; empty after `recheck` without a
/// message. Sets `busy` when it has a message.
async fn collect(
    config: &ConsumerConfig,
    queue: &StreamPartitionQueue<LoopContext>,
    stop: &CancellationToken,
    busy: &AtomicBool,
    recheck: Option<std::time::Duration>,
) -> Option<Vec<OwnedMessage>> {
    let idle = async {
        match recheck {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    let first = tokio::select! {
        biased;
        _ = stop.cancelled() => return None,
        m = queue.recv() => m,
        _ = idle => return Some(Vec::new()),
    };
    busy.store(true, Ordering::Release);
    let take = config.max_batch.max(config.fair_window);
    let mut batch = Vec::with_capacity(take.min(64));
    match first {
        Ok(m) => batch.push(m.detach()),
        Err(e) => {
            // Fetch errors are reported here and retried by librdkafka; do not spin on them.
            tracing::warn!(error = %e, "partition queue error");
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
            return Some(batch);
        }
    }
    let deadline = tokio::time::Instant::now() + config.batch_linger;
    while batch.len() < take {
        // Whatever is ready first, without a timer; then wait out the linger.
        let next = match queue.recv().now_or_never() {
            Some(m) => m,
            None if config.batch_linger.is_zero() => break,
            None => match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        match next {
            Ok(m) => batch.push(m.detach()),
            Err(e) => {
                tracing::warn!(error = %e, "partition queue error");
                break;
            }
        }
    }
    Some(batch)
}

/// Per-message bookkeeping of one batch.
struct Progress {
    done: Vec<bool>,
    attempts: Vec<u32>,
    transient_failures: Vec<u32>,
    first_attempt: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    /// The offset stored last (every message up to it is finished).
    stored: Option<i64>,
    /// Whether offsets are stored (not for held messages being drained).
    store: bool,
}

impl Progress {
    fn new(n: usize) -> Self {
        Self { done: vec![false; n], attempts: vec![0; n], transient_failures: vec![0; n], first_attempt: vec![None; n], stored: None, store: true }
    }

    fn next_pending(&self) -> Option<usize> {
        self.done.iter().position(|d| !d)
    }

    fn attempt(&mut self, i: usize) -> u32 {
        self.attempts[i] += 1;
        self.first_attempt[i].get_or_insert_with(chrono::Utc::now);
        self.attempts[i]
    }
}

/// Bisection state: while `start < until`, chunks hold at most `limit` messages.
#[derive(Clone, Copy)]
struct Careful {
    until: usize,
    limit: usize,
}

pub(super) async fn process<H: Handler>(shared: &Shared<H>, tp: &TopicPartition, batch: &[OwnedMessage], stop: &CancellationToken, mode: Mode) -> Disposition {
    process_with(shared, tp, batch, stop, mode, vec![false; batch.len()]).await
}

/// `process`, with the messages marked in `done` already finished (held).
async fn process_with<H: Handler>(shared: &Shared<H>, tp: &TopicPartition, batch: &[OwnedMessage], stop: &CancellationToken, mode: Mode, done: Vec<bool>) -> Disposition {
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        topic = %tp.0,
        partition = tp.1,
        offset = batch[0].offset(),
        records = batch.len(),
        correlation_id = tracing::field::Empty,
    );
    telemetry::adopt_trace_headers(&span, &header_map(&batch[0]));
    process_batch(shared, batch, stop, &span, mode, done).instrument(span.clone()).await
}

async fn process_batch<H: Handler>(shared: &Shared<H>, batch: &[OwnedMessage], stop: &CancellationToken, span: &tracing::Span, mode: Mode, done: Vec<bool>) -> Disposition {
    let config = &shared.config;
    let topic = batch[0].topic().to_string();
    let mut progress = Progress::new(batch.len());
    progress.done = done;
    progress.store = mode == Mode::Live;
    let mut careful: Option<Careful> = None;
    loop {
        store_progress(shared, batch, &mut progress);
        let Some(start) = progress.next_pending() else { return Disposition::Done };
        let head = source_of(&batch[start], progress.attempts[start] + 1);
        let admitted = tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            _ = shared.handler.admit(&head) => true,
        };
        if !admitted {
            return Disposition::Abandoned;
        }
        let limit = careful.filter(|c| start < c.until).map_or(config.max_batch, |c| c.limit);
        let end = (start..batch.len()).take(limit).take_while(|i| !progress.done[*i]).last().map_or(start, |i| i + 1);

        // Decode the chunk; a message that does not decode ends it (it is dealt with on its own).
        let mut events = Vec::with_capacity(end - start);
        let mut undecodable = None;
        for message in &batch[start..end] {
            match decode::<H::Event>(&shared.codec, message).await {
                Ok(event) => events.push(event),
                Err(e) => {
                    undecodable = Some(e);
                    break;
                }
            }
        }
        if events.is_empty() {
            let error = undecodable.expect("an empty chunk has a decode error");
            let attempt = progress.attempt(start);
            if fail_one(shared, &batch[start], start, &mut progress, error, attempt, stop, span).await == Disposition::Abandoned {
                return Disposition::Abandoned;
            }
            continue;
        }

        let len = events.len();
        let deliveries: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(j, event)| {
                let attempt = progress.attempt(start + j);
                Delivery { source: source_of(&batch[start + j], attempt), event }
            })
            .collect();
        let started = Instant::now();
        let result = match AssertUnwindSafe(shared.handler.handle_batch(deliveries)).catch_unwind().await {
            Ok(result) => result,
            // A panicking handler must not take the partition's worker down with it.
            Err(panic) => Err(HandlerError::permanent("handler_panic", panic_message(panic.as_ref()))),
        };
        metrics::histogram!(telemetry::metric_name(config.service, "consumer_batch_seconds"), "topic" => topic.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(telemetry::metric_name(config.service, "consumer_batch_records"), "topic" => topic.clone()).record(len as f64);

        match result {
            Err(error) if len == 1 => {
                let attempt = progress.attempts[start];
                if fail_one(shared, &batch[start], start, &mut progress, error, attempt, stop, span).await == Disposition::Abandoned {
                    return Disposition::Abandoned;
                }
            }
            Err(error) => {
                // The whole chunk failed and nobody knows which record is at fault.
                let guard = (error.class == ErrorClass::Unavailable).then(|| shared.health.fail(error.kind));
                let until = careful.filter(|c| start < c.until).map_or(start + len, |c| c.until.max(start + len));
                careful = match error.class {
                    ErrorClass::Permanent => Some(Careful { until, limit: len.div_ceil(2) }),
                    ErrorClass::Transient => Some(Careful { until, limit: 1 }),
                    ErrorClass::Unavailable => careful,
                };
                count(config, &topic, "retried", len as u64);
                tracing::warn!(records = len, kind = error.kind, class = ?error.class, error = %error.message, "batch failed; retrying");
                if error.class != ErrorClass::Permanent {
                    let delay = config.backoff.delay(progress.attempts[start].min(16), error.retry_after);
                    if !sleep_or_cancel(delay, stop).await {
                        return Disposition::Abandoned;
                    }
                }
                drop(guard);
            }
            Ok(outcomes) => {
                if outcomes.is_empty() {
                    tracing::warn!(records = len, "handle_batch returned no outcome; retrying the batch one record at a time");
                    careful = Some(Careful { until: start + len, limit: 1 });
                }
                let mut failure = None;
                for (j, outcome) in outcomes.into_iter().take(len).enumerate() {
                    let i = start + j;
                    match outcome {
                        Ok(applied) => {
                            progress.done[i] = true;
                            count(config, &topic, applied.label(), 1);
                        }
                        Err(error) if failure.is_none() => failure = Some((i, error)),
                        // Later failures of the same call get their own turn.
                        Err(_) => {}
                    }
                }
                if let Some((i, error)) = failure {
                    let attempt = progress.attempts[i];
                    store_progress(shared, batch, &mut progress);
                    if fail_one(shared, &batch[i], i, &mut progress, error, attempt, stop, span).await == Disposition::Abandoned {
                        return Disposition::Abandoned;
                    }
                    // Retry from the failed record one at a time until the end of this chunk.
                    careful = Some(Careful { until: start + len, limit: 1 });
                }
            }
        }
    }
}

/// One message failed on its own: dead-letter it, or wait before its next try.
#[allow(clippy::too_many_arguments)]
async fn fail_one<H: Handler>(
    shared: &Shared<H>,
    message: &OwnedMessage,
    index: usize,
    progress: &mut Progress,
    error: HandlerError,
    attempt: u32,
    stop: &CancellationToken,
    span: &tracing::Span,
) -> Disposition {
    let config = &shared.config;
    let dead_letter_class = match error.class {
        ErrorClass::Permanent => Some("permanent"),
        ErrorClass::Transient if progress.transient_failures[index] + 1 >= config.max_attempts => Some("transient_exhausted"),
        _ => None,
    };
    if let Some(class) = dead_letter_class {
        let failure = dead_letter::Failure {
            error: &error,
            class,
            attempts: attempt.max(1),
            first_attempt: progress.first_attempt[index].unwrap_or_else(chrono::Utc::now),
            trace_id: telemetry::trace_id(span),
        };
        let disposition = dead_letter::publish(shared, message, failure, stop).await;
        if disposition == Disposition::Done {
            progress.done[index] = true;
        }
        return disposition;
    }
    if error.class == ErrorClass::Transient {
        progress.transient_failures[index] += 1;
    }
    let _guard = (error.class == ErrorClass::Unavailable).then(|| shared.health.fail(error.kind));
    let delay = config.backoff.delay(attempt.clamp(1, 16), error.retry_after);
    count(config, message.topic(), "retried", 1);
    tracing::warn!(offset = message.offset(), attempt, kind = error.kind, class = ?error.class, delay_ms = delay.as_millis() as u64, error = %error.message, "retrying message");
    if sleep_or_cancel(delay, stop).await { Disposition::Done } else { Disposition::Abandoned }
}

/// Stores the highest offset below which every message of the batch is finished (the batch may
/// be in fair order rather than offset order).
fn store_progress<H: Handler>(shared: &Shared<H>, batch: &[OwnedMessage], progress: &mut Progress) {
    if !progress.store {
        return;
    }
    let pending = batch.iter().zip(&progress.done).filter(|(_, done)| !**done).map(|(m, _)| m.offset()).min();
    let finished = match pending {
        Some(offset) => batch.iter().map(|m| m.offset()).filter(|o| *o < offset).max(),
        None => batch.iter().map(|m| m.offset()).max(),
    };
    if let Some(offset) = finished
        && progress.stored.is_none_or(|stored| offset > stored)
    {
        store_offset(shared, batch[0].topic(), batch[0].partition(), offset);
        progress.stored = Some(offset);
    }
}

fn store_offset<H: Handler>(shared: &Shared<H>, topic: &str, partition: i32, offset: i64) {
    // Fails only if the partition was revoked meanwhile; the next owner redoes it.
    if let Err(e) = shared.consumer.store_offset(topic, partition, offset) {
        tracing::debug!(topic, partition, error = %e, "offset not stored");
    }
}

pub(super) fn count(config: &ConsumerConfig, topic: &str, outcome: &'static str, n: u64) {
    metrics::counter!(telemetry::metric_name(config.service, "consumer_messages_total"), "topic" => topic.to_string(), "outcome" => outcome)
        .increment(n);
}

fn source_of(message: &OwnedMessage, attempt: u32) -> Source<'_> {
    Source {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        headers: message.headers(),
        timestamp_ms: message.timestamp().to_millis(),
        attempt,
    }
}

pub(super) fn header_map(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .filter_map(|h| Some((h.key.to_string(), String::from_utf8(h.value?.to_vec()).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    format!("handler panicked: {}", text.unwrap_or_else(|| "<non-string panic>".into()))
}

pub(super) async fn decode<T: brain_events::Record>(codec: &Codec, message: &OwnedMessage) -> Result<T, HandlerError> {
    let Some(payload) = message.payload() else {
        return Err(HandlerError::permanent("empty_value", "record has no value"));
    };
    codec.decode::<T>(payload).await.map_err(|e| {
        if e.is_transient() {
            HandlerError::unavailable("registry", e.to_string())
        } else {
            HandlerError::permanent(e.kind(), e.to_string())
        }
    })
}

