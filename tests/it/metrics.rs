//! Metrics for real: all eight services run (a loan flows through, so the per-event series exist),
//! each one's `/metrics` is scraped, and `infra/prometheus/check_metrics.py` parses every scrape
//! with the Prometheus text-format parser (the official Python client's) and checks that each
//! metric name and name pattern the alert rules and the Grafana dashboards use is exposed.

use std::time::Duration;

use system_tests::{
    repo_root,
    stack::{API_GATEWAY, CHANGE_LISTENER, DLQ_REPLAYER, GRAPH_CALENDAR, PROJECTION_WRITER, QBO_MIRROR, SHAREFILE_SYNC, Stack, VENTURES_SYNC},
    wait_for,
};

const SERVICES: [&str; 8] = [VENTURES_SYNC, PROJECTION_WRITER, CHANGE_LISTENER, API_GATEWAY, QBO_MIRROR, SHAREFILE_SYNC, GRAPH_CALENDAR, DLQ_REPLAYER];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_alerts_and_dashboards_use_is_exposed() -> anyhow::Result<()> {
    let python = repo_root().join(".cache/venv/bin/python");
    anyhow::ensure!(python.exists(), "{} is missing: infra/dev/setup.sh makes it", python.display());
    let mut stack = Stack::start("metrics").await?;
    stack.start_services(&SERVICES).await?;
    let pool = stack.db.connect().await?;
    stack.create_loan("app-metrics", "Open").await?;
    wait_for("the loan projected", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.applications WHERE application_id = 'app-metrics'").fetch_one(&pool).await?;
        Ok((n == 1).then_some(()))
    })
    .await?;
    // The gateway's sync-health gauges come with its next refresh (every second here).
    let token = stack.token("ops", system_tests::stack::VENTURES_TENANT);
    wait_for("the gateway's first sync-health gathering", Duration::from_secs(60), || async {
        let response = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).bearer_auth(&token).send().await?;
        Ok(response.status().is_success().then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let dir = stack.logs.join("scrapes");
    std::fs::create_dir_all(&dir)?;
    for name in SERVICES {
        let url = stack.service(name).ready_url().replace("/ready", "/metrics");
        let text = stack.http.get(&url).send().await?.error_for_status()?.text().await?;
        std::fs::write(dir.join(format!("{name}.prom")), text)?;
    }
    let output = tokio::process::Command::new(&python).arg(repo_root().join("infra/prometheus/check_metrics.py")).arg(&dir).output().await?;
    let report = String::from_utf8_lossy(&output.stdout);
    println!("metrics: {report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "a metric the alerts or dashboards use is not exposed (scrapes in {})", dir.display());
    stack.stop_all().await?;
    Ok(())
}
