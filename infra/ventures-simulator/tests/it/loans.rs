use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_sim};

#[tokio::test]
async fn get_loan_and_not_found() {
    let t = spawn_sim().await;
    let created = t.create_loan("L-1").await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["status"], "Prospect");
    assert_eq!(created["loanType"], "7A");
    assert_eq!(created["externalId"], "app-L-1");
    assert!(created["amounts"]["approved"].is_null());

    let loan: Value = t.get("/api/v4/loans/L-1").await.json().await.unwrap();
    assert_eq!(loan, created);

    let response = t.get("/api/v4/loans/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "NOT_FOUND");
}

#[tokio::test]
async fn listing_pages_by_loan_id() {
    let t = spawn_sim().await;
    for id in ["L-3", "L-1", "L-5", "L-2", "L-4"] {
        t.create_loan(id).await;
    }
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v4/loans?limit=2&cursor={c}"),
            None => "/api/v4/loans?limit=2".to_owned(),
        };
        let page: Value = t.get(&path).await.json().await.unwrap();
        pages += 1;
        assert!(page["feedCursor"].is_string());
        ids.extend(
            page["loans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["loanId"].as_str().unwrap().to_owned()),
        );
        if !page["hasMore"].as_bool().unwrap() {
            assert!(page["nextCursor"].is_null());
            break;
        }
        cursor = Some(page["nextCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, ["L-1", "L-2", "L-3", "L-4", "L-5"]);
    assert_eq!(
        t.get("/api/v4/loans?limit=501").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn status_update_checks_version_and_transition() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;

    let response = t.put_status("L-1", "k1", "Open", 7).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await, "CONFLICT");

    let response = t.put_status("L-1", "k2", "Funded", 1).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(response).await, "VALIDATION");

    let response = t.put_status("L-1", "k3", "Closed", 1).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = t
        .api(reqwest::Method::PUT, "/api/v4/loans/L-1/status")
        .json(&json!({"status": "Open", "expectedVersion": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "VALIDATION");

    let response = t.put_status("L-1", "k4", "Open", 1).await;
    assert_eq!(response.status(), StatusCode::OK);
    let loan: Value = response.json().await.unwrap();
    assert_eq!(
        (loan["status"].as_str(), loan["version"].as_u64()),
        (Some("Open"), Some(2))
    );

    // A terminal status (set through the control API, which ignores the rules) refuses everything.
    t.control(
        "/control/loans/L-1/status",
        json!({"status": "Denied"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        t.put_status("L-1", "k5", "Open", 3).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn repeated_idempotency_key_has_exactly_one_effect() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;

    let first = t.put_status("L-1", "same-key", "Open", 1).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = t.put_status("L-1", "same-key", "Open", 1).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let loan: Value = t.get("/api/v4/loans/L-1").await.json().await.unwrap();
    assert_eq!(loan["version"], 2);
    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["changes"], 2, "created + one status change");

    let other_body = t.put_status("L-1", "same-key", "Withdrawn", 2).await;
    assert_eq!(other_body.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let effects = t.control_get("/control/effects").await;
    let effects = effects.as_array().unwrap();
    let summary: Vec<(u64, bool)> = effects
        .iter()
        .map(|e| {
            (
                e["status"].as_u64().unwrap(),
                e["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(200, false), (200, true), (422, false)]);
    assert_eq!(effects[0]["idempotencyKey"], "same-key");
    assert_eq!(effects[0]["method"], "PUT");
    assert_eq!(effects[0]["path"], "/api/v4/loans/L-1/status");
}

#[tokio::test]
async fn reset_clears_state_but_keeps_tokens() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;
    t.control("/control/reset", json!({}), StatusCode::NO_CONTENT)
        .await;
    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        (stats["loans"].as_u64(), stats["changes"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        t.get("/api/v4/loans/L-1").await.status(),
        StatusCode::NOT_FOUND
    );
}
