//! Flow 6, messages, end to end: the apps write messages (borrower and staff, some staff ones
//! asking for the Teams relay, some invalid) into Firestore; the listener emits them,
//! projection-writer answers in the message (`delivery` sent, then the recipient's receipts:
//! delivered, read, never backwards; invalid ones `rejected` with a code; role flags), and
//! graph-calendar posts each relay-flagged staff message to the Teams channel exactly once,
//! through a 429 storm, answers lost after the post was made, and a SIGKILL mid-run. Brain's own
//! writes into the messages never come back as new work (revisions stay bounded).

use std::{collections::BTreeMap, time::Duration};

use projection_writer::firestore as fs;
use serde_json::{Value, json};
use system_tests::{
    stack::{CHANGE_LISTENER, GRAPH_CALENDAR, PROJECTION_WRITER, Stack},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(120);
const APPS: usize = 4;
const PER_APP: usize = 6;
const TEAM: &str = "team-loans";
const CHANNEL: &str = "19:brain@thread.tacv2";

async fn graph_control(stack: &Stack, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut request = stack.http.request(method, format!("{}/control/{path}", stack.graph.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Ok(request.send().await?.error_for_status()?.json().await.unwrap_or(Value::Null))
}

/// One message written by an app.
struct Written {
    app: String,
    id: String,
    role: &'static str,
    relay: bool,
    /// The rejection code expected, if the message is invalid.
    rejected: Option<&'static str>,
}

async fn write(projections: &fs::Projections, m: &Written, text: &str) -> anyhow::Result<()> {
    let fields = vec![
        ("text", fs::string(text)),
        ("senderRole", fs::string(m.role)),
        ("authorId", fs::string(format!("{}-user", m.role))),
        ("relayToTeams", fs::boolean(m.relay)),
    ];
    projections.merge_fields(&format!("applications/{}/messages", m.app), &m.id, fields).await?;
    Ok(())
}

async fn receipt(projections: &fs::Projections, m: &Written, by: &'static str, value: &str) -> anyhow::Result<()> {
    projections.merge_fields(&format!("applications/{}/messages", m.app), &m.id, vec![("receipts", fs::map(vec![(by, fs::string(value))]))]).await?;
    Ok(())
}

/// `delivery.status` and `teamsRelay.status` of each message as the apps see them.
async fn projected(projections: &fs::Projections, messages: &[Written]) -> anyhow::Result<BTreeMap<String, (Option<String>, Option<String>)>> {
    let mut out = BTreeMap::new();
    for app in messages.iter().map(|m| m.app.clone()).collect::<std::collections::BTreeSet<_>>() {
        let ids: Vec<String> = messages.iter().filter(|m| m.app == app).map(|m| m.id.clone()).collect();
        let docs = projections.get(&format!("applications/{app}/messages"), &ids).await?;
        for (id, doc) in docs {
            let status = |field: &str| doc.get(field).and_then(fs::as_map).and_then(|m| m.get("status")).and_then(fs::as_str).map(str::to_string);
            out.insert(id, (status("delivery"), status("teamsRelay")));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_get_receipts_and_staff_messages_reach_teams_once() -> anyhow::Result<()> {
    let mut stack = Stack::start("messages").await?;
    stack.service(GRAPH_CALENDAR).set_envs(&[
        ("GRAPH_CALENDAR__TEAMS_TEAM_ID", TEAM),
        ("GRAPH_CALENDAR__TEAMS_CHANNEL_ID", CHANNEL),
        ("GRAPH_CALENDAR__BREAKER_OPEN_MS", "1000"),
        ("GRAPH_CALENDAR__PANIC_PROBE_MS", "1000"),
        ("GRAPH_CALENDAR__BACKOFF_INITIAL_MS", "100"),
    ]);
    stack.start_services(&[PROJECTION_WRITER, CHANGE_LISTENER, GRAPH_CALENDAR]).await?;
    let projections = stack.projections().await?;
    let pool = stack.db.connect().await?;

    let mut messages = Vec::new();
    for a in 0..APPS {
        let app = format!("app-msg-{a}");
        for i in 0..PER_APP {
            let (role, relay) = if i.is_multiple_of(2) { ("borrower", false) } else { ("staff", true) };
            messages.push(Written { app: app.clone(), id: format!("m-{a}-{i}"), role, relay, rejected: None });
        }
    }
    let invalid = [("robot", false, "invalid_sender_role"), ("borrower", true, "relay_not_allowed")];
    for (n, (role, relay, code)) in invalid.into_iter().enumerate() {
        messages.push(Written { app: "app-msg-0".into(), id: format!("bad-{n}"), role, relay, rejected: Some(code) });
    }
    let relayed: Vec<&Written> = messages.iter().filter(|m| m.relay && m.rejected.is_none()).collect();

    // Graph throttles the first posts and loses the answers of a few it made.
    graph_control(&stack, reqwest::Method::POST, "faults", Some(json!({ "status": 429, "retryAfterSecs": 1, "pathContains": "/messages", "method": "POST", "count": 6 }))).await?;
    graph_control(&stack, reqwest::Method::POST, "faults", Some(json!({ "status": 504, "afterEffect": true, "pathContains": "/messages", "method": "POST", "count": 3 }))).await?;
    for (n, m) in messages.iter().enumerate() {
        write(&projections, m, &format!("Message {n} <about the loan> & its documents")).await?;
        if n == messages.len() / 2 {
            // graph-calendar dies mid-run and comes back.
            stack.service(GRAPH_CALENDAR).kill().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            stack.service(GRAPH_CALENDAR).start().await?;
        }
    }

    // Every message is answered: sent (with its role flag) or rejected with its code.
    wait_for("every message answered", WAIT, || async {
        let seen = projected(&projections, &messages).await?;
        Ok(messages.iter().all(|m| seen.get(&m.id).is_some_and(|(d, _)| d.is_some())).then_some(()))
    })
    .await?;
    for m in &messages {
        let (status, code): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT status, rejection_code FROM projection_writer.messages WHERE message_id = $1").bind(&m.id).fetch_one(&pool).await?;
        match m.rejected {
            Some(expected) => assert_eq!((status.as_deref(), code.as_deref()), (Some("rejected"), Some(expected)), "{}", m.id),
            None => assert_eq!(status.as_deref(), Some("sent"), "{}", m.id),
        }
    }
    let doc = projections.get("applications/app-msg-0/messages", &["m-0-1".to_string()]).await?;
    let flags: Vec<Option<bool>> = ["fromBorrower", "fromStaff", "fromSystem"].iter().map(|f| doc["m-0-1"].get(*f).and_then(fs::as_bool)).collect();
    assert_eq!(flags, [Some(false), Some(true), Some(false)], "a staff message's role flags");

    // Receipts: the recipients read half the messages and receive the rest; a late "delivered"
    // after "read" changes nothing; a sender's own receipt means nothing.
    let valid: Vec<&Written> = messages.iter().filter(|m| m.rejected.is_none()).collect();
    for (n, m) in valid.iter().enumerate() {
        let recipient = if m.role == "borrower" { "staff" } else { "borrower" };
        receipt(&projections, m, recipient, if n.is_multiple_of(2) { "read" } else { "delivered" }).await?;
    }
    for m in valid.iter().step_by(2) {
        let recipient = if m.role == "borrower" { "staff" } else { "borrower" };
        receipt(&projections, m, recipient, "delivered").await?;
    }
    let expected = |n: usize| if n.is_multiple_of(2) { "read" } else { "delivered" };
    wait_for("receipts projected", WAIT, || async {
        let seen = projected(&projections, &messages).await?;
        Ok(valid.iter().enumerate().all(|(n, m)| seen.get(&m.id).and_then(|(d, _)| d.as_deref()) == Some(expected(n))).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = projected(&projections, &messages).await?;
    for (n, m) in valid.iter().enumerate() {
        assert_eq!(seen[&m.id].0.as_deref(), Some(expected(n)), "{}: a late receipt must not move it back", m.id);
    }

    // Teams: every relay-flagged staff message posted once, its outcome on the message.
    wait_for("every relay done", WAIT, || async {
        let seen = projected(&projections, &messages).await?;
        Ok(relayed.iter().all(|m| seen.get(&m.id).and_then(|(_, r)| r.as_deref()) == Some("relayed")).then_some(()))
    })
    .await?;
    let posted = graph_control(&stack, reqwest::Method::GET, &format!("teams/messages?teamId={TEAM}"), None).await?;
    let posted: Vec<String> = posted["messages"].as_array().into_iter().flatten().filter_map(|m| m["content"].as_str().map(str::to_string)).collect();
    let markers: Vec<String> = sqlx::query_scalar("SELECT marker FROM graph_calendar.teams_relays WHERE state = 'relayed' ORDER BY message_id").fetch_all(&pool).await?;
    assert_eq!(markers.len(), relayed.len(), "one relay per flagged staff message");
    for marker in &markers {
        let copies = posted.iter().filter(|c| c.contains(marker.as_str())).count();
        assert_eq!(copies, 1, "{marker} posted {copies} times");
    }
    assert_eq!(posted.len(), relayed.len(), "nothing else was posted");
    assert!(posted.iter().all(|c| c.contains("&lt;about the loan&gt; &amp; its documents")), "the text is escaped HTML");
    let posts: i64 = sqlx::query_scalar("SELECT sum(post_attempts)::bigint FROM graph_calendar.teams_relays").fetch_one(&pool).await?;

    // Brain's writes did not loop: created, one or two receipts, one relay outcome at most.
    let revisions: Vec<(String, i64)> = sqlx::query_as("SELECT message_id, revision FROM projection_writer.messages ORDER BY revision DESC").fetch_all(&pool).await?;
    assert!(revisions.iter().all(|(_, r)| *r <= 4), "a message was rewritten more often than the apps wrote it: {revisions:?}");
    println!(
        "messages: {} written ({} invalid rejected), {} receipts, {} posted to Teams once each ({} posts tried through 429s and lost answers), max revision {}",
        messages.len(),
        messages.len() - valid.len(),
        valid.len() + valid.len().div_ceil(2),
        relayed.len(),
        posts,
        revisions.first().map_or(0, |(_, r)| *r)
    );
    stack.stop_all().await?;
    Ok(())
}
