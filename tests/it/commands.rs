//! Flow 2: console status changes, from the gateway through Ventures and back to Firestore, the
//! read model and the audit log.

use std::time::Duration;

use projection_writer::firestore as fs;
use serde_json::{Value, json};
use system_tests::{
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(60);

/// A loan in the simulator whose application `app` is projected at version 1 (Prospect).
async fn projected_loan(stack: &Stack, app: &str) -> anyhow::Result<String> {
    let loan = stack.create_loan(app, "Prospect").await?;
    let token = stack.token("staff", VENTURES_TENANT);
    wait_for(&format!("{app} in the read model"), WAIT, || async {
        let response = stack.http.get(format!("{}/api/v1/applications/{app}", stack.gateway_url)).bearer_auth(&token).send().await?;
        Ok((response.status() == 200).then_some(()))
    })
    .await?;
    Ok(loan["loanId"].as_str().unwrap_or_default().to_string())
}

/// POST a status change; the status and the JSON body.
async fn change(stack: &Stack, token: &str, app: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let response = stack
        .http
        .post(format!("{}/api/v1/applications/{app}/status", stack.gateway_url))
        .bearer_auth(token)
        .header("x-request-id", format!("corr-{app}"))
        .json(&body)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
}

/// Queues a change that must be accepted (202) and returns its command id.
async fn queued(stack: &Stack, token: &str, app: &str, body: Value) -> anyhow::Result<String> {
    let (status, reply) = change(stack, token, app, body).await?;
    anyhow::ensure!(status == 202, "expected 202, got {status}: {reply}");
    Ok(reply["commandId"].as_str().unwrap_or_default().to_string())
}

async fn command(stack: &Stack, token: &str, id: &str) -> anyhow::Result<(u16, Value)> {
    let response = stack.http.get(format!("{}/api/v1/commands/{id}", stack.gateway_url)).bearer_auth(token).send().await?;
    Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
}

/// Waits until command `id` is no longer pending and returns it.
async fn resolved(stack: &Stack, token: &str, id: &str) -> anyhow::Result<Value> {
    wait_for(&format!("command {id} resolved"), WAIT, || async {
        let (status, body) = command(stack, token, id).await?;
        Ok((status == 200 && body["state"] != "pending").then_some(body))
    })
    .await
}

/// The simulator's effects (state-changing calls) made under idempotency key `key`:
/// (status returned, replayed).
async fn effects(stack: &Stack, key: &str) -> anyhow::Result<Vec<(i64, bool)>> {
    let all: Value = stack.http.get(format!("{}/control/effects", stack.sim.base_url())).send().await?.json().await?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["idempotencyKey"] == key)
        .map(|e| (e["status"].as_i64().unwrap_or_default(), e["replayed"].as_bool().unwrap_or_default()))
        .collect())
}

async fn ventures_loan(stack: &Stack, loan_id: &str) -> anyhow::Result<(String, i64)> {
    let loans: Value = stack.http.get(format!("{}/control/loans/{loan_id}", stack.sim.base_url())).send().await?.error_for_status()?.json().await?;
    let loan = if loans["loan"].is_object() { &loans["loan"] } else { &loans };
    Ok((loan["status"].as_str().unwrap_or_default().to_string(), loan["version"].as_i64().unwrap_or_default()))
}

/// `statusCommand` of `applications/{app}` in Firestore, once it shows `state`.
async fn firestore_command(stack: &Stack, app: &str, state: &str) -> anyhow::Result<std::collections::HashMap<String, fs::FirestoreValue>> {
    let projections = stack.projections().await?;
    wait_for(&format!("statusCommand {state} on {app}"), WAIT, || async {
        let docs = projections.get("applications", &[app.to_string()]).await?;
        let command = docs.get(app).and_then(|d| d.get("statusCommand")).and_then(fs::as_map).cloned();
        Ok(command.filter(|c| c.get("state").and_then(fs::as_str) == Some(state)))
    })
    .await
}

fn text<'a>(map: &'a std::collections::HashMap<String, fs::FirestoreValue>, field: &str) -> Option<&'a str> {
    map.get(field).and_then(fs::as_str)
}

