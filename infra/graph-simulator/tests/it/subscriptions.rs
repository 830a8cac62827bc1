use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Receiver, TestSim, Validation, event_body, eventually, graph_error, spawn_sim, two_staff,
};

fn in_minutes(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

async fn subscribe(t: &TestSim, token: &str, url: &str, expires: &str) -> Response {
    let body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": "users/ann@contoso.example/events",
        "expirationDateTime": expires,
        "clientState": "secret-state",
    });
    t.api(token, Method::POST, "/v1.0/subscriptions", Some(&body))
        .await
}

async fn settled(t: &TestSim) {
    eventually(Duration::from_secs(10), || async {
        t.control_get("/control/notifications").await["pending"] == 0
    })
    .await;
}

#[tokio::test]
async fn the_handshake_then_a_notification_per_change() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let receiver = Receiver::start(Validation::Echo).await;
    let response = subscribe(&t, &token, &receiver.url, &in_minutes(60)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let subscription: Value = response.json().await.unwrap();
    let subscription_id = subscription["id"].as_str().unwrap().to_owned();
    assert_eq!(subscription["clientState"], "secret-state");
    assert_eq!(subscription["applicationId"], t.client_id.as_str());

    let log = t.control_get("/control/notifications").await;
    let validation = &log["records"][0];
    assert_eq!(validation["kind"], "validation");
    assert_eq!(validation["outcome"], "delivered");
    assert_eq!(validation["status"], 200);
    assert!(validation["latencyMs"].is_u64());

    let body = event_body("10:00", "11:00", Some("n-1"));
    let created: Value = t
        .create_event(&token, "ann", &body)
        .await
        .json()
        .await
        .unwrap();
    t.create_event(&token, "ann", &body).await; // a replay: no notification
    t.create_event(&token, "bob", &body).await; // not subscribed
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1.0/users/ann/events/{id}");
    let patch = json!({"subject": "Moved"});
    t.api(&token, Method::PATCH, &path, Some(&patch)).await;
    t.api(
        &token,
        Method::POST,
        &format!("{path}/cancel"),
        Some(&json!({"Comment": "x"})),
    )
    .await;
    t.api(&token, Method::DELETE, &path, None).await;
    settled(&t).await;

    let received = receiver.notifications();
    let mut changes: Vec<&str> = received
        .iter()
        .map(|n| n["changeType"].as_str().unwrap())
        .collect();
    changes.sort_unstable();
    assert_eq!(changes, ["created", "deleted", "updated", "updated"]);
    for notification in &received {
        assert_eq!(notification["subscriptionId"], subscription_id.as_str());
        assert_eq!(notification["clientState"], "secret-state");
        assert_eq!(notification["tenantId"], t.tenant.as_str());
        assert_eq!(notification["resource"], format!("Users/ann/Events/{id}"));
        assert_eq!(notification["resourceData"]["id"], id);
        assert_eq!(
            notification["resourceData"]["@odata.type"],
            "#Microsoft.Graph.Event"
        );
        assert!(notification["subscriptionExpirationDateTime"].is_string());
    }
    let log = t.control_get("/control/notifications").await;
    assert_eq!(log["counts"]["delivered"], 4);
    let posted = &log["records"][1];
    assert_eq!(
        (posted["kind"].clone(), posted["status"].clone()),
        (json!("notification"), json!(202))
    );
    assert!(posted["latencyMs"].is_u64());
}

