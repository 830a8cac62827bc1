use serde_json::json;

use crate::helpers::{expect_error, expect_json, spawn_app, user_v1, user_with_default};

#[tokio::test]
async fn unknown_subject_version_and_id() {
    let app = spawn_app().await;
    expect_error(app.get("/subjects/nobody/versions").await, 404, 40401).await;
    expect_error(app.get("/subjects/nobody/versions/1").await, 404, 40401).await;
    expect_error(
        app.get("/subjects/nobody/versions/latest").await,
        404,
        40401,
    )
    .await;
    let lookup = app
        .post("/subjects/nobody", &json!({ "schema": user_v1() }))
        .await;
    expect_error(lookup, 404, 40401).await;

    app.register_ok("users-value", &user_v1()).await;
    expect_error(
        app.get("/subjects/users-value/versions/7").await,
        404,
        40402,
    )
    .await;
    for bad in ["0", "-3", "two"] {
        let response = app
            .get(&format!("/subjects/users-value/versions/{bad}"))
            .await;
        expect_error(response, 422, 42202).await;
    }
    let lookup = app
        .post(
            "/subjects/users-value",
            &json!({ "schema": user_with_default() }),
        )
        .await;
    expect_error(lookup, 404, 40403).await;

    expect_error(app.get("/schemas/ids/999").await, 404, 40403).await;
    expect_error(app.get("/schemas/ids/999/schema").await, 404, 40403).await;
    expect_error(app.get("/schemas/ids/abc").await, 404, 40403).await;
    expect_error(app.get("/no/such/route").await, 404, 404).await;
    app.finish().await;
}

#[tokio::test]
async fn invalid_schemas_are_422_42201() {
    let app = spawn_app().await;
    let invalid = [
        json!({ "schema": "{not json" }),
        json!({ "schema": r#"{"type":"record","name":"R"}"# }),
        json!({ "schema": "" }),
        json!({}),
        json!({ "schema": r#"syntax = "proto3";"#, "schemaType": "PROTOBUF" }),
        json!({ "schema": user_v1(), "references": [{ "name": "x", "subject": "y", "version": 1 }] }),
    ];
    for body in invalid {
        let response = app.post("/subjects/users-value/versions", &body).await;
        expect_error(response, 422, 42201).await;
    }
    let protobuf = app
        .post(
            "/subjects/s/versions",
            &json!({ "schema": "x", "schemaType": "PROTOBUF" }),
        )
        .await;
    let body = expect_error(protobuf, 422, 42201).await;
    assert!(body["message"].as_str().unwrap().contains("AVRO"), "{body}");

    let not_json = app
        .client
        .post(format!("{}/subjects/s/versions", app.address))
        .body("not json")
        .send()
        .await
        .unwrap();
    expect_error(not_json, 400, 400).await;
    let subjects = expect_json(app.get("/subjects").await, 200).await;
    assert_eq!(subjects, json!([]));
    app.finish().await;
}
