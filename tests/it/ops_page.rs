//! Flow 8 from the ops page: a status command dead-lettered while Ventures failed is found,
//! inspected (decoded), dry-run and replayed from the gateway's `/ops` page in headless Chromium
//! (Debian's `chromium`, driven by `playwright-core` from `tests/browser/`, both installed by
//! `make setup`), and the replay is applied: Ventures changes the loan once, and the read model
//! and Firestore show the command applied.

use std::{path::PathBuf, time::Duration};

use projection_writer::firestore as fs;
use serde_json::{Value, json};
use system_tests::{
    repo_root,
    stack::{API_GATEWAY, DLQ_REPLAYER, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

pub const WAIT: Duration = Duration::from_secs(90);
pub const DLQ: &str = "deadletter.ventures-sync.commands.v1";

/// A stack whose ventures-sync dead-letters a failing command after two quick tries (the breaker
/// off, so that it does not make the commands wait instead), with the gateway and dlq-replayer.
pub async fn stack_with_replayer(name: &str) -> anyhow::Result<Stack> {
    let mut stack = Stack::start(name).await?;
    stack.service(VENTURES_SYNC).set_envs(&[
        ("VENTURES_SYNC__MAX_ATTEMPTS", "2"),
        ("VENTURES_SYNC__BACKOFF_INITIAL_MS", "50"),
        ("VENTURES_SYNC__BACKOFF_MAX_MS", "100"),
        ("VENTURES_SYNC__BREAKER_THRESHOLD", "0"),
    ]);
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY, DLQ_REPLAYER]).await?;
    Ok(stack)
}