/// A staff token's change reaches Ventures exactly once, although Ventures' first answer is lost
/// after it made the change (the retry carries the same Idempotency-Key and is answered from
/// Ventures' store), and comes back to the read model, Firestore and the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_reaches_ventures_once_and_comes_back_with_its_audit_entry() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("commands").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let staff = stack.token("staff", VENTURES_TENANT);
    let loan_id = projected_loan(&stack, "app-c1").await?;
    let fault = json!({ "status": 503, "count": 1, "afterEffect": true, "pathPrefix": format!("/api/v4/loans/{loan_id}/status") });
    stack.http.post(format!("{}/control/faults", stack.sim.base_url())).json(&fault).send().await?.error_for_status()?;

    let id = queued(&stack, &staff, "app-c1", json!({ "status": "Open", "appVersion": 1 })).await?;
    let (status, early) = command(&stack, &staff, &id).await?;
    assert_eq!(status, 200, "a command is visible right after its 202: {early}");
    let done = resolved(&stack, &staff, &id).await?;
    assert_eq!(done["state"], "applied", "{done}");
    assert_eq!(done["appliedVersion"], 2);
    assert_eq!(done["actorRole"], "staff");
    assert_eq!(done["correlationId"], "corr-app-c1");

    // Ventures changed once: the first call made the change (its answer was lost), the retry
    // was answered from the idempotency store.
    assert_eq!(ventures_loan(&stack, &loan_id).await?, ("Open".to_string(), 2));
    assert_eq!(effects(&stack, &id).await?, vec![(503, false), (200, true)]);

    // Back in the read model and Firestore, with the command's state beside the status.
    wait_for("the read model at version 2", WAIT, || async {
        let body: Value = stack.http.get(format!("{}/api/v1/applications/app-c1", stack.gateway_url)).bearer_auth(&staff).send().await?.json().await?;
        Ok((body["version"] == 2 && body["venturesStatus"] == "Open").then_some(()))
    })
    .await?;
    let shown = firestore_command(&stack, "app-c1", "applied").await?;
    assert_eq!(text(&shown, "commandId"), Some(id.as_str()));
    assert_eq!(text(&shown, "toStatus"), Some("Open"));
    let doc = stack.projections().await?.get("applications", &["app-c1".to_string()]).await?;
    assert_eq!(doc["app-c1"].get("venturesStatus").and_then(fs::as_str), Some("Open"));

    // The audit log: requested, then resolved, with actor, old and new value and correlation id.
    let pool = stack.db.connect().await?;
    let audit: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT event_type, correlation_id, change FROM projection_writer.event_log WHERE entity_type = 'status_command' AND entity_id = $1 ORDER BY version",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await?;
    let types: Vec<&str> = audit.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(types, ["status_command.requested", "status_command.resolved"]);
    let (_, correlation, entry) = &audit[1];
    assert_eq!(correlation, "corr-app-c1");
    assert_eq!((entry["from"].as_str(), entry["to"].as_str(), entry["state"].as_str()), (Some("Prospect"), Some("Open"), Some("applied")));
    assert_eq!(entry["actor"]["role"], "staff");
    assert_eq!(entry["actor"]["subject"], "test-staff");

    stack.stop_all().await?;
    Ok(())
}

