use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{CLIENT_ID, fault, spawn_sim, spawn_sim_with};

#[tokio::test]
async fn refresh_tokens_rotate_and_an_old_one_is_invalid_grant() {
    let t = spawn_sim().await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 10})).await;
    let (realm_id, first) = realms[0].clone();

    let response = t.refresh(&first).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["x_refresh_token_expires_in"], 8_640_000);
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // The old one is dead as soon as it has been used once.
    let reused = t.refresh(&first).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reused.json::<Value>().await.unwrap(),
        json!({"error": "invalid_grant"})
    );
    // The newest keeps working, and rotates again.
    let conn = t.connect(&realm_id, &second).await;
    assert_ne!(conn.refresh_token, second);
    assert_eq!(t.refresh(&second).await.status(), StatusCode::BAD_REQUEST);

    // The access token works for its realm only.
    assert_eq!(
        t.query(&conn, "select * from Bill").await.status(),
        StatusCode::OK
    );
    let mut other = conn.clone();
    other.realm_id = realms[1].0.clone();
    let response = t.query(&other, "select * from Bill").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        fault(response).await,
        ("AuthorizationFault".into(), "3100".into())
    );

    // Wrong client credentials, unknown tokens, unsupported grants.
    let response = t
        .refresh_with((CLIENT_ID, "wrong"), &conn.refresh_token)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let response = t.refresh("AB11nonsense").await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // Every token call is in the ledger, against its realm.
    let ledger = t
        .control_get(&format!("/control/ledger?realmId={realm_id}"))
        .await;
    let refreshes = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/oauth2/v1/tokens/bearer")
        .count();
    assert_eq!(refreshes, 4, "the refreshes that named one of its tokens");
}

#[tokio::test]
async fn access_tokens_expire_after_an_hour_of_simulated_time() {
    let t = spawn_sim().await;
    let conn = t.one_realm(5).await;
    assert_eq!(
        t.query(&conn, "select * from Bill").await.status(),
        StatusCode::OK
    );
    t.control(
        "/control/clock/advance",
        json!({"secs": 3601}),
        StatusCode::OK,
    )
    .await;
    let response = t.query(&conn, "select * from Bill").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        fault(response).await,
        ("AuthenticationFault".into(), "3200".into())
    );
    // The refresh token still works; the new access token does.
    let conn = t.connect(&conn.realm_id, &conn.refresh_token).await;
    assert_eq!(
        t.query(&conn, "select * from Bill").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn time_scale_ages_tokens_faster() {
    let t = spawn_sim_with(|c| c.time_scale = 36_000.0).await; // an hour in 0.1 s
    let conn = t.one_realm(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        t.query(&conn, "select * from Bill").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_a_realm_pauses_only_that_realm_until_reconnected() {
    let t = spawn_sim().await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 5})).await;
    let a = t.connect(&realms[0].0, &realms[0].1).await;
    let b = t.connect(&realms[1].0, &realms[1].1).await;

    t.control(
        &format!("/control/realms/{}/revoke", a.realm_id),
        json!({}),
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        t.query(&a, "select * from Bill").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = t.refresh(&a.refresh_token).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        t.query(&b, "select * from Bill").await.status(),
        StatusCode::OK
    );
    let detail = t
        .control_get(&format!("/control/realms/{}", a.realm_id))
        .await;
    assert_eq!(detail["connected"], false);

    let again = t
        .control(
            &format!("/control/realms/{}/reconnect", a.realm_id),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let a = t
        .connect(&a.realm_id, again["refreshToken"].as_str().unwrap())
        .await;
    assert_eq!(
        t.query(&a, "select * from Bill").await.status(),
        StatusCode::OK
    );
}
