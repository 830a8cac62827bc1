//! Figure (4)'s fixed-rate run alone, on a stack of its own, to try a change to the pipeline
//! without the whole bench: `BENCH_PIPELINE_RATE` (default 2,000) events/s for
//! `BENCH_PIPELINE_SECS` (default 60) after the warm-up and a 5 s cold start,
//! `cargo test -p brain-bench --lib pipeline_alone -- --ignored --nocapture` (release builds
//! through the bench's target shim for real figures, as `make bench` does).

use std::time::Duration;

use system_tests::stack::{PROJECTION_WRITER, Stack};

use crate::{footprint, pipeline, records};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose"]
async fn pipeline_alone() -> anyhow::Result<()> {
    let rate: u32 = env_or("BENCH_PIPELINE_RATE", 2_000);
    let secs = Duration::from_secs_f64(env_or("BENCH_PIPELINE_SECS", 60.0));
    let mut stack = Stack::start("bench-pipeline").await?;
    let (pid, _) = footprint::start_timed(&mut stack, PROJECTION_WRITER).await?;
    let watch = pipeline::Watch { service: Some(pid), broker: footprint::kafka_pid(), emulator: footprint::emulator_pid() };
    let producer = brain_runtime::producer::EventProducer::new(&records::kafka_settings(stack.kafka_settings()), stack.codec(), "brain-bench")?;
    let pool = stack.db.connect().await?;
    let drain = Duration::from_secs(90);
    pipeline::warm_up(&producer, &pool, Duration::from_secs(120)).await?;
    let cold = pipeline::fixed_rate(&producer, &pool, rate, Duration::from_secs(5), 1_000, drain, watch).await?;
    println!("cold start: {}", cold.summary());
    let before = pipeline::WriterMetrics::read(stack.service(PROJECTION_WRITER)).await?;
    let fixed = pipeline::fixed_rate(&producer, &pool, rate, secs, 1_000, drain, watch).await?;
    let writer = pipeline::WriterMetrics::read(stack.service(PROJECTION_WRITER)).await?.since(&before);
    println!("{rate}/s for {secs:?}: {} (event_log P50 {:.0} ms)", fixed.summary(), fixed.event_log.p50_ms);
    println!(
        "inside projection-writer: {} batches of {:.1} events, {:.1} ms per batch, {:.1} ms per Firestore Commit",
        writer.batches,
        writer.records / writer.batches.max(1.0),
        1000.0 * writer.batch_seconds / writer.batches.max(1.0),
        1000.0 * writer.commit_seconds / writer.commits.max(1.0)
    );
    stack.stop_all().await?;
    anyhow::ensure!(fixed.complete, "only {} of {} events committed", fixed.committed.samples, fixed.events);
    Ok(())
}
