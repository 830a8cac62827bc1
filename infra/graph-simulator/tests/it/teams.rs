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

#[tokio::test]
async fn channel_messages_are_listed_newest_first_in_pages() {
    let t = spawn_sim().await;
    let token = t.token().await;
    let path = "/v1.0/teams/team-1/channels/general/messages";
    for i in 0..5 {
        let body = json!({"body": {"contentType": "html", "content": format!("message {i}")}});
        let response = t.api(&token, Method::POST, path, Some(&body)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let response = t
        .api(&token, Method::GET, &format!("{path}?$top=2"), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let contents: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["message 4", "message 3"]);
    let next = page["@odata.nextLink"].as_str().unwrap();
    let rest = next.split_once("/v1.0").unwrap().1;
    let last: Value = t
        .api(
            &token,
            Method::GET,
            &format!("/v1.0{}", rest.replace("$top=2", "$top=50")),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["value"].as_array().unwrap().len(), 3);
    assert!(last.get("@odata.nextLink").is_none());
    let other: Value = t
        .api(
            &token,
            Method::GET,
            "/v1.0/teams/team-1/channels/other/messages",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(other["value"].as_array().unwrap().is_empty());
    let response = t
        .api(&token, Method::GET, &format!("{path}?$top=51"), None)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
