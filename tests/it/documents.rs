//! Flow 4, the document loop, end to end: Ventures conditions become tasks; borrowers upload into
//! Cloud Storage (the simulator) and ingest through the gateway; sharefile-sync copies each
//! document into the application's ShareFile folder while ShareFile throttles (429 with and
//! without `Retry-After`), answers uploads `200 ERROR: ...`, goes down for a while, and
//! sharefile-sync is SIGKILLed mid-run; ventures-sync attaches each document to its condition;
//! tasks reach `pending_review`, and `completed` only once Ventures satisfies the condition.
//! Bad uploads are refused at the edge with their codes and nothing of them is copied.

use std::{collections::BTreeMap, time::Duration};

use md5::{Digest, Md5};
use serde_json::{Value, json};
use system_tests::{
    infra::UPLOAD_BUCKET,
    stack::{API_GATEWAY, PROJECTION_WRITER, SHAREFILE_SYNC, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const TASKS: usize = 50;
const WAIT: Duration = Duration::from_secs(180);
/// The gateway's document size limit in this test.
const MAX_BYTES: usize = 64 * 1024;

struct Task {
    app: String,
    loan: String,
    condition: String,
    object: String,
    bytes: Vec<u8>,
}

fn hex_md5(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A Ventures API token (as the lender's staff would use Ventures).
async fn ventures_token(stack: &Stack) -> anyhow::Result<String> {
    let c = &stack.credentials;
    let body = json!({ "client": c.client, "username": c.username, "password": c.password });
    let answer: Value = stack.http.post(format!("{}/api/v4/token", stack.sim.base_url())).json(&body).send().await?.error_for_status()?.json().await?;
    Ok(answer["token"].as_str().unwrap_or_default().to_string())
}

async fn condition(stack: &Stack, token: &str, loan: &str, condition: &str) -> anyhow::Result<Value> {
    let answer: Value = stack.http.get(format!("{}/api/v4/loans/{loan}/conditions", stack.sim.base_url())).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    answer["conditions"].as_array().into_iter().flatten().find(|c| c["conditionId"] == condition).cloned().ok_or_else(|| anyhow::anyhow!("no condition {condition}"))
}

async fn put_object(stack: &Stack, name: &str, content_type: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    let url = format!("{}/control/objects/{UPLOAD_BUCKET}/{name}", stack.storage.base_url());
    stack.http.put(url).header("content-type", content_type).body(bytes).send().await?.error_for_status()?;
    Ok(())
}

async fn ingest(stack: &Stack, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let response = stack.http.post(format!("{}/api/v1/documents/ingest", stack.gateway_url)).bearer_auth(token).json(&body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn task_states(pool: &sqlx::PgPool) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM projection_writer.tasks GROUP BY state").fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_document_reaches_sharefile_once_and_tasks_complete_only_in_ventures() -> anyhow::Result<()> {
    let mut stack = Stack::start("documents").await?;
    let sim = stack.sim.base_url();
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let app = format!("doc-app-{i:02}");
        let loan = stack.create_loan(&app, "Open").await?;
        let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
        let added: Value = stack.http.post(format!("{sim}/control/loans/{loan_id}/conditions")).json(&json!({ "name": format!("Bank statements {i}") })).send().await?.error_for_status()?.json().await?;
        let bytes: Vec<u8> = format!("%PDF-1.7\n% statement {i}\n").bytes().chain((0..2_000 + i * 37).map(|n| (n * 31 + i) as u8)).collect();
        tasks.push(Task { object: format!("{app}/statement-{i}.pdf"), app, loan: loan_id, condition: added["conditionId"].as_str().unwrap_or_default().to_string(), bytes });
    }
    stack.service(API_GATEWAY).set_env("API_GATEWAY__MAX_DOCUMENT_BYTES", &MAX_BYTES.to_string());
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    stack.start_services(&[API_GATEWAY, SHAREFILE_SYNC]).await?;
    let pool = stack.db.connect().await?;
    wait_for("a task per condition", WAIT, || async { Ok((task_states(&pool).await?.get("open").copied() == Some(TASKS as i64)).then_some(())) }).await?;

    // Bad uploads: refused at the edge with their codes; nothing of them reaches ShareFile.
    let first = &tasks[0];
    let borrower = stack.borrower_token(VENTURES_TENANT, &[&first.app]);
    let body = |object: &str| json!({ "applicationId": first.app, "taskId": first.condition, "bucket": UPLOAD_BUCKET, "object": object, "fileName": "statement.pdf" });
    put_object(&stack, "bad/notes.txt", "text/plain", b"not a statement".to_vec()).await?;
    put_object(&stack, "bad/huge.pdf", "application/pdf", vec![7u8; MAX_BYTES + 1]).await?;
    put_object(&stack, "bad/empty.pdf", "application/pdf", Vec::new()).await?;
    let refusals = [
        (body("bad/notes.txt"), 415, "unsupported_document_type"),
        (body("bad/huge.pdf"), 413, "document_too_large"),
        (body("bad/empty.pdf"), 422, "empty_document"),
        (body("bad/missing.pdf"), 422, "object_not_found"),
        (json!({ "applicationId": first.app, "taskId": first.condition, "bucket": "elsewhere", "object": "x.pdf", "fileName": "x.pdf" }), 422, "bucket_not_allowed"),
        (json!({ "applicationId": first.app, "taskId": "no-such-task", "bucket": UPLOAD_BUCKET, "object": first.object, "fileName": "x.pdf" }), 404, "task_not_found"),
        (json!({ "applicationId": first.app, "taskId": first.condition, "object": first.object }), 400, "invalid_body"),
    ];
    for (request, status, code) in refusals {
        let (got, answer) = ingest(&stack, &borrower, request.clone()).await?;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{request}: {answer}");
    }
    let other = stack.borrower_token(VENTURES_TENANT, &["someone-else"]);
    let (got, answer) = ingest(&stack, &other, body("bad/notes.txt")).await?;
    assert_eq!((got, answer["code"].as_str()), (404, Some("task_not_found")), "another borrower's task: {answer}");

    // ShareFile misbehaves: throttling with and without Retry-After, `ERROR:` bodies on uploads.
    let sf = stack.sharefile.base_url();
    for fault in [
        json!({ "status": 429, "retryAfterSecs": 1, "probability": 0.15, "count": 20 }),
        json!({ "status": 429, "probability": 0.1, "count": 10 }),
        json!({ "uploadError": true, "count": 6 }),
    ] {
        stack.http.post(format!("{sf}/control/faults")).json(&fault).send().await?.error_for_status()?;
    }

    // Every borrower uploads and ingests; the first one twice (a retried request).
    for (i, task) in tasks.iter().enumerate() {
        put_object(&stack, &task.object, "application/pdf", task.bytes.clone()).await?;
        let token = stack.borrower_token(VENTURES_TENANT, &[&task.app]);
        let request = json!({ "applicationId": task.app, "taskId": task.condition, "bucket": UPLOAD_BUCKET, "object": task.object, "fileName": format!("Bank statement {i}.pdf") });
        let (status, answer) = ingest(&stack, &token, request.clone()).await?;
        assert_eq!(status, 202, "{answer}");
        if i == 0 {
            let (again, repeat) = ingest(&stack, &token, request).await?;
            assert_eq!((again, &repeat["documentId"]), (202, &answer["documentId"]), "the same upload is the same document");
        }
        if i == TASKS / 3 {
            // sharefile-sync dies mid-run, and ShareFile goes down while it is away.
            wait_for("some documents stored", WAIT, || async {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sharefile_sync.documents WHERE state = 'stored'").fetch_one(&pool).await?;
                Ok((n >= 5).then_some(()))
            })
            .await?;
            stack.service(SHAREFILE_SYNC).kill().await?;
            stack.http.post(format!("{sf}/control/faults")).json(&json!({ "status": 503, "durationSecs": 3 })).send().await?.error_for_status()?;
            stack.service(SHAREFILE_SYNC).start().await?;
        }
    }

    wait_for("every task pending review", WAIT, || async { Ok((task_states(&pool).await?.get("pending_review").copied() == Some(TASKS as i64)).then_some(())) }).await?;

    // ShareFile: each document exactly once, in its application's folder, with its MD5.
    let files: Value = stack.http.get(format!("{sf}/control/files")).send().await?.error_for_status()?.json().await?;
    let files = files.as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), TASKS, "one file per document: {files:#?}");
    let stats: Value = stack.http.get(format!("{sf}/control/stats")).send().await?.error_for_status()?.json().await?;
    let uploads = stats["uploadsByPath"].as_object().cloned().unwrap_or_default();
    assert!(uploads.values().all(|n| n == 1) && uploads.len() == TASKS, "every document uploaded once: {uploads:?}");
    let token = ventures_token(&stack).await?;
    for task in &tasks {
        let file = files.iter().find(|f| f["path"].as_str().is_some_and(|p| p.starts_with(&format!("/Clients/{}/", task.app)))).ok_or_else(|| anyhow::anyhow!("no file for {}", task.app))?;
        assert_eq!(file["hash"].as_str(), Some(hex_md5(&task.bytes).as_str()), "{} stored with its MD5", task.app);
        // Ventures: the condition names that file, attached once (version 1 → 2).
        let c = condition(&stack, &token, &task.loan, &task.condition).await?;
        assert_eq!((c["status"].as_str(), c["documentRef"]["itemId"].as_str(), c["version"].as_i64()), (Some("Received"), file["id"].as_str(), Some(2)), "{c}");
    }
    let ledger: Vec<(String, i32)> = sqlx::query_as("SELECT how, attempts FROM sharefile_sync.documents").fetch_all(&pool).await?;
    println!(
        "documents: {} stored ({} found after the kill), {} attempts in all; ShareFile answered {} requests",
        ledger.len(),
        ledger.iter().filter(|(how, _)| how == "found").count(),
        ledger.iter().map(|(_, a)| i64::from(*a)).sum::<i64>(),
        stats["requests"]
    );

    // Only Ventures completes a task: half the conditions are satisfied there.
    assert_eq!(task_states(&pool).await?.get("completed"), None, "nothing is completed before Ventures says so");
    for task in tasks.iter().step_by(2) {
        let c = condition(&stack, &token, &task.loan, &task.condition).await?;
        let url = format!("{sim}/api/v4/loans/{}/conditions/{}", task.loan, task.condition);
        let version = c["version"].as_i64().unwrap_or_default();
        stack.http.patch(url).bearer_auth(&token).header("if-match", format!("\"{version}\"")).json(&json!({ "status": "Satisfied" })).send().await?.error_for_status()?;
    }
    let half = (TASKS / 2) as i64;
    wait_for("the satisfied tasks completed", WAIT, || async {
        let states = task_states(&pool).await?;
        Ok((states.get("completed") == Some(&half) && states.get("pending_review") == Some(&half)).then_some(()))
    })
    .await?;
    let listed: Value = stack.http.get(format!("{}/api/v1/applications/{}/tasks", stack.gateway_url, first.app)).bearer_auth(&borrower).send().await?.error_for_status()?.json().await?;
    assert_eq!(listed["tasks"][0]["state"], "completed", "{listed}");
    assert_eq!(listed["tasks"][0]["documentState"], "stored", "{listed}");
    let (status, answer) = ingest(&stack, &borrower, json!({ "applicationId": first.app, "taskId": first.condition, "bucket": UPLOAD_BUCKET, "object": first.object, "fileName": "again.pdf" })).await?;
    assert_eq!((status, answer["code"].as_str()), (409, Some("task_not_accepting_uploads")), "{answer}");
    // The Firestore projection of a task.
    let projections = stack.projections().await?;
    let doc = projections.get(&format!("applications/{}/tasks", first.app), std::slice::from_ref(&first.condition)).await?;
    let fields = doc.get(&first.condition).ok_or_else(|| anyhow::anyhow!("no task document in Firestore"))?;
    assert_eq!(fields.get("state").and_then(projection_writer::firestore::as_str), Some("completed"));
    // The sync health shows ShareFile as an integration of its own, caught up, its breaker closed.
    let health = wait_for("ShareFile in the sync health", WAIT, || async {
        let health: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let sharefile = health["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "sharefile").cloned();
        Ok(sharefile.filter(|s| s["breaker"] == "closed" && s["consumerGroups"][0]["lagMessages"] == 0))
    })
    .await?;
    assert_eq!(health["consumerGroups"][0]["group"], "sharefile-sync.documents", "{health}");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM sharefile_sync.documents WHERE state <> 'stored'").fetch_one(&pool).await?;
    assert_eq!(dead, 0, "no document left behind");
    stack.stop_all().await?;
    Ok(())
}
