//! Flow 8: dead letters from a dependency that kept failing are replayed once the cause is
//! fixed, each applied exactly once; a second replay applies nothing; poison stays out.

use std::time::Duration;

use brain_events::topics;
use brain_runtime::producer::{EventProducer, Outgoing};
use serde_json::{Value, json};
use system_tests::{
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);
const DLQ: &str = "deadletter.ventures-sync.commands.v1";

/// Runs `dlq-replayer <args>` against the test's broker, registry and database; its stdout.
async fn replayer(stack: &Stack, args: &[&str]) -> anyhow::Result<String> {
    stack.dlq_replayer(args).await
}

async fn json_of(stack: &Stack, args: &[&str]) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(replayer(stack, args).await?.trim())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replayed_after_the_cause_is_fixed_apply_exactly_once() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("replay").await?;
    // The breaker is off: each failing command is dead-lettered on its own after two tries
    // (with it on, the failures would open it and the commands would wait instead).
    stack.service(VENTURES_SYNC).set_envs(&[
        ("VENTURES_SYNC__MAX_ATTEMPTS", "2"),
        ("VENTURES_SYNC__BACKOFF_INITIAL_MS", "50"),
        ("VENTURES_SYNC__BACKOFF_MAX_MS", "100"),
        ("VENTURES_SYNC__BREAKER_THRESHOLD", "0"),
    ]);
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let sim = stack.sim.base_url();
    let staff = stack.token("staff", VENTURES_TENANT);

    // Three projected applications whose Ventures status endpoint fails until the fault is removed.
    let mut loans = Vec::new();
    for i in 1..=3 {
        let app = format!("app-p{i}");
        let loan = stack.create_loan(&app, "Prospect").await?;
        let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
        let fault = json!({ "status": 503, "pathPrefix": format!("/api/v4/loans/{loan_id}/status") });
        stack.http.post(format!("{sim}/control/faults")).json(&fault).send().await?.error_for_status()?;
        loans.push((app, loan_id));
    }
    let mut commands = Vec::new();
    for (app, _) in &loans {
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
        commands.push(reply["commandId"].as_str().unwrap_or_default().to_string());
    }
    // And one poison record on the command topic.
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "replay-test")?;
    producer.send_raw(Outgoing { topic: topics::STATUS_CHANGE_REQUESTED, key: Some(b"app-p1"), payload: b"not avro", headers: Vec::new() }).await?;

    let counted = wait_for("four dead letters", WAIT, || async {
        let count = json_of(&stack, &["count", "--topic", DLQ, "--json"]).await?;
        Ok((count["total"] == 4).then_some(count))
    })
    .await?;
    println!("replay: dead letters {counted}");
    let health = wait_for("health/sync to count them", WAIT, || async {
        let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let topic = h["deadLetters"].as_array().into_iter().flatten().find(|t| t["topic"] == DLQ).cloned();
        Ok(topic.filter(|t| t["count"] == 4))
    })
    .await?;
    assert_eq!(health["olderThan15m"], 0, "{health}");
    let rate = wait_for("health/sync's Ventures error rate", WAIT, || async {
        let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let ventures = h["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "ventures").cloned();
        Ok(ventures.and_then(|v| v["errorRate"].as_f64()).filter(|r| *r > 0.0))
    })
    .await?;
    println!("replay: Ventures error rate while the commands failed: {rate:.2}");
    assert!(health["oldestAgeSeconds"].as_i64().is_some_and(|age| age < 600), "{health}");
    let listed = replayer(&stack, &["list", "--topic", DLQ, "--kind", "http_5xx", "--field", "to_status=Open"]).await?;
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let one = listed.split_whitespace().next().unwrap_or_default().to_string();
    let shown = json_of(&stack, &["show", &one]).await?;
    assert_eq!(shown["error"]["class"], "transient_exhausted", "{shown}");
    assert_eq!(shown["event"]["to_status"], "Open", "the original event, decoded: {shown}");

    // The cause is fixed; a dry run says what would happen, then the replay does it.
    stack.http.delete(format!("{sim}/control/faults")).send().await?.error_for_status()?;
    let filter = ["--topic", DLQ, "--kind", "http_5xx"];
    let dry = json_of(&stack, &[&["replay", "--dry-run", "--json"][..], &filter].concat()).await?;
    assert_eq!((dry["sent"].as_array().map(Vec::len), dry["skipped"].as_array().map(Vec::len)), (Some(3), Some(0)), "{dry}");
    let first = json_of(&stack, &[&["replay", "--json", "--rate", "100"][..], &filter].concat()).await?;
    assert_eq!(first["sent"].as_array().map(Vec::len), Some(3), "{first}");
    for id in &commands {
        wait_for(&format!("command {id} applied"), WAIT, || async {
            let c: Value = stack.http.get(format!("{}/api/v1/commands/{id}", stack.gateway_url)).bearer_auth(&staff).send().await?.json().await?;
            Ok((c["state"] == "applied").then_some(()))
        })
        .await?;
    }

    // A second replay of the same set sends nothing.
    let second = json_of(&stack, &[&["replay", "--json"][..], &filter].concat()).await?;
    assert_eq!((second["sent"].as_array().map(Vec::len), second["skipped"].as_array().map(Vec::len)), (Some(0), Some(3)), "{second}");
    assert!(second["skipped"][0][1].as_str().unwrap_or_default().starts_with("already_replayed"), "{second}");

    // The gateway counts what still waits for an operator: the poison, until it is discarded.
    let waiting = |expected: i64| {
        let stack = &stack;
        async move {
            wait_for(&format!("{expected} unhandled dead letters"), WAIT, || async {
                let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
                let topic = h["deadLetters"].as_array().into_iter().flatten().find(|t| t["topic"] == DLQ).cloned();
                Ok(topic.filter(|t| t["unhandled"] == expected && t["count"] == 4))
            })
            .await
        }
    };
    waiting(1).await?;
    let poison = replayer(&stack, &["list", "--topic", DLQ, "--kind", "undecodable"]).await?;
    let poison_id = poison.split_whitespace().next().unwrap_or_default().to_string();
    replayer(&stack, &["discard", &poison_id, "--reason", "not Avro: a test's garbage"]).await?;
    waiting(0).await?;
    let listed = replayer(&stack, &["list", "--topic", DLQ, "--kind", "undecodable"]).await?;
    assert!(listed.contains("[discarded]"), "{listed}");

    // Each loan changed exactly once.
    let effects: Value = stack.http.get(format!("{sim}/control/effects")).send().await?.json().await?;
    for ((_, loan_id), id) in loans.iter().zip(&commands) {
        let loan: Value = stack.http.get(format!("{sim}/control/loans/{loan_id}")).send().await?.json().await?;
        assert_eq!((loan["status"].as_str(), loan["version"].as_i64()), (Some("Open"), Some(2)), "{loan}");
        let applied = effects.as_array().into_iter().flatten().filter(|e| e["idempotencyKey"] == id.as_str() && e["status"] == 200 && e["replayed"] == false).count();
        assert_eq!(applied, 1, "command {id}");
    }

    // The audit has the dry run and both replays.
    let pool = stack.db.connect().await?;
    let jobs: Vec<(bool, i64, i64, String)> = sqlx::query_as("SELECT dry_run, sent, skipped, operator FROM dlq_replayer.jobs ORDER BY started_at").fetch_all(&pool).await?;
    assert_eq!(jobs, vec![(true, 3, 0, "test-operator".into()), (false, 3, 0, "test-operator".into()), (false, 0, 3, "test-operator".into())]);

    stack.stop_all().await?;
    Ok(())
}
