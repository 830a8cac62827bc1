//! Rebalance and statistics callbacks of the consumer loop.

use std::time::{Duration, Instant};

use rdkafka::{
    ClientContext, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    error::{KafkaError, KafkaResult},
    types::RDKafkaErrorCode,
};

use super::Workers;
use crate::telemetry::metric_name;

pub struct LoopContext {
    service: &'static str,
    workers: Workers,
    drain_timeout: Duration,
}

impl LoopContext {
    pub(super) fn new(service: &'static str, workers: Workers, drain_timeout: Duration) -> Self {
        Self { service, workers, drain_timeout }
    }

    /// Stops the workers of revoked partitions and waits (bounded) for the message in hand.
    fn drain(&self, revoked: &TopicPartitionList) {
        let stopped: Vec<_> = {
            let mut workers = self.workers.lock().expect("workers lock");
            revoked
                .elements()
                .iter()
                .filter_map(|e| workers.remove(&(e.topic().to_string(), e.partition())))
                .map(|slot| slot.worker)
                .collect()
        };
        for worker in &stopped {
            worker.stop();
        }
        let deadline = Instant::now() + self.drain_timeout;
        let wait = || {
            while stopped.iter().any(|w| w.is_busy()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // This callback runs on a runtime thread inside poll; let the runtime move its other
        // tasks (the workers we wait for) elsewhere while we block.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        }
        if stopped.iter().any(|w| w.is_busy()) {
            tracing::warn!("revoked partitions still busy after the drain timeout; their message will be redelivered");
        }
    }
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for p in t.partitions.values() {
                if p.partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        metric_name(self.service, "consumer_lag_messages"),
                        "topic" => topic.clone(),
                        "partition" => p.partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            tracing::info!(partitions = revoked.count(), "partitions revoked: draining and committing");
            self.drain(revoked);
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "commit on revoke failed; those messages will be redelivered"),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => tracing::info!(partitions = assigned.count(), "partitions assigned"),
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