#[tokio::test]
async fn a_failed_handshake_fails_the_subscription() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    for validation in [Validation::WrongBody, Validation::WrongContentType] {
        let receiver = Receiver::start(validation).await;
        let response = subscribe(&t, &token, &receiver.url, &in_minutes(60)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{validation:?}");
        assert_eq!(graph_error(response).await, "ValidationError");
    }
    // Too slow: the handshake timeout is 10 s in Graph, 200 ms here.
    t.control_put(
        "/control/notifications/settings",
        json!({"validationTimeoutMs": 200}),
    )
    .await;
    let slow = Receiver::start(Validation::Echo).await;
    slow.set_delay(Duration::from_millis(600));
    let response = subscribe(&t, &token, &slow.url, &in_minutes(60)).await;
    assert_eq!(graph_error(response).await, "ValidationError");
    let closed = "http://127.0.0.1:9/nobody-listens";
    let response = subscribe(&t, &token, closed, &in_minutes(60)).await;
    assert_eq!(graph_error(response).await, "ValidationError");

    let subscriptions = t.control_get("/control/subscriptions").await;
    assert!(
        subscriptions["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let counts = t.control_get("/control/notifications").await["counts"].clone();
    assert_eq!(
        (
            counts["validations"].clone(),
            counts["validationsFailed"].clone()
        ),
        (json!(4), json!(4))
    );
}

#[tokio::test]
async fn renew_delete_and_expiry() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let receiver = Receiver::start(Validation::Echo).await;
    let too_long = subscribe(&t, &token, &receiver.url, &in_minutes(60 * 24 * 30)).await;
    assert_eq!(graph_error(too_long).await, "InvalidRequest");
    let created: Value = subscribe(&t, &token, &receiver.url, &in_minutes(60))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1.0/subscriptions/{}", created["id"].as_str().unwrap());
    let renewal = json!({"expirationDateTime": in_minutes(120)});
    let response = t.api(&token, Method::PATCH, &path, Some(&renewal)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed: Value = response.json().await.unwrap();
    assert_ne!(renewed["expirationDateTime"], created["expirationDateTime"]);
    let listed: Value = t
        .api(&token, Method::GET, "/v1.0/subscriptions", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.api(&token, Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let gone = t.api(&token, Method::GET, &path, None).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // One that expires: no notifications once it has.
    let soon = (Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let expiring: Value = subscribe(&t, &token, &receiver.url, &soon)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1.0/subscriptions/{}", expiring["id"].as_str().unwrap());
    eventually(Duration::from_secs(5), || async {
        t.api(&token, Method::GET, &path, None).await.status() == StatusCode::NOT_FOUND
    })
    .await;
    t.create_event(&token, "ann", &event_body("10:00", "11:00", None))
        .await;
    settled(&t).await;
    assert!(receiver.notifications().is_empty());
    let subscriptions = t.control_get("/control/subscriptions").await;
    assert_eq!(subscriptions["subscriptions"][0]["expired"], true);
}

#[tokio::test]
async fn dropped_repeated_and_unanswered_notifications() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let receiver = Receiver::start(Validation::Echo).await;
    subscribe(&t, &token, &receiver.url, &in_minutes(60)).await;
    t.control_put(
        "/control/notifications/settings",
        json!({"dropNext": 1, "duplicateNext": 1}),
    )
    .await;
    let first: Value = t
        .create_event(&token, "ann", &event_body("10:00", "11:00", None))
        .await
        .json()
        .await
        .unwrap();
    settled(&t).await;
    let second: Value = t
        .create_event(&token, "ann", &event_body("12:00", "13:00", None))
        .await
        .json()
        .await
        .unwrap();
    settled(&t).await;
    let ids: Vec<Value> = receiver
        .notifications()
        .iter()
        .map(|n| n["resourceData"]["id"].clone())
        .collect();
    assert_eq!(ids, [second["id"].clone(), second["id"].clone()]);
    assert!(!ids.contains(&first["id"]));
    let counts = t.control_get("/control/notifications").await["counts"].clone();
    assert_eq!(
        (counts["dropped"].clone(), counts["duplicated"].clone()),
        (json!(1), json!(1))
    );

    // A receiver slower than the 3 s (here 200 ms) answer window: every attempt times out.
    t.control_put(
        "/control/notifications/settings",
        json!({"timeoutMs": 200, "maxAttempts": 2, "retryDelayMs": 10}),
    )
    .await;
    receiver.set_delay(Duration::from_millis(500));
    t.create_event(&token, "ann", &event_body("14:00", "15:00", None))
        .await;
    settled(&t).await;
    let log = t.control_get("/control/notifications").await;
    let timed_out: Vec<&Value> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "timedOut")
        .collect();
    assert_eq!(timed_out.len(), 2);
    assert_eq!(timed_out[1]["attempt"], 2);
    assert!(timed_out[0]["latencyMs"].as_u64().unwrap() >= 200);
    assert_eq!(log["counts"]["abandoned"], 1);
}