/// A stale `appVersion` is refused with 409 and accepted with force and a reason; Ventures'
/// own refusals (a version it has moved past: 409; a transition it does not allow: 422) end as
/// rejected commands visible in Firestore; bad requests never reach the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_forced_and_refused_changes_and_bad_requests() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("commands-refused").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let staff = stack.token("staff", VENTURES_TENANT);
    let loan_id = projected_loan(&stack, "app-c2").await?;

    let (status, body) = change(&stack, &staff, "app-c2", json!({ "status": "Open", "appVersion": 7 })).await?;
    assert_eq!((status, body["code"].as_str()), (409, Some("stale_version")), "{body}");
    let (status, body) = change(&stack, &staff, "app-c2", json!({ "status": "Open", "appVersion": 7, "force": true })).await?;
    assert_eq!((status, body["code"].as_str()), (422, Some("reason_required")), "{body}");
    let forced = queued(&stack, &staff, "app-c2", json!({ "status": "Open", "appVersion": 7, "force": true, "reason": "confirmed by phone" })).await?;
    let done = resolved(&stack, &staff, &forced).await?;
    assert_eq!((done["state"].as_str(), done["force"].as_bool(), done["reason"].as_str()), (Some("applied"), Some(true), Some("confirmed by phone")), "{done}");
    wait_for("app-c2 at version 2", WAIT, || async {
        let body: Value = stack.http.get(format!("{}/api/v1/applications/app-c2", stack.gateway_url)).bearer_auth(&staff).send().await?.json().await?;
        Ok((body["version"] == 2).then_some(()))
    })
    .await?;

    // Bad requests: each refused at the edge with its code.
    let borrower = stack.borrower_token(VENTURES_TENANT, &["app-c2"]);
    let other_tenant = stack.token("staff", "tenant-x");
    let good = json!({ "status": "Approved", "appVersion": 2 });
    for (token, body, expected) in [
        (&borrower, good.clone(), (403, "forbidden")),
        (&other_tenant, good.clone(), (404, "application_not_found")),
        (&staff, json!({ "status": "Approved", "appVersion": 2, "extra": 1 }), (400, "invalid_body")),
        (&staff, json!({ "status": "Approved" }), (400, "invalid_body")),
        (&staff, json!({ "status": "approved", "appVersion": 2 }), (422, "invalid_status")),
        (&staff, json!({ "status": "Funded", "appVersion": 2 }), (422, "transition_not_allowed")),
    ] {
        let (status, reply) = change(&stack, token, "app-c2", body.clone()).await?;
        assert_eq!((status, reply["code"].as_str().unwrap_or_default()), expected, "{body} → {reply}");
    }
    let plain = stack
        .http
        .post(format!("{}/api/v1/applications/app-c2/status", stack.gateway_url))
        .bearer_auth(&staff)
        .body(good.to_string())
        .send()
        .await?;
    assert_eq!(plain.status(), 415);
    assert_eq!(command(&stack, &staff, "not-a-uuid").await?.0, 400);
    assert_eq!(command(&stack, &staff, &uuid::Uuid::new_v4().to_string()).await?.0, 404);
    assert_eq!(command(&stack, &other_tenant, &forced).await?.0, 404, "another tenant's command is not found");

    // Ventures moves on while ventures-sync is away: the console still shows Open at version 2.
    stack.service(VENTURES_SYNC).stop().await?;
    stack.http.post(format!("{}/control/loans/{loan_id}/status", stack.sim.base_url())).json(&json!({ "status": "Funded" })).send().await?.error_for_status()?;
    let stale = queued(&stack, &staff, "app-c2", json!({ "status": "Denied", "appVersion": 2 })).await?;
    let refused = queued(&stack, &staff, "app-c2", json!({ "status": "Withdrawn", "appVersion": 2, "force": true, "reason": "borrower withdrew" })).await?;
    stack.service(VENTURES_SYNC).start().await?;

    let first = resolved(&stack, &staff, &stale).await?;
    assert_eq!((first["state"].as_str(), first["reasonCode"].as_str()), (Some("rejected"), Some("stale_version")), "checked again where applied: {first}");
    let second = resolved(&stack, &staff, &refused).await?;
    assert_eq!((second["state"].as_str(), second["reasonCode"].as_str()), (Some("rejected"), Some("transition_refused")), "{second}");
    let shown = firestore_command(&stack, "app-c2", "rejected").await?;
    assert_eq!(text(&shown, "commandId"), Some(refused.as_str()));
    assert_eq!(text(&shown, "reasonCode"), Some("transition_refused"));
    assert!(text(&shown, "rejection").is_some_and(|r| !r.is_empty()));
    assert_eq!(ventures_loan(&stack, &loan_id).await?.0, "Funded", "refused commands change nothing");

    stack.stop_all().await?;
    Ok(())
}

/// SIGKILL of ventures-sync while Ventures is answering a command: the change was made, the
/// answer never arrived; the restarted worker sends the same request again and Ventures changes
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_ventures_sync_mid_command_changes_ventures_once() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("commands-kill").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let staff = stack.token("staff", VENTURES_TENANT);
    let loan_id = projected_loan(&stack, "app-c3").await?;
    let slow = json!({ "latencyMs": 20000, "count": 1, "afterEffect": true, "pathPrefix": format!("/api/v4/loans/{loan_id}/status") });
    stack.http.post(format!("{}/control/faults", stack.sim.base_url())).json(&slow).send().await?.error_for_status()?;

    let id = queued(&stack, &staff, "app-c3", json!({ "status": "Open", "appVersion": 1 })).await?;
    wait_for("Ventures to make the change", WAIT, || async { Ok((ventures_loan(&stack, &loan_id).await?.1 == 2).then_some(())) }).await?;
    stack.service(VENTURES_SYNC).kill().await?;
    stack.service(VENTURES_SYNC).start().await?;

    let done = resolved(&stack, &staff, &id).await?;
    assert_eq!(done["state"], "applied", "{done}");
    assert_eq!(ventures_loan(&stack, &loan_id).await?, ("Open".to_string(), 2), "changed once");
    let calls = effects(&stack, &id).await?;
    assert!(calls.iter().filter(|(status, replayed)| *status == 200 && !replayed).count() <= 1, "{calls:?}");
    assert!(calls.contains(&(200, true)), "the redelivered command was answered from the idempotency store: {calls:?}");

    stack.stop_all().await?;
    Ok(())
}
