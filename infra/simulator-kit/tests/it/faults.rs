//! Injected faults as the API's own answers, and the ledger of what happened.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{send, spawn};

#[tokio::test]
async fn faults_answer_in_the_apis_body_and_the_ledger_records_them() {
    let (sim, client, base) = spawn().await;
    let storm = json!({"status": 429, "retryAfterSecs": 3, "method": "POST", "count": 1});
    let (status, body) = send(
        &client,
        "POST",
        format!("{base}/control/faults"),
        Some(storm),
    )
    .await;
    assert_eq!((status, body["id"].as_u64()), (201, Some(1)));
    let response = client
        .post(format!("{base}/api/things"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"toyError": 429})
    );
    let (status, _) = send(&client, "POST", format!("{base}/api/things"), None).await;
    assert_eq!(status, 201);
    let (_, faults) = send(&client, "GET", format!("{base}/control/faults"), None).await;
    assert_eq!(faults, json!([]), "a spent fault is gone");

    let (_, ledger) = send(&client, "GET", format!("{base}/control/ledger"), None).await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(ledger["lastSeq"], json!(2));
    assert_eq!(
        (entries[0]["status"].clone(), entries[0]["injected"].clone()),
        (json!(429), json!(true))
    );
    assert_eq!(entries[1]["target"], json!("thing/1"));
    assert_eq!(entries[1]["method"], json!("POST"));
    let (_, page) = send(
        &client,
        "GET",
        format!("{base}/control/ledger?after=1&limit=5"),
        None,
    )
    .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (_, stats) = send(&client, "GET", format!("{base}/control/stats"), None).await;
    assert_eq!(
        stats,
        json!({"requests": 2, "byStatus": {"201": 1, "429": 1}, "injected": 1, "created": 1})
    );
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn after_effect_loses_the_answer_but_keeps_the_target() {
    let (sim, client, base) = spawn().await;
    let lost = json!({"status": 503, "afterEffect": true, "pathContains": "/api/things"});
    send(
        &client,
        "POST",
        format!("{base}/control/faults"),
        Some(lost),
    )
    .await;
    let (status, _) = send(&client, "POST", format!("{base}/api/things"), None).await;
    assert_eq!(status, 503);
    let (_, ledger) = send(&client, "GET", format!("{base}/control/ledger"), None).await;
    assert_eq!(ledger["entries"][0]["target"], json!("thing/1"));
    let (_, stats) = send(&client, "GET", format!("{base}/control/stats"), None).await;
    assert_eq!(stats["created"], json!(1), "the effect happened");
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn held_requests_answer_504_and_latency_delays() {
    let (sim, client, base) = spawn().await;
    let hold = json!({"timeout": true, "holdSecs": 0.2, "method": "GET"});
    send(
        &client,
        "POST",
        format!("{base}/control/faults"),
        Some(hold),
    )
    .await;
    let started = Instant::now();
    let (status, body) = send(&client, "GET", format!("{base}/api/things"), None).await;
    assert_eq!((status, body), (504, json!({"toyError": 504})));
    assert!(started.elapsed() >= Duration::from_millis(200));
    send(&client, "DELETE", format!("{base}/control/faults"), None).await;
    send(
        &client,
        "POST",
        format!("{base}/control/faults"),
        Some(json!({"latencyMs": 150})),
    )
    .await;
    let started = Instant::now();
    let (status, _) = send(&client, "POST", format!("{base}/api/things"), None).await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.stop().await.unwrap();
}
