//! Figure (4): pipeline latency through the real services.
//!
//! - **Fixed rate:** `LoanStatusChanged` events produced by the bench onto the flow topic at a
//!   fixed rate, through projection-writer (Firestore emulator + read model). Two figures per
//!   event: *committed* = first time the bench sees its `event_log` row (visible only after the
//!   transaction commits; told by a notification at commit, `crate::commits`) minus the event's `occurred_at`; and *event_log* =
//!   `recorded_at - occurred_at` (`workload::projection_lags`), where `recorded_at` is the
//!   transaction's start (PostgreSQL `now()`), so it excludes the Firestore write and the commit.
//!   While it runs, projection-writer's largest `VmRSS` and the CPU seconds of projection-writer
//!   and of the broker are recorded.
//! - **Step search** (`search`): fixed-rate steps at doubling rates until a step's P99 reaches
//!   the limit (1 s) or not every event is committed within the drain time (or, when the fixed
//!   run already failed, at halving rates until one passes), bounded in steps and total time; the
//!   highest rate that passed is the maximum sustained rate.
//! - **End to end:** status changes made in the Ventures simulator, each timed from the request
//!   to the first batch-get of its Firestore document showing that version (or a later one),
//!   polled every 50 ms. Includes ventures-sync's sweep interval.

use std::time::{Duration, Instant};

use brain_events::{LoanStatusChanged, topics};
use brain_runtime::producer::EventProducer;
use serde::Serialize;
use sqlx::PgPool;
use system_tests::workload::{self, percentile};
use tokio::task::JoinSet;


use crate::records;

pub use crate::end_to_end::{EndToEnd, HARNESS_SWEEP_INTERVAL_MS, end_to_end};

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
    /// Every event was committed within the drain time (else the latencies are of those that were).
    pub complete: bool,
    /// Events/s actually produced (should match the rate).
    pub produced_per_sec: f64,
    /// Events ÷ seconds from the first send to the last commit: the rate when projection-writer
    /// keeps up, its capacity when it does not.
    pub sustained_per_sec: f64,
    pub committed: Latency,
    pub event_log: Latency,
    /// projection-writer's largest `VmRSS` (sampled every 250 ms) from the first send to the last
    /// commit.
    pub service_rss_max_bytes: u64,
    /// CPU seconds over the same time: projection-writer, the broker, the Firestore emulator,
    /// PostgreSQL (the whole server) and the bench process (producing and observing).
    pub service_cpu_seconds: f64,
    pub broker_cpu_seconds: f64,
    pub emulator_cpu_seconds: f64,
    pub database_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
}

impl RateRun {
    /// One line: latencies, the rate sustained and who used the CPU.
    pub fn summary(&self) -> String {
        format!(
            "committed P50 {:.0} ms · P99 {:.0} ms · max {:.0} ms · sustained {:.0}/s · CPU s: writer {:.1}, broker {:.1}, emulator {:.1}, PostgreSQL {:.1}, bench {:.1}",
            self.committed.p50_ms,
            self.committed.p99_ms,
            self.committed.max_ms,
            self.sustained_per_sec,
            self.service_cpu_seconds,
            self.broker_cpu_seconds,
            self.emulator_cpu_seconds,
            self.database_cpu_seconds,
            self.bench_cpu_seconds
        )
    }
}

/// The processes a rate run watches: projection-writer, the broker and the emulator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    pub service: Option<u32>,
    pub broker: Option<u32>,
    pub emulator: Option<u32>,
}

/// CPU seconds so far of each watched process, PostgreSQL and the bench.
#[derive(Debug, Clone, Copy)]
struct CpuNow([f64; 5]);

impl Watch {
    fn cpu(&self) -> CpuNow {
        let of = |pid: Option<u32>| {
            pid.and_then(|p| crate::footprint::cpu_seconds(p, false))
                .unwrap_or(0.0)
        };
        CpuNow([
            of(self.service),
            of(self.broker),
            of(self.emulator),
            crate::footprint::postgres_cpu_seconds(),
            of(Some(std::process::id())),
        ])
    }
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
    watch: Watch,
) -> anyhow::Result<RateRun> {
    let prefix = format!(
        "rate{rate}-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let total = (rate as f64 * duration.as_secs_f64()).round().max(1.0) as usize;
    let floor = max_event_log_id(pool).await?;
    let observer = tokio::spawn(crate::commits::observe(
        pool.clone(),
        prefix.clone(),
        total,
        floor,
        duration + drain,
    ));
    let stop_sampling = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn(crate::footprint::sample_max_rss(
        watch.service.into_iter().collect(),
        stop_sampling.clone(),
    ));
    let cpu_before = watch.cpu();

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
    let (committed, complete) = observer.await??;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = watch.cpu();
    let cpu = |i: usize| (cpu_after.0[i] - cpu_before.0[i]).max(0.0);
    stop_sampling.cancel();
    let rss = sampler.await?;
    let sustained_per_sec = committed.len() as f64 / elapsed;
    let event_log = workload::projection_lags(pool, &prefix).await?;
    anyhow::ensure!(
        !complete || event_log.len() == total,
        "event_log has {} of {total} rows for {prefix}",
        event_log.len()
    );
    Ok(RateRun {
        rate_per_sec: rate,
        seconds: duration.as_secs_f64(),
        events: total,
        complete,
        produced_per_sec: total as f64 / produced_in,
        sustained_per_sec,
        committed: Latency::of(committed),
        event_log: Latency::of(event_log),
        service_rss_max_bytes: rss.first().copied().unwrap_or(0),
        service_cpu_seconds: cpu(0),
        broker_cpu_seconds: cpu(1),
        emulator_cpu_seconds: cpu(2),
        database_cpu_seconds: cpu(3),
        bench_cpu_seconds: cpu(4),
    })
}

/// The step search for the maximum sustained rate.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    /// A step passes when every event is committed and its P99 is below this.
    pub p99_limit_ms: f64,
    pub step_seconds: f64,
    /// The run the search starts from (the fixed-rate run), then each step.
    pub start_per_sec: u32,
    pub steps: Vec<RateRun>,
    /// The highest passing rate (the starting run included); `None` when none passed.
    pub max_sustained_per_sec: Option<u32>,
    /// The lowest rate seen failing (above `max_sustained_per_sec`); `None` when every step
    /// passed before the search ran out of steps or time.
    pub first_failing_per_sec: Option<u32>,
    /// Whether a failing step's backlog drained before the search returned.
    pub drained: bool,
    pub seconds: f64,
}

