//! Figures (1)-(3): the same records read by a bare rdkafka consumer (the limit), by Brain's
//! consumer runtime with a minimal real effect, and by the Python peer with the same effect.
//! Each consumer has its own group (from the earliest offset) and its own tables; records/s is
//! measured from its first record to its last.

use std::{
    path::Path,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use brain_events::{Codec, LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Handler, HandlerError, Source},
    db,
    producer::EventProducer,
    settings::KafkaSettings,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{BaseConsumer, Consumer},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Schemas (one per consumer under test) holding `processed_events` and `loans`.
pub const RUNTIME_SCHEMA: &str = "bench_runtime";
pub const PEER_SCHEMA: &str = "bench_peer";

/// The upsert every effect makes, in both languages (the peer has the same text).
pub const UPSERT: &str = "INSERT INTO loans (application_id, loan_id, status, version) VALUES ($1, $2, $3, $4)
     ON CONFLICT (application_id) DO UPDATE SET loan_id = EXCLUDED.loan_id, status = EXCLUDED.status,
         version = EXCLUDED.version, updated_at = now()
     WHERE loans.version < EXCLUDED.version";

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Throughput {
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
}

impl Throughput {
    pub fn new(records: u64, seconds: f64) -> Self {
        Self {
            records,
            seconds,
            records_per_sec: records as f64 / seconds.max(1e-9),
        }
    }
}

/// (1) A bare rdkafka consumer in a new group reads `count` records, touching only their bytes.
pub async fn bare(bootstrap: &str, count: u64, timeout: Duration) -> anyhow::Result<Throughput> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set(
                "group.id",
                format!("bench-bare-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            // As the runtime sets them: with librdkafka's 45 s default the dev broker takes ~20 s
            // to assign partitions. Joining is not timed either way.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .create()?;
        consumer.subscribe(&[topics::LOAN_STATUS_CHANGED])?;
        let deadline = Instant::now() + timeout;
        let (mut read, mut bytes, mut first) = (0u64, 0usize, None);
        while read < count {
            anyhow::ensure!(
                Instant::now() < deadline,
                "bare consumer read {read} of {count} records in {timeout:?}"
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    first.get_or_insert_with(Instant::now);
                    bytes += message.payload().map_or(0, <[u8]>::len);
                    read += 1;
                }
                Some(Err(e)) => tracing::warn!(error = %e, "bare consumer error"),
                None => {}
            }
        }
        let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        anyhow::ensure!(bytes > 0, "records had no payload");
        Ok(Throughput::new(read, seconds))
    })
    .await?
}

/// (2)'s handler: in one transaction, the processed-event record and one upsert; the runtime
/// stores the offset only after the commit. Stops the consumer once `target` records are handled.
struct EffectHandler {
    pool: PgPool,
    consumer: String,
    target: u64,
    handled: AtomicU64,
    first: OnceLock<Instant>,
    last: Mutex<Option<Instant>>,
    done: CancellationToken,
}

impl Handler for EffectHandler {
    type Event = LoanStatusChanged;

    async fn handle(
        &self,
        _source: Source<'_>,
        event: LoanStatusChanged,
    ) -> Result<Applied, HandlerError> {
        self.first.get_or_init(Instant::now);
        let event_id = uuid::Uuid::parse_str(&event.event_id)
            .map_err(|e| HandlerError::permanent("validation", e.to_string()))?;
        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        let applied = if db::record_processed(&mut tx, &self.consumer, event_id)
            .await
            .map_err(db::classify)?
        {
            sqlx::query(UPSERT)
                .bind(&event.application_id)
                .bind(&event.loan.loan_id)
                .bind(&event.loan.status)
                .bind(event.version)
                .execute(&mut *tx)
                .await
                .map_err(db::classify)?;
            Applied::Processed
        } else {
            Applied::Duplicate
        };
        tx.commit().await.map_err(db::classify)?;
        if self.handled.fetch_add(1, Ordering::SeqCst) + 1 == self.target {
            *self.last.lock().expect("last lock") = Some(Instant::now());
            self.done.cancel();
        }
        Ok(applied)
    }
}

/// Creates `schema` with the bench tables and returns a pool on it.
pub async fn tables(database_url: &str, schema: &str, connections: u32) -> anyhow::Result<PgPool> {
    db::connect(
        &SecretString::from(database_url.to_string()),
        schema,
        &MIGRATOR,
        None,
        connections,
    )
    .await
}

/// (2) Brain's consumer runtime, in process, with `EffectHandler`.
pub async fn runtime(
    settings: &KafkaSettings,
    codec: Codec,
    database_url: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let group = format!("bench-runtime-{}", uuid::Uuid::new_v4().simple());
    let pool = tables(database_url, RUNTIME_SCHEMA, 8).await?;
    let done = CancellationToken::new();
    let handler = Arc::new(EffectHandler {
        pool,
        consumer: group.clone(),
        target: count,
        handled: AtomicU64::new(0),
        first: OnceLock::new(),
        last: Mutex::new(None),
        done: done.clone(),
    });
    let config = ConsumerConfig::new("brain-bench", group, &[topics::LOAN_STATUS_CHANGED]);
    let producer = EventProducer::new(settings, codec.clone(), "brain-bench")?;
    let run = consumer::run(
        config,
        settings.clone(),
        codec,
        producer,
        handler.clone(),
        done.clone(),
    );
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result?,
        Err(_) => anyhow::bail!(
            "runtime handled {} of {count} records in {timeout:?}",
            handler.handled.load(Ordering::SeqCst)
        ),
    }
    let last = handler
        .last
        .lock()
        .expect("last lock")
        .ok_or_else(|| anyhow::anyhow!("the runtime stopped before {count} records"))?;
    let first = *handler.first.get().expect("a first record");
    Ok(Throughput::new(count, (last - first).as_secs_f64()))
}

/// (3) The Python peer (`bench/peer/consume.py`), run with the project virtualenv's interpreter.
pub async fn peer(
    python: &Path,
    script: &Path,
    bootstrap: &str,
    registry_url: &str,
    database_url: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    tables(database_url, PEER_SCHEMA, 1).await?.close().await;
    let group = format!("bench-peer-{}", uuid::Uuid::new_v4().simple());
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .args([
            "--bootstrap",
            bootstrap,
            "--registry",
            registry_url,
            "--dsn",
            database_url,
            "--schema",
            PEER_SCHEMA,
        ])
        .args([
            "--topic",
            topics::LOAN_STATUS_CHANGED,
            "--group",
            &group,
            "--count",
            &count.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| {
            anyhow::anyhow!("the Python peer did not read {count} records in {timeout:?}")
        })??;
    anyhow::ensure!(
        output.status.success(),
        "the Python peer failed ({})",
        output.status
    );
    let result: Throughput = serde_json::from_slice(&output.stdout).map_err(|e| {
        anyhow::anyhow!(
            "the Python peer printed no result ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    anyhow::ensure!(
        result.records == count,
        "the Python peer read {} of {count} records",
        result.records
    );
    Ok(result)
}

/// Rows each consumer left: (processed events, loans). A check that the effect really happened.
pub async fn effect_rows(pool: &PgPool, schema: &str) -> anyhow::Result<(i64, i64)> {
    let processed = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.processed_events"
    )))
    .fetch_one(pool)
    .await?;
    let loans = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.loans"
    )))
    .fetch_one(pool)
    .await?;
    Ok((processed, loans))
}
