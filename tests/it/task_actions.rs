//! Flow 4's staff actions and the per-staff inbox, end to end: a task assigned to a staff member
//! appears in their Firestore inbox (`staff/{id}/inbox/{taskId}`) and in `GET /api/v1/inbox?
//! assignee=`; a request for a document moves it to `awaiting_upload`, whose shortened SLA
//! breaches and shows in that inbox; a document under review is rejected with a reason (back to
//! `awaiting_upload`; the same document attached again changes nothing, another one goes under
//! review); reassigning moves the entry, completing removes it. Bad actions get their 4xx codes.

use std::time::Duration;

use projection_writer::firestore as fs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::{
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);

async fn act(stack: &Stack, token: &str, app: &str, task: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = stack.http.post(format!("{}/api/v1/applications/{app}/tasks/{task}/actions", stack.gateway_url)).bearer_auth(token).json(&body).send().await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn task_row(pool: &sqlx::PgPool, task: &str) -> anyhow::Result<Option<(String, Option<String>, Option<String>)>> {
    Ok(sqlx::query_as("SELECT state, assignee, rejection_reason FROM projection_writer.tasks WHERE task_id = $1").bind(task).fetch_optional(pool).await?)
}

async fn wait_state(pool: &sqlx::PgPool, task: &str, state: &str) -> anyhow::Result<()> {
    wait_for(&format!("task {task} {state}"), WAIT, || async { Ok(task_row(pool, task).await?.filter(|(s, _, _)| s == state).map(drop)) }).await
}

/// The inbox entry of `staff` for `task` in Firestore, if there is one.
async fn inbox_entry(projections: &fs::Projections, staff: &str, task: &str) -> anyhow::Result<Option<std::collections::HashMap<String, fs::FirestoreValue>>> {
    Ok(projections.get(&format!("staff/{staff}/inbox"), &[task.to_string()]).await?.remove(task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_assign_request_and_reject_and_each_staff_member_sees_their_own_work() -> anyhow::Result<()> {
    let mut stack = Stack::start("task-actions").await?;
    let sim = stack.sim.base_url();
    let loan = stack.create_loan("app-actions", "Open").await?;
    let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
    let mut conditions = Vec::new();
    for name in ["Bank statements", "Tax return"] {
        let c: Value = stack.http.post(format!("{sim}/control/loans/{loan_id}/conditions")).json(&json!({ "name": name })).send().await?.error_for_status()?.json().await?;
        conditions.push(c["conditionId"].as_str().unwrap_or_default().to_string());
    }
    stack.service(PROJECTION_WRITER).set_envs(&[("PROJECTION_WRITER__SLA_AWAITING_UPLOAD_MS", "3000"), ("PROJECTION_WRITER__SLA_TICK_MS", "200")]);
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;
    let projections = stack.projections().await?;
    let (a, b) = (conditions[0].clone(), conditions[1].clone());
    for task in [&a, &b] {
        wait_state(&pool, task, "open").await?;
    }
    let staff = stack.token("staff", VENTURES_TENANT);
    let ventures = stack.ventures_token().await?;

    // Bad actions: their codes, and nothing happens.
    let borrower = stack.borrower_token(VENTURES_TENANT, &["app-actions"]);
    for (token, task, body, status, code) in [
        (&borrower, a.as_str(), json!({ "action": "assign" }), StatusCode::FORBIDDEN, "forbidden"),
        (&staff, "C-missing", json!({ "action": "assign" }), StatusCode::NOT_FOUND, "task_not_found"),
        (&staff, a.as_str(), json!({ "action": "approve" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_action"),
        (&staff, a.as_str(), json!({ "action": "reject", "reason": " " }), StatusCode::UNPROCESSABLE_ENTITY, "reason_required"),
        (&staff, a.as_str(), json!({ "action": "reject", "reason": "blurry" }), StatusCode::CONFLICT, "task_state_conflict"),
        (&staff, a.as_str(), json!({ "action": "assign", "assignee": "a/b" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_assignee"),
        (&staff, a.as_str(), json!({ "action": "assign", "extra": 1 }), StatusCode::BAD_REQUEST, "invalid_body"),
    ] {
        let (got, body) = act(&stack, token, "app-actions", task, body).await?;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }

    // Task A: assigned to ann, a document asked for; its SLA breaches in ann's inbox.
    assert_eq!(act(&stack, &staff, "app-actions", &a, json!({ "action": "assign", "assignee": "ann" })).await?.0, StatusCode::ACCEPTED);
    assert_eq!(act(&stack, &staff, "app-actions", &a, json!({ "action": "request_upload", "reason": "All pages of March, please" })).await?.0, StatusCode::ACCEPTED);
    wait_state(&pool, &a, "awaiting_upload").await?;
    wait_for("the breach in ann's inbox", WAIT, || async { Ok(inbox_entry(&projections, "ann", &a).await?.filter(|e| e.get("slaBreachedAt").and_then(fs::as_millis).is_some()).map(drop)) }).await?;
    let entry = inbox_entry(&projections, "ann", &a).await?.unwrap_or_default();
    assert_eq!(entry.get("state").and_then(fs::as_str), Some("awaiting_upload"));
    assert!(entry.get("slaDueAt").and_then(fs::as_millis).is_some());
    let inbox: Value = stack.http.get(format!("{}/api/v1/inbox?assignee=ann", stack.gateway_url)).bearer_auth(&staff).send().await?.error_for_status()?.json().await?;
    let items = inbox["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!((items[0]["taskId"].as_str(), items[0]["assignee"].as_str()), (Some(a.as_str()), Some("ann")));
    assert!(items[0]["breachedAt"].is_string(), "{inbox}");
    let unassigned: Value = stack.http.get(format!("{}/api/v1/inbox?assignee=unassigned", stack.gateway_url)).bearer_auth(&staff).send().await?.error_for_status()?.json().await?;
    assert_eq!(unassigned["items"].as_array().map(|i| i.iter().filter_map(|t| t["taskId"].as_str()).collect::<Vec<_>>()), Some(vec![b.as_str()]));

    // Task B: under review, rejected with a reason; the same document again changes nothing,
    // another one goes under review, Ventures satisfies it.
    stack.patch_condition(&ventures, &loan_id, &b, json!({ "status": "Received", "documentRef": { "system": "sharefile", "itemId": "fi-1" } })).await?;
    wait_state(&pool, &b, "pending_review").await?;
    let (status, accepted) = act(&stack, &staff, "app-actions", &b, json!({ "action": "reject", "reason": "The statement is cut off" })).await?;
    assert_eq!((status, accepted["state"].as_str()), (StatusCode::ACCEPTED, Some("pending_review")));
    wait_state(&pool, &b, "awaiting_upload").await?;
    let doc = projections.get("applications/app-actions/tasks", std::slice::from_ref(&b)).await?;
    assert_eq!(doc[&b].get("rejectionReason").and_then(fs::as_str), Some("The statement is cut off"));
    stack.patch_condition(&ventures, &loan_id, &b, json!({ "status": "Received", "documentRef": { "system": "sharefile", "itemId": "fi-1" } })).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(task_row(&pool, &b).await?.map(|r| r.0).as_deref(), Some("awaiting_upload"), "the rejected document attached again");
    stack.patch_condition(&ventures, &loan_id, &b, json!({ "status": "Received", "documentRef": { "system": "sharefile", "itemId": "fi-2" } })).await?;
    wait_state(&pool, &b, "pending_review").await?;

    // Reassigned: the entry moves from ann's inbox to bob's; completed: it leaves bob's.
    assert_eq!(act(&stack, &staff, "app-actions", &a, json!({ "action": "assign", "assignee": "bob" })).await?.0, StatusCode::ACCEPTED);
    wait_for("the entry in bob's inbox", WAIT, || async { Ok(inbox_entry(&projections, "bob", &a).await?.map(drop)) }).await?;
    assert!(inbox_entry(&projections, "ann", &a).await?.is_none(), "ann's entry is gone");
    stack.patch_condition(&ventures, &loan_id, &a, json!({ "status": "Satisfied" })).await?;
    wait_state(&pool, &a, "completed").await?;
    wait_for("bob's entry removed", WAIT, || async { Ok(inbox_entry(&projections, "bob", &a).await?.is_none().then_some(())) }).await?;
    let (status, body) = act(&stack, &staff, "app-actions", &a, json!({ "action": "assign", "assignee": "ann" })).await?;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("task_state_conflict")), "completed work is not reassigned");
    let breaches: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.task_timers WHERE task_id = $1 AND fired_at IS NOT NULL").bind(&a).fetch_one(&pool).await?;
    assert_eq!(breaches, 1, "the awaiting_upload SLA breached once");
    println!("task-actions: assign, request_upload (SLA breached once in the assignee's inbox), reject and re-review, reassign and complete: all projected");
    stack.stop_all().await?;
    Ok(())
}
