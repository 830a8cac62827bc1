//! Reading what the services published, from the test's namespace, from the beginning.

use std::time::Duration;

use brain_events::{Codec, Record};
use brain_runtime::kafka;
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};

use crate::stack::Stack;

pub struct TopicReader {
    consumer: StreamConsumer,
    codec: Codec,
}

impl TopicReader {
    /// A reader of catalogue topic `topic` (created if missing) from its first record.
    pub async fn new(stack: &Stack, topic: &str) -> anyhow::Result<Self> {
        kafka::ensure_topics(&stack.kafka_settings(), &[topic]).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &stack.broker.bootstrap)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[&stack.topic(topic)])?;
        Ok(Self { consumer, codec: stack.codec() })
    }

    /// The next record, or `None` when none arrives within `wait`.
    pub async fn next<T: Record>(&self, wait: Duration) -> anyhow::Result<Option<T>> {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => Ok(None),
            Ok(message) => Ok(Some(self.codec.decode::<T>(message?.payload().unwrap_or_default()).await?)),
        }
    }

    /// Records until `done` holds for what was read (failing after `timeout`).
    pub async fn until<T: Record>(&self, timeout: Duration, mut done: impl FnMut(&[T]) -> bool, read: &mut Vec<T>) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(read) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            anyhow::ensure!(!left.is_zero(), "timed out after {timeout:?} with {} records read", read.len());
            if let Some(record) = self.next(left).await? {
                read.push(record);
            }
        }
        Ok(())
    }
}
