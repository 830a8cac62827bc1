//! Scaling out on one machine: 3 instances of projection-writer and 2 of ventures-sync (one
//! sweeper at a time, by the tenant's sweep lease) under a stream of Ventures status changes;
//! instances are SIGKILLed and added while it runs (the sweeping ventures-sync among them, so the
//! lease moves). The checker then finds nothing lost, nothing applied twice and no version
//! inversion, in the read model, the event log and Firestore.

use std::time::{Duration, Instant};

use system_tests::{
    process::ServiceProcess,
    stack::{PROJECTION_WRITER, Stack, VENTURES_SYNC},
    workload::{self, Driver, Expected},
};

const LOANS: usize = 120;
const CHANGES: usize = 1_800;
const RATE: f64 = 100.0;

/// How many of `instances` say they hold the sweep lease (`ventures_sync_sweep_leader`); one that
/// does not answer (killed) holds nothing.
async fn sweepers(instances: &[&ServiceProcess]) -> f64 {
    let mut holding = 0.0;
    for p in instances {
        holding += p.metric("ventures_sync_sweep_leader").await.unwrap_or(0.0);
    }
    holding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_projection_writers_and_two_ventures_syncs_lose_nothing_through_kills_and_additions() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("scale-out").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let mut writers: Vec<ServiceProcess> = vec![stack.instance(PROJECTION_WRITER, "projection-writer-2"), stack.instance(PROJECTION_WRITER, "projection-writer-3")];
    let mut syncs: Vec<ServiceProcess> = vec![stack.instance(VENTURES_SYNC, "ventures-sync-2")];
    for p in writers.iter_mut().chain(syncs.iter_mut()) {
        p.start().await?;
    }
    let pool = stack.db.connect().await?;
    let projections = stack.projections().await?;
    let mut expected = Expected::default();
    let mut driver = Driver::new(&stack.sim.base_url(), 7);
    driver.create_loans("scale", LOANS, &mut expected).await?;
    let started = Instant::now();
    let workload = tokio::spawn(async move { driver.change_statuses(CHANGES, Some(RATE), &mut expected).await.map(|()| expected) });
    let window = Duration::from_secs_f64(CHANGES as f64 / RATE);
    let step = window / 6;
    let mut events = Vec::new();
    // 1: kill a projection-writer; 2: the first ventures-sync (the sweeper: it started first);
    // 3: bring both back; 4: add a fourth projection-writer and kill another; 5: kill the second
    // ventures-sync (the sweeper now).
    tokio::time::sleep(step).await;
    writers[0].kill().await?;
    events.push("killed projection-writer-2");
    tokio::time::sleep(step).await;
    stack.service(VENTURES_SYNC).kill().await?;
    events.push("killed ventures-sync (the sweeper)");
    tokio::time::sleep(step).await;
    writers[0].start().await?;
    stack.service(VENTURES_SYNC).start().await?;
    events.push("restarted both");
    tokio::time::sleep(step).await;
    let mut extra = stack.instance(PROJECTION_WRITER, "projection-writer-4");
    extra.start().await?;
    stack.service(PROJECTION_WRITER).kill().await?;
    events.push("added projection-writer-4, killed projection-writer-1");
    tokio::time::sleep(step).await;
    syncs[0].kill().await?;
    events.push("killed ventures-sync-2 (the sweeper)");
    let expected = workload.await??;
    let produced_in = started.elapsed();
    workload::wait_converged(&pool, &expected, Duration::from_secs(300)).await?;
    let converged_in = started.elapsed();
    let report = workload::check(&pool, &projections, &expected, true).await?;
    // One sweeper, and only one, among the live ventures-syncs (the lease moved twice).
    let sweeping = system_tests::wait_for("one sweeper", Duration::from_secs(30), || async {
        let n = sweepers(&[stack.services.get(VENTURES_SYNC).expect("ventures-sync"), &syncs[0]]).await;
        Ok((n == 1.0).then_some(n))
    })
    .await?;
    println!(
        "scale-out: {} changes over {} loans in {:.0} s with 3-4 projection-writers and 1-2 ventures-syncs ({}); converged at {:.0} s; {report}; instances sweeping at the end: {sweeping}",
        CHANGES,
        LOANS,
        produced_in.as_secs_f64(),
        events.join(", "),
        converged_in.as_secs_f64()
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.event_log_rows, report.source_versions, "exactly one event_log row per source version");
    for p in writers.iter_mut().chain(syncs.iter_mut()) {
        p.stop().await?;
    }
    extra.stop().await?;
    stack.stop_all().await?;
    Ok(())
}
