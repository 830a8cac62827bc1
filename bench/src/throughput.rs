//! Figures (1)-(3): the same records read by a bare rdkafka consumer (the limit), by Brain's
//! consumer runtime with a minimal real effect, and by the Python peer with the same effect.
//! Each consumer has its own group (from the earliest offset) and its own tables; records/s is
//! measured from its first record to its last.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use brain_events::{Codec, LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Delivery, Handler, HandlerError, Outcome, Source},
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
pub const PEER_BATCHED_SCHEMA: &str = "bench_peer_batched";
/// The effect-only limit's tables.
pub const EFFECT_SCHEMA: &str = "bench_effect";

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
pub async fn bare(
    bootstrap: &str,
    topic: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
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
        consumer.subscribe(&[&topic])?;
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
    /// Per partition: its first and last `handle_batch` and its records.
    spans: Mutex<HashMap<i32, (Instant, Instant, u64)>>,
    /// `handle_batch` calls, and the nanoseconds spent in them (all partitions together).
    batches: AtomicU64,
    busy_nanos: AtomicU64,
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
        self.count(1);
        Ok(applied)
    }

    /// The same effect set-wise (`apply_effect`): one transaction, one statement for the
    /// processed-event records and one for the upserts of the newest version per loan.
    async fn handle_batch(
        &self,
        batch: Vec<Delivery<'_, LoanStatusChanged>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        self.first.get_or_init(Instant::now);
        let began = Instant::now();
        let mut ids = Vec::with_capacity(batch.len());
        for d in &batch {
            ids.push(
                uuid::Uuid::parse_str(&d.event.event_id)
                    .map_err(|e| HandlerError::permanent("validation", e.to_string()))?,
            );
        }
        let events: Vec<&LoanStatusChanged> = batch.iter().map(|d| &d.event).collect();
        let fresh = apply_effect(&self.pool, &self.consumer, &ids, &events)
            .await
            .map_err(db::classify)?;
        if let Some(d) = batch.first() {
            let now = Instant::now();
            let mut spans = self.spans.lock().expect("spans lock");
            let span = spans.entry(d.source.partition).or_insert((began, now, 0));
            span.1 = now;
            span.2 += batch.len() as u64;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.busy_nanos
            .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.count(batch.len() as u64);
        Ok(ids
            .iter()
            .map(|id| {
                Ok(if fresh.contains(id) {
                    Applied::Processed
                } else {
                    Applied::Duplicate
                })
            })
            .collect())
    }
}

/// The batched effect of (2) and of the effect-only limit, in one transaction: the processed-event
/// records of `ids` (one `INSERT ... SELECT unnest`), then one upsert of the newest fresh version
/// of each loan (`UPSERT_MANY`, newer versions only). Returns the ids that were new.
pub async fn apply_effect(
    pool: &PgPool,
    consumer: &str,
    ids: &[uuid::Uuid],
    events: &[&LoanStatusChanged],
) -> Result<HashSet<uuid::Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let fresh: HashSet<uuid::Uuid> = sqlx::query_scalar(RECORD_PROCESSED_MANY)
        .bind(consumer)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let mut newest: HashMap<&str, &LoanStatusChanged> = HashMap::new();
    for (e, id) in events.iter().zip(ids) {
        if fresh.contains(id) {
            let entry = newest.entry(e.application_id.as_str()).or_insert(e);
            if e.version > entry.version {
                *entry = e;
            }
        }
    }
    let rows: Vec<&LoanStatusChanged> = newest.into_values().collect();
    sqlx::query(UPSERT_MANY)
        .bind(
            rows.iter()
                .map(|e| e.application_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|e| e.loan.loan_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|e| e.loan.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|e| e.version).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(fresh)
}

/// The processed-event records of a whole batch; returns the ids that were not there yet.
pub const RECORD_PROCESSED_MANY: &str = "INSERT INTO processed_events (consumer, event_id)
     SELECT $1, id FROM unnest($2::uuid[]) AS t(id)
     ON CONFLICT DO NOTHING RETURNING event_id";

impl EffectHandler {
    fn count(&self, n: u64) {
        let before = self.handled.fetch_add(n, Ordering::SeqCst);
        if before < self.target && before + n >= self.target {
            *self.last.lock().expect("last lock") = Some(Instant::now());
            self.done.cancel();
        }
    }
}

/// `UPSERT` for many loans at once (`UNNEST` arrays).
pub const UPSERT_MANY: &str = "INSERT INTO loans (application_id, loan_id, status, version)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT (application_id) DO UPDATE SET loan_id = EXCLUDED.loan_id, status = EXCLUDED.status,
         version = EXCLUDED.version, updated_at = now()
     WHERE loans.version < EXCLUDED.version";

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

/// One partition's share of (2), in seconds since the run's first record.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PartitionSpan {
    pub partition: i32,
    pub first_batch_at: f64,
    pub last_batch_done_at: f64,
    pub records: u64,
}

/// (2) as measured, with how the runtime batched.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeRun {
    pub partitions: Vec<PartitionSpan>,
    pub throughput: Throughput,
    /// `handle_batch` calls and records ÷ calls.
    pub batches: u64,
    pub mean_batch: f64,
    /// Seconds spent inside `handle_batch` (the effect), all partitions added up.
    pub handler_seconds: f64,
    /// `handler_seconds` ÷ the run's seconds: how many partitions were in the effect on average
    /// (6 would mean every worker always waiting on PostgreSQL).
    pub partitions_busy: f64,
}

