use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_sim, two_staff};

#[tokio::test]
async fn the_fifth_concurrent_request_to_a_mailbox_is_throttled() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    // Slow answers hold their slots, as a slow Exchange does.
    t.fault(json!({"latencyMs": 500, "userId": "ann"})).await;
    let path = "/v1.0/users/ann/events";
    let calls = (0..5).map(|_| t.api(&token, Method::GET, path, None));
    let responses = futures::future::join_all(calls).await;
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 4);
    let throttled = responses
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert_eq!(throttled.headers()["retry-after"], "1");
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MailboxConcurrency")
    );
    let bob = t
        .api(&token, Method::GET, "/v1.0/users/bob/events", None)
        .await;
    assert_eq!(bob.status(), StatusCode::OK, "other mailboxes unaffected");

    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["users"]["ann"]["throttled"], 1);
    assert_eq!(stats["users"]["ann"]["byStatus"]["429"], 1);
}
