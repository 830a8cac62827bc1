use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, eventually, spawn_sim, spawn_sim_with};

#[tokio::test]
async fn token_is_issued_for_good_credentials_only() {
    let t = spawn_sim().await;
    let good =
        json!({"client": "test-client", "username": "test-user", "password": "test-password"});
    let response = t
        .http
        .post(t.url("/api/v4/token"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expiresIn"], 3600);
    assert!(body["token"].as_str().is_some_and(|t| t.len() >= 32));

    let bad = json!({"client": "test-client", "username": "test-user", "password": "nope"});
    let response = t
        .http
        .post(t.url("/api/v4/token"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
}

#[tokio::test]
async fn api_routes_need_a_known_bearer_token() {
    let t = spawn_sim().await;
    let response = t.http.get(t.url("/api/v4/loans")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");

    let response = t
        .http
        .get(t.url("/api/v4/loans"))
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(t.get("/api/v4/loans").await.status(), StatusCode::OK);
    // The control API needs no token.
    assert_eq!(
        t.http
            .get(t.url("/control/stats"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let t = spawn_sim_with(|c| c.token_ttl = Duration::from_millis(300)).await;
    let token = t.new_token().await;
    let url = t.url("/api/v4/loans");
    eventually(Duration::from_secs(5), || async {
        let response = t.http.get(&url).bearer_auth(&token).send().await.unwrap();
        response.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    // A fresh token works again.
    let fresh = t.new_token().await;
    assert_eq!(
        t.http
            .get(&url)
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
