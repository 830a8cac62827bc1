use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{graph_error, spawn_sim};

#[tokio::test]
async fn channel_messages_are_created_and_recorded() {
    let t = spawn_sim().await;
    let token = t.token().await;
    let path = "/v1.0/teams/team-1/channels/19%3Aabc%40thread.tacv2/messages";
    let body = json!({"body": {"contentType": "html", "content": "<b>Loan 42</b> is ready"}});
    let response = t.api(&token, Method::POST, path, Some(&body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let message: Value = response.json().await.unwrap();
    assert!(message["id"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(
        message["body"],
        json!({"contentType": "html", "content": "<b>Loan 42</b> is ready"})
    );
    assert!(message["createdDateTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(message["from"]["application"]["id"], t.client_id.as_str());

    let empty = json!({"body": {"contentType": "html", "content": ""}});
    let response = t.api(&token, Method::POST, path, Some(&empty)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(response).await, "BadRequest");

    let received = t.control_get("/control/teams/messages?teamId=team-1").await;
    let messages = received["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["channelId"], "19:abc@thread.tacv2");
    assert_eq!(messages[0]["content"], "<b>Loan 42</b> is ready");
    let other = t.control_get("/control/teams/messages?teamId=team-2").await;
    assert!(other["messages"].as_array().unwrap().is_empty());
}
