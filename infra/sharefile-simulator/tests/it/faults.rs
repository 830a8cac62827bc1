use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{reason, spawn_sim};

#[tokio::test]
async fn upload_error_faults_answer_error_in_a_200_and_store_nothing() {
    let t = spawn_sim().await;
    let folder = t.by_path("/Clients").await;
    let folder_id = folder["Id"].as_str().unwrap();
    t.fault(json!({"uploadError": true, "count": 2, "message": "Storage zone unavailable"}))
        .await;
    let spec = t.upload2(folder_id, "a.pdf", 3, false).await;
    let chunk_uri = spec["ChunkUri"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(
            t.chunk(chunk_uri, b"abc").await,
            (StatusCode::OK, "ERROR: Storage zone unavailable".to_owned())
        );
    }
    assert_eq!(t.control_get("/control/stats").await["uploadsStored"], 0);
    assert_eq!(t.chunk(chunk_uri, b"abc").await.1, "OK");
    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        (
            stats["uploadsStored"].as_u64(),
            stats["uploadErrors"].as_u64(),
            stats["injected"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    let ledger = t.control_get("/control/ledger").await;
    let flagged = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["uploadError"] == true && e["injected"] == true)
        .count();
    assert_eq!(flagged, 2);
}

#[tokio::test]
async fn throttling_with_and_without_retry_after() {
    let t = spawn_sim().await;
    t.fault(json!({"status": 429, "retryAfterSecs": 3, "count": 1, "pathContains": "/sf/v3/"}))
        .await;
    let first = t.get("Items").await;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.headers()["retry-after"], "3");
    assert_eq!(reason(first).await, "Throttled");
    t.fault(json!({"status": 429, "count": 1, "method": "GET"}))
        .await;
    let second = t.get("Items").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(t.get("Items").await.status(), StatusCode::OK);
    assert!(
        t.control_get("/control/faults")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_outage_for_a_duration_then_recovery() {
    let t = spawn_sim().await;
    t.fault(json!({"status": 503, "durationSecs": 0.5})).await;
    let response = t.get("Items").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason(response).await, "ServiceUnavailable");
    // Logins are down too.
    let login = t
        .password_grant(crate::helpers::USERNAME, crate::helpers::PASSWORD)
        .await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.get("Items").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the outage did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn latency_and_held_requests() {
    let t = spawn_sim().await;
    t.fault(json!({"latencyMs": 300, "count": 1})).await;
    let started = Instant::now();
    assert_eq!(t.get("Items").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A held upload whose effect happens: the client times out, yet the file is stored once.
    let folder = t.by_path("/Clients").await;
    let spec = t
        .upload2(folder["Id"].as_str().unwrap(), "held.pdf", 3, false)
        .await;
    t.fault(
        json!({"timeout": true, "afterEffect": true, "pathContains": "/upload.aspx", "count": 1}),
    )
    .await;
    let result = t
        .http
        .post(spec["ChunkUri"].as_str().unwrap())
        .body(b"abc".to_vec())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["uploadsByPath"], json!({"/Clients/held.pdf": 1}));

    // A short hold answers 504.
    t.fault(json!({"timeout": true, "holdSecs": 0.2, "count": 1}))
        .await;
    let response = t.get("Items").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let faults: Value = t.control_get("/control/faults").await;
    assert!(faults.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn probability_uses_the_seeded_rng_and_control_is_never_faulted() {
    let t = spawn_sim().await;
    t.fault(json!({"status": 500, "probability": 0.5})).await;
    let mut failures = 0;
    for _ in 0..40 {
        if t.get("Items").await.status() == StatusCode::INTERNAL_SERVER_ERROR {
            failures += 1;
        }
    }
    assert!((5..=35).contains(&failures), "{failures} of 40");
    assert_eq!(t.control_get("/control/health").await["status"], "ok");
    let bad = t
        .http
        .post(t.url("/control/faults"))
        .json(&json!({"status": 500, "pathContains": "/control"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_5xx_after_the_effect_is_a_lost_response() {
    let t = spawn_sim().await;
    let folder = t.by_path("/Clients").await;
    let spec = t
        .upload2(folder["Id"].as_str().unwrap(), "lost.pdf", 3, false)
        .await;
    t.fault(
        json!({"status": 502, "afterEffect": true, "pathContains": "/upload.aspx", "count": 1}),
    )
    .await;
    let (status, _) = t.chunk(spec["ChunkUri"].as_str().unwrap(), b"abc").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    // Stored anyway: a client must look the name up before uploading again.
    assert_eq!(t.by_path("/Clients/lost.pdf").await["FileSizeBytes"], 3);
    let ledger = t.control_get("/control/ledger").await;
    let last = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["path"] == "/upload.aspx")
        .unwrap()
        .clone();
    assert_eq!(
        (
            last["status"].as_u64(),
            last["target"].as_str(),
            last["injected"].as_bool()
        ),
        (Some(502), Some("/Clients/lost.pdf"), Some(true))
    );
}
