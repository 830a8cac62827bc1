//! The consumer loop's knobs, their defaults, and how they are read from the environment.

use std::{str::FromStr, time::Duration};

use rdkafka::ClientConfig;

use crate::{
    kafka,
    retry::Backoff,
    settings::{Env, SettingsError},
};

/// The consumer-group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic protocol with the cooperative-sticky assignor: a rebalance moves only the
    /// partitions that change owner; the client's session timeout and heartbeat apply.
    Classic,
    /// KIP-848 (`group.protocol=consumer`, Kafka ≥ 4.0): the broker assigns and its
    /// `group.consumer.*` settings decide session timeout and heartbeat.
    Consumer,
}

impl FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            other => Err(format!("unknown group protocol {other:?} (classic or consumer)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub service: &'static str,
    /// The group's catalogue name (the namespace is prefixed when consuming).
    pub group_id: String,
    /// Catalogue names of the topics.
    pub topics: Vec<String>,
    /// Tries of a message failing transiently before it is dead-lettered (≥ 1).
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Most messages handed to `handle_batch` at once (1 = one at a time).
    pub max_batch: usize,
    /// Longest wait for more ready messages once a batch has its first one.
    pub batch_linger: Duration,
    /// How long revoked or stopping workers may take to finish the batch in hand.
    pub drain_timeout: Duration,
    pub group_protocol: GroupProtocol,
    /// Classic protocol only: a dead member's partitions move after this long.
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Bound of librdkafka's prefetch queue, per partition, in KiB.
    pub queued_max_kbytes: u32,
    /// Fairness between tenants (`consumer::fair`): up to this many ready messages are taken at
    /// once and handled round-robin across tenants; 0 = off (offset order).
    pub fair_window: usize,
}

impl ConsumerConfig {
    pub fn new(service: &'static str, group_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            service,
            group_id: group_id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            max_attempts: 5,
            backoff: Backoff::default(),
            max_batch: 500,
            batch_linger: Duration::from_millis(5),
            drain_timeout: Duration::from_secs(10),
            group_protocol: GroupProtocol::Classic,
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(1),
            queued_max_kbytes: 4096,
            fair_window: 0,
        }
    }

    /// `new`, then every knob from the environment (`<SERVICE>__FIELD` or `BRAIN__FIELD`),
    /// range-checked: `MAX_ATTEMPTS`, `BATCH_SIZE`, `BATCH_LINGER_MS`, `DRAIN_TIMEOUT_MS`,
    /// `BACKOFF_INITIAL_MS`, `BACKOFF_MAX_MS`, `GROUP_PROTOCOL`, `SESSION_TIMEOUT_MS`,
    /// `HEARTBEAT_INTERVAL_MS`, `QUEUED_MAX_KBYTES`, `FAIR_WINDOW`.
    pub fn from_env(env: &Env, service: &'static str, group_id: impl Into<String>, topics: &[&str]) -> Result<Self, SettingsError> {
        let d = Self::new(service, group_id, topics);
        let backoff = Backoff {
            initial: env.millis_in("BACKOFF_INITIAL", d.backoff.initial.as_millis() as u64, 1..=60_000)?,
            max: env.millis_in("BACKOFF_MAX", d.backoff.max.as_millis() as u64, 1..=3_600_000)?,
            ..d.backoff
        };
        if backoff.max < backoff.initial {
            return Err(SettingsError::Invalid {
                var: "BACKOFF_MAX_MS".into(),
                value: backoff.max.as_millis().to_string(),
                reason: "must not be below BACKOFF_INITIAL_MS".into(),
            });
        }
        let session_timeout = env.millis_in("SESSION_TIMEOUT", d.session_timeout.as_millis() as u64, 1_000..=300_000)?;
        let heartbeat_interval = env.millis_in("HEARTBEAT_INTERVAL", d.heartbeat_interval.as_millis() as u64, 100..=60_000)?;
        if heartbeat_interval >= session_timeout {
            return Err(SettingsError::Invalid {
                var: "HEARTBEAT_INTERVAL_MS".into(),
                value: heartbeat_interval.as_millis().to_string(),
                reason: "must be below SESSION_TIMEOUT_MS".into(),
            });
        }
        Ok(Self {
            max_attempts: env.ranged("MAX_ATTEMPTS", d.max_attempts, 1..=100)?,
            backoff,
            max_batch: env.ranged("BATCH_SIZE", d.max_batch, 1..=10_000)?,
            batch_linger: env.millis_in("BATCH_LINGER", d.batch_linger.as_millis() as u64, 0..=10_000)?,
            drain_timeout: env.millis_in("DRAIN_TIMEOUT", d.drain_timeout.as_millis() as u64, 100..=600_000)?,
            group_protocol: env.or("GROUP_PROTOCOL", d.group_protocol)?,
            session_timeout,
            heartbeat_interval,
            queued_max_kbytes: env.ranged("QUEUED_MAX_KBYTES", d.queued_max_kbytes, 64..=1_048_576)?,
            fair_window: env.ranged("FAIR_WINDOW", d.fair_window, 0..=100_000)?,
            ..d
        })
    }

    /// The dead-letter topic's catalogue name.
    pub fn dead_letter_topic(&self) -> String {
        brain_events::topics::dead_letter(&self.group_id)
    }

    /// The librdkafka properties of the consumer of `group` (the real, namespaced name).
    pub(super) fn apply(&self, client: &mut ClientConfig, group: &str) {
        client
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            // Prefetch bounded per partition; a worker that falls behind simply stops its fetches.
            .set("queued.max.messages.kbytes", self.queued_max_kbytes.to_string())
            .set("queued.min.messages", "20000")
            // Once a partition's prefetch is full, librdkafka waits this long before fetching it
            // again (default 1 s): with a worker per partition that starved the workers.
            .set("fetch.queue.backoff.ms", "10")
            .set("fetch.max.bytes", (8 * kafka::MAX_MESSAGE_BYTES).to_string())
            .set("max.partition.fetch.bytes", kafka::MAX_MESSAGE_BYTES.to_string())
            .set("fetch.wait.max.ms", "100");
        match self.group_protocol {
            GroupProtocol::Classic => {
                client
                    .set("group.protocol", "classic")
                    .set("partition.assignment.strategy", "cooperative-sticky")
                    .set("session.timeout.ms", self.session_timeout.as_millis().to_string())
                    .set("heartbeat.interval.ms", self.heartbeat_interval.as_millis().to_string());
            }
            GroupProtocol::Consumer => {
                client.set("group.protocol", "consumer");
            }
        }
    }
}
