//! Kafka client configuration and topic provisioning.
//!
//! Brain relies only on Kafka features every managed Kafka offers: idempotent produce, consumer
//! groups (the cooperative-sticky assignor, or the KIP-848 protocol where the broker has it),
//! committed offsets, headers and the high watermark (consumer lag). It does not use
//! transactions or static membership, and compaction for one topic only: the capability flags
//! (`ensure_compacted_topics`), whose latest record per key is the state.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};
use secrecy::ExposeSecret;

use crate::settings::KafkaSettings;

/// Largest record Brain produces or accepts; set on clients too, so that a broker with a larger
/// limit (or none) still never carries a record Brain's consumers would refuse.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Base client configuration shared by producers, consumers and admin clients.
pub fn client_config(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    if let Some(password) = &settings.sasl_password {
        config.set("sasl.password", password.expose_secret());
    }
    config
}

/// Creates catalogue topics `topics` (in the settings' namespace) if they do not exist yet;
/// existing topics are left as they are.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) -> anyhow::Result<()> {
    create_topics(settings, topics, &[]).await
}

/// `ensure_topics` for topics whose latest record per key is kept forever (`cleanup.policy`
/// `compact`; superseded records stay at least a day, so readers that lag still see them).
pub async fn ensure_compacted_topics(settings: &KafkaSettings, topics: &[&str]) -> anyhow::Result<()> {
    create_topics(settings, topics, &[("cleanup.policy", "compact"), ("min.compaction.lag.ms", "86400000")]).await
}

async fn create_topics(settings: &KafkaSettings, topics: &[&str], config: &[(&str, &str)]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings, "brain-admin").create()?;
    let names: Vec<String> = topics.iter().map(|t| settings.namespace.topic(t)).collect();
    let new: Vec<_> = names
        .iter()
        .map(|t| {
            config
                .iter()
                .fold(NewTopic::new(t, settings.topic_partitions, TopicReplication::Fixed(settings.topic_replication)), |topic, (k, v)| topic.set(k, v))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions = settings.topic_partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("could not create topic {topic}: {code}"),
        }
    }
    Ok(())
}
