use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{event_body, eventually, graph_error, spawn_sim, two_staff};

fn retry_after(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_429_storm_on_one_mailbox_with_and_without_retry_after() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    t.fault(json!({"status": 429, "userId": "ann", "count": 3, "retryAfterSecs": 7}))
        .await;
    for _ in 0..3 {
        let response = t
            .api(&token, Method::GET, "/v1.0/users/ann/events", None)
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&response).as_deref(), Some("7"));
        assert_eq!(graph_error(response).await, "TooManyRequests");
        let bob = t
            .api(&token, Method::GET, "/v1.0/users/bob/events", None)
            .await;
        assert_eq!(bob.status(), StatusCode::OK);
    }
    // By mail address too: the same mailbox.
    let path = "/v1.0/users/ann@contoso.example/events";
    assert_eq!(
        t.api(&token, Method::GET, path, None).await.status(),
        StatusCode::OK
    );

    t.fault(json!({"status": 429, "pathContains": "/events", "method": "POST", "count": 1}))
        .await;
    let response = t
        .create_event(&token, "bob", &event_body("10:00", "11:00", None))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&response), None);

    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["users"]["ann"]["injected"], 3);
    assert_eq!(
        stats["users"]["ann"]["throttled"], 0,
        "injected, not the limiter"
    );
    assert_eq!(stats["calendars"]["bob"]["eventsCreated"], 0);
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
    let token = t.token().await;
    t.seed(two_staff()).await;
    t.fault(json!({"status": 503, "durationSecs": 0.5, "retryAfterSecs": 1}))
        .await;
    let response = t
        .api(&token, Method::GET, "/v1.0/users/ann/events", None)
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&response).as_deref(), Some("1"));
    assert_eq!(graph_error(response).await, "serviceNotAvailable");
    let scope = "https://graph.microsoft.com/.default";
    let token_call = t.token_with(&t.tenant, &t.client_secret, scope).await;
    assert_eq!(
        token_call.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "tokens are down too"
    );
    eventually(Duration::from_secs(5), || async {
        t.api(&token, Method::GET, "/v1.0/users/ann/events", None)
            .await
            .status()
            == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_lost_response_then_a_retry_with_the_same_transaction_id() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    // The create happens, then the answer never comes: the client times out.
    t.fault(json!({"timeout": true, "holdSecs": 30, "afterEffect": true,
                   "pathContains": "/events", "method": "POST", "count": 1}))
        .await;
    let body = event_body("10:00", "11:00", Some("retry-me"));
    let impatient = t
        .http
        .post(t.url("/v1.0/users/ann/events"))
        .bearer_auth(&token)
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    let retry = t.create_event(&token, "ann", &body).await;
    assert_eq!(retry.status(), StatusCode::CREATED);

    let stats = t.control_get("/control/stats").await;
    let ann = &stats["calendars"]["ann"];
    assert_eq!(ann["eventsCreated"], 1, "no double booking");
    assert_eq!(
        ann["transactions"]["retry-me"]["eventIds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The abandoned call is in the ledger too, as a client-closed 499.
    eventually(Duration::from_secs(5), || async {
        let ledger = t.control_get("/control/ledger?userId=ann").await;
        let statuses: Vec<Value> = ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["status"].clone())
            .collect();
        statuses.contains(&json!(499)) && statuses.contains(&json!(201))
    })
    .await;
}

#[tokio::test]
async fn latency_and_a_held_request_that_answers_504() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    t.fault(json!({"latencyMs": 300, "count": 1})).await;
    let started = std::time::Instant::now();
    let response = t
        .api(&token, Method::GET, "/v1.0/users/ann/events", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    t.fault(json!({"timeout": true, "holdSecs": 0.3, "count": 1}))
        .await;
    let response = t
        .api(&token, Method::GET, "/v1.0/users/ann/events", None)
        .await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(graph_error(response).await, "timeout");

    for (spec, reason) in [
        (json!({"status": 404}), "status must be one of"),
        (
            json!({"status": 503, "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"retryAfterSecs": 2, "latencyMs": 5}),
            "retryAfterSecs needs a status",
        ),
        (json!({"status": "503"}), "invalid JSON body"),
    ] {
        let bad = t
            .http
            .post(t.url("/control/faults"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{spec}");
        let body: serde_json::Value = bad.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{spec}: {error}");
    }
}
