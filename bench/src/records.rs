//! The records every throughput consumer reads: real wire-format Avro `LoanStatusChanged` events,
//! padded to about 1 KB, keyed by application id over many keys, produced once to the flow topic
//! (in the run's own namespace, so the topic holds exactly these records).

use std::time::Duration;

use brain_events::{Codec, LoanState, LoanStatusChanged, codec::encode_body, topics, wire};
use brain_runtime::{kafka, settings::KafkaSettings};
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

/// The flow topic's partition count in every Brain deployment's defaults.
pub const PARTITIONS: i32 = 6;
const STATUSES: [&str; 4] = ["Open", "Approved", "Funded", "Withdrawn"];

/// `settings` with the services' default partitioning.
pub fn kafka_settings(settings: KafkaSettings) -> KafkaSettings {
    KafkaSettings {
        topic_partitions: PARTITIONS,
        ..settings
    }
}

/// One `LoanStatusChanged` event of application `app` at `version`, with `loan_number` padded by
/// `padding` bytes and `occurred_at` in epoch milliseconds.
pub fn event(
    app: &str,
    version: i64,
    seq: i64,
    occurred_at: i64,
    padding: usize,
) -> LoanStatusChanged {
    let id = uuid::Uuid::new_v4().to_string();
    LoanStatusChanged {
        event_id: id.clone(),
        occurred_at,
        tenant_id: "bench".into(),
        correlation_id: id,
        causation_id: None,
        producer: "brain-bench".into(),
        application_id: app.to_string(),
        version,
        source_seq: seq,
        loan: LoanState {
            loan_id: format!("L-{app}"),
            loan_number: format!("2026-{seq:08}-{}", "x".repeat(padding)),
            loan_type: "7A".into(),
            status: STATUSES[(version as usize) % STATUSES.len()].into(),
            status_changed_at: occurred_at,
            borrower_entity_id: format!("B-{app}"),
            amount_requested_cents: 12_500_000,
            amount_approved_cents: Some(10_000_000),
            updated_at: occurred_at,
        },
    }
}

/// The padding that makes one framed record about `target` bytes.
pub fn padding_for(target: usize) -> anyhow::Result<usize> {
    let unpadded = encode_body(&event("bench-app-000000", 1, 0, 0, 0))?.len() + 5;
    Ok(target.saturating_sub(unpadded + 2))
}

/// What `produce` wrote.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub records: u64,
    pub record_bytes: usize,
    pub seconds: f64,
}

/// Creates the flow topic and produces `count` records of about `record_bytes` over `keys`
/// application ids, each key's versions increasing, and waits for every acknowledgement.
pub async fn produce(
    settings: &KafkaSettings,
    codec: &Codec,
    count: u64,
    record_bytes: usize,
    keys: u64,
) -> anyhow::Result<Produced> {
    kafka::ensure_topics(settings, &[topics::LOAN_STATUS_CHANGED]).await?;
    // The real (namespaced) topic, and its subject in the registry.
    let topic = settings.namespace.topic(topics::LOAN_STATUS_CHANGED);
    let schema_id = codec.schema_id::<LoanStatusChanged>(&topic).await?;
    let padding = padding_for(record_bytes)?;
    let started = std::time::Instant::now();
    let frame = |event: &LoanStatusChanged| Ok(wire::frame(schema_id, &encode_body(event)?));
    let record_bytes =
        produce_ordered(settings, &topic, count, keys, "brain-bench-loader", frame, padding).await?;
    Ok(Produced {
        records: count,
        record_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Produces `count` bench events (`event`, keyed by application id over `keys` ids, each key's
/// versions increasing) to `topic`, each value made by `payload`, enqueued in order (so each
/// key's versions stay in order on its partition), and waits for every acknowledgement. Returns
/// the size of a payload.
pub async fn produce_ordered(
    settings: &KafkaSettings,
    topic: &str,
    count: u64,
    keys: u64,
    client: &str,
    mut payload: impl FnMut(&LoanStatusChanged) -> anyhow::Result<Vec<u8>>,
    padding: usize,
) -> anyhow::Result<usize> {
    let producer: FutureProducer = kafka::client_config(settings, client)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "60000")
        .create()?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut size = 0;
    let mut seq = 0u64;
    while seq < count {
        let end = (seq + 10_000).min(count);
        let mut pending = Vec::with_capacity((end - seq) as usize);
        for i in seq..end {
            let app = format!("bench-app-{:06}", i % keys);
            let value = payload(&event(&app, (i / keys + 1) as i64, i as i64, now, padding))?;
            size = value.len();
            let mut record = FutureRecord::to(topic).key(app.as_bytes()).payload(&value);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => anyhow::bail!("producing to {topic}: {e}"),
                }
            }
        }
        for delivery in pending {
            delivery
                .await?
                .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        }
        seq = end;
    }
    Ok(size)
}