/// Application `app`, projected, whose Ventures status endpoint fails (503) until the faults
/// are removed, and a console change to Open that will be dead-lettered: (loan id, command id).
pub async fn failing_command(stack: &Stack, app: &str) -> anyhow::Result<(String, String)> {
    let sim = stack.sim.base_url();
    let staff = stack.token("staff", VENTURES_TENANT);
    let loan = stack.create_loan(app, "Prospect").await?;
    let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
    let fault = json!({ "status": 503, "pathPrefix": format!("/api/v4/loans/{loan_id}/status") });
    stack.http.post(format!("{sim}/control/faults")).json(&fault).send().await?.error_for_status()?;
    wait_for(&format!("{app} projected"), WAIT, || async {
        Ok((stack.http.get(format!("{}/api/v1/applications/{app}", stack.gateway_url)).bearer_auth(&staff).send().await?.status() == 200).then_some(()))
    })
    .await?;
    let reply: Value = stack
        .http
        .post(format!("{}/api/v1/applications/{app}/status", stack.gateway_url))
        .bearer_auth(&staff)
        .json(&json!({ "status": "Open", "appVersion": 1 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((loan_id, reply["commandId"].as_str().unwrap_or_default().to_string()))
}

/// Waits until the admin API (as `token`) lists `count` dead letters of `DLQ` with kind http_5xx.
pub async fn dead_letters(stack: &Stack, token: &str, count: u64) -> anyhow::Result<Value> {
    wait_for(&format!("{count} dead letters through the admin API"), WAIT, || async {
        let url = format!("{}/api/v1/admin/dead-letters?topic={DLQ}&kind=http_5xx", stack.gateway_url);
        let list: Value = stack.http.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        Ok((list["total"] == count).then_some(list))
    })
    .await
}

/// The command's state in the read model (through the gateway), once it is `applied`.
pub async fn applied(stack: &Stack, command_id: &str) -> anyhow::Result<Value> {
    let staff = stack.token("staff", VENTURES_TENANT);
    wait_for(&format!("command {command_id} applied"), WAIT, || async {
        let c: Value = stack.http.get(format!("{}/api/v1/commands/{command_id}", stack.gateway_url)).bearer_auth(&staff).send().await?.json().await?;
        Ok((c["state"] == "applied").then_some(c))
    })
    .await
}

/// The Ventures changes made with `command_id` as the Idempotency-Key (first answers only).
pub async fn ventures_changes(stack: &Stack, command_id: &str) -> anyhow::Result<usize> {
    let effects: Value = stack.http.get(format!("{}/control/effects", stack.sim.base_url())).send().await?.json().await?;
    Ok(effects.as_array().into_iter().flatten().filter(|e| e["idempotencyKey"] == command_id && e["status"] == 200 && e["replayed"] == false).count())
}

fn browser_dir() -> PathBuf {
    repo_root().join("tests/browser")
}

/// Runs the page's script in headless Chromium; what it saw.
async fn drive_page(stack: &Stack, token: &str) -> anyhow::Result<Value> {
    let dir = browser_dir();
    anyhow::ensure!(dir.join("node_modules/playwright-core").exists(), "{}/node_modules is missing: run `make setup` (npm ci there)", dir.display());
    let chromium = std::env::var("BRAIN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(std::path::Path::new(&chromium).exists(), "{chromium} is missing: run `make setup` (it installs Debian's chromium)");
    let filter = json!({ "topic": DLQ, "kind": "http_5xx" });
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("ops_page.mjs"))
        .env("OPS_URL", format!("{}/ops", stack.gateway_url))
        .env("TOKEN", token)
        .env("CHROMIUM", &chromium)
        .env("FILTER", filter.to_string())
        .env("SCREENSHOTS", &stack.logs)
        .env("FLAG_TENANT", VENTURES_TENANT)
        .current_dir(&dir)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(240), command.output()).await.map_err(|_| anyhow::anyhow!("the browser script ran past 240 s"))??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(stack.logs.join("ops-page-browser.log"), format!("{}{stderr}", String::from_utf8_lossy(&output.stdout)))?;
    anyhow::ensure!(output.status.success(), "the ops page script failed ({}):\n{stderr}", output.status);
    let line = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_string();
    Ok(serde_json::from_str(&line)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_from_the_ops_page_and_applied() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = stack_with_replayer("ops_page").await?;
    let app = "app-ops-1";
    let (loan_id, command_id) = failing_command(&stack, app).await?;
    let ops = stack.token("ops", VENTURES_TENANT);
    dead_letters(&stack, &ops, 1).await?;
    // The cause is fixed; the operator replays from the page.
    stack.http.delete(format!("{}/control/faults", stack.sim.base_url())).send().await?.error_for_status()?;
    assert_eq!(ventures_changes(&stack, &command_id).await?, 0, "nothing reached Ventures yet");

    let seen = drive_page(&stack, &ops).await?;
    println!("ops page: {seen}");
    assert_eq!(seen["tokenLeftInAddress"], false, "?token= is removed from the address: {seen}");
    let integrations: Vec<&str> = seen["integrations"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(integrations, ["ventures", "firestore", "sharefile", "graph", "teams", "qbo"], "{seen}");
    assert_eq!(seen["listed"], 1, "{seen}");
    assert_eq!(seen["event"]["to_status"], "Open", "the original event, decoded: {seen}");
    assert_eq!(seen["event"]["application_id"], app, "{seen}");
    assert!(seen["detailError"].as_str().is_some_and(|e| e.starts_with("transient_exhausted / http_5xx")), "{seen}");
    assert!(seen["dryRun"].as_str().is_some_and(|d| d.contains("1 matched · would send 1 · would skip 0")), "{seen}");
    assert_eq!(seen["jobState"], "finished (done)", "{seen}");
    assert!(seen["jobCounts"].as_str().is_some_and(|c| c.contains("sent 1 · skipped 0 · failed 0")), "{seen}");
    assert_eq!((seen["progress"]["value"].as_f64(), seen["progress"]["max"].as_f64()), (Some(1.0), Some(1.0)), "the bar is full: {seen}");
    assert_eq!(seen["consoleErrors"], json!([]), "{seen}");
    // Capabilities from the page: the tenant's flag set and cleared, audited; panic mode is admin's.
    assert!(seen["flagOff"].as_str().is_some_and(|r| r.contains("default=off (test-ops)")), "{seen}");
    assert!(seen["history"].as_str().is_some_and(|h| h.contains("firestore") && h.contains("test-ops")), "{seen}");
    assert!(seen["flagCleared"].as_str().is_some_and(|r| !r.contains("default=off")), "{seen}");
    assert!(seen["panicAsOps"].as_str().is_some_and(|m| m.starts_with("forbidden")), "{seen}");

    // Applied: in Ventures once, in the read model and in Firestore.
    let command = applied(&stack, &command_id).await?;
    assert_eq!(command["appliedVersion"], 2, "{command}");
    assert_eq!(ventures_changes(&stack, &command_id).await?, 1);
    let loan: Value = stack.http.get(format!("{}/control/loans/{loan_id}", stack.sim.base_url())).send().await?.json().await?;
    assert_eq!((loan["status"].as_str(), loan["version"].as_i64()), (Some("Open"), Some(2)), "{loan}");
    let projections = stack.projections().await?;
    wait_for("Firestore to show the replayed command applied", WAIT, || async {
        let docs = projections.get("applications", &[app.to_string()]).await?;
        let doc = docs.get(app);
        let status = doc.and_then(|d| d.get("venturesStatus")).and_then(fs::as_str).map(str::to_string);
        let command = doc.and_then(|d| d.get("statusCommand")).and_then(fs::as_map).and_then(|c| c.get("state")).and_then(fs::as_str).map(str::to_string);
        Ok((status.as_deref() == Some("Open") && command.as_deref() == Some("applied")).then_some(()))
    })
    .await?;

    // The audit has the page's dry run and replay, by the token's subject.
    let pool = stack.db.connect().await?;
    let jobs: Vec<(bool, i64, String)> = sqlx::query_as("SELECT dry_run, sent, operator FROM dlq_replayer.jobs ORDER BY started_at").fetch_all(&pool).await?;
    assert_eq!(jobs, vec![(true, 1, "test-ops".to_string()), (false, 1, "test-ops".to_string())]);
    stack.stop_all().await?;
    Ok(())
}
