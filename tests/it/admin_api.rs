//! The gateway's admin API for dead letters (`/api/v1/admin/...`, forwarded to
//! `dlq-replayer serve`): roles (403 for staff and borrowers), tenant scope for `ops`, list,
//! counts, show, park, dry run, replay with job status, unpark and a second replay, the operator
//! taken from the token, and 503 `dlq_replayer_unavailable` while the replayer is down.

use serde_json::{Value, json};
use system_tests::{
    stack::{DLQ_REPLAYER, Stack, VENTURES_TENANT},
    wait_for,
};

use crate::ops_page::{DLQ, WAIT, applied, dead_letters, failing_command, stack_with_replayer, ventures_changes};

async fn call(stack: &Stack, token: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let url = format!("{}/api/v1/admin/{path}", stack.gateway_url);
    let request = match method {
        "POST" => stack.http.post(url).json(&body.unwrap_or_default()),
        _ => stack.http.get(url),
    };
    let response = request.bearer_auth(token).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Follows replay job `id` until it is no longer running.
async fn finished(stack: &Stack, token: &str, id: &str) -> anyhow::Result<Value> {
    wait_for(&format!("replay job {id} to end"), WAIT, || async {
        let (status, job) = call(stack, token, "GET", &format!("replays/{id}"), None).await?;
        anyhow::ensure!(status == 200, "{status} {job}");
        Ok((job["state"] != "running").then_some(job))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_show_park_and_replay_dead_letters_through_the_gateway() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = stack_with_replayer("admin_api").await?;
    let (_, first) = failing_command(&stack, "app-adm-1").await?;
    let (_, second) = failing_command(&stack, "app-adm-2").await?;
    let (ops, admin) = (stack.token("ops", VENTURES_TENANT), stack.token("admin", "elsewhere"));
    let list = dead_letters(&stack, &ops, 2).await?;

    // Only ops and admin; ops within its tenant.
    for token in [stack.token("staff", VENTURES_TENANT), stack.borrower_token(VENTURES_TENANT, &["app-adm-1"])] {
        for (method, path) in [("GET", "dead-letters"), ("GET", "dead-letters/counts"), ("GET", "replays"), ("POST", "replays")] {
            let (status, body) = call(&stack, &token, method, path, Some(json!({ "filter": {}, "dryRun": true }))).await?;
            assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{method} {path}: {body}");
        }
    }
    let other_ops = stack.token("ops", "acme");
    let (status, other) = call(&stack, &other_ops, "GET", &format!("dead-letters?topic={DLQ}"), None).await?;
    assert_eq!((status, other["total"].as_u64()), (200, Some(0)), "another tenant's ops sees none: {other}");
    let (status, body) = call(&stack, &other_ops, "GET", "dead-letters?tenant=default", None).await?;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, all) = call(&stack, &admin, "GET", &format!("dead-letters?topic={DLQ}&limit=1"), None).await?;
    assert_eq!((status, all["total"].as_u64(), all["items"].as_array().map(Vec::len)), (200, Some(2), Some(1)), "admin sees every tenant: {all}");

    // Counts and one in full; bad ids and filters are 400s with stable codes.
    let (_, counts) = call(&stack, &ops, "GET", &format!("dead-letters/counts?topic={DLQ}"), None).await?;
    assert_eq!((counts["total"].as_u64(), counts["groups"][0]["kind"].as_str()), (Some(2), Some("http_5xx")), "{counts}");
    let ids: Vec<String> = list["items"].as_array().into_iter().flatten().filter_map(|i| i["id"].as_str().map(str::to_string)).collect();
    let (status, shown) = call(&stack, &ops, "GET", &format!("dead-letters/{}", ids[0]), None).await?;
    assert_eq!((status, shown["event"]["to_status"].as_str(), shown["error"]["class"].as_str()), (200, Some("Open"), Some("transient_exhausted")), "{shown}");
    let parked_app = shown["event"]["application_id"].as_str().unwrap_or_default().to_string();
    for (path, code) in [
        (format!("dead-letters/{}", uuid::Uuid::new_v4()), (404, "dead_letter_not_found")),
        ("dead-letters/not-an-id".to_string(), (400, "invalid_dead_letter_id")),
        ("dead-letters?since=yesterday".to_string(), (400, "invalid_filter")),
        ("dead-letters?topic=ventures.loan.status-changed.v1".to_string(), (400, "invalid_filter")),
        ("replays/not-a-job".to_string(), (400, "invalid_job_id")),
        (format!("replays/{}", uuid::Uuid::new_v4()), (404, "replay_job_not_found")),
    ] {
        let (status, body) = call(&stack, &ops, "GET", &path, None).await?;
        assert_eq!((status, body["code"].as_str()), (code.0, Some(code.1)), "{path}: {body}");
    }
    let (status, body) = call(&stack, &ops, "POST", "replays", Some(json!({ "filter": {}, "dryRun": true, "operator": "someone-else" }))).await?;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "the operator is the token's: {body}");

    // The cause is fixed. One is parked; a dry run says so; the replay sends the other.
    stack.http.delete(format!("{}/control/faults", stack.sim.base_url())).send().await?.error_for_status()?;
    let (status, parked) = call(&stack, &ops, "POST", "dead-letters/park", Some(json!({ "ids": [ids[0]], "reason": "check the loan first" }))).await?;
    assert_eq!((status, parked["action"].as_str()), (200, Some("parked")), "{parked}");
    let filter = json!({ "topics": [DLQ], "kind": "http_5xx" });
    let (status, dry) = call(&stack, &ops, "POST", "replays", Some(json!({ "filter": filter, "dryRun": true }))).await?;
    assert_eq!((status, dry["sent"].as_u64(), dry["skipped"].as_u64()), (200, Some(1), Some(1)), "{dry}");
    assert!(dry["items"].as_array().into_iter().flatten().any(|i| i["id"] == ids[0].as_str() && i["reason"].as_str().is_some_and(|r| r.starts_with("parked"))), "{dry}");

    let response = stack.http.post(format!("{}/api/v1/admin/replays", stack.gateway_url)).bearer_auth(&admin).json(&json!({ "filter": filter, "dryRun": false, "rate": 100 })).send().await?;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str()?.to_string();
    let accepted: Value = response.json().await?;
    let job_id = accepted["jobId"].as_str().unwrap_or_default().to_string();
    assert_eq!(location, format!("/api/v1/admin/replays/{job_id}"));
    let job = finished(&stack, &admin, &job_id).await?;
    assert_eq!((job["state"].as_str(), job["sent"].as_i64(), job["skipped"].as_i64(), job["operator"].as_str()), (Some("finished"), Some(1), Some(1), Some("test-admin")), "{job}");
    assert_eq!((job["progress"]["done"].as_u64(), job["progress"]["total"].as_u64()), (Some(1), Some(1)), "{job}");
    let (sent_command, parked_command) = if parked_app == "app-adm-1" { (&second, &first) } else { (&first, &second) };
    applied(&stack, sent_command).await?;
    assert_eq!(ventures_changes(&stack, parked_command).await?, 0, "the parked one waits");

    // Unparked, the next replay sends it, and only it.
    let (status, _) = call(&stack, &ops, "POST", "dead-letters/unpark", Some(json!({ "ids": [ids[0]], "reason": "loan checked" }))).await?;
    assert_eq!(status, 200);
    let (_, again) = call(&stack, &ops, "POST", "replays", Some(json!({ "filter": filter, "dryRun": false }))).await?;
    let job = finished(&stack, &ops, again["jobId"].as_str().unwrap_or_default()).await?;
    assert_eq!((job["sent"].as_i64(), job["skipped"].as_i64(), job["operator"].as_str()), (Some(1), Some(1), Some("test-ops")), "{job}");
    applied(&stack, parked_command).await?;
    for command in [&first, &second] {
        assert_eq!(ventures_changes(&stack, command).await?, 1, "command {command} applied once");
    }

    // Jobs: ops sees those of its tenant (the filter the gateway scoped), admin every one.
    let (_, mine) = call(&stack, &ops, "GET", "replays?limit=10", None).await?;
    let (_, every) = call(&stack, &admin, "GET", "replays?limit=10", None).await?;
    let (_, theirs) = call(&stack, &other_ops, "GET", "replays", None).await?;
    let count = |v: &Value| v["jobs"].as_array().map_or(0, Vec::len);
    assert_eq!((count(&mine), count(&every), count(&theirs)), (2, 3, 0), "{mine} {every}");

    // The audit names the operators.
    let pool = stack.db.connect().await?;
    let log: Vec<(String, String)> = sqlx::query_as("SELECT action, operator FROM dlq_replayer.disposition_log ORDER BY id").fetch_all(&pool).await?;
    assert_eq!(log, vec![("parked".to_string(), "test-ops".to_string()), ("unparked".to_string(), "test-ops".to_string())]);

    // The replayer down: 503 with a stable code; the rest of the gateway carries on.
    stack.service(DLQ_REPLAYER).stop().await?;
    let (status, body) = call(&stack, &ops, "GET", "dead-letters", None).await?;
    assert_eq!((status, body["code"].as_str()), (503, Some("dlq_replayer_unavailable")), "{body}");
    stack.stop_all().await?;
    Ok(())
}
