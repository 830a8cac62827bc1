//! Bulkheads: Ventures down opens ventures-sync's breaker and then switches panic mode on, its
//! commands wait instead of being dead-lettered, other projections keep flowing, and everything
//! drains once Ventures is back and the probes have switched panic mode off.

use std::time::Duration;

use brain_events::{CapabilityFlagChanged, DeadLetter, topics};
use brain_runtime::producer::EventProducer;
use serde_json::{Value, json};
use system_tests::{
    loan_event,
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC, VENTURES_TENANT},
    topics::TopicReader,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ventures_down_opens_its_breaker_and_commands_wait_instead_of_dead_lettering() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("breaker").await?;
    // Without the breaker, three failed tries would dead-letter every command of the outage.
    stack.service(VENTURES_SYNC).set_envs(&[
        ("VENTURES_SYNC__MAX_ATTEMPTS", "3"),
        ("VENTURES_SYNC__BACKOFF_INITIAL_MS", "50"),
        ("VENTURES_SYNC__BACKOFF_MAX_MS", "200"),
        ("VENTURES_SYNC__BREAKER_THRESHOLD", "3"),
        ("VENTURES_SYNC__BREAKER_OPEN_MS", "1000"),
        ("VENTURES_SYNC__PANIC_THRESHOLD", "6"),
        ("VENTURES_SYNC__PANIC_PROBE_MS", "1000"),
        ("VENTURES_SYNC__PANIC_RECOVER_PROBES", "2"),
    ]);
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY]).await?;
    let sim = stack.sim.base_url();
    let staff = stack.token("staff", VENTURES_TENANT);
    let pool = stack.db.connect().await?;
    let projected = |app: String, version: i64| {
        let pool = pool.clone();
        async move {
            let v: Option<i64> = sqlx::query_scalar("SELECT version FROM projection_writer.applications WHERE application_id = $1").bind(&app).fetch_optional(&pool).await?;
            Ok(v.filter(|v| *v >= version).map(|_| ()))
        }
    };

    let apps: Vec<String> = (1..=3).map(|i| format!("app-b{i}")).collect();
    for app in &apps {
        stack.create_loan(app, "Prospect").await?;
    }
    for app in &apps {
        wait_for(&format!("{app} projected"), WAIT, || projected(app.clone(), 1)).await?;
    }

    // Ventures is down for 30 s (the acceptance scenario).
    stack.http.post(format!("{sim}/control/faults")).json(&json!({ "status": 503, "durationSecs": 30 })).send().await?.error_for_status()?;
    let mut commands = Vec::new();
    for app in &apps {
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
    let metrics_url = stack.service(VENTURES_SYNC).ready_url().replace("/ready", "/metrics");
    wait_for("the Ventures breaker to open", WAIT, || async {
        let metrics = reqwest::get(&metrics_url).await?.text().await?;
        Ok(metrics.lines().any(|l| l.starts_with("ventures_sync_breaker_transitions_total") && l.contains("to=\"open\"")).then_some(()))
    })
    .await?;

    // The gateway's sync health says so.
    let health = wait_for("health/sync to show the open breaker and the waiting commands", WAIT, || async {
        let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let ventures = h["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "ventures").cloned();
        let waiting = |v: &Value| v["consumerGroups"][0]["lagMessages"].as_i64().unwrap_or_default() >= 3;
        Ok(ventures.filter(|v| (v["breaker"] == "open" || v["breaker"] == "half_open") && waiting(v)).map(|_| h))
    })
    .await?;
    println!("breaker: health/sync during the outage: {health}");

    // Meanwhile another integration's events are projected as usual.
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "breaker-test")?;
    producer.send(topics::LOAN_STATUS_CHANGED, "app-elsewhere", &loan_event("app-elsewhere", 1)).await?;
    wait_for("app-elsewhere projected during the outage", Duration::from_secs(8), || projected("app-elsewhere".into(), 1)).await?;
    let during: Value = stack.http.get(format!("{sim}/control/faults")).send().await?.json().await?;
    assert!(!during.as_array().is_none_or(Vec::is_empty), "projected while Ventures was still down");

    // Ventures is back: every command is applied, none was dead-lettered.
    for id in &commands {
        wait_for(&format!("command {id} applied"), WAIT, || async {
            let c: Value = stack.http.get(format!("{}/api/v1/commands/{id}", stack.gateway_url)).bearer_auth(&staff).send().await?.json().await?;
            Ok((c["state"] == "applied").then_some(()))
        })
        .await?;
    }
    let dead_letters = TopicReader::new(&stack, "deadletter.ventures-sync.commands.v1").await?;
    assert!(dead_letters.next::<DeadLetter>(Duration::from_secs(3)).await?.is_none(), "nothing dead-lettered for the outage");
    let stats: Value = stack.http.get(format!("{sim}/control/stats")).send().await?.json().await?;
    println!("breaker: Ventures answered {} requests with the outage's 503", stats["faultsServed"]);

    // Panic mode went on during the outage and off after the probes, on the durable flags topic.
    let flags = TopicReader::new(&stack, topics::CAPABILITY_FLAGS).await?;
    let mut panic_states = Vec::new();
    while let Some(change) = flags.next::<CapabilityFlagChanged>(Duration::from_secs(3)).await? {
        if change.kind == "panic" && change.integration == "ventures" {
            panic_states.push(change.state);
        }
    }
    assert_eq!(panic_states.first().map(String::as_str), Some("on"), "panic mode switched on: {panic_states:?}");
    assert_eq!(panic_states.last().map(String::as_str), Some("off"), "panic mode switched off again: {panic_states:?}");
    let metrics = reqwest::get(&metrics_url).await?.text().await?;
    assert!(metrics.lines().any(|l| l.starts_with("ventures_sync_panic_mode{integration=\"ventures\"} 0")), "panic gauge back at 0");

    stack.stop_all().await?;
    Ok(())
}

