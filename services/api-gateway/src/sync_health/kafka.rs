//! The Kafka side of the sync health: consumer lag per group (messages and seconds), the
//! processed and dead-lettered counters behind the error rate, and the dead-letter topics'
//! figures. Blocking librdkafka calls: run them on a blocking thread.

use std::time::Duration;

use brain_runtime::{kafka, settings::KafkaSettings};
use chrono::Utc;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use super::{Counters, DeadLetterTopic, INTEGRATIONS, KAFKA_TIMEOUT, OLD};

/// One group's lag.
pub(super) struct Lag {
    pub group: String,
    pub messages: i64,
    pub seconds: Option<f64>,
}

pub(super) type KafkaFigures = (Vec<Lag>, Vec<DeadLetterTopic>, Counters);

/// Consumer lag per group and the dead-letter figures (blocking librdkafka calls).
pub(super) fn kafka_figures(settings: &KafkaSettings) -> anyhow::Result<KafkaFigures> {
    let probe: BaseConsumer = kafka::client_config(settings, "api-gateway-health").set("group.id", "api-gateway-health").create()?;
    let metadata = probe.fetch_metadata(None, KAFKA_TIMEOUT)?;
    let namespace = &settings.namespace;
    let partitions_of = |topic: &str| -> Vec<i32> {
        metadata.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default()
    };

    let mut lags = Vec::new();
    let mut counters = Counters::new();
    for (_, groups) in INTEGRATIONS {
        for group in groups {
            let consumer: BaseConsumer = kafka::client_config(settings, "api-gateway-health").set("group.id", namespace.group(group)).create()?;
            let mut tpl = TopicPartitionList::new();
            for topic in topics_of(group) {
                let real = namespace.topic(topic);
                for p in partitions_of(&real) {
                    tpl.add_partition(&real, p);
                }
            }
            let committed = consumer.committed_offsets(tpl, KAFKA_TIMEOUT)?;
            let (mut lag, mut processed) = (0, 0);
            let mut heads: Vec<(String, i32, i64)> = Vec::new();
            for element in committed.elements() {
                let (low, high) = probe.fetch_watermarks(element.topic(), element.partition(), KAFKA_TIMEOUT)?;
                let position = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => low,
                };
                lag += (high - position).max(0);
                processed += position;
                if high > position {
                    heads.push((element.topic().to_string(), element.partition(), position.max(low)));
                }
            }
            let seconds = if heads.is_empty() {
                Some(0.0)
            } else {
                first_timestamps(settings, &heads)?.into_iter().min().map(|ms| ((Utc::now().timestamp_millis() - ms).max(0)) as f64 / 1000.0)
            };
            lags.push(Lag { group: group.to_string(), messages: lag, seconds });
            let dead_letter_topic = namespace.dead_letter(group);
            let mut dead_lettered = 0;
            for p in partitions_of(&dead_letter_topic) {
                dead_lettered += probe.fetch_watermarks(&dead_letter_topic, p, KAFKA_TIMEOUT)?.1;
            }
            counters.insert(group.to_string(), (processed, dead_lettered));
        }
    }

    let prefix = namespace.topic("deadletter.");
    let old = Utc::now() - OLD;
    let mut dead_letters = Vec::new();
    for topic in metadata.topics().iter().filter(|t| t.name().starts_with(&prefix)) {
        let (mut count, mut older, mut oldest) = (0i64, 0i64, None::<i64>);
        let mut at_old = TopicPartitionList::new();
        let mut lows = Vec::new();
        for p in topic.partitions() {
            let (low, high) = probe.fetch_watermarks(topic.name(), p.id(), KAFKA_TIMEOUT)?;
            count += high - low;
            if high > low {
                lows.push((p.id(), low, high));
                at_old.add_partition_offset(topic.name(), p.id(), Offset::Offset(old.timestamp_millis()))?;
            }
        }
        if !lows.is_empty() {
            let offsets = probe.offsets_for_times(at_old, KAFKA_TIMEOUT)?;
            for (partition, low, high) in &lows {
                let first_recent = offsets.find_partition(topic.name(), *partition).and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
                older += first_recent.unwrap_or(*high).clamp(*low, *high) - low;
            }
            let starts: Vec<(String, i32, i64)> = lows.iter().map(|(p, low, _)| (topic.name().to_string(), *p, *low)).collect();
            oldest = first_timestamps(settings, &starts)?.into_iter().min();
        }
        dead_letters.push(DeadLetterTopic {
            topic: format!("deadletter.{}", topic.name().trim_start_matches(prefix.as_str())),
            count,
            unhandled: count,
            older_than_15m: older,
            oldest_age_seconds: oldest.map(|ms| (Utc::now().timestamp_millis() - ms).max(0) / 1000),
        });
    }
    dead_letters.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok((lags, dead_letters, counters))
}

/// The catalogue topics a group consumes.
fn topics_of(group: &str) -> &'static [&'static str] {
    use brain_runtime::events::topics::*;
    match group {
        "ventures-sync.commands" | "projection-writer.command-requests" => &[STATUS_CHANGE_REQUESTED],
        "ventures-sync.drafts" | "projection-writer.document-changes" => &[DOCUMENT_CHANGED],
        "projection-writer" => &[LOAN_STATUS_CHANGED],
        "projection-writer.command-outcomes" => &[STATUS_CHANGE_RESOLVED],
        "qbo-mirror.webhooks" => &[QBO_WEBHOOK_RECEIVED],
        _ => &[],
    }
}

/// The timestamps of the records at the given (topic, partition, offset)s, as far as they arrive
/// within the Kafka timeout.
fn first_timestamps(settings: &KafkaSettings, at: &[(String, i32, i64)]) -> anyhow::Result<Vec<i64>> {
    let consumer: BaseConsumer = kafka::client_config(settings, "api-gateway-health")
        .set("group.id", "api-gateway-health-peek")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in at {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.assign(&tpl)?;
    let mut found = Vec::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + KAFKA_TIMEOUT;
    while seen < at.len() && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let wanted = at.iter().any(|(t, p, o)| t == message.topic() && *p == message.partition() && *o == message.offset());
            if wanted {
                seen += 1;
                if let Some(ms) = message.timestamp().to_millis() {
                    found.push(ms);
                }
            }
        }
    }
    Ok(found)
}

