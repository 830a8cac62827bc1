//! Figure (4): pipeline latency through the real services.
//!
//! - **Fixed rate:** `LoanStatusChanged` events produced by the bench onto the flow topic at a
//!   fixed rate, through projection-writer (Firestore emulator + read model). Two figures per
//!   event: *committed* = first time the bench sees its `event_log` row (visible only after the
//!   transaction commits; polled every 10 ms) minus the event's `occurred_at`; and *event_log* =
//!   `recorded_at - occurred_at` (`workload::projection_lags`), where `recorded_at` is the
//!   transaction's start (PostgreSQL `now()`), so it excludes the Firestore write and the commit.
//! - **End to end:** status changes made in the Ventures simulator, each timed from the request
//!   to the first batch-get of its Firestore document showing that version (or a later one),
//!   polled every 50 ms. Includes ventures-sync's sweep interval.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use brain_events::{LoanStatusChanged, topics};
use brain_runtime::producer::EventProducer;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use system_tests::workload::{self, Driver, Expected, percentile};
use tokio::task::JoinSet;

use projection_writer::firestore::{self as fs, Projections};

use crate::records;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From unsorted latencies in seconds.
    pub fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        let ms = |p| percentile(&seconds, p) * 1000.0;
        Self {
            samples: seconds.len(),
            p50_ms: ms(50.0),
            p95_ms: ms(95.0),
            p99_ms: ms(99.0),
            max_ms: ms(100.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RateRun {
    pub rate_per_sec: u32,
    pub seconds: f64,
    pub events: usize,
    /// Events/s actually produced (should match the rate).
    pub produced_per_sec: f64,
    /// Events ÷ seconds from the first send to the last commit: the rate when projection-writer
    /// keeps up, its capacity when it does not.
    pub sustained_per_sec: f64,
    pub committed: Latency,
    pub event_log: Latency,
}

/// Produces `rate` events/s for `duration` over `keys` applications, waits until every one is
/// committed, and returns the latencies.
pub async fn fixed_rate(
    producer: &EventProducer,
    pool: &PgPool,
    rate: u32,
    duration: Duration,
    keys: usize,
    drain: Duration,
) -> anyhow::Result<RateRun> {
    let prefix = format!(
        "rate{rate}-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let total = (rate as f64 * duration.as_secs_f64()).round().max(1.0) as usize;
    let observer = tokio::spawn(observe_commits(
        pool.clone(),
        prefix.clone(),
        total,
        duration + drain,
    ));

    let started = Instant::now();
    let mut sends = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
        let now = chrono::Utc::now().timestamp_millis();
        let batch: Vec<(String, LoanStatusChanged)> = (sent..due)
            .map(|i| {
                let app = format!("{prefix}{}", i % keys);
                let event = records::event(&app, (i / keys + 1) as i64, i as i64, now, 0);
                (app, event)
            })
            .collect();
        sent = due;
        let producer = producer.clone();
        // Not awaited here, so a slow acknowledgement never delays the next batch.
        sends.spawn(async move {
            producer
                .send_all::<LoanStatusChanged, _>(topics::LOAN_STATUS_CHANGED, &batch)
                .await
        });
    }
    let produced_in = started.elapsed().as_secs_f64();
    while let Some(result) = sends.join_next().await {
        result??;
    }
    let committed = observer.await??;
    let sustained_per_sec = total as f64 / started.elapsed().as_secs_f64();
    let event_log = workload::projection_lags(pool, &prefix).await?;
    anyhow::ensure!(
        event_log.len() == total,
        "event_log has {} of {total} rows for {prefix}",
        event_log.len()
    );
    Ok(RateRun {
        rate_per_sec: rate,
        seconds: duration.as_secs_f64(),
        events: total,
        produced_per_sec: total as f64 / produced_in,
        sustained_per_sec,
        committed: Latency::of(committed),
        event_log: Latency::of(event_log),
    })
}

/// Sends one event per key of a `warmup-` prefix and waits until all are committed, so the
/// measured runs start with projection-writer's consumer group assigned and its connections open.
pub async fn warm_up(
    producer: &EventProducer,
    pool: &PgPool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let prefix = format!(
        "warmup-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<(String, LoanStatusChanged)> = (0..24)
        .map(|i| {
            (
                format!("{prefix}{i}"),
                records::event(&format!("{prefix}{i}"), 1, i, now, 0),
            )
        })
        .collect();
    producer
        .send_all::<LoanStatusChanged, _>(topics::LOAN_STATUS_CHANGED, &events)
        .await?;
    observe_commits(pool.clone(), prefix, events.len(), timeout).await?;
    Ok(())
}

/// Polls `event_log` every 10 ms; for each new row of `prefix`, the time it became visible minus
/// its `occurred_at`, in seconds. Returns once `total` rows were seen.
async fn observe_commits(
    pool: PgPool,
    prefix: String,
    total: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + timeout;
    let (mut seen, mut lags, mut floor) = (HashSet::new(), Vec::with_capacity(total), 0i64);
    while seen.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} events committed within {timeout:?}",
            seen.len()
        );
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT id, EXTRACT(EPOCH FROM occurred_at)::float8 FROM projection_writer.event_log
             WHERE id > $1 AND entity_id LIKE $2 || '%'",
        )
        .bind(floor)
        .bind(&prefix)
        .fetch_all(&pool)
        .await?;
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        for (id, occurred) in rows {
            if seen.insert(id) {
                lags.push(now - occurred);
            }
        }
        // Ids are taken at insert, not at commit: keep a margin for transactions still open.
        floor = seen.iter().max().map_or(0, |max| max - 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(lags)
}

/// ventures-sync's sweep interval as the harness sets it (`tests/src/stack.rs`).
pub const HARNESS_SWEEP_INTERVAL_MS: u64 = 200;

#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub changes: usize,
    pub loans: usize,
    pub changes_per_sec: f64,
    pub sweep_interval_ms: u64,
    pub latency: Latency,
}

