//! The consumer loop every Brain worker runs. Its contract (also in `docs/delivery.md`):
//!
//! - **At-least-once in, exactly-once effect.** A message's offset is stored only after its effect
//!   is durable (handled, skipped as a duplicate or stale, or dead-lettered), and only up to the
//!   highest offset below which every message is finished; stored offsets are committed every
//!   second, on partition revoke and on shutdown. A crash therefore redelivers, never loses;
//!   handlers make redelivery harmless with a processed-event record written in the effect's own
//!   PostgreSQL transaction and the monotonic version check (`crate::db`).
//! - **Per-partition workers, in batches.** Each assigned partition gets its own librdkafka queue
//!   (`split_partition_queue`) and its own task, owned by the loop's `JoinSet`. A worker takes
//!   the messages that are ready, up to `max_batch`, waiting at most `batch_linger` for more, and
//!   hands them to `Handler::handle_batch` in offset order. A slow or failing partition never slows
//!   the others; librdkafka stops fetching a partition whose queue is full
//!   (`queued_max_kbytes`), so nothing is paused, discarded and fetched again.
//! - **One outcome per message.** `handle_batch` returns one result per message, in order (a
//!   shorter list means the rest were not attempted), or one error for the whole batch. A record
//!   that failed is retried alone under its class; a whole-batch `Permanent` error (or a panic) is
//!   bisected until the failing record stands alone, so a poison record is dead-lettered by itself
//!   while the rest of its batch is applied; a whole-batch `Transient` error is retried one record
//!   at a time; a whole-batch `Unavailable` error retries the same batch. A batch handler that fails
//!   one record must not apply a later record of the same key in that call.
//! - **Classified failures.** `Permanent` (undecodable bytes, unknown schema id, validation) goes
//!   straight to the dead-letter topic. `Transient` (timeouts, 429, 5xx) is retried with bounded
//!   exponential backoff and jitter, honouring `Retry-After`, up to `max_attempts`; then it is
//!   dead-lettered as `transient_exhausted`, so one failing key holds its partition for at most
//!   the retry budget. `Unavailable` (our own dependency is down, e.g. PostgreSQL, or our own
//!   credentials are refused) is retried without limit and never dead-lettered: the message is not
//!   at fault. While any partition waits on an unavailable dependency, `/ready` reports the
//!   `handler` check failing with the error's kind; while no broker is reachable, `kafka` fails.
//! - **Admission.** `Handler::admit` is awaited before every batch and every retry (raced with
//!   shutdown) and never counts as an attempt: the hook for circuit breakers, capability flags and
//!   rate limits. While it waits, the partition's queue fills and librdkafka stops fetching it.
//! - **Capability flags.** A handler with a `gate` names its integration: while that integration
//!   is off as a whole the partition waits before its next batch; while some tenants are off,
//!   their events (decoded to find the tenant, `Handler::tenant`) are parked in order in the
//!   service's `held_events` table and their offsets stored, and the others flow. When a tenant is
//!   switched on again the partition's worker handles its held events, in order, before any new
//!   event of that tenant; held events are never dropped or dead-lettered for being held.
//! - **Dead letters** are Avro `DeadLetter` envelopes on `deadletter.<group>.v1` keeping the
//!   original key, value bytes and headers, source coordinates, error class, kind and message,
//!   attempts with timestamps, and the trace id. The offset is stored only once the envelope is
//!   acknowledged by the broker.
//! - **Shutdown and rebalance.** On revoke, the revoked partitions' workers finish the batch in
//!   hand (bounded by `drain_timeout`) and are then aborted, so an old and a new owner never run one
//!   partition at the same time; stored offsets are committed synchronously. On shutdown, polling
//!   stops, every worker finishes or abandons (mid-backoff) its batch under one `drain_timeout`
//!   deadline, the rest are aborted, offsets are committed and the producer is flushed. Abandoned
//!   work is redelivered to the next owner.
//! - **Names.** Topics and the group are catalogue names; the Kafka settings' namespace prefixes
//!   them (`KafkaSettings::namespace`).
//! - **Metrics** `<service>_consumer_messages_total{topic,outcome}` (processed, duplicate, stale,
//!   retried, dead_lettered), `<service>_consumer_batch_seconds{topic}`,
//!   `<service>_consumer_batch_records{topic}` and `<service>_consumer_lag_messages{topic,partition}`
//!   (the broker's high watermark minus the stored offset, from librdkafka statistics).

