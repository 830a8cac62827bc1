//! Follows the compacted flags topic: every partition by assignment (no consumer group), from
//! the beginning, for as long as the process runs.

use std::{collections::HashMap, time::Duration};

use brain_events::{CapabilityFlagChanged, Codec, topics};
use chrono::DateTime;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use tokio_util::sync::CancellationToken;

use super::{Flags, INTEGRATIONS, Setting};
use crate::{kafka, settings::KafkaSettings};

/// Reads the flags topic into `flags` until `stop` fires; `flags.loaded()` resolves once what the
/// topic held at start-up has been read. Creates the topic (compacted) if it does not exist.
pub async fn follow(flags: Flags, settings: KafkaSettings, codec: Codec, stop: CancellationToken) {
    loop {
        match read(&flags, &settings, &codec, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading the capability flags failed; retrying in 1 s");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn read(flags: &Flags, settings: &KafkaSettings, codec: &Codec, stop: &CancellationToken) -> anyhow::Result<()> {
    kafka::ensure_compacted_topics(settings, &[topics::CAPABILITY_FLAGS]).await?;
    let topic = settings.namespace.topic(topics::CAPABILITY_FLAGS);
    let consumer: StreamConsumer = kafka::client_config(settings, "brain-flags")
        .set("group.id", format!("brain-flags-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    // Where each partition ended at start-up: `loaded` once every one is read up to there.
    let mut pending: HashMap<i32, i64> = HashMap::new();
    for p in &partitions {
        tpl.add_partition_offset(&topic, *p, Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(&topic, *p, Duration::from_secs(10))?;
        if high > low {
            pending.insert(*p, high);
        }
    }
    consumer.assign(&tpl)?;
    if pending.is_empty() {
        flags.set_loaded();
    }
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        if let Some(payload) = message.payload() {
            match codec.decode::<CapabilityFlagChanged>(payload).await {
                Ok(change) => apply(flags, change),
                Err(e) => tracing::warn!(offset = message.offset(), error = %e, "undecodable capability flag record skipped"),
            }
        }
        if pending.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
            pending.remove(&message.partition());
            if pending.is_empty() {
                tracing::info!(entries = flags.entries().len(), "capability flags loaded");
                flags.set_loaded();
            }
        }
    }
}

fn apply(flags: &Flags, change: CapabilityFlagChanged) {
    if !INTEGRATIONS.contains(&change.integration.as_str()) {
        tracing::warn!(integration = %change.integration, "capability flag for an unknown integration");
    }
    let setting = |on| Setting {
        on,
        actor: change.actor.clone(),
        reason: change.reason.clone(),
        changed_at: DateTime::from_timestamp_millis(change.changed_at).unwrap_or_default(),
    };
    let on = match change.state.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    };
    if flags.is_loaded() {
        tracing::info!(kind = %change.kind, integration = %change.integration, tenant = change.tenant.as_deref().unwrap_or("*"), state = %change.state, actor = %change.actor, reason = %change.reason, "capability changed");
    }
    match change.kind.as_str() {
        "panic" => flags.apply_panic(change.integration.clone(), setting(on == Some(true))),
        _ => flags.apply_flag(change.integration.clone(), change.tenant.clone(), on.map(setting)),
    }
}