/// (2) Brain's consumer runtime, in process, with `EffectHandler`.
pub async fn runtime(
    settings: &KafkaSettings,
    codec: Codec,
    database_url: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<RuntimeRun> {
    let group = format!("bench-runtime-{}", uuid::Uuid::new_v4().simple());
    let pool = tables(database_url, RUNTIME_SCHEMA, 8).await?;
    let done = CancellationToken::new();
    let handler = Arc::new(EffectHandler {
        pool,
        consumer: group.clone(),
        target: count,
        handled: AtomicU64::new(0),
        spans: Mutex::default(),
        batches: AtomicU64::new(0),
        busy_nanos: AtomicU64::new(0),
        first: OnceLock::new(),
        last: Mutex::new(None),
        done: done.clone(),
    });
    // As the services build theirs: the defaults, overridable from the environment
    // (`BRAIN_BENCH__BATCH_SIZE`, `BRAIN_BENCH__BATCH_LINGER_MS`, `BRAIN_BENCH__QUEUED_MAX_KBYTES`,
    // ..., or `BRAIN__*`) for experiments; `make bench` sets none.
    let config = ConsumerConfig::from_env(
        &brain_runtime::settings::Env::new("brain-bench"),
        "brain-bench",
        group,
        &[topics::LOAN_STATUS_CHANGED],
    )?;
    let producer = EventProducer::new(settings, codec.clone(), "brain-bench")?;
    let run = consumer::run(
        config,
        settings.clone(),
        codec,
        producer,
        handler.clone(),
        brain_runtime::ops::Readiness::default(),
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
    let seconds = (last - first).as_secs_f64();
    let batches = handler.batches.load(Ordering::Relaxed);
    let mut partitions: Vec<PartitionSpan> = handler
        .spans
        .lock()
        .expect("spans lock")
        .iter()
        .map(|(partition, (from, to, records))| PartitionSpan {
            partition: *partition,
            first_batch_at: (*from - first).as_secs_f64(),
            last_batch_done_at: (*to - first).as_secs_f64(),
            records: *records,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(RuntimeRun {
        partitions,
        throughput: Throughput::new(count, seconds),
        batches,
        mean_batch: count as f64 / batches.max(1) as f64,
        handler_seconds: handler.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        partitions_busy: handler.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9 / seconds,
    })
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

/// The runtime's batch size (`ConsumerConfig`'s default `max_batch`, `BATCH_SIZE`): the batches of
/// the batched peer and of the effect-only limit.
pub fn batch_size() -> usize {
    ConsumerConfig::new("brain-bench", "batch-size", &[]).max_batch
}

/// The effect-only limit: the rows (2) writes, with the same statements (`apply_effect`), straight
/// into PostgreSQL with no Kafka and no decoding. The events are generated in memory exactly as
/// `records::produce` generates them (same keys, versions and sizes), split into `writers` streams
/// by key (as Kafka's partitions split them), each written in batches of `batch` by one task, the
/// streams concurrently, on a pool of 8 connections (as in (2)). Timed from the first batch to the
/// last commit.
pub async fn effect_only(
    database_url: &str,
    count: u64,
    record_bytes: usize,
    keys: u64,
    writers: usize,
    batch: usize,
) -> anyhow::Result<Throughput> {
    let pool = tables(database_url, EFFECT_SCHEMA, 8).await?;
    let padding = crate::records::padding_for(record_bytes)?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut streams: Vec<Vec<(uuid::Uuid, LoanStatusChanged)>> = vec![Vec::new(); writers];
    for i in 0..count {
        let key = i % keys;
        let app = format!("bench-app-{key:06}");
        let event = crate::records::event(&app, (i / keys + 1) as i64, i as i64, now, padding);
        let id = uuid::Uuid::parse_str(&event.event_id)?;
        streams[(key as usize) % writers].push((id, event));
    }
    let consumer = format!("bench-effect-{}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in streams {
        let (pool, consumer) = (pool.clone(), consumer.clone());
        tasks.spawn(async move {
            for chunk in stream.chunks(batch) {
                let ids: Vec<uuid::Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let events: Vec<&LoanStatusChanged> = chunk.iter().map(|(_, e)| e).collect();
                apply_effect(&pool, &consumer, &ids, &events).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(Throughput::new(count, seconds))
}

/// Whether schemas `a` and `b` hold the same `loans` rows (application, loan, status, version).
pub async fn same_loans(pool: &PgPool, a: &str, b: &str) -> anyhow::Result<bool> {
    let differing: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM (
            (SELECT application_id, loan_id, status, version FROM {a}.loans
             EXCEPT SELECT application_id, loan_id, status, version FROM {b}.loans)
            UNION ALL
            (SELECT application_id, loan_id, status, version FROM {b}.loans
             EXCEPT SELECT application_id, loan_id, status, version FROM {a}.loans)) AS d"
    )))
    .fetch_one(pool)
    .await?;
    Ok(differing == 0)
}
