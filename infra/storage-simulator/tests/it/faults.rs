use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BUCKET, gcs_error, spawn_sim};

#[tokio::test]
async fn rate_limits_on_uploads_with_and_without_retry_after() {
    let t = spawn_sim().await;
    t.fault(json!({"status": 429, "retryAfterSecs": 2, "method": "POST", "count": 1}))
        .await;
    let first = t.upload("a.jpg", b"x", "").await;
    assert_eq!(first.headers()["retry-after"], "2");
    assert_eq!(gcs_error(first).await, (429, "rateLimitExceeded".into()));
    t.fault(json!({"status": 429, "pathContains": "/upload/", "count": 1}))
        .await;
    assert_eq!(
        t.get_object("a.jpg", "").await.status(),
        StatusCode::NOT_FOUND,
        "reads are not faulted"
    );
    let second = t.upload("a.jpg", b"x", "").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(t.upload("a.jpg", b"x", "").await.status(), StatusCode::OK);
    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        (stats["uploads"].as_u64(), stats["injected"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(stats["byStatus"]["429"], 2);
}

#[tokio::test]
async fn an_outage_for_a_duration_then_recovery() {
    let t = spawn_sim().await;
    t.fault(json!({"status": 503, "durationSecs": 0.5})).await;
    let down = t.upload("a.jpg", b"x", "").await;
    assert_eq!(gcs_error(down).await, (503, "backendError".into()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.upload("a.jpg", b"x", "").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the outage did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_lost_response_then_a_safe_retry() {
    let t = spawn_sim().await;
    t.fault(json!({"timeout": true, "afterEffect": true, "method": "POST", "count": 1}))
        .await;
    let url = t.url(&format!(
        "/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=r.jpg&ifGenerationMatch=0"
    ));
    let lost = t
        .http
        .post(&url)
        .body("x")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(lost.is_err_and(|e| e.is_timeout()));
    // The retry is refused by the precondition: the object exists, stored once.
    let retry = t.http.post(&url).body("x").send().await.unwrap();
    assert_eq!(retry.status(), StatusCode::PRECONDITION_FAILED);
    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        stats["uploadsByObject"],
        json!({format!("{BUCKET}/r.jpg"): 1})
    );
}

#[tokio::test]
async fn latency_holds_and_the_ledger() {
    let t = spawn_sim().await;
    t.fault(json!({"latencyMs": 250, "count": 1})).await;
    let started = Instant::now();
    assert_eq!(t.upload("l.jpg", b"x", "").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
    t.fault(json!({"timeout": true, "holdSecs": 0.2, "method": "GET", "count": 1}))
        .await;
    assert_eq!(
        gcs_error(t.get_object("l.jpg", "").await).await,
        (504, "gatewayTimeout".into())
    );
    assert!(
        t.control_get("/control/faults")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );

    let ledger = t.control_get("/control/ledger").await;
    let entries = ledger["entries"].as_array().unwrap();
    let summary: Vec<(&str, u64, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
                e["injected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [("POST", 200, true), ("GET", 504, true)]);
    assert_eq!(entries[0]["target"], format!("{BUCKET}/l.jpg"));
    assert_eq!(entries[1]["reason"], "gatewayTimeout");
    let after = entries[0]["seq"].as_u64().unwrap();
    let tail: Value = t
        .control_get(&format!("/control/ledger?after={after}"))
        .await;
    assert_eq!(tail["entries"].as_array().unwrap().len(), 1);
}
