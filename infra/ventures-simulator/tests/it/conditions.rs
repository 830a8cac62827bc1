use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestSim, error_code, spawn_sim};

async fn patch(t: &TestSim, if_match: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = t
        .api(Method::PATCH, "/api/v4/loans/L-1/conditions/C-1")
        .json(&body);
    if let Some(v) = if_match {
        request = request.header("If-Match", v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn conditions_update_with_if_match() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;
    let created = t
        .control(
            "/control/loans/L-1/conditions",
            json!({"conditionId": "C-1", "name": "Tax returns"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        (created["status"].as_str(), created["version"].as_u64()),
        (Some("Open"), Some(1))
    );
    assert!(created["documentRef"].is_null());

    let list: Value = t
        .get("/api/v4/loans/L-1/conditions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["conditions"].as_array().unwrap().len(), 1);
    assert_eq!(list["conditions"][0]["loanId"], "L-1");

    let document =
        json!({"status": "Received", "documentRef": {"system": "sharefile", "itemId": "fi-1"}});
    let response = patch(&t, None, document.clone()).await;
    assert_eq!(response.status(), StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(error_code(response).await, "VALIDATION");

    let response = patch(&t, Some("5"), document.clone()).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await, "CONFLICT");

    let response = patch(&t, Some("1"), document).await;
    assert_eq!(response.status(), StatusCode::OK);
    let condition: Value = response.json().await.unwrap();
    assert_eq!(condition["version"], 2);
    assert_eq!(condition["status"], "Received");
    assert_eq!(condition["documentRef"]["itemId"], "fi-1");

    let response = patch(&t, Some("\"2\""), json!({"status": "Approved"})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let feed: Value = t.get("/api/v4/changes").await.json().await.unwrap();
    let kinds: Vec<(&str, &str, u64)> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["entityType"].as_str().unwrap(),
                c["changeType"].as_str().unwrap(),
                c["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("loan", "created", 1),
            ("condition", "created", 1),
            ("condition", "condition_updated", 2)
        ]
    );
    assert_eq!(
        feed["changes"][2]["data"]["documentRef"]["system"],
        "sharefile"
    );

    let unknown = t.get("/api/v4/loans/nope/conditions").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
