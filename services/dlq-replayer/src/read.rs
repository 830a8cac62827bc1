//! Reading dead letters: every `deadletter.*` topic of the namespace (or the chosen ones), each
//! partition from the offset for `since` (offsets-for-times) or its start, up to the high
//! watermark seen when the scan began. Each envelope is decoded, and so is the original event
//! inside it (with its writer's schema from the registry) when it can be.

use std::{collections::HashMap, time::Duration};

use brain_events::{Codec, DeadLetter, topics::Namespace};
use brain_runtime::{kafka, settings::KafkaSettings};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    metadata::Metadata,
};
use serde_json::Value;

use crate::filter::Filter;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One dead letter as read.
#[derive(Debug, Clone)]
pub struct Item {
    /// The dead-letter topic's catalogue name.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub envelope: DeadLetter,
    /// The original event, decoded; `None` when it is not decodable (often why it is here).
    pub event: Option<Value>,
}

impl Item {
    pub fn tenant(&self) -> Option<String> {
        self.event.as_ref().and_then(|e| e.get("tenant_id")).and_then(Value::as_str).map(str::to_string)
    }

    /// How often this message was replayed before (the `brain-replay-count` header).
    pub fn replays(&self) -> u32 {
        self.envelope
            .headers
            .iter()
            .rev()
            .find(|h| h.key == crate::replay::REPLAY_COUNT)
            .and_then(|h| h.value.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn age(&self) -> chrono::Duration {
        chrono::Utc::now() - chrono::DateTime::from_timestamp_millis(self.envelope.dead_lettered_at).unwrap_or_default()
    }
}

/// The catalogue names of the namespace's dead-letter topics.
pub fn dead_letter_topics(settings: &KafkaSettings) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = kafka::client_config(settings, "dlq-replayer").set("group.id", "dlq-replayer-scan").create()?;
    topics_in(&consumer.fetch_metadata(None, TIMEOUT)?, &settings.namespace)
}

fn topics_in(metadata: &Metadata, namespace: &Namespace) -> anyhow::Result<Vec<String>> {
    let prefix = namespace.topic("deadletter.");
    let mut names: Vec<String> = metadata.topics().iter().filter_map(|t| t.name().strip_prefix(&prefix).map(|rest| format!("deadletter.{rest}"))).collect();
    names.sort();
    Ok(names)
}

/// What to read of one topic: each partition from its start offset to the end seen now.
struct TopicPlan {
    topic: String,
    real: String,
    starts: Vec<(i32, i64)>,
    ends: HashMap<i32, i64>,
}

/// Every dead letter matching `filter`, in topic, partition and offset order.
pub async fn scan(settings: &KafkaSettings, codec: &Codec, filter: &Filter) -> anyhow::Result<Vec<Item>> {
    // One client finds the topics, their watermarks and the offsets for `since` (blocking calls);
    // a consumer is made only for a topic with something to read.
    let (planning, wanted) = (settings.clone(), filter.clone());
    let plans = tokio::task::spawn_blocking(move || plan(&planning, &wanted)).await??;
    let mut items = Vec::new();
    for plan in plans {
        items.extend(scan_topic(settings, codec, plan, filter).await?);
    }
    Ok(items)
}

fn plan(settings: &KafkaSettings, filter: &Filter) -> anyhow::Result<Vec<TopicPlan>> {
    let client: BaseConsumer = kafka::client_config(settings, "dlq-replayer").set("group.id", "dlq-replayer-scan").create()?;
    let metadata = client.fetch_metadata(None, TIMEOUT)?;
    let topics = if filter.topics.is_empty() { topics_in(&metadata, &settings.namespace)? } else { filter.topics.clone() };
    let mut plans = Vec::new();
    for topic in topics {
        let real = settings.namespace.topic(&topic);
        let Some(meta) = metadata.topics().iter().find(|t| t.name() == real) else { continue };
        let mut wanted = TopicPartitionList::new();
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for partition in meta.partitions() {
            let (low, high) = client.fetch_watermarks(&real, partition.id(), TIMEOUT)?;
            if high > low {
                ends.insert(partition.id(), high);
                let start = filter.since.map_or(low, |t| t.timestamp_millis());
                wanted.add_partition_offset(&real, partition.id(), Offset::Offset(start))?;
            }
        }
        if ends.is_empty() {
            continue;
        }
        if filter.since.is_some() {
            wanted = client.offsets_for_times(wanted, TIMEOUT)?;
        }
        // A partition with no message at or after `since` comes back with the end offset or none.
        let mut starts = Vec::new();
        for element in wanted.elements() {
            match element.offset() {
                Offset::Offset(o) if o < ends[&element.partition()] => starts.push((element.partition(), o)),
                _ => {
                    ends.remove(&element.partition());
                }
            }
        }
        if !ends.is_empty() {
            plans.push(TopicPlan { topic, real, starts, ends });
        }
    }
    Ok(plans)
}

async fn scan_topic(settings: &KafkaSettings, codec: &Codec, plan: TopicPlan, filter: &Filter) -> anyhow::Result<Vec<Item>> {
    let TopicPlan { topic, real, starts, mut ends } = plan;
    let consumer: StreamConsumer = kafka::client_config(settings, "dlq-replayer")
        .set("group.id", format!("dlq-replayer-scan-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in starts {
        assignment.add_partition_offset(&real, partition, Offset::Offset(offset))?;
    }
    consumer.assign(&assignment)?;
    let mut items = Vec::new();
    while !ends.is_empty() {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv()).await.map_err(|_| anyhow::anyhow!("no message from {real} within {TIMEOUT:?}"))??;
        let (partition, offset) = (message.partition(), message.offset());
        if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&partition);
        }
        let Some(payload) = message.payload() else { continue };
        let envelope: DeadLetter = match codec.decode(payload).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(topic = %real, partition, offset, error = %e, "not a dead-letter envelope; skipped");
                continue;
            }
        };
        let event = match &envelope.value {
            Some(value) => codec.decode_json(value).await.ok(),
            None => None,
        };
        let item = Item { topic: topic.clone(), partition, offset, envelope, event };
        if filter.matches(&item) {
            items.push(item);
        }
    }
    Ok(items)
}
