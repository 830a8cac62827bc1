//! Rebalance, statistics and error callbacks of the consumer loop, and the registry of partition
//! workers they act on.
//!
//! On assign, each new partition's queue is split off the main queue *before* librdkafka's assign
//! (a split queue is marked as forwarded by the application, so the fetcher that assign starts
//! never routes it to the main queue) and handed to the loop, which starts its worker. On revoke,
//! the revoked partitions' workers are told to stop, get `drain_timeout` to finish the batch in
//! hand, and are then aborted before the stored offsets are committed: once the callback returns,
//! no task of this member works on a revoked partition.
//!
//! A partition's queue is split once per consumer and reused on every later assignment of that
//! partition: rdkafka's `StreamPartitionQueue` switches the librdkafka queue's wake-up callback
//! off when it is dropped, and every handle of a partition shares that one queue, so an old
//! handle dropped after a new one was split (an aborted worker is dropped a little later) would
//! leave the new worker waiting forever on a partition full of messages. The queue's lock makes
//! a partition's workers take turns: a new one starts only once the one before it is gone.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientContext, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer, stream_consumer::StreamPartitionQueue},
    error::{KafkaError, KafkaResult},
    types::RDKafkaErrorCode,
};
use tokio::{sync::Notify, task::AbortHandle};
use tokio_util::sync::CancellationToken;

use super::TopicPartition;
use crate::{ops::Check, telemetry::metric_name};

/// A partition's own queue; its lock is held by the partition's worker for the worker's life.
pub(super) type PartitionQueue = Arc<tokio::sync::Mutex<StreamPartitionQueue<LoopContext>>>;

/// A partition queue handed out at assignment, waiting for its worker.
pub(super) struct Assigned {
    pub tp: TopicPartition,
    pub queue: PartitionQueue,
}

/// A running partition worker.
pub(super) struct Slot {
    pub stop: CancellationToken,
    /// True while the worker has a batch in hand.
    pub busy: Arc<AtomicBool>,
    pub abort: AbortHandle,
}

#[derive(Default)]
struct State {
    assigned: Vec<Assigned>,
    slots: HashMap<TopicPartition, Slot>,
    /// Every partition queue split so far (see the module docs); released at shutdown.
    queues: HashMap<TopicPartition, PartitionQueue>,
    /// Partitions restarted from a stray message since their last rebalance, and from where.
    restarts: HashMap<TopicPartition, i64>,
}

pub struct LoopContext {
    service: &'static str,
    /// The consumer group's real name, for the rebalance logs (a process runs several groups).
    group: String,
    drain_timeout: Duration,
    kafka: Check,
    consumer: OnceLock<Weak<StreamConsumer<LoopContext>>>,
    state: Mutex<State>,
    notify: Notify,
}

impl LoopContext {
    pub(super) fn new(service: &'static str, group: String, drain_timeout: Duration, kafka: Check) -> Self {
        kafka.set(true, "");
        Self { service, group, drain_timeout, kafka, consumer: OnceLock::new(), state: Mutex::default(), notify: Notify::new() }
    }

    /// Lets the callbacks reach the consumer they belong to (to split partition queues).
    pub(super) fn attach(&self, consumer: &Arc<StreamConsumer<LoopContext>>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("consumer state lock")
    }

    /// Resolves when partition queues are waiting for workers.
    pub(super) async fn assigned(&self) {
        self.notify.notified().await
    }

    pub(super) fn take_assigned(&self) -> Vec<Assigned> {
        std::mem::take(&mut self.state().assigned)
    }

    pub(super) fn register(&self, tp: TopicPartition, slot: Slot) {
        if let Some(old) = self.state().slots.insert(tp, slot) {
            old.stop.cancel();
            old.abort.abort();
        }
    }

    /// Hands the partition's queue (split off the main queue on its first assignment) to the
    /// loop for a new worker.
    pub(super) fn hand_out(&self, consumer: &Arc<StreamConsumer<LoopContext>>, topic: &str, partition: i32) {
        let tp = (topic.to_string(), partition);
        let mut state = self.state();
        let queue = match state.queues.get(&tp) {
            Some(queue) => queue.clone(),
            None => match consumer.split_partition_queue(topic, partition) {
                Some(queue) => {
                    let queue = Arc::new(tokio::sync::Mutex::new(queue));
                    state.queues.insert(tp.clone(), queue.clone());
                    queue
                }
                None => {
                    tracing::error!(topic, partition, "could not split the partition's queue; its messages reach the main queue");
                    return;
                }
            },
        };
        state.assigned.push(Assigned { tp, queue });
        drop(state);
        self.notify.notify_one();
    }

