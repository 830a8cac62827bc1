//! Flow 3: firestore-change-listener turns app writes into change events; Brain-owned fields
//! written by a client are restored by projection-writer and reported.

use std::{collections::BTreeMap, time::{Duration, Instant}};

use brain_events::{DocumentChanged, ProtectedFieldViolation, topics};
use projection_writer::firestore as fs;
use serde_json::json;
use system_tests::{
    stack::{CHANGE_LISTENER, PROJECTION_WRITER, Stack, VENTURES_SYNC},
    topics::TopicReader,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(60);

async fn firestore_field(projections: &fs::Projections, app: &str, field: &str) -> anyhow::Result<Option<String>> {
    let docs = projections.get("applications", &[app.to_string()]).await?;
    Ok(docs.get(app).and_then(|d| d.get(field)).and_then(fs::as_str).map(str::to_string))
}

/// A client sets `venturesStatus` (the rules forbid it; say they were bypassed): the listener
/// flags the change, projection-writer writes Brain's value back and reports a violation. An
/// allowed field the same client writes is left alone and only becomes a change event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_write_to_a_brain_owned_field_is_reverted_and_reported() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("listener-guard").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, CHANGE_LISTENER]).await?;
    stack.create_loan("app-g1", "Open").await?;
    let projections = stack.projections().await?;
    wait_for("app-g1 projected", WAIT, || async { Ok((firestore_field(&projections, "app-g1", "venturesStatus").await?.as_deref() == Some("Open")).then_some(())) }).await?;

    let written = Instant::now();
    projections
        .merge_fields("applications", "app-g1", vec![("venturesStatus", fs::string("Funded")), ("lastEditedBy", fs::string("borrower-7")), ("note", fs::string("please hurry"))])
        .await?;
    wait_for("venturesStatus restored", WAIT, || async { Ok((firestore_field(&projections, "app-g1", "venturesStatus").await?.as_deref() == Some("Open")).then_some(())) }).await?;
    let restored_after = written.elapsed();
    println!("listener-guard: client write to venturesStatus restored {:.0} ms after it was made", restored_after.as_secs_f64() * 1000.0);
    assert_eq!(firestore_field(&projections, "app-g1", "note").await?.as_deref(), Some("please hurry"), "the app's own field is kept");

    let violations = TopicReader::new(&stack, topics::PROTECTED_FIELD_VIOLATION).await?;
    let violation: ProtectedFieldViolation = violations.next(WAIT).await?.ok_or_else(|| anyhow::anyhow!("no violation reported"))?;
    assert_eq!(violation.application_id, "app-g1");
    assert_eq!(violation.fields, ["venturesStatus"]);
    assert_eq!(violation.written_values.get("venturesStatus").map(String::as_str), Some("\"Funded\""));
    assert_eq!(violation.restored_values.get("venturesStatus").map(String::as_str), Some("\"Open\""));
    assert_eq!(violation.actor.as_deref(), Some("borrower-7"));
    println!("listener-guard: reported detected_after_ms = {}", violation.detected_after_ms);

    // The change event carried both fields, only one of them flagged; the restore is a change
    // too, by Brain, and reports nothing more.
    let changes = TopicReader::new(&stack, topics::DOCUMENT_CHANGED).await?;
    let mut read: Vec<DocumentChanged> = Vec::new();
    changes.until(WAIT, |r: &[DocumentChanged]| r.iter().any(|c| c.changed_fields.contains(&"note".to_string())), &mut read).await?;
    let client = read.iter().find(|c| c.changed_fields.contains(&"note".to_string())).expect("found");
    assert_eq!(client.protected_fields, ["venturesStatus"]);
    assert_eq!(client.actor.as_deref(), Some("borrower-7"));
    assert_eq!(client.new_values.get("note").map(String::as_str), Some("\"please hurry\""));
    assert!(violations.next::<ProtectedFieldViolation>(Duration::from_secs(3)).await?.is_none(), "one violation, one report");

    stack.stop_all().await?;
    Ok(())
}

