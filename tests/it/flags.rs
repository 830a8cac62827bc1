//! Capability flags: one tenant switched off is held (nothing lost, nothing dead-lettered) while
//! the other tenants on the same partitions flow; switched back on, its events drain in order.
//! The whole integration switched off pauses its partitions; switched on, they resume. The
//! switches go through each of the operators' ways in: the gateway's admin API, the CLI and the
//! runtime's writer; dlq-replayer audits every one.

use std::time::{Duration, Instant};

use brain_events::{DeadLetter, topics};
use brain_runtime::{
    flags::{FlagState, FlagWriter},
    producer::EventProducer,
};
use serde_json::{Value, json};
use system_tests::{
    loan_event,
    stack::{API_GATEWAY, DLQ_REPLAYER, PROJECTION_WRITER, Stack},
    topics::TopicReader,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(60);
/// How long a flag change may take to reach every instance.
const PROPAGATION: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switched_off_tenant_is_held_while_others_flow_and_drains_in_order() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("flags").await?;
    stack.start_services(&[PROJECTION_WRITER, API_GATEWAY, DLQ_REPLAYER]).await?;
    let pool = stack.db.connect().await?;
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "flags-test")?;
    let flags = FlagWriter::new(producer.clone());
    let version_of = |app: String| {
        let pool = pool.clone();
        async move {
            let v: Option<i64> = sqlx::query_scalar("SELECT version FROM projection_writer.applications WHERE application_id = $1").bind(&app).fetch_optional(&pool).await?;
            anyhow::Ok(v)
        }
    };
    let send = |app: String, tenant: &'static str, version: i64| {
        let producer = producer.clone();
        async move {
            let mut event = loan_event(&app, version);
            event.tenant_id = tenant.into();
            producer.send(topics::LOAN_STATUS_CHANGED, &app, &event).await
        }
    };

    // The tenant's own ops switches it off through the gateway; another tenant's ops may not.
    let admin_api = format!("{}/api/v1/admin/capabilities/firestore", stack.gateway_url);
    let off = json!({ "state": "off", "tenant": "t-held", "reason": "tenant t-held migrating" });
    let refused = stack.http.put(&admin_api).bearer_auth(stack.token("ops", "t-flow")).json(&off).send().await?;
    assert_eq!(refused.status(), 403, "ops of another tenant");
    let change: Value = stack.http.put(&admin_api).bearer_auth(stack.token("ops", "t-held")).json(&off).send().await?.error_for_status()?.json().await?;
    assert_eq!((change["state"].as_str(), change["actor"].as_str()), (Some("off"), Some("test-ops")), "{change}");
    tokio::time::sleep(PROPAGATION).await;
    let held: Vec<String> = (1..=6).map(|i| format!("held-{i}")).collect();
    let flowing: Vec<String> = (1..=6).map(|i| format!("flow-{i}")).collect();
    for version in 1..=3 {
        for (h, f) in held.iter().zip(&flowing) {
            send(h.clone(), "t-held", version).await?;
            send(f.clone(), "t-flow", version).await?;
        }
    }
    for app in &flowing {
        wait_for(&format!("{app} projected while t-held is off"), WAIT, || async { Ok(version_of(app.clone()).await?.filter(|v| *v == 3)) }).await?;
    }
    for app in &held {
        assert_eq!(version_of(app.clone()).await?, None, "{app} of the switched-off tenant was projected");
    }
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.held_events WHERE tenant = 't-held'").fetch_one(&pool).await?;
    assert_eq!(parked, 18, "every event of t-held is held");
    let summary: Vec<(String, i64)> = sqlx::query_as("SELECT tenant, events FROM read_api.projection_writer_held_events").fetch_all(&pool).await?;
    println!("flags: held while off: {summary:?}");
    // The sync health says so: the tenant switched off, its events held, the integration on.
    let health = wait_for("health/sync to show t-held off and its held events", WAIT, || async {
        let h: serde_json::Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let firestore = h["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "firestore").cloned();
        Ok(firestore.filter(|f| f["capability"]["tenantsOff"][0] == "t-held" && f["held"][0]["events"] == 18 && f["capability"]["enabled"] == true))
    })
    .await?;
    println!("flags: health/sync firestore: {health}");

    let switched_on = Instant::now();
    stack.dlq_replayer(&["flags", "set", "firestore", "clear", "--tenant", "t-held", "--reason", "migration done"]).await?;
    for app in &held {
        wait_for(&format!("{app} drained"), WAIT, || async { Ok(version_of(app.clone()).await?.filter(|v| *v == 3)) }).await?;
    }
    println!("flags: t-held drained {:.2} s after it was switched on", switched_on.elapsed().as_secs_f64());
    // In order: each application's versions were applied 1, 2, 3 (a stale one would not be logged).
    for app in &held {
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM projection_writer.event_log WHERE entity_id = $1 ORDER BY id").bind(app).fetch_all(&pool).await?;
        assert_eq!(versions, vec![1, 2, 3], "{app} drained in order");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.held_events").fetch_one(&pool).await?;
    assert_eq!(left, 0, "the hold is empty once drained");

    // The whole integration off: partitions wait; on again: they resume.
    flags.set_flag("firestore", None, FlagState::Off, "ops@flags-test", "Firestore maintenance").await?;
    tokio::time::sleep(PROPAGATION).await;
    send(flowing[0].clone(), "t-flow", 4).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(version_of(flowing[0].clone()).await?, Some(3), "nothing projected while firestore is off");
    let on = json!({ "state": "on", "reason": "maintenance over" });
    stack.http.put(&admin_api).bearer_auth(stack.token("admin", "t-flow")).json(&on).send().await?.error_for_status()?;
    wait_for("projection resumes", WAIT, || async { Ok(version_of(flowing[0].clone()).await?.filter(|v| *v == 4)) }).await?;

    // Every change is audited, whoever made it and however: the history, newest first.
    let history = wait_for("the audit to record all four changes", WAIT, || async {
        let out = stack.dlq_replayer(&["flags", "history", "--json"]).await?;
        let rows: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        Ok((rows.len() == 4).then_some(rows))
    })
    .await?;
    let audited: Vec<(&str, &str, &str)> =
        history.iter().rev().map(|c| (c["tenant"].as_str().unwrap_or("*"), c["state"].as_str().unwrap_or_default(), c["actor"].as_str().unwrap_or_default())).collect();
    assert_eq!(audited, vec![("t-held", "off", "test-ops"), ("t-held", "cleared", "test-operator"), ("*", "off", "ops@flags-test"), ("*", "on", "test-admin")]);
    let api_history: Value = stack.http.get(format!("{}/api/v1/admin/capabilities/history", stack.gateway_url)).bearer_auth(stack.token("admin", "t-flow")).send().await?.error_for_status()?.json().await?;
    assert_eq!(api_history["changes"].as_array().map(Vec::len), Some(4), "{api_history}");
    let listed: Value = serde_json::from_str(stack.dlq_replayer(&["flags", "list", "--json"]).await?.trim())?;
    println!("flags: dlq-replayer flags list: {listed}");

    // Panic mode by hand, from the CLI: on, seen by `panic status`, off again.
    stack.dlq_replayer(&["panic", "enable", "qbo", "--reason", "QBO answers wrongly"]).await?;
    let status: Value = serde_json::from_str(stack.dlq_replayer(&["panic", "status", "--json"]).await?.trim())?;
    let qbo = status.as_array().into_iter().flatten().find(|p| p["integration"] == "qbo").cloned().unwrap_or_default();
    assert_eq!((qbo["on"].as_bool(), qbo["actor"].as_str()), (Some(true), Some("test-operator")), "{status}");
    stack.dlq_replayer(&["panic", "disable", "qbo", "--reason", "fixed upstream"]).await?;
    let status: Value = serde_json::from_str(stack.dlq_replayer(&["panic", "status", "--json"]).await?.trim())?;
    assert!(status.as_array().into_iter().flatten().any(|p| p["integration"] == "qbo" && p["on"] == false), "{status}");

    let dead_letters = TopicReader::new(&stack, "deadletter.projection-writer.v1").await?;
    assert!(dead_letters.next::<DeadLetter>(Duration::from_secs(2)).await?.is_none(), "nothing dead-lettered for being switched off");
    stack.stop_all().await?;
    Ok(())
}
