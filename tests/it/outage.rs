use std::time::Duration;

use serde_json::json;
use system_tests::{
    stack::{PROJECTION_WRITER, Stack, VENTURES_SYNC},
    workload::{self, Driver, Expected},
};

async fn converge(stack: &Stack, pool: &sqlx::PgPool, expected: &Expected) -> anyhow::Result<workload::Report> {
    workload::wait_converged(pool, expected, Duration::from_secs(180)).await?;
    workload::check(pool, &stack.projections().await?, expected, false).await
}

/// A Ventures outage and a 429 storm: the sweep backs off (honouring Retry-After), catches up,
/// and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_backs_off_through_an_outage_and_a_429_storm() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("outage").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let sim = stack.sim.base_url();
    let mut expected = Expected::default();
    let mut driver = Driver::new(&sim, 3);
    driver.create_loans("app", 50, &mut expected).await?;

    let fault = |body: serde_json::Value| stack.http.post(format!("{sim}/control/faults")).json(&body).send();
    fault(json!({ "status": 503, "durationSecs": 3 })).await?.error_for_status()?;
    driver.change_statuses(100, Some(50.0), &mut expected).await?;
    fault(json!({ "status": 429, "retryAfterSecs": 1, "count": 15 })).await?.error_for_status()?;
    driver.change_statuses(100, Some(50.0), &mut expected).await?;

    let report = converge(&stack, &pool, &expected).await?;
    let stats: serde_json::Value = stack.http.get(format!("{sim}/control/stats")).send().await?.json().await?;
    let served = stats["faultsServed"].as_u64().unwrap_or_default();
    println!("outage: faults served {served} → {report}");
    assert!(served >= 15, "the sweep met the injected faults ({served})");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.event_log_rows, report.source_versions, "every change applied once");
    stack.stop_all().await?;
    Ok(())
}

/// A cursor that fell out of the feed's retention (410) triggers a full resync that converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_triggers_a_full_resync() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("resync").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let sim = stack.sim.base_url();
    let mut expected = Expected::default();
    let mut driver = Driver::new(&sim, 5);
    driver.create_loans("app", 30, &mut expected).await?;
    converge(&stack, &pool, &expected).await?;

    stack.service(VENTURES_SYNC).stop().await?;
    driver.change_statuses(60, None, &mut expected).await?;
    stack.http.post(format!("{sim}/control/feed/trim")).json(&json!({ "keepLast": 5 })).send().await?.error_for_status()?;
    stack.service(VENTURES_SYNC).start().await?;

    let report = converge(&stack, &pool, &expected).await?;
    // The resync stores its cursor (and counts itself) just after its events are acknowledged,
    // which the projection may beat: wait for it.
    let resyncs: i64 = system_tests::wait_for("the resync recorded", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT resyncs FROM ventures_sync.sweep_state").fetch_one(&pool).await?;
        Ok((n >= 1).then_some(n))
    })
    .await?;
    println!("resync: resyncs {resyncs} → {report}");
    assert_eq!(resyncs, 1);
    assert!(report.is_clean(), "{report}");
    stack.stop_all().await?;
    Ok(())
}