/// Changes made while the listener is down arrive once it is back, each once; what it had
/// already published is not published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_neither_loses_nor_floods_changes_across_a_restart() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("listener-restart").await?;
    stack.start_services(&[CHANGE_LISTENER]).await?;
    let projections = stack.projections().await?;
    let reader = TopicReader::new(&stack, topics::DOCUMENT_CHANGED).await?;
    let mut read: Vec<DocumentChanged> = Vec::new();
    let by_path = |r: &[DocumentChanged]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in r {
            *counts.entry(c.document_path.clone()).or_default() += 1;
        }
        counts
    };

    projections.merge_fields("applications", "app-r1", vec![("note", fs::string("a"))]).await?;
    projections.merge_fields("applications/app-r1/tasks", "t-1", vec![("state", fs::string("open"))]).await?;
    reader.until(WAIT, |r| by_path(r).len() == 2, &mut read).await?;

    stack.service(CHANGE_LISTENER).stop().await?;
    projections.merge_fields("applications", "app-r1", vec![("note", fs::string("b"))]).await?;
    projections.merge_fields("applications/app-r1/tasks", "t-1", vec![("state", fs::string("awaiting_upload"))]).await?;
    projections.merge_fields("applications", "app-r2", vec![("note", fs::string("x"))]).await?;
    stack.service(CHANGE_LISTENER).start().await?;
    reader.until(WAIT, |r| by_path(r).values().sum::<usize>() >= 5, &mut read).await?;
    // Anything flooded would follow the restart's first snapshot at once.
    while let Some(extra) = reader.next::<DocumentChanged>(Duration::from_secs(3)).await? {
        read.push(extra);
    }
    let counts = by_path(&read);
    assert_eq!(counts, BTreeMap::from([("applications/app-r1".to_string(), 2), ("applications/app-r1/tasks/t-1".to_string(), 2), ("applications/app-r2".to_string(), 1)]), "{read:#?}");
    let task = read.iter().rfind(|c| c.document_path.ends_with("t-1")).expect("task change");
    assert_eq!((task.collection.as_str(), task.application_id.as_str()), ("tasks", "app-r1"));
    assert_eq!(task.old_values.get("state").map(String::as_str), Some("\"open\""));
    assert_eq!(task.new_values.get("state").map(String::as_str), Some("\"awaiting_upload\""));
    assert!(task.previous_update_time_ns.is_some_and(|p| p < task.update_time_ns));

    stack.stop_all().await?;
    Ok(())
}

/// A borrower edits the draft of their application in Firestore: the allowed fields reach
/// Ventures as a draft, once; a field outside the allowed list is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_borrower_draft_edit_reaches_ventures_once() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("listener-drafts").await?;
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, CHANGE_LISTENER]).await?;
    let sim = stack.sim.base_url();
    let loan = stack.create_loan("app-d1", "Prospect").await?;
    let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
    let projections = stack.projections().await?;
    wait_for("app-d1 projected", WAIT, || async { Ok(firestore_field(&projections, "app-d1", "venturesLoanId").await?.filter(|l| *l == loan_id)) }).await?;

    let draft = fs::map(vec![("businessName", fs::string("Acme Bakery")), ("purpose", fs::string("two ovens")), ("favouriteColour", fs::string("blue"))]);
    projections.merge_fields("applications", "app-d1", vec![("draft", draft), ("lastEditedBy", fs::string("borrower-1"))]).await?;

    let credentials = json!({ "client": stack.credentials.client, "username": stack.credentials.username, "password": stack.credentials.password });
    let token: serde_json::Value = stack.http.post(format!("{sim}/api/v4/token")).json(&credentials).send().await?.error_for_status()?.json().await?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let in_ventures = wait_for("the draft in Ventures", WAIT, || async {
        let draft: serde_json::Value = stack.http.get(format!("{sim}/api/v4/loans/{loan_id}/draft")).bearer_auth(&token).send().await?.json().await?;
        Ok((draft["draft"]["businessName"] == "Acme Bakery").then_some(draft))
    })
    .await?;
    assert_eq!(in_ventures["draft"], json!({ "businessName": "Acme Bakery", "purpose": "two ovens" }), "only allowed fields");
    assert_eq!(in_ventures["draftVersion"], 1);

    let effects: serde_json::Value = stack.http.get(format!("{sim}/control/effects")).send().await?.json().await?;
    let patches: Vec<&serde_json::Value> = effects.as_array().into_iter().flatten().filter(|e| e["method"] == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!((patches[0]["status"].as_i64(), patches[0]["replayed"].as_bool()), (Some(200), Some(false)));
    assert!(stack.service(VENTURES_SYNC).metric("ventures_sync_draft_fields_refused_total").await? >= 1.0);

    stack.stop_all().await?;
    Ok(())
}
