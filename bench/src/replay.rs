//! Figure (8): dlq-replayer replaying 10,000 dead letters (read, decoded, re-published with
//! their replay headers, each acknowledged and recorded in its audit), beside the reference of
//! the same run: producing those 10,000 envelopes to the broker.

use std::time::Instant;

use brain_events::{Codec, DeadLetter, DeadLetterHeader, codec::SchemaIds};
use brain_runtime::{kafka, producer::EventProducer, settings::KafkaSettings};
use dlq_replayer::{Settings, Tools, filter::Filter, read, replay};
use secrecy::SecretString;
use serde::Serialize;

const DEAD_LETTERS: &str = "deadletter.bench-replay.v1";
const TARGET: &str = "bench.replay-target.v1";

#[derive(Debug, Clone, Serialize)]
pub struct ReplayFigures {
    pub messages: u64,
    /// Producing the envelopes (acks=all): the reference.
    pub produce_per_sec: f64,
    /// Reading and decoding them (envelope and original event) with the filter.
    pub scan_seconds: f64,
    pub replay_seconds: f64,
    pub replay_per_sec: f64,
    pub replay_vs_produce: f64,
    pub sent: usize,
}

pub async fn measure(settings: &KafkaSettings, codec: &Codec, registry_url: &str, database_url: &str, messages: u64) -> anyhow::Result<ReplayFigures> {
    kafka::ensure_topics(settings, &[DEAD_LETTERS, TARGET]).await?;
    let producer = EventProducer::new(settings, codec.clone(), "bench-replay")?;
    // One real event, encoded once: the replayer re-publishes bytes, it does not re-encode them.
    let event = system_tests::loan_event("app-replay", 1);
    let value = codec.encode(&settings.namespace.topic(TARGET), &event).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let envelopes: Vec<(String, DeadLetter)> = (0..messages)
        .map(|i| {
            let key = format!("app-{}", i % 1000);
            let envelope = DeadLetter {
                dead_letter_id: uuid::Uuid::now_v7().to_string(),
                source_topic: settings.namespace.topic(TARGET),
                source_partition: 0,
                source_offset: i as i64,
                source_timestamp: Some(now),
                key: Some(key.clone().into_bytes()),
                value: Some(value.clone()),
                headers: vec![DeadLetterHeader { key: "brain-producer".into(), value: Some(b"bench".to_vec()) }],
                consumer_group: "bench-replay".into(),
                service: "bench".into(),
                error_class: "transient_exhausted".into(),
                error_kind: "http_5xx".into(),
                error_message: "the bench's dead letter".into(),
                attempts: 5,
                first_attempt_at: now,
                last_attempt_at: now,
                dead_lettered_at: now,
                trace_id: None,
            };
            (key, envelope)
        })
        .collect();
    let started = Instant::now();
    producer.send_all::<DeadLetter, _>(DEAD_LETTERS, &envelopes).await?;
    let produce_per_sec = messages as f64 / started.elapsed().as_secs_f64();

    let tools = Tools::connect(Settings {
        kafka: settings.clone(),
        schema_registry_url: SecretString::from(registry_url.to_string()),
        schema_ids: SchemaIds::AutoRegister,
        database_url: SecretString::from(database_url.to_string()),
    })
    .await?;
    let filter = Filter { topics: vec![DEAD_LETTERS.into()], kind: Some("http_5xx".into()), ..Filter::default() };
    let started = Instant::now();
    let items = read::scan(&tools.settings.kafka, &tools.codec, &filter).await?;
    let scan_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(items.len() as u64 == messages, "read {} of {messages} dead letters", items.len());
    let options = replay::Options { job_id: uuid::Uuid::now_v7(), operator: "bench".into(), dry_run: false, rate: None, cap: 3, progress: false };
    tools.audit.start(options.job_id, "bench", &serde_json::to_value(&filter)?, false, None).await?;
    let started = Instant::now();
    let report = replay::run(items, &tools.audit, &tools.producer()?, &settings.namespace, &options).await?;
    let replay_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.failed.is_empty(), "{} replays failed", report.failed.len());
    let replay_per_sec = report.sent.len() as f64 / replay_seconds;
    Ok(ReplayFigures {
        messages,
        produce_per_sec,
        scan_seconds,
        replay_seconds,
        replay_per_sec,
        replay_vs_produce: replay_per_sec / produce_per_sec,
        sent: report.sent.len(),
    })
}
