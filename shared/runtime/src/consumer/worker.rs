//! One task per assigned partition: decode, handle with retries, dead-letter, store the offset.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use brain_events::{Codec, DeadLetter, DeadLetterHeader, Record};
use futures::FutureExt;
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    message::{Headers, OwnedMessage},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Applied, ConsumerConfig, ErrorClass, Handler, HandlerError, Source, TopicPartition, context::LoopContext};
use crate::{producer::{EventProducer, Outgoing}, retry::sleep_or_cancel, telemetry};

pub(super) struct Shared<H> {
    pub config: ConsumerConfig,
    pub consumer: Arc<StreamConsumer<LoopContext>>,
    pub codec: Codec,
    pub producer: EventProducer,
    pub handler: Arc<H>,
}

pub(crate) struct WorkerHandle {
    stop: CancellationToken,
    busy: Arc<AtomicBool>,
    join: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub fn stop(&self) {
        self.stop.cancel();
    }
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
    pub async fn join(self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.join).await.is_err() {
            tracing::warn!("partition worker did not finish within the drain timeout");
        }
    }
}

/// Whether a message's offset may be stored.
enum Disposition {
    Done,
    Abandoned,
}

pub(super) fn spawn<H: Handler>(
    shared: Arc<Shared<H>>,
    tp: TopicPartition,
    mut rx: mpsc::Receiver<OwnedMessage>,
    stop: CancellationToken,
) -> WorkerHandle {
    let busy = Arc::new(AtomicBool::new(false));
    let (token, flag) = (stop.clone(), busy.clone());
    let join = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            flag.store(true, Ordering::Release);
            let disposition = process(&shared, &message, &stop).await;
            if let Disposition::Done = disposition {
                // Fails only if the partition was revoked meanwhile; the next owner redoes it.
                if let Err(e) = shared.consumer.store_offset(&tp.0, tp.1, message.offset()) {
                    tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "offset not stored");
                }
            }
            flag.store(false, Ordering::Release);
            if let Disposition::Abandoned = disposition {
                break;
            }
        }
    });
    WorkerHandle { stop: token, busy, join }
}

fn header_map(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .filter_map(|h| Some((h.key.to_string(), String::from_utf8(h.value?.to_vec()).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

async fn process<H: Handler>(shared: &Shared<H>, message: &OwnedMessage, stop: &CancellationToken) -> Disposition {
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        correlation_id = tracing::field::Empty,
    );
    telemetry::adopt_trace_headers(&span, &header_map(message));
    attempt_loop(shared, message, stop, &span).instrument(span.clone()).await
}

async fn attempt_loop<H: Handler>(
    shared: &Shared<H>,
    message: &OwnedMessage,
    stop: &CancellationToken,
    span: &tracing::Span,
) -> Disposition {
    let config = &shared.config;
    let topic = message.topic().to_string();
    let metric = telemetry::metric_name(config.service, "consumer_messages_total");
    let first_attempt = chrono::Utc::now();
    let (mut attempt, mut transient_failures) = (0u32, 0u32);
    loop {
        attempt += 1;
        let started = Instant::now();
        let source = Source { topic: &topic, partition: message.partition(), offset: message.offset(), attempt };
        let result = match decode::<H::Event>(&shared.codec, message).await {
            // A panicking handler must not take the partition's worker down with it (the
            // messages after it would then be committed past it): it dead-letters the message.
            Ok(event) => match AssertUnwindSafe(shared.handler.handle(source, event)).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(HandlerError::permanent("handler_panic", panic_message(panic.as_ref()))),
            },
            Err(e) => Err(e),
        };
        metrics::histogram!(telemetry::metric_name(config.service, "consumer_processing_seconds"), "topic" => topic.clone())
            .record(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(applied) => {
                metrics::counter!(metric.clone(), "topic" => topic.clone(), "outcome" => applied.label()).increment(1);
                if applied != Applied::Processed {
                    tracing::debug!(outcome = applied.label(), "skipped");
                }
                return Disposition::Done;
            }
            Err(e) => e,
        };
        let class = match error.class {
            ErrorClass::Permanent => Some("permanent"),
            ErrorClass::Transient if transient_failures + 1 >= config.max_attempts => Some("transient_exhausted"),
            _ => None,
        };
        if let Some(class) = class {
            let trace_id = telemetry::trace_id(span);
            return dead_letter(shared, message, &error, class, attempt, first_attempt, trace_id, stop).await;
        }
        if error.class == ErrorClass::Transient {
            transient_failures += 1;
        }
        let delay = config.backoff.delay(attempt.min(16), error.retry_after);
        metrics::counter!(metric.clone(), "topic" => topic.clone(), "outcome" => "retried").increment(1);
        tracing::warn!(attempt, kind = error.kind, class = ?error.class, delay_ms = delay.as_millis() as u64, error = %error.message, "retrying message");
        if !sleep_or_cancel(delay, stop).await {
            return Disposition::Abandoned;
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    format!("handler panicked: {}", text.unwrap_or_else(|| "<non-string panic>".into()))
}

async fn decode<T: Record>(codec: &Codec, message: &OwnedMessage) -> Result<T, HandlerError> {
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

#[allow(clippy::too_many_arguments)]
async fn dead_letter<H: Handler>(
    shared: &Shared<H>,
    message: &OwnedMessage,
    error: &HandlerError,
    class: &str,
    attempts: u32,
    first_attempt: chrono::DateTime<chrono::Utc>,
    trace_id: Option<String>,
    stop: &CancellationToken,
) -> Disposition {
    let config = &shared.config;
    let now = chrono::Utc::now().timestamp_millis();
    let envelope = DeadLetter {
        dead_letter_id: uuid::Uuid::now_v7().to_string(),
        source_topic: message.topic().to_string(),
        source_partition: message.partition(),
        source_offset: message.offset(),
        source_timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|h| h.iter().map(|h| DeadLetterHeader { key: h.key.to_string(), value: h.value.map(<[u8]>::to_vec) }).collect())
            .unwrap_or_default(),
        consumer_group: config.group_id.clone(),
        service: config.service.to_string(),
        error_class: class.to_string(),
        error_kind: error.kind.to_string(),
        error_message: error.message.clone(),
        attempts: attempts as i32,
        first_attempt_at: first_attempt.timestamp_millis(),
        last_attempt_at: now,
        dead_lettered_at: now,
        trace_id,
    };
    let topic = config.dead_letter_topic();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = match shared.codec.encode(&topic, &envelope).await {
            Ok(payload) => shared
                .producer
                .send_raw(Outgoing { topic: &topic, key: message.key(), payload: &payload, headers: Vec::new() })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => {
                metrics::counter!(telemetry::metric_name(config.service, "consumer_messages_total"), "topic" => message.topic().to_string(), "outcome" => "dead_lettered").increment(1);
                tracing::error!(dead_letter_topic = %topic, class, kind = error.kind, attempts, error = %error.message, "message dead-lettered");
                return Disposition::Done;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "could not publish dead letter; retrying");
                if !sleep_or_cancel(config.backoff.delay(attempt.min(16), None), stop).await {
                    return Disposition::Abandoned;
                }
            }
        }
    }
}
