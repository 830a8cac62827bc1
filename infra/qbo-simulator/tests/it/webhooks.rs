use std::{collections::HashSet, time::Duration};

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Receiver, TestSim, VERIFIER, eventually, spawn_sim};

/// Verifies `intuit-signature` independently of the simulator's own code.
fn signature_ok(signature: &str, body: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, VERIFIER.as_bytes());
    STANDARD
        .decode(signature)
        .is_ok_and(|tag| hmac::verify(&key, body, &tag).is_ok())
}

async fn configure(t: &TestSim, settings: Value) {
    let response = t
        .http
        .put(t.url("/control/webhooks"))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn settled(t: &TestSim) {
    eventually(Duration::from_secs(10), || async {
        t.control_get("/control/webhooks").await["pending"] == 0
    })
    .await;
}

#[tokio::test]
async fn legacy_notifications_are_signed_and_grouped_by_realm() {
    let t = spawn_sim().await;
    let receiver = Receiver::start().await;
    configure(
        &t,
        json!({"url": receiver.url, "format": "legacy", "batchDelayMs": 100}),
    )
    .await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 20})).await;
    t.control(
        "/control/changes",
        json!({"creates": 2, "updates": 1, "entity": "Invoice", "seed": 1}),
        StatusCode::OK,
    )
    .await;
    settled(&t).await;

    let received = receiver.received();
    assert_eq!(received.len(), 1, "one batch");
    let delivery = &received[0];
    let signature = delivery.headers["intuit-signature"].to_str().unwrap();
    assert!(signature_ok(signature, &delivery.body));
    assert!(!signature_ok(signature, b"{}"));
    assert_eq!(delivery.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    let notifications = body["eventNotifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 2);
    for (notification, (realm_id, _)) in notifications.iter().zip(&realms) {
        assert_eq!(notification["realmId"], realm_id.as_str());
        let entities = notification["dataChangeEvent"]["entities"]
            .as_array()
            .unwrap();
        assert_eq!(entities.len(), 3);
        assert_eq!(entities[0]["name"], "Invoice");
        assert_eq!(entities[0]["operation"], "Create");
        assert_eq!(entities[2]["operation"], "Update");
        let last_updated = entities[0]["lastUpdated"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_str(last_updated, "%Y-%m-%dT%H:%M:%S%z").is_ok(),
            "{last_updated}"
        );
    }
}

#[tokio::test]
async fn cloud_events_for_api_writes_and_control_changes() {
    let t = spawn_sim().await;
    let receiver = Receiver::start().await;
    configure(
        &t,
        json!({"url": receiver.url, "format": "cloudevents", "batchDelayMs": 100}),
    )
    .await;
    let conn = t.one_realm(10).await;
    let bill = json!({"VendorRef": {"value": "1"}, "Line": [{"Amount": 10, "DetailType": "AccountBasedExpenseLineDetail"}]});
    let created: Value = t
        .post(&conn, "/bill?requestid=w1", &bill)
        .await
        .json()
        .await
        .unwrap();
    t.post(&conn, "/bill?requestid=w1", &bill).await; // a replay: no second change
    let path = format!("/control/realms/{}/changes", conn.realm_id);
    t.control(
        &path,
        json!({"deletes": 1, "entity": "Bill", "seed": 2}),
        StatusCode::OK,
    )
    .await;
    settled(&t).await;

    let events: Vec<Value> = receiver
        .received()
        .iter()
        .flat_map(|d| {
            assert!(signature_ok(
                d.headers["intuit-signature"].to_str().unwrap(),
                &d.body
            ));
            assert_eq!(d.headers["content-type"], "application/cloudevents+json");
            serde_json::from_slice::<Vec<Value>>(&d.body).unwrap()
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "qbo.bill.created.v1");
    assert_eq!(events[0]["specversion"], "1.0");
    assert_eq!(events[0]["intuitentityid"], created["Bill"]["Id"]);
    assert_eq!(events[0]["intuitaccountid"], conn.realm_id.as_str());
    assert_eq!(events[1]["type"], "qbo.bill.deleted.v1");
    assert_ne!(events[0]["id"], events[1]["id"]);
}

#[tokio::test]
async fn drops_and_repeats_are_injected_and_logged() {
    let t = spawn_sim().await;
    let receiver = Receiver::start().await;
    let settings = json!({"url": receiver.url, "format": "mixed", "maxEvents": 1, "batchDelayMs": 1,
                          "dropPercent": 30, "duplicatePercent": 30, "seed": 7});
    configure(&t, settings).await;
    let conn = t.one_realm(50).await;
    let path = format!("/control/realms/{}/changes", conn.realm_id);
    t.control(&path, json!({"updates": 40, "seed": 1}), StatusCode::OK)
        .await;
    settled(&t).await;

    let log = t.control_get("/control/webhooks/deliveries").await;
    let deliveries = log["deliveries"].as_array().unwrap();
    let dropped = deliveries
        .iter()
        .filter(|d| d["outcome"] == "dropped")
        .count();
    let repeats = deliveries.iter().filter(|d| d["repeat"] == true).count();
    let sent = deliveries
        .iter()
        .filter(|d| d["outcome"] == "delivered")
        .count();
    assert!(
        dropped > 0 && repeats > 0,
        "dropped {dropped}, repeated {repeats}"
    );
    assert_eq!(
        dropped + sent - repeats,
        40,
        "every change is either dropped or sent"
    );
    assert_eq!(receiver.received().len(), sent);
    let formats: HashSet<&str> = deliveries
        .iter()
        .map(|d| d["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats.len(), 2, "mixed sends both formats");
    // A repeat is the same body, CloudEvent ids included, so receivers can deduplicate.
    let bodies: Vec<_> = receiver.received().into_iter().map(|r| r.body).collect();
    let distinct: HashSet<_> = bodies.iter().collect();
    assert_eq!(distinct.len(), sent - repeats);
    let counts = t.control_get("/control/webhooks").await["counts"].clone();
    assert_eq!(counts["dropped"], dropped);
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let t = spawn_sim().await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500, 503]);
    configure(
        &t,
        json!({"url": receiver.url, "retryDelayMs": 10, "maxAttempts": 3, "batchDelayMs": 1}),
    )
    .await;
    let conn = t.one_realm(5).await;
    let path = format!("/control/realms/{}/changes", conn.realm_id);
    t.control(&path, json!({"creates": 1}), StatusCode::OK)
        .await;
    settled(&t).await;
    let log = t.control_get("/control/webhooks/deliveries").await;
    let delivery = &log["deliveries"][0];
    assert_eq!(
        (delivery["outcome"].as_str(), delivery["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );
    assert_eq!(receiver.received().len(), 3);
}
