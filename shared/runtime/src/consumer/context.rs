//! Rebalance, statistics and error callbacks of the consumer loop, and the registry of partition
//! workers they act on.
//!
//! On assign, each new partition's queue is split off the main queue (after librdkafka's assign,
//! which would otherwise undo it) and handed to the loop, which starts its worker. On revoke, the
//! revoked partitions' workers are told to stop, get `drain_timeout` to finish the batch in hand,
//! and are then aborted before the stored offsets are committed: once the callback returns, no
//! task of this member works on a revoked partition.

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

/// A partition queue split off at assignment, waiting for its worker.
pub(super) struct Assigned {
    pub tp: TopicPartition,
    pub queue: StreamPartitionQueue<LoopContext>,
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
}

pub struct LoopContext {
    service: &'static str,
    drain_timeout: Duration,
    kafka: Check,
    consumer: OnceLock<Weak<StreamConsumer<LoopContext>>>,
    state: Mutex<State>,
    notify: Notify,
}

impl LoopContext {
    pub(super) fn new(service: &'static str, drain_timeout: Duration, kafka: Check) -> Self {
        kafka.set(true, "");
        Self { service, drain_timeout, kafka, consumer: OnceLock::new(), state: Mutex::default(), notify: Notify::new() }
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

    /// Splits the partition's queue off the main queue and queues it for a worker.
    pub(super) fn split(&self, consumer: &Arc<StreamConsumer<LoopContext>>, topic: &str, partition: i32) {
        match consumer.split_partition_queue(topic, partition) {
            Some(queue) => {
                self.state().assigned.push(Assigned { tp: (topic.to_string(), partition), queue });
                self.notify.notify_one();
            }
            None => tracing::error!(topic, partition, "could not split the partition's queue; its messages reach the main queue"),
        }
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
        if let Rebalance::Revoke(revoked) = rebalance {
            tracing::info!(partitions = revoked.count(), "partitions revoked: draining and committing");
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
        match rebalance {
            Rebalance::Assign(assigned) => {
                tracing::info!(partitions = assigned.count(), "partitions assigned");
                let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else { return };
                for element in assigned.elements() {
                    self.split(&consumer, element.topic(), element.partition());
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry with the next commit"),
        }
    }
}
