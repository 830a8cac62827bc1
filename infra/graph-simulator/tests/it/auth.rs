use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{eventually, graph_error, spawn_sim, spawn_sim_with, two_staff};

#[tokio::test]
async fn client_credentials_give_a_bearer_for_v1() {
    let t = spawn_sim().await;
    t.seed(two_staff()).await;
    let scope = "https://graph.microsoft.com/.default";
    let response = t.token_with(&t.tenant, &t.client_secret, scope).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "JWT-shaped");

    let path = "/v1.0/users/ann/events";
    assert_eq!(
        t.api(token, Method::GET, path, None).await.status(),
        StatusCode::OK
    );
    let anonymous = t.http.get(t.url(path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(graph_error(anonymous).await, "InvalidAuthenticationToken");
    let forged = t.api("eyJ.forged.token", Method::GET, path, None).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_secret_scope_or_tenant_are_refused_as_entra_does() {
    let t = spawn_sim().await;
    let scope = "https://graph.microsoft.com/.default";
    let cases = [
        (
            t.tenant.clone(),
            "wrong".to_owned(),
            scope,
            401,
            "invalid_client",
        ),
        (
            t.tenant.clone(),
            t.client_secret.clone(),
            "User.Read",
            400,
            "invalid_scope",
        ),
        (
            "other-tenant".to_owned(),
            t.client_secret.clone(),
            scope,
            400,
            "invalid_request",
        ),
    ];
    for (tenant, secret, scope, status, error) in cases {
        let response = t.token_with(&tenant, &secret, scope).await;
        assert_eq!(response.status().as_u16(), status, "{error}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS")
        );
        assert!(body["error_codes"].is_array());
    }
}

#[tokio::test]
async fn tokens_expire_and_can_be_revoked() {
    let t = spawn_sim_with(|c| c.access_token_ttl = Duration::from_millis(1500)).await;
    t.seed(two_staff()).await;
    let token = t.token().await;
    let path = "/v1.0/users/ann/events";
    assert_eq!(
        t.api(&token, Method::GET, path, None).await.status(),
        StatusCode::OK
    );
    eventually(Duration::from_secs(5), || async {
        t.api(&token, Method::GET, path, None).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;

    let fresh = t.token().await;
    t.control("/control/tokens/revoke", Value::Null, StatusCode::OK)
        .await;
    let response = t.api(&fresh, Method::GET, path, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(graph_error(response).await, "InvalidAuthenticationToken");
}
