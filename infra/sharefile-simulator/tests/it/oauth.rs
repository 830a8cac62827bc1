use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, reason, spawn_sim, spawn_sim_with,
};

#[tokio::test]
async fn password_grant_answers_the_sharefile_fields() {
    let t = spawn_sim_with(|c| c.subdomain = "acme".into()).await;
    let response = t.password_grant(USERNAME, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 28800);
    assert_eq!(
        (body["subdomain"].as_str(), body["apicp"].as_str()),
        (Some("acme"), Some("sf-api.com"))
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let wrong = t.password_grant(USERNAME, "nope").await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn bearer_tokens_are_required_and_refreshable() {
    let mut t = spawn_sim().await;
    let unauthenticated = t.http.get(t.url("/sf/v3/Items")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(unauthenticated).await, "Unauthorized");
    assert_eq!(t.get("Items").await.status(), StatusCode::OK);

    let login: Value = t
        .password_grant(USERNAME, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = login["refresh_token"].as_str().unwrap().to_owned();
    t.control("/control/tokens/expire", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(t.get("Items").await.status(), StatusCode::UNAUTHORIZED);

    let refreshed = t
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    t.token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t.get("Items").await.status(), StatusCode::OK);

    let bad_client = t
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(bad_client.status(), StatusCode::UNAUTHORIZED);
}