mod config;
mod context;
mod dead_letter;
mod fair;
mod gate;
mod worker;

use std::{future::Future, sync::Arc, time::Duration};

use brain_events::{Codec, Record};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::OwnedHeaders,
};
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{ConsumerConfig, GroupProtocol};
use context::LoopContext;

use crate::{kafka, ops::Readiness, producer::EventProducer, settings::KafkaSettings, telemetry};

/// How a message was disposed of by its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The effect was made.
    Processed,
    /// The event id was already processed; nothing was done.
    Duplicate,
    /// The event's version is not newer than the applied one; nothing was done.
    Stale,
}

impl Applied {
    fn label(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with backoff, then dead-letter.
    Transient,
    /// Dead-letter at once.
    Permanent,
    /// Our own dependency is down: retry without limit, never dead-letter.
    Unavailable,
}

#[derive(Debug, Error)]
#[error("{kind}: {message}")]
pub struct HandlerError {
    pub class: ErrorClass,
    /// A stable short code (`validation`, `http_429`, `database`, ...), used in metrics and envelopes.
    pub kind: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl HandlerError {
    pub fn new(class: ErrorClass, kind: &'static str, message: impl Into<String>) -> Self {
        Self { class, kind, message: message.into(), retry_after: None }
    }
    pub fn permanent(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, kind, message)
    }
    pub fn transient(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, kind, message)
    }
    pub fn unavailable(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unavailable, kind, message)
    }
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// Where a message came from, for handlers that need it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub headers: Option<&'a OwnedHeaders>,
    pub timestamp_ms: Option<i64>,
    /// 1 on the first try of this message.
    pub attempt: u32,
}

/// One decoded message of a batch.
#[derive(Debug)]
pub struct Delivery<'a, E> {
    pub source: Source<'a>,
    pub event: E,
}

/// The outcome of one message in a batch.
pub type Outcome = Result<Applied, HandlerError>;

/// Handles the messages of one partition. Must be idempotent: it may see a message more than once.
pub trait Handler: Send + Sync + 'static {
    type Event: Record + Send;

    /// One message; also how the runtime retries a record that failed on its own.
    fn handle(&self, source: Source<'_>, event: Self::Event) -> impl Future<Output = Outcome> + Send;

    /// 1..=`max_batch` consecutive messages of one partition, in offset order. `Ok`: one outcome
    /// per message, in order (fewer: the rest were not attempted). `Err`: the whole batch failed
    /// (e.g. its transaction). The default handles each message in turn and stops at the first
    /// failure, which is what a handler without a batch form needs.
    fn handle_batch(&self, batch: Vec<Delivery<'_, Self::Event>>) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for delivery in batch {
                let outcome = self.handle(delivery.source, delivery.event).await;
                let failed = outcome.is_err();
                outcomes.push(outcome);
                if failed {
                    break;
                }
            }
            Ok(outcomes)
        }
    }

    /// Awaited before every batch and every retry, raced with shutdown; never counts as an
    /// attempt. A breaker that is open or a flag that is off keeps it pending. Default: ready.
    fn admit(&self, _source: &Source<'_>) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// The capability flags this handler honours: with a gate, the loop waits while the
    /// integration is off and parks the events of switched-off tenants (`crate::flags`).
    fn gate(&self) -> Option<&crate::flags::Gate> {
        None
    }

    /// The tenant an event belongs to, for per-tenant flags.
    fn tenant(&self, _event: &Self::Event) -> Option<String> {
        None
    }
}

pub(crate) type TopicPartition = (String, i32);