/// Firestore unreachable for projection-writer: its breaker opens, the partitions wait (nothing
/// dead-lettered), and everything is projected once Firestore is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_unreachable_opens_projection_writers_breaker_and_nothing_is_lost() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("breaker-firestore").await?;
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST")?;
    let proxy = system_tests::proxy::TcpProxy::start(emulator).await?;
    for (key, value) in [
        ("FIRESTORE_EMULATOR_HOST", format!("127.0.0.1:{}", proxy.port)),
        ("PROJECTION_WRITER__BREAKER_THRESHOLD", "3".into()),
        ("PROJECTION_WRITER__BREAKER_OPEN_MS", "500".into()),
        ("PROJECTION_WRITER__FIRESTORE_DEADLINE_MS", "2000".into()),
    ] {
        stack.service(PROJECTION_WRITER).set_env(key, &value);
    }
    stack.start_services(&[PROJECTION_WRITER, API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;
    let version_of = |app: &'static str| {
        let pool = pool.clone();
        async move { Ok::<_, anyhow::Error>(sqlx::query_scalar::<_, i64>("SELECT version FROM projection_writer.applications WHERE application_id = $1").bind(app).fetch_optional(&pool).await?) }
    };
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "breaker-test")?;
    producer.send(topics::LOAN_STATUS_CHANGED, "app-f1", &loan_event("app-f1", 1)).await?;
    wait_for("app-f1 v1 projected", WAIT, || async { Ok(version_of("app-f1").await?.filter(|v| *v == 1).map(|_| ())) }).await?;

    proxy.set_up(false);
    producer.send(topics::LOAN_STATUS_CHANGED, "app-f1", &loan_event("app-f1", 2)).await?;
    producer.send(topics::LOAN_STATUS_CHANGED, "app-f2", &loan_event("app-f2", 1)).await?;
    let metrics_url = stack.service(PROJECTION_WRITER).ready_url().replace("/ready", "/metrics");
    wait_for("the Firestore breaker to open", WAIT, || async {
        let metrics = reqwest::get(&metrics_url).await?.text().await?;
        Ok(metrics.lines().any(|l| l.starts_with("projection_writer_breaker_transitions_total") && l.contains("firestore") && l.contains("to=\"open\"")).then_some(()))
    })
    .await?;
    assert_eq!(version_of("app-f1").await?, Some(1), "nothing committed while Firestore is away");
    wait_for("health/sync to show Firestore's breaker", WAIT, || async {
        let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let firestore = h["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "firestore").cloned();
        Ok(firestore.filter(|f| f["breaker"] == "open" || f["breaker"] == "half_open").map(|_| ()))
    })
    .await?;

    proxy.set_up(true);
    wait_for("everything projected once Firestore is back", WAIT, || async {
        Ok((version_of("app-f1").await? == Some(2) && version_of("app-f2").await? == Some(1)).then_some(()))
    })
    .await?;
    let docs = stack.projections().await?.get("applications", &["app-f1".to_string()]).await?;
    assert_eq!(docs["app-f1"].get("venturesVersion").and_then(projection_writer::firestore::as_i64), Some(2));
    let dead_letters = TopicReader::new(&stack, "deadletter.projection-writer.v1").await?;
    assert!(dead_letters.next::<DeadLetter>(Duration::from_secs(3)).await?.is_none(), "nothing dead-lettered for the outage");

    stack.stop_all().await?;
    Ok(())
}
