//! Task SLA timers (flow 4): with the review SLA shortened to seconds, a task left under review
//! breaches exactly once and shows in the staff inbox; a task that moves on in time never
//! breaches; a projection-writer killed while a timer waits (and started after it is due)
//! changes nothing: the timer fires once.

use std::time::Duration;

use serde_json::{Value, json};
use system_tests::{
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);
const SLA_MS: u64 = 4_000;

async fn state_of(pool: &sqlx::PgPool, task: &str) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT state FROM projection_writer.tasks WHERE task_id = $1").bind(task).fetch_optional(pool).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_left_under_review_breaches_once_and_one_moved_on_never_does() -> anyhow::Result<()> {
    let mut stack = Stack::start("sla").await?;
    let sim = stack.sim.base_url();
    let mut tasks = Vec::new();
    for name in ["left", "moved-on", "restarted"] {
        let loan = stack.create_loan(&format!("sla-{name}"), "Open").await?;
        let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
        let c: Value = stack.http.post(format!("{sim}/control/loans/{loan_id}/conditions")).json(&json!({ "name": format!("Tax return ({name})") })).send().await?.error_for_status()?.json().await?;
        tasks.push((loan_id, c["conditionId"].as_str().unwrap_or_default().to_string()));
    }
    stack.service(PROJECTION_WRITER).set_envs(&[("PROJECTION_WRITER__SLA_PENDING_REVIEW_MS", &SLA_MS.to_string()), ("PROJECTION_WRITER__SLA_TICK_MS", "200")]);
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;
    for (_, task) in &tasks {
        wait_for("the task", WAIT, || async { Ok(state_of(&pool, task).await?.filter(|s| s == "open")) }).await?;
    }
    let token = stack.ventures_token().await?;

    // All three go under review (a document attached in Ventures).
    for (i, (loan, task)) in tasks.iter().enumerate() {
        stack.patch_condition(&token, loan, task, json!({ "status": "Received", "documentRef": { "system": "sharefile", "itemId": format!("fi-{i}") } })).await?;
    }
    for (_, task) in &tasks {
        wait_for("under review", WAIT, || async { Ok(state_of(&pool, task).await?.filter(|s| s == "pending_review")) }).await?;
    }
    // One is satisfied in time; projection-writer dies while the others' timers wait.
    let (moved_loan, moved) = &tasks[1];
    stack.patch_condition(&token, moved_loan, moved, json!({ "status": "Satisfied" })).await?;
    wait_for("the moved-on task completed", WAIT, || async { Ok(state_of(&pool, moved).await?.filter(|s| s == "completed")) }).await?;
    stack.service(PROJECTION_WRITER).kill().await?;
    tokio::time::sleep(Duration::from_millis(SLA_MS + 1_000)).await;
    stack.service(PROJECTION_WRITER).start().await?;

    let (left, restarted) = (&tasks[0].1, &tasks[2].1);
    for task in [left, restarted] {
        wait_for("the breach", WAIT, || async {
            let fired: Option<bool> = sqlx::query_scalar("SELECT fired_at IS NOT NULL FROM projection_writer.task_timers WHERE task_id = $1 AND state = 'pending_review'").bind(task).fetch_optional(&pool).await?;
            Ok(fired.filter(|f| *f).map(drop))
        })
        .await?;
    }
    // A few more ticks: nothing fires twice, the moved-on task's timer stays cancelled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let timers: Vec<(String, bool, bool)> =
        sqlx::query_as("SELECT task_id, fired_at IS NOT NULL, cancelled_at IS NOT NULL FROM projection_writer.task_timers WHERE state = 'pending_review' ORDER BY task_id").fetch_all(&pool).await?;
    assert_eq!(timers.len(), 3, "one review timer per task: {timers:?}");
    for (task, fired, cancelled) in &timers {
        let expected = if task == moved { (false, true) } else { (true, false) };
        assert_eq!((*fired, *cancelled), expected, "{task}: {timers:?}");
    }
    let breaches: Vec<(String, i64)> = sqlx::query_as("SELECT change->>'taskId', count(*) FROM projection_writer.event_log WHERE event_type = 'task.sla_breached' GROUP BY 1 ORDER BY 1").fetch_all(&pool).await?;
    let mut expected = vec![(left.clone(), 1), (restarted.clone(), 1)];
    expected.sort();
    assert_eq!(breaches, expected, "each breach once");

    // The staff inbox: the two breached tasks first; the completed one is not open work.
    let inbox: Value = stack.http.get(format!("{}/api/v1/inbox", stack.gateway_url)).bearer_auth(stack.token("staff", VENTURES_TENANT)).send().await?.error_for_status()?.json().await?;
    let items = inbox["items"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = items.iter().filter_map(|i| i["taskId"].as_str()).collect();
    assert_eq!(inbox["breached"], 2, "{inbox}");
    assert!(ids.contains(&left.as_str()) && ids.contains(&restarted.as_str()) && !ids.contains(&moved.as_str()), "{inbox}");
    assert!(items.iter().take(2).all(|i| i["breachedAt"].is_string()), "breaches first: {inbox}");
    let borrower = stack.http.get(format!("{}/api/v1/inbox", stack.gateway_url)).bearer_auth(stack.borrower_token(VENTURES_TENANT, &["sla-left"])).send().await?;
    assert_eq!(borrower.status(), 403);
    // Firestore shows the breach on the task.
    let projections = stack.projections().await?;
    let doc = projections.get("applications/sla-left/tasks", std::slice::from_ref(left)).await?;
    assert!(doc.get(left).and_then(|f| f.get("slaBreachedAt")).and_then(projection_writer::firestore::as_millis).is_some(), "{doc:?}");
    stack.stop_all().await?;
    Ok(())
}