/// Consumes `config.topics` until `shutdown` fires, handing each partition's messages to `handler`.
/// `readiness` gains the `kafka` and `handler` checks.
pub async fn run<H: Handler>(
    config: ConsumerConfig,
    kafka_settings: KafkaSettings,
    codec: Codec,
    producer: EventProducer,
    handler: Arc<H>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let namespace = kafka_settings.namespace.clone();
    let group = namespace.group(&config.group_id);
    let topics: Vec<String> = config.topics.iter().map(|t| namespace.topic(t)).collect();
    let kafka_check = readiness.check("kafka");
    let handler_check = readiness.check("handler");
    handler_check.set(true, "");
    let context = LoopContext::new(config.service, group.clone(), config.drain_timeout, kafka_check);
    let mut client = kafka::client_config(&kafka_settings, config.service);
    config.apply(&mut client, &group);
    let consumer: Arc<StreamConsumer<LoopContext>> = Arc::new(client.create_with_context(context)?);
    consumer.context().attach(&consumer);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    tracing::info!(%group, ?topics, protocol = ?config.group_protocol, max_batch = config.max_batch, "consuming");

    let shared = Arc::new(worker::Shared {
        dead_letter_topic: config.dead_letter_topic(),
        config: config.clone(),
        consumer: consumer.clone(),
        codec,
        producer: producer.clone(),
        handler,
        health: handler_check,
        group: group.clone(),
    });
    let mut workers = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = consumer.context().assigned() => spawn_assigned(&shared, &mut workers, &shutdown),
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "a partition worker panicked; its partition is redelivered after the next rebalance");
                }
            }
            received = consumer.recv() => match received {
                Ok(message) => recover_stray(&shared, &mut workers, &shutdown, message.topic(), message.partition(), message.offset()),
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }

    tracing::info!("stopping consumer: finishing in-flight batches");
    consumer.context().stop_all();
    let deadline = tokio::time::Instant::now() + config.drain_timeout;
    while !workers.is_empty() {
        match tokio::time::timeout_at(deadline, workers.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(left = workers.len(), "partition workers did not finish within the drain timeout; aborting them");
                workers.abort_all();
                while workers.join_next().await.is_some() {}
            }
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "final offset commit failed; uncommitted messages will be redelivered"),
    }
    consumer.unsubscribe();
    consumer.context().release_queues();
    producer.flush(Duration::from_secs(10));
    tracing::info!("consumer stopped");
    Ok(())
}

/// Starts a worker for every partition queue the rebalance callback handed out.
fn spawn_assigned<H: Handler>(shared: &Arc<worker::Shared<H>>, workers: &mut JoinSet<()>, shutdown: &CancellationToken) {
    for assigned in shared.consumer.context().take_assigned() {
        let stop = shutdown.child_token();
        let busy = Arc::default();
        let tp = assigned.tp.clone();
        let abort = workers.spawn(worker::run(shared.clone(), assigned.tp, assigned.queue, stop.clone(), Arc::clone(&busy)));
        shared.consumer.context().register(tp, context::Slot { stop, busy, abort });
    }
}

/// A message of a partition that has its own queue reached the main queue: librdkafka fetched it
/// before the queue was split (the split happens before assign, so this is a safety net). Its
/// partition restarts from that message: the worker is aborted, the stored offset and the fetch
/// position go back to the message, and a new worker starts once the old one is gone. The strays
/// after the first one are fetched again through the partition's queue, so they restart nothing.
fn recover_stray<H: Handler>(
    shared: &Arc<worker::Shared<H>>,
    workers: &mut JoinSet<()>,
    shutdown: &CancellationToken,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    let context = shared.consumer.context();
    let tp = (topic.to_string(), partition);
    metrics::counter!(telemetry::metric_name(shared.config.service, "consumer_stray_messages_total")).increment(1);
    if !context.restart_from(&tp, offset) {
        tracing::debug!(topic, partition, offset, "stray message after a restart from below it: fetched again");
        return;
    }
    tracing::warn!(topic, partition, offset, "message reached the main queue; restarting its partition from it");
    context.abort(tp);
    let mut tpl = TopicPartitionList::new();
    if tpl.add_partition_offset(topic, partition, Offset::Offset(offset)).is_err() {
        return;
    }
    if offset > 0
        && let Err(e) = shared.consumer.store_offset(topic, partition, offset - 1)
    {
        tracing::debug!(error = %e, "offset not stored");
    }
    if let Err(e) = shared.consumer.seek_partitions(tpl, Duration::from_secs(5)) {
        tracing::warn!(topic, partition, error = %e, "seek failed");
    }
    context.hand_out(&shared.consumer, topic, partition);
    spawn_assigned(shared, workers, shutdown);
}
