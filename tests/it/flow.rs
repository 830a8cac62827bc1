use std::time::Duration;

use system_tests::{
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    workload::{self, Driver, Expected},
};

/// 1,000 status changes over 200 loans reach their final state in Firestore and the read model,
/// with exactly one event_log row per change and per-loan order preserved; the gateway serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_reach_firestore_and_the_read_model_exactly_once() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("flow").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;

    let mut expected = Expected::default();
    let mut driver = Driver::new(&stack.sim.base_url(), 7);
    driver.create_loans("app", 200, &mut expected).await?;
    driver.change_statuses(1_000, None, &mut expected).await?;
    assert_eq!(expected.changes, 1_000);

    workload::wait_converged(&pool, &expected, Duration::from_secs(180)).await?;
    let report = workload::check(&pool, &stack.projections().await?, &expected, true).await?;
    println!("flow: {report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.event_log_rows, 1_200, "200 creations + 1,000 changes, one row each");

    // The gateway serves the read model to the tenant's staff, with stable error codes.
    let token = stack.token("staff", VENTURES_TENANT);
    let get = |path: &str| stack.http.get(format!("{}{path}", stack.gateway_url)).bearer_auth(&token).send();
    let (app, (loan_id, version, status)) = expected.loans.iter().next().expect("a loan");
    let body: serde_json::Value = get(&format!("/api/v1/applications/{app}")).await?.json().await?;
    assert_eq!(body["venturesStatus"], status.as_str());
    assert_eq!(body["version"], *version);
    assert_eq!(body["loanId"], loan_id.as_str());
    let missing = get("/api/v1/applications/no-such-app").await?;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<serde_json::Value>().await?["code"], "application_not_found");
    let invalid = get("/api/v1/applications/bad%20id").await?;
    assert_eq!(invalid.status(), 400);
    assert_eq!(invalid.json::<serde_json::Value>().await?["code"], "invalid_application_id");

    stack.stop_all().await?;
    Ok(())
}
