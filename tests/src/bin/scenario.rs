//! The scripted scenario `make run` drives through a running dev stack: loans are created and
//! changed in the Ventures simulator; the scenario waits until every change has reached the read
//! model and Firestore, checks the invariants, and prints what happened with lag percentiles.

use std::time::{Duration, Instant};

use clap::Parser;
use system_tests::{
    workload::{self, Driver, Expected, percentile},
};

#[derive(Parser)]
struct Args {
    #[arg(long, env = "SCENARIO_SIMULATOR_URL", default_value = "http://127.0.0.1:8090")]
    simulator: String,
    #[arg(long, env = "SCENARIO_GATEWAY_URL", default_value = "http://127.0.0.1:8000")]
    gateway: String,
    /// The dev OIDC issuer the gateway trusts (the scenario reads the gateway with a staff token).
    #[arg(long, env = "SCENARIO_OIDC_URL", default_value = "http://127.0.0.1:8070")]
    oidc: String,
    /// A superuser connection to the dev database (the checker reads projection-writer's tables).
    #[arg(long, env = "SCENARIO_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/brain")]
    database: String,
    #[arg(long, env = "SCENARIO_FIRESTORE_PROJECT", default_value = "brain-dev")]
    firestore_project: String,
    #[arg(long, default_value_t = 50)]
    loans: usize,
    #[arg(long, default_value_t = 500)]
    changes: usize,
    /// Status changes per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let pool = sqlx::PgPool::connect(&args.database).await?;
    let projections = projection_writer::firestore::Projections::connect(&args.firestore_project).await?;
    println!("scenario {run}: {} loans, {} status changes at {}/s through the Ventures simulator", args.loans, args.changes, args.rate);

    let started = Instant::now();
    let mut expected = Expected::default();
    let mut driver = Driver::new(&args.simulator, rand::random());
    driver.create_loans(&run, args.loans, &mut expected).await?;
    driver.change_statuses(args.changes, Some(args.rate), &mut expected).await?;
    let driven = started.elapsed();
    workload::wait_converged(&pool, &expected, Duration::from_secs(120)).await?;
    let converged = started.elapsed();

    let report = workload::check(&pool, &projections, &expected, true).await?;
    let lags = workload::projection_lags(&pool, &run).await?;
    let (app, (_, version, status)) = expected.loans.iter().next().expect("loans were created");
    // As the application's tenant's staff, with a token from the dev issuer.
    let tenant: String = sqlx::query_scalar("SELECT tenant_id FROM projection_writer.applications WHERE application_id = $1").bind(app).fetch_one(&pool).await?;
    let token = dev_oidc::client::Client::new(&args.oidc).mint(&dev_oidc::MintRequest::new("scenario", "staff", &tenant)).await?.token;
    let http = reqwest::Client::new();
    let served: serde_json::Value = http.get(format!("{}/api/v1/applications/{app}", args.gateway)).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
    let console = console_change(&http, &args.gateway, &token, &projections, &expected).await?;
    let guard = client_write(&projections, app).await?;

    println!();
    println!("  source changes (creations + status changes)  {}", report.source_versions);
    println!("  events applied (event_log rows)              {}", report.event_log_rows);
    println!("  Firestore documents at their final state     {} of {}", report.applications - report.firestore_mismatches, report.applications);
    println!("  read-model rows at their final state         {} of {}", report.applications - report.read_model_mismatches, report.applications);
    println!("  lost {} · duplicated {} · order inversions {}", report.lost, report.duplicates, report.inversions);
    println!(
        "  lag, Ventures change → projection committed  P50 {:.3} s · P95 {:.3} s · P99 {:.3} s · max {:.3} s",
        percentile(&lags, 50.0),
        percentile(&lags, 95.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    println!("  driven in {:.1} s, converged {:.1} s after the start", driven.as_secs_f64(), converged.as_secs_f64());
    println!("  gateway: GET /api/v1/applications/{app} → venturesStatus {} version {} (source: {status} v{version})", served["venturesStatus"], served["version"]);
    println!("{console}");
    println!("{guard}");
    anyhow::ensure!(report.is_clean(), "invariants violated: {report}");
    Ok(())
}

/// Flow 3's guard once: an app writes `venturesStatus` (as if the security rules were bypassed);
/// the listener sees it and projection-writer writes Brain's value back. Returns what to print.
async fn client_write(projections: &projection_writer::firestore::Projections, app: &str) -> anyhow::Result<String> {
    use projection_writer::firestore as fs;
    let status = |docs: std::collections::HashMap<String, std::collections::HashMap<String, fs::FirestoreValue>>| {
        docs.get(app).and_then(|d| d.get("venturesStatus")).and_then(fs::as_str).map(str::to_string)
    };
    let brain = status(projections.get("applications", &[app.to_string()]).await?).unwrap_or_default();
    let started = Instant::now();
    projections.merge_fields("applications", app, vec![("venturesStatus", fs::string("Hacked")), ("lastEditedBy", fs::string("scenario"))]).await?;
    system_tests::wait_for("Brain's venturesStatus restored", Duration::from_secs(30), || async {
        Ok((status(projections.get("applications", &[app.to_string()]).await?).as_deref() == Some(brain.as_str())).then_some(()))
    })
    .await?;
    Ok(format!(
        "  protected field: an app wrote venturesStatus \"Hacked\" on {app} → restored to {brain:?} in {:.2} s (see projection.application.protected-field-violation.v1)",
        started.elapsed().as_secs_f64()
    ))
}

/// Flow 2 once: a staff member moves one application to its next status from the console; the
/// command goes through Ventures and comes back to Firestore. Returns what to print.
async fn console_change(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    projections: &projection_writer::firestore::Projections,
    expected: &Expected,
) -> anyhow::Result<String> {
    let next = |status: &str| match status {
        "Prospect" | "Incomplete" => Some("Open"),
        "Open" => Some("Approved"),
        "Approved" => Some("Funded"),
        _ => None,
    };
    let Some((app, version, from, to)) = expected.loans.iter().find_map(|(app, (_, v, s))| next(s).map(|to| (app, *v, s, to))) else {
        return Ok("  console status change: skipped (every application ended in a terminal status)".into());
    };
    let started = Instant::now();
    let body = serde_json::json!({ "status": to, "appVersion": version, "reason": "make run scenario" });
    let accepted: serde_json::Value =
        http.post(format!("{gateway}/api/v1/applications/{app}/status")).bearer_auth(token).json(&body).send().await?.error_for_status()?.json().await?;
    let id = accepted["commandId"].as_str().unwrap_or_default().to_string();
    let command = system_tests::wait_for("the console's command to be resolved", Duration::from_secs(60), || async {
        let command: serde_json::Value = http.get(format!("{gateway}/api/v1/commands/{id}")).bearer_auth(token).send().await?.json().await?;
        Ok((command["state"] != "pending").then_some(command))
    })
    .await?;
    anyhow::ensure!(command["state"] == "applied", "the console's status change was not applied: {command}");
    system_tests::wait_for("the change in Firestore", Duration::from_secs(60), || async {
        let docs = projections.get("applications", std::slice::from_ref(app)).await?;
        let status = docs.get(app).and_then(|d| d.get("venturesStatus")).and_then(projection_writer::firestore::as_str).map(str::to_string);
        Ok((status.as_deref() == Some(to)).then_some(()))
    })
    .await?;
    Ok(format!(
        "  console status change: POST /api/v1/applications/{app}/status {from} → {to} → 202 → applied in Ventures (v{}) → Firestore in {:.2} s",
        command["appliedVersion"],
        started.elapsed().as_secs_f64()
    ))
}
