//! Figure (13): projection-writer scaled out on this machine. The same size of backlog (loan
//! status events of fresh applications on the flow topic, produced while no instance runs) is
//! drained by 1, then 2, then 3 instances of the one consumer group, started at once; the figure
//! is records/s from their start (process start-up, group joins and rebalances included, as they
//! are when a platform scales out) to the last `event_log` row, and each run's ratio to the
//! single instance.
//! On 2 cores the instances share the CPU with PostgreSQL, the broker and the Firestore emulator:
//! the ratio says what a second and third instance buy here, not on a cluster.

use std::time::{Duration, Instant};

use brain_events::{LoanStatusChanged, topics};
use brain_runtime::producer::EventProducer;
use serde::Serialize;
use sqlx::PgPool;
use system_tests::{process::ServiceProcess, stack::{PROJECTION_WRITER, Stack}};

use crate::records;

#[derive(Debug, Clone, Serialize)]
pub struct ScaleRun {
    pub instances: usize,
    pub records: u64,
    pub keys: u64,
    /// Start → last row applied.
    pub seconds: f64,
    pub records_per_sec: f64,
    /// records/s ÷ the single instance's.
    pub vs_one: f64,
}

/// Rows of `prefix` above `floor` (the highest id before the run: a count over the whole growing
/// table every 20 ms would take a good share of the two cores it measures).
async fn applied(pool: &PgPool, prefix: &str, floor: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM projection_writer.event_log WHERE id > $2 AND starts_with(entity_id, $1)")
        .bind(prefix)
        .bind(floor)
        .fetch_one(pool)
        .await?)
}

/// Drains `records` events over `keys` applications with 1, 2 and 3 instances in turn. Leaves the
/// stack's own projection-writer running.
pub async fn measure(stack: &mut Stack, producer: &EventProducer, pool: &PgPool, records: u64, keys: u64, timeout: Duration) -> anyhow::Result<Vec<ScaleRun>> {
    let mut runs: Vec<ScaleRun> = Vec::new();
    for instances in 1..=3usize {
        stack.service(PROJECTION_WRITER).stop().await?;
        let prefix = format!("scale{instances}-{}-", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let now = chrono::Utc::now().timestamp_millis();
        let floor: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM projection_writer.event_log").fetch_one(pool).await?;
        let mut seq = 0u64;
        while seq < records {
            let end = (seq + 5_000).min(records);
            let chunk: Vec<(String, LoanStatusChanged)> = (seq..end)
                .map(|i| {
                    let app = format!("{prefix}{:05}", i % keys);
                    let event = records::event(&app, (i / keys + 1) as i64, i as i64, now, 0);
                    (app, event)
                })
                .collect();
            producer.send_all::<LoanStatusChanged, _>(topics::LOAN_STATUS_CHANGED, &chunk).await?;
            seq = end;
        }
        let mut extra: Vec<ServiceProcess> = (1..instances).map(|n| stack.instance(PROJECTION_WRITER, &format!("projection-writer-scale-{instances}-{n}"))).collect();
        // All instances start at once, and the clock runs from the start: the first one ready
        // would otherwise drain much of the backlog before the others are up.
        let started = Instant::now();
        let mut processes: Vec<&mut ServiceProcess> = vec![stack.service(PROJECTION_WRITER)];
        processes.extend(extra.iter_mut());
        for started_one in futures::future::join_all(processes.into_iter().map(|p| p.start())).await {
            started_one?;
        }
        let deadline = started + timeout;
        while applied(pool, &prefix, floor).await? < records as i64 {
            anyhow::ensure!(Instant::now() < deadline, "{instances} instances: the backlog was not applied within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        for p in &mut extra {
            p.stop().await?;
        }
        let records_per_sec = records as f64 / seconds;
        let vs_one = runs.first().map_or(1.0, |one| records_per_sec / one.records_per_sec);
        runs.push(ScaleRun { instances, records, keys, seconds, records_per_sec, vs_one });
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    /// Figure (13) alone, on a stack of its own: `BENCH_SCALE_RECORDS` (default 4,000) events over
    /// 400 applications, `cargo test -p brain-bench --lib projection_writer_scaled_out_alone --
    /// --ignored --nocapture` (release builds through the bench's target shim for real figures).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a benchmark: run it on purpose"]
    async fn projection_writer_scaled_out_alone() -> anyhow::Result<()> {
        let records = std::env::var("BENCH_SCALE_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000);
        let mut stack = system_tests::stack::Stack::start("bench-scale").await?;
        stack.start_services(&[system_tests::stack::PROJECTION_WRITER]).await?;
        let producer = brain_runtime::producer::EventProducer::new(&crate::records::kafka_settings(stack.kafka_settings()), stack.codec(), "brain-bench")?;
        let pool = stack.db.connect().await?;
        let result = super::measure(&mut stack, &producer, &pool, records, 400, std::time::Duration::from_secs(600)).await;
        stack.stop_all().await?;
        for run in result? {
            println!("{} instance(s): {:.0} events/s in {:.1} s ({:.2} × one)", run.instances, run.records_per_sec, run.seconds, run.vs_one);
        }
        Ok(())
    }
}