/// Whether `run` passes: complete and P99 below `limit_ms`.
pub fn passes(run: &RateRun, limit_ms: f64) -> bool {
    run.complete && run.committed.p99_ms < limit_ms
}

/// From `start`'s rate, steps of `step` at double the rate while they pass or, when `start` failed,
/// at half the rate until one passes; at most `max_steps` steps, none begun after `budget`.
#[allow(clippy::too_many_arguments)]
pub async fn search(
    producer: &EventProducer,
    pool: &PgPool,
    start: &RateRun,
    step: Duration,
    max_steps: usize,
    budget: Duration,
    drain: Duration,
    watch: Watch,
) -> anyhow::Result<Search> {
    const P99_LIMIT_MS: f64 = 1000.0;
    let began = Instant::now();
    let up = passes(start, P99_LIMIT_MS);
    let mut steps = Vec::new();
    let (mut max_sustained, mut first_failing) = if up {
        (Some(start.rate_per_sec), None)
    } else {
        (None, Some(start.rate_per_sec))
    };
    let mut rate = start.rate_per_sec;
    let mut drained = true;
    while steps.len() < max_steps && began.elapsed() < budget {
        rate = if up { rate.saturating_mul(2) } else { rate / 2 };
        if rate == 0 {
            break;
        }
        let run = fixed_rate(producer, pool, rate, step, 1_000, drain, watch).await?;
        let passed = passes(&run, P99_LIMIT_MS);
        if !run.complete {
            // Let the backlog drain (bounded) so that what runs next is not measured beside it.
            drained = wait_drained(pool, drain).await?;
        }
        steps.push(run);
        if passed {
            max_sustained = Some(rate);
        } else {
            first_failing = Some(rate);
        }
        if passed != up {
            break;
        }
    }
    Ok(Search {
        p99_limit_ms: P99_LIMIT_MS,
        step_seconds: step.as_secs_f64(),
        start_per_sec: start.rate_per_sec,
        steps,
        max_sustained_per_sec: max_sustained,
        first_failing_per_sec: first_failing,
        drained,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Waits (up to `timeout`) until `event_log` stops growing for a second.
async fn wait_drained(pool: &PgPool, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut last = max_event_log_id(pool).await?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = max_event_log_id(pool).await?;
        if now == last {
            return Ok(true);
        }
        last = now;
    }
    Ok(false)
}

async fn max_event_log_id(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM projection_writer.event_log")
            .fetch_one(pool)
            .await?,
    )
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
    // The floor before sending: a fast projection-writer may commit them before it is read.
    let floor = max_event_log_id(pool).await?;
    producer
        .send_all::<LoanStatusChanged, _>(topics::LOAN_STATUS_CHANGED, &events)
        .await?;
    let (_, complete) = crate::commits::observe(pool.clone(), prefix, events.len(), floor, timeout).await?;
    anyhow::ensure!(
        complete,
        "the warm-up events were not committed within {timeout:?}"
    );
    Ok(())
}

/// projection-writer's own counters (its `/metrics`): batches, their events and time, and the
/// time in Firestore `Commit`s. Sums since start-up; `since` gives a run's share.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriterMetrics {
    pub batches: f64,
    pub records: f64,
    pub batch_seconds: f64,
    pub commits: f64,
    pub commit_seconds: f64,
}

impl WriterMetrics {
    pub async fn read(service: &system_tests::process::ServiceProcess) -> anyhow::Result<Self> {
        let m = |name: &'static str| service.metric(name);
        Ok(Self {
            batches: m("projection_writer_consumer_batch_seconds_count").await?,
            records: m("projection_writer_consumer_batch_records_sum").await?,
            batch_seconds: m("projection_writer_consumer_batch_seconds_sum").await?,
            commits: m("projection_writer_firestore_commit_seconds_count").await?,
            commit_seconds: m("projection_writer_firestore_commit_seconds_sum").await?,
        })
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            batches: self.batches - before.batches,
            records: self.records - before.records,
            batch_seconds: self.batch_seconds - before.batch_seconds,
            commits: self.commits - before.commits,
            commit_seconds: self.commit_seconds - before.commit_seconds,
        }
    }
}
