//! Confluent's own Python client (confluent-kafka's `AvroSerializer` and `AvroDeserializer`)
//! interoperates with Brain's schema registry and codec, in both directions.
//!
//! The Python halves live in `tests/interop/`; they run in the project venv (`.cache/venv`, or
//! the interpreter named by `BRAIN_PYTHON`) and print the records they sent or read as JSON lines.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
use brain_events::{LoanState, LoanStatusChanged, value_subject, wire};
use brain_runtime::{kafka, producer::EventProducer, settings::KafkaSettings};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use serde::Deserialize;
use system_tests::{repo_root, stack::Stack};

const COUNT: usize = 20;
const FROM_CONFLUENT: &str = "interop.from-confluent.v1";
const FROM_BRAIN: &str = "interop.from-brain.v1";

/// One record as a Python script prints it.
#[derive(Debug, Deserialize)]
struct Line {
    key: String,
    /// The id in the wire-format frame (printed by the consumer only).
    schema_id: Option<u32>,
    value: LoanStatusChanged,
}

/// Records produced by Confluent's serializer decode with our codec, and records produced by our
/// `EventProducer` decode with Confluent's deserializer, field for field, through one registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_and_brain_read_each_others_records() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("interop").await?;
    let settings = KafkaSettings { topic_partitions: 1, ..stack.kafka_settings() };
    kafka::ensure_topics(&settings, &[FROM_CONFLUENT, FROM_BRAIN]).await?;

    // The directions are independent; running them together overlaps the two group joins.
    tokio::try_join!(confluent_to_brain(&stack), brain_to_confluent(&stack, &settings))?;
    println!("interop: {COUNT} records each way between confluent-kafka and Brain");
    Ok(())
}

async fn confluent_to_brain(stack: &Stack) -> anyhow::Result<()> {
    let sent = run_python(stack, "confluent_produce.py", FROM_CONFLUENT, &[]).await?;
    assert_eq!(sent.len(), COUNT, "the producer reports every record it sent");
    let records = consume(&stack.broker.bootstrap, &stack.topic(FROM_CONFLUENT), COUNT).await?;
    let registered = registered_id(stack, FROM_CONFLUENT).await?;
    let codec = stack.codec();
    // One partition: the order read is the order sent.
    for ((key, payload), line) in records.iter().zip(&sent) {
        assert_eq!(key, &line.key);
        assert_eq!(wire::unframe(payload)?.0, registered, "Confluent framed the id it registered");
        assert_eq!(codec.decode::<LoanStatusChanged>(payload).await?, line.value);
    }
    Ok(())
}

async fn brain_to_confluent(stack: &Stack, settings: &KafkaSettings) -> anyhow::Result<()> {
    let producer = EventProducer::new(settings, stack.codec(), "interop-test")?;
    let events: Vec<LoanStatusChanged> = (0..COUNT).map(event).collect();
    for event in &events {
        producer.send(FROM_BRAIN, &event.application_id, event).await?;
    }
    let read = run_python(stack, "confluent_consume.py", FROM_BRAIN, &["60"]).await?;
    assert_eq!(read.len(), COUNT);
    let registered = registered_id(stack, FROM_BRAIN).await?;
    for (line, event) in read.iter().zip(&events) {
        assert_eq!(line.key, event.application_id);
        assert_eq!(line.schema_id, Some(registered), "Brain framed the id the registry holds for the subject");
        assert_eq!(&line.value, event);
    }
    Ok(())
}

/// Event `i`, covering both branches of each union, large and negative longs and non-ASCII text.
fn event(i: usize) -> LoanStatusChanged {
    let i = i as i64;
    let millis = 1_767_225_600_123 + i * 60_001;
    LoanStatusChanged {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: millis,
        tenant_id: "tenant-ü".into(),
        correlation_id: format!("corr-{i}"),
        causation_id: (i % 2 == 1).then(|| format!("cause-{i}")),
        producer: "interop-test".into(),
        application_id: format!("app-{i:03}"),
        version: (1 << 40) + i,
        source_seq: if i % 5 == 0 { -i } else { i * 7 },
        loan: LoanState {
            loan_id: format!("L-{i}"),
            loan_number: format!("2026-{i:04}"),
            loan_type: ["504", "7A", "Commercial"][(i % 3) as usize].into(),
            status: if i % 4 == 0 { "Approved — final".into() } else { "Open".into() },
            status_changed_at: millis - 1,
            borrower_entity_id: format!("B-{i}"),
            amount_requested_cents: 12_500_000 + i,
            amount_approved_cents: (i % 3 != 0).then_some(9_000_000_000 + i),
            updated_at: millis + 1,
        },
    }
}

/// Runs `tests/interop/<script> BOOTSTRAP REGISTRY TOPIC COUNT [extra...]` and parses its stdout;
/// its stderr (librdkafka logs, errors) goes to the test's log directory.
async fn run_python(stack: &Stack, script: &str, topic: &str, extra: &[&str]) -> anyhow::Result<Vec<Line>> {
    let python = std::env::var("BRAIN_PYTHON").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/venv/bin/python"));
    anyhow::ensure!(python.exists(), "no Python at {} — run `make setup` or set BRAIN_PYTHON", python.display());
    let child = tokio::process::Command::new(&python)
        .arg(repo_root().join("tests/interop").join(script))
        .args([stack.broker.bootstrap.as_str(), stack.registry_url.as_str(), &stack.topic(topic), &COUNT.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .with_context(|| format!("{script} still running after 120 s"))??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(stack.logs.join(format!("{script}.stderr")), stderr.as_bytes())?;
    anyhow::ensure!(output.status.success(), "{script} failed ({}):\n{stderr}", output.status);
    String::from_utf8(output.stdout)?
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("{script} printed {line:?}")))
        .collect()
}

/// The first `count` records of `topic` as (key, value bytes), read by a new consumer group.
async fn consume(bootstrap: &str, topic: &str, count: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("interop-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    // The broker's first group assignment alone can take 5-25 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut records = Vec::with_capacity(count);
    while records.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .with_context(|| format!("only {} of {count} records from {topic} within 60 s", records.len()))??;
        let key = String::from_utf8(message.key().unwrap_or_default().to_vec())?;
        records.push((key, message.payload().unwrap_or_default().to_vec()));
    }
    Ok(records)
}

/// The id the registry holds for the latest version of `topic`'s value subject.
async fn registered_id(stack: &Stack, topic: &str) -> anyhow::Result<u32> {
    let url = format!("{}/subjects/{}/versions/latest", stack.registry_url, value_subject(&stack.topic(topic)));
    let body: serde_json::Value = stack.http.get(&url).send().await?.error_for_status()?.json().await?;
    body["id"].as_u64().and_then(|id| u32::try_from(id).ok()).with_context(|| format!("no id in {body}"))
}