    /// Whether a stray message at `offset` calls for restarting its partition from it: not when
    /// the partition was restarted from an offset at or below it since its last rebalance (the
    /// strays that followed the first one are fetched again through the partition's queue).
    pub(super) fn restart_from(&self, tp: &TopicPartition, offset: i64) -> bool {
        let mut state = self.state();
        match state.restarts.get(tp) {
            Some(from) if *from <= offset => false,
            _ => {
                state.restarts.insert(tp.clone(), offset);
                true
            }
        }
    }

    /// Drops the partition queues (they hold the consumer): the loop's last step.
    pub(super) fn release_queues(&self) {
        let mut state = self.state();
        state.assigned.clear();
        state.queues.clear();
    }

    /// Aborts the partition's worker at once (its unfinished batch is redone by the next one).
    pub(super) fn abort(&self, tp: TopicPartition) {
        let mut state = self.state();
        state.assigned.retain(|a| a.tp != tp);
        if let Some(slot) = state.slots.remove(&tp) {
            slot.stop.cancel();
            slot.abort.abort();
        }
    }

    /// Tells every worker to stop (shutdown); the loop then awaits them under one deadline.
    pub(super) fn stop_all(&self) {
        let mut state = self.state();
        state.assigned.clear();
        for slot in state.slots.values() {
            slot.stop.cancel();
        }
    }

    /// Stops the workers of revoked partitions, waits (bounded) for their batch in hand, then
    /// aborts them, so that the partitions' next owner never overlaps with them.
    fn drain(&self, revoked: &TopicPartitionList) {
        let stopped: Vec<Slot> = {
            let mut state = self.state();
            let revoked: Vec<TopicPartition> = revoked.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
            state.assigned.retain(|a| !revoked.contains(&a.tp));
            state.restarts.retain(|tp, _| !revoked.contains(tp));
            revoked.iter().filter_map(|tp| state.slots.remove(tp)).collect()
        };
        for slot in &stopped {
            slot.stop.cancel();
        }
        let deadline = Instant::now() + self.drain_timeout;
        let wait = || {
            while stopped.iter().any(|s| s.busy.load(Ordering::Acquire)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        // This callback runs on a runtime thread inside poll; let the runtime move its other
        // tasks (the workers we wait for) elsewhere while we block.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        }
        if stopped.iter().any(|s| s.busy.load(Ordering::Acquire)) {
            tracing::warn!("revoked partitions still busy after the drain timeout; aborting them (their batch is redelivered)");
        }
        for slot in stopped {
            slot.abort.abort();
        }
    }
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        if statistics.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP") {
            self.kafka.set(true, "");
        }
        for (topic, t) in &statistics.topics {
            for p in t.partitions.values() {
                if p.partition < 0 {
                    continue;
                }
                // Each instance reports the partitions it owns; the others read 0.
                let lag = if p.desired && p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { 0 };
                metrics::gauge!(
                    metric_name(self.service, "consumer_lag_messages"),
                    "topic" => topic.clone(),
                    "partition" => p.partition.to_string()
                )
                .set(lag as f64);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.kafka.set(false, "brokers_unreachable");
        }
        tracing::warn!(error = %error, reason, "librdkafka error");
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            // Before librdkafka's assign starts the fetchers (see the module docs).
            tracing::info!(group = %self.group, partitions = %list(assigned), "partitions assigned");
            let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else { return };
            self.state().restarts.retain(|tp, _| !assigned.elements().iter().any(|e| e.topic() == tp.0 && e.partition() == tp.1));
            for element in assigned.elements() {
                self.hand_out(&consumer, element.topic(), element.partition());
            }
        }
        if let Rebalance::Revoke(revoked) = rebalance {
            tracing::info!(group = %self.group, partitions = %list(revoked), "partitions revoked: draining and committing");
            self.drain(revoked);
            // A synchronous commit can wait on a coordinator busy with the rebalance: off the
            // runtime's worker threads, so the process's other consumers (ten in one process)
            // and its signal handling keep running meanwhile.
            let commit = || match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "commit on revoke failed; those messages will be redelivered"),
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(commit),
                _ => commit(),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(e) = rebalance {
            tracing::warn!(group = %self.group, error = %e, "rebalance error");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(group = %self.group, error = %e, "offset commit failed; will retry with the next commit"),
        }
    }
}

/// `topic[0,3,5]`, for the rebalance logs.
fn list(partitions: &TopicPartitionList) -> String {
    let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
    for e in partitions.elements() {
        match by_topic.iter_mut().find(|(t, _)| t == e.topic()) {
            Some((_, ps)) => ps.push(e.partition()),
            None => by_topic.push((e.topic().to_string(), vec![e.partition()])),
        }
    }
    by_topic.iter().map(|(t, ps)| format!("{t}{ps:?}")).collect::<Vec<_>>().join(" ")
}