/// Makes `changes_per_sec` status changes for `duration` over `loans` loans in the simulator and
/// times each one to its Firestore document.
pub async fn end_to_end(
    sim_url: &str,
    projections: &Projections,
    loans: usize,
    changes_per_sec: f64,
    duration: Duration,
    drain: Duration,
) -> anyhow::Result<EndToEnd> {
    let prefix = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let mut expected = Expected::default();
    let mut driver = Driver::new(sim_url, 11);
    driver.create_loans(&prefix, loans, &mut expected).await?;
    let apps: Vec<(String, String)> = expected
        .loans
        .iter()
        .map(|(app, (loan, _, _))| (app.clone(), loan.clone()))
        .collect();
    let total = (changes_per_sec * duration.as_secs_f64()).round().max(1.0) as usize;

    // (application, version) → when the change was requested.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, i64, Instant)>(total);
    let http = driver.http.clone();
    let sim = sim_url.to_string();
    let changer = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for i in 0..total {
            let (app, loan) = &apps[i % apps.len()];
            let status = workload::STATUSES[(i / apps.len() + 1) % workload::STATUSES.len()];
            let at = Instant::now();
            let response = http
                .post(format!("{sim}/control/loans/{loan}/status"))
                .json(&json!({ "status": status }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "status change → {}",
                response.status()
            );
            let version = response.json::<serde_json::Value>().await?["version"]
                .as_i64()
                .unwrap_or_default();
            tx.send((app.clone(), version, at)).await?;
            tokio::time::sleep_until(
                started + Duration::from_secs_f64((i + 1) as f64 / changes_per_sec),
            )
            .await;
        }
        anyhow::Ok(())
    });

    let deadline = Instant::now() + duration + drain;
    let mut pending: BTreeMap<String, Vec<(i64, Instant)>> = BTreeMap::new();
    let (mut lags, mut received) = (Vec::with_capacity(total), 0);
    while lags.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} changes reached Firestore in time",
            lags.len()
        );
        while let Ok((app, version, at)) = rx.try_recv() {
            pending.entry(app).or_default().push((version, at));
            received += 1;
        }
        let ids: Vec<String> = pending.keys().cloned().collect();
        let mut documents = HashMap::new();
        for chunk in ids.chunks(100) {
            documents.extend(projections.get("applications", chunk).await?);
        }
        let now = Instant::now();
        for (app, doc) in documents {
            let Some(shown) = doc.get("venturesVersion").and_then(fs::as_i64) else {
                continue;
            };
            if let Some(changes) = pending.get_mut(&app) {
                changes.retain(|(version, at)| {
                    let done = *version <= shown;
                    if done {
                        lags.push((now - *at).as_secs_f64());
                    }
                    !done
                });
            }
        }
        pending.retain(|_, changes| !changes.is_empty());
        if received < total || !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    changer.await??;
    Ok(EndToEnd {
        changes: total,
        loans,
        changes_per_sec,
        sweep_interval_ms: HARNESS_SWEEP_INTERVAL_MS,
        latency: Latency::of(lags),
    })
}
