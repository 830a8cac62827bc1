use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{eventually, fault, spawn_sim};

#[tokio::test]
async fn an_outage_for_a_duration_then_recovery() {
    let t = spawn_sim().await;
    let conn = t.one_realm(5).await;
    t.control(
        "/control/faults",
        json!({"status": 503, "durationSecs": 0.5}),
        StatusCode::CREATED,
    )
    .await;
    let response = t.query(&conn, "select * from Bill").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        fault(response).await,
        ("SystemFault".into(), "10000".into())
    );
    // Token refreshes are down too.
    assert_eq!(
        t.refresh(&conn.refresh_token).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    eventually(Duration::from_secs(5), || async {
        t.query(&conn, "select * from Bill").await.status() == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_fault_inside_an_http_200() {
    let t = spawn_sim().await;
    let conn = t.one_realm(5).await;
    t.control(
        "/control/faults",
        json!({"faultIn200": true, "count": 1, "pathContains": "/query"}),
        StatusCode::CREATED,
    )
    .await;
    let response = t.query(&conn, "select * from Bill").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("QueryResponse").is_none());
    assert_eq!(body["Fault"]["type"], "SystemFault");
    assert_eq!(
        t.query(&conn, "select * from Bill").await.status(),
        StatusCode::OK
    );
    let ledger = t.control_get("/control/ledger").await;
    let entry = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["injected"] == true)
        .unwrap()
        .clone();
    assert_eq!(
        (entry["status"].as_u64(), entry["faultCode"].as_str()),
        (Some(200), Some("10000"))
    );
}

#[tokio::test]
async fn a_429_storm_on_one_realm() {
    let t = spawn_sim().await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 5})).await;
    let a = t.connect(&realms[0].0, &realms[0].1).await;
    let b = t.connect(&realms[1].0, &realms[1].1).await;
    let storm = json!({"status": 429, "realmId": a.realm_id, "count": 3});
    t.control("/control/faults", storm, StatusCode::CREATED)
        .await;
    for _ in 0..3 {
        let response = t.query(&a, "select * from Bill").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(fault(response).await, ("SERVICE".into(), "3001".into()));
        assert_eq!(
            t.query(&b, "select * from Bill").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        t.query(&a, "select * from Bill").await.status(),
        StatusCode::OK
    );
    assert!(
        t.control_get("/control/faults")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["realms"][&a.realm_id]["injected"], 3);
    assert_eq!(
        stats["realms"][&a.realm_id]["throttled"], 0,
        "injected, not the limiter"
    );
}

#[tokio::test]
async fn every_call_is_in_the_ledger() {
    let t = spawn_sim().await;
    let conn = t.one_realm(5).await;
    t.query(&conn, "select * from Bill").await;
    t.post(&conn, "/bill?requestid=abc", &json!({"Line": []}))
        .await;
    t.get(&conn, "/bill/999").await;
    let ledger = t.control_get("/control/ledger").await;
    let entries = ledger["entries"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("POST", "bearer", 200),
        ("GET", "query", 200),
        ("POST", "bill", 200),
        ("GET", "999", 400),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
        .collect();
    assert_eq!(summary, expected);
    assert!(
        entries
            .iter()
            .all(|e| e["realmId"] == conn.realm_id.as_str())
    );
    assert_eq!(entries[2]["requestId"], "abc");
    assert_eq!(entries[3]["faultCode"], "610");
    assert!(
        entries[1]["query"]
            .as_str()
            .unwrap()
            .contains("minorversion=75")
    );
    let after = entries[1]["seq"].as_u64().unwrap();
    let tail = t
        .control_get(&format!("/control/ledger?after={after}"))
        .await;
    assert_eq!(tail["entries"].as_array().unwrap().len(), 2);
}
