//! The consumer loop every Brain worker runs. Its contract (also in `docs/delivery.md`):
//!
//! - **At-least-once in, exactly-once effect.** A message's offset is stored only after its effect
//!   is durable (handled, skipped as a duplicate, or dead-lettered); stored offsets are committed
//!   every second, on partition revoke and on shutdown. A crash therefore redelivers, never loses;
//!   handlers make redelivery harmless with a processed-event record written in the effect's own
//!   PostgreSQL transaction and the monotonic version check (`crate::db`).
//! - **Per-partition workers.** Each assigned partition has its own task and a bounded queue; a
//!   partition whose queue is full is paused, so a slow or failing partition never slows the
//!   others. Within a partition, messages are handled in order.
//! - **Classified failures.** `Permanent` (undecodable bytes, unknown schema id, validation) goes
//!   straight to the dead-letter topic. `Transient` (timeouts, 429, 5xx) is retried with bounded
//!   exponential backoff and jitter, honouring `Retry-After`, up to `max_attempts`; then it is
//!   dead-lettered as `transient_exhausted`, so one failing key holds its partition for at most
//!   the retry budget. `Unavailable` (our own dependency is down, e.g. PostgreSQL) is retried
//!   without limit and never dead-lettered: the message is not at fault.
//! - **Dead letters** are Avro `DeadLetter` envelopes on `deadletter.<group>.v1` keeping the
//!   original key, value bytes and headers, source coordinates, error class, kind and message,
//!   attempts with timestamps, and the trace id. The offset is stored only once the envelope is
//!   acknowledged by the broker.
//! - **Shutdown and rebalance.** On revoke, the revoked partitions' workers finish the message in
//!   hand (bounded by `drain_timeout`), then stored offsets are committed synchronously. On
//!   shutdown, polling stops, workers finish or abandon (mid-backoff) their message, offsets are
//!   committed and the producer is flushed. Abandoned work is redelivered to the next owner.
//! - **Metrics** `<service>_consumer_messages_total{topic,outcome}` (processed, duplicate, stale,
//!   retried, dead_lettered), `<service>_consumer_processing_seconds{topic}` and
//!   `<service>_consumer_lag_messages{topic,partition}` (from librdkafka statistics).

mod context;
mod worker;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use brain_events::{Codec, Record};
use rdkafka::{
    Message, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{kafka, producer::EventProducer, retry::Backoff, settings::KafkaSettings};
use context::LoopContext;

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
    pub attempt: u32,
}

/// One message in, one outcome out. Must be idempotent: it may see a message more than once.
pub trait Handler: Send + Sync + 'static {
    type Event: Record;
    fn handle(&self, source: Source<'_>, event: Self::Event) -> impl Future<Output = Result<Applied, HandlerError>> + Send;
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub service: &'static str,
    pub group_id: String,
    pub topics: Vec<String>,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub partition_queue: usize,
    pub drain_timeout: Duration,
    pub session_timeout: Duration,
}

impl ConsumerConfig {
    pub fn new(service: &'static str, group_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            service,
            group_id: group_id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            max_attempts: 5,
            backoff: Backoff::default(),
            partition_queue: 64,
            drain_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
        }
    }

    pub fn dead_letter_topic(&self) -> String {
        brain_events::topics::dead_letter(&self.group_id)
    }
}

pub(crate) type TopicPartition = (String, i32);

/// A running partition worker, shared between the poll loop and the rebalance callback.
pub(crate) struct WorkerSlot {
    tx: mpsc::Sender<OwnedMessage>,
    pending: VecDeque<OwnedMessage>,
    paused: bool,
    worker: worker::WorkerHandle,
}

pub(crate) type Workers = Arc<Mutex<HashMap<TopicPartition, WorkerSlot>>>;

/// Consumes `config.topics` until `shutdown` fires, handing each message to `handler`.
pub async fn run<H: Handler>(
    config: ConsumerConfig,
    kafka_settings: KafkaSettings,
    codec: Codec,
    producer: EventProducer,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let workers: Workers = Arc::default();
    let context = LoopContext::new(config.service, workers.clone(), config.drain_timeout);
    let consumer: Arc<StreamConsumer<LoopContext>> = Arc::new(
        kafka::client_config(&kafka_settings, config.service)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", "2000")
            .set("statistics.interval.ms", "5000")
            .set("fetch.max.bytes", (8 * kafka::MAX_MESSAGE_BYTES).to_string())
            .create_with_context(context)?,
    );
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %config.group_id, topics = ?config.topics, "consuming");

    let shared = Arc::new(worker::Shared {
        config: config.clone(),
        consumer: consumer.clone(),
        codec,
        producer: producer.clone(),
        handler,
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => feed_pending(&workers, &consumer),
            received = consumer.recv() => match received {
                Ok(message) => dispatch(message.detach(), &workers, &shared, &shutdown),
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }

    tracing::info!("stopping consumer: finishing in-flight messages");
    let handles: Vec<_> = workers.lock().expect("workers lock").drain().map(|(_, slot)| slot.worker).collect();
    for handle in &handles {
        handle.stop();
    }
    for handle in handles {
        handle.join(config.drain_timeout).await;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "final offset commit failed; uncommitted messages will be redelivered"),
    }
    consumer.unsubscribe();
    producer.flush(Duration::from_secs(10));
    tracing::info!("consumer stopped");
    Ok(())
}

fn dispatch<H: Handler>(message: OwnedMessage, workers: &Workers, shared: &Arc<worker::Shared<H>>, shutdown: &CancellationToken) {
    let tp = (message.topic().to_string(), message.partition());
    let mut workers = workers.lock().expect("workers lock");
    let slot = workers.entry(tp.clone()).or_insert_with(|| {
        let (tx, rx) = mpsc::channel(shared.config.partition_queue);
        let worker = worker::spawn(shared.clone(), tp.clone(), rx, shutdown.child_token());
        WorkerSlot { tx, pending: VecDeque::new(), paused: false, worker }
    });
    if !slot.pending.is_empty() {
        slot.pending.push_back(message);
        return;
    }
    match slot.tx.try_send(message) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(message) | mpsc::error::TrySendError::Closed(message)) => {
            slot.pending.push_back(message);
            if !slot.paused {
                slot.paused = pause(&shared.consumer, &tp, true);
            }
        }
    }
}

/// Moves held-back messages into their workers' queues and resumes drained partitions.
fn feed_pending(workers: &Workers, consumer: &StreamConsumer<LoopContext>) {
    let mut workers = workers.lock().expect("workers lock");
    for (tp, slot) in workers.iter_mut() {
        while let Some(message) = slot.pending.pop_front() {
            match slot.tx.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => {
                    slot.pending.push_front(m);
                    break;
                }
            }
        }
        if slot.pending.is_empty() && slot.paused {
            slot.paused = pause(consumer, tp, false);
        }
    }
}

/// Pauses or resumes one partition; returns whether it is now paused.
fn pause(consumer: &StreamConsumer<LoopContext>, (topic, partition): &TopicPartition, paused: bool) -> bool {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, *partition);
    let result = if paused { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
    match result {
        Ok(()) => paused,
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, paused, "could not change partition pause state");
            !paused
        }
    }
}
