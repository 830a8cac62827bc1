use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use system_tests::{
    stack::{PROJECTION_WRITER, Stack, VENTURES_SYNC},
    workload::{self, Driver, Expected},
};

/// The flow survives SIGKILL of each worker, three times each, mid-run: nothing lost, nothing
/// applied twice, no per-loan order inversion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_run_lose_nothing_and_apply_nothing_twice() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("crash").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;

    let mut expected = Expected::default();
    let mut driver = Driver::new(&stack.sim.base_url(), 11);
    driver.create_loans("app", 200, &mut expected).await?;

    // Changes flow at 40/s for 25 s while a killer SIGKILLs a worker every ~2 s and restarts it.
    let seed = rand::random::<u64>();
    println!("crash: kill schedule seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let changes = tokio::spawn(async move {
        driver.change_statuses(1_000, Some(40.0), &mut expected).await.map(|()| expected)
    });
    let mut victims = [VENTURES_SYNC, PROJECTION_WRITER].repeat(3);
    victims.rotate_left(rng.random_range(0..2));
    for victim in victims {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
        stack.service(victim).kill().await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        stack.service(victim).start().await?;
    }
    let expected = changes.await??;

    workload::wait_converged(&pool, &expected, Duration::from_secs(240)).await?;
    let report = workload::check(&pool, &stack.projections().await?, &expected, true).await?;
    let kills: Vec<_> = stack.services.values().map(|s| format!("{}={}", s.name, s.kills)).collect();
    println!("crash: kills {} → {report}", kills.join(" "));
    assert!(stack.service(VENTURES_SYNC).kills >= 3 && stack.service(PROJECTION_WRITER).kills >= 3);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.event_log_rows, report.source_versions);
    stack.stop_all().await?;
    Ok(())
}
