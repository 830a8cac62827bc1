use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, eventually, spawn_sim};

#[tokio::test]
async fn rate_limit_with_retry_after() {
    let t = spawn_sim().await;
    t.control(
        "/control/faults",
        json!({"status": 429, "retryAfterSecs": 7, "count": 1}),
        StatusCode::CREATED,
    )
    .await;

    let response = t.get("/api/v4/loans").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(error_code(response).await, "RATE_LIMITED");
    assert_eq!(t.get("/api/v4/loans").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn outage_for_a_duration_then_recovery() {
    let t = spawn_sim().await;
    let started = Instant::now();
    t.control(
        "/control/faults",
        json!({"status": 503, "durationSecs": 0.5}),
        StatusCode::CREATED,
    )
    .await;

    let response = t.get("/api/v4/loans").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "UNAVAILABLE");
    // Token requests are /api/v4 too; the control API never is.
    let creds =
        json!({"client": "test-client", "username": "test-user", "password": "test-password"});
    let token = t
        .http
        .post(t.url("/api/v4/token"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        t.control_get("/control/faults")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    eventually(Duration::from_secs(5), || async {
        t.get("/api/v4/loans").await.status() == StatusCode::OK
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert!(
        t.control_get("/control/faults")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn count_limited_fault_on_a_path_prefix() {
    let t = spawn_sim().await;
    let body = json!({"status": 500, "count": 2, "pathPrefix": "/api/v4/changes"});
    t.control("/control/faults", body, StatusCode::CREATED)
        .await;

    assert_eq!(t.get("/api/v4/loans").await.status(), StatusCode::OK);
    assert_eq!(
        t.get("/api/v4/changes").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        t.get("/api/v4/changes").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(t.get("/api/v4/changes").await.status(), StatusCode::OK);

    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["faultsServed"], 2);
    assert_eq!(stats["requests"]["byRoute"]["GET /api/v4/changes"], 3);
    assert_eq!(stats["requests"]["byStatus"]["500"], 2);
}

#[tokio::test]
async fn latency_fault_delays_and_faulted_writes_are_logged() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;
    t.control(
        "/control/faults",
        json!({"latencyMs": 300, "status": 503, "count": 1}),
        StatusCode::CREATED,
    )
    .await;

    let started = Instant::now();
    assert_eq!(
        t.put_status("L-1", "k", "Open", 1).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The retry with the same key is a first attempt as far as the loan is concerned.
    assert_eq!(
        t.put_status("L-1", "k", "Open", 1).await.status(),
        StatusCode::OK
    );

    let effects: Value = t.control_get("/control/effects").await;
    let statuses: Vec<u64> = effects
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 200]);
}

#[tokio::test]
async fn faults_can_be_listed_and_cleared_and_are_validated() {
    let t = spawn_sim().await;
    t.control(
        "/control/faults",
        json!({"status": 502}),
        StatusCode::CREATED,
    )
    .await;
    t.control(
        "/control/faults",
        json!({"status": 404}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        t.get("/api/v4/loans").await.status(),
        StatusCode::BAD_GATEWAY
    );
    let cleared = t
        .http
        .delete(t.url("/control/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v4/loans").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_lost_response_after_the_change_is_answered_from_the_idempotency_store() {
    let t = spawn_sim().await;
    t.create_loan("L-lost").await;
    t.control(
        "/control/faults",
        json!({"status": 503, "count": 1, "afterEffect": true, "pathPrefix": "/api/v4/loans/L-lost/status"}),
        StatusCode::CREATED,
    )
    .await;

    // The change is made, but the caller gets a 503 …
    let first = t.put_status("L-lost", "key-1", "Open", 1).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let loan: Value = t.get("/api/v4/loans/L-lost").await.json().await.unwrap();
    assert_eq!(
        (loan["status"].as_str(), loan["version"].as_i64()),
        (Some("Open"), Some(2))
    );
    // … and its retry with the same key gets the change's answer, without a second change.
    let retry = t.put_status("L-lost", "key-1", "Open", 1).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let effects = t.control_get("/control/effects").await;
    let statuses: Vec<(i64, bool)> = effects
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_i64().unwrap(),
                e["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![(503, false), (200, true)]);
}
