use serde_json::json;

use crate::helpers::{
    expect_error, expect_json, spawn_app, user_v1, user_with_default, user_without_default,
};

#[tokio::test]
async fn backward_accepts_a_field_with_default_and_rejects_one_without() {
    let app = spawn_app().await;
    app.register_ok("users-value", &user_v1()).await;

    let rejected = app.register("users-value", &user_without_default()).await;
    let body = expect_error(rejected, 409, 409).await;
    assert!(body["message"].as_str().unwrap().contains("name"), "{body}");

    let accepted = app.register_ok("users-value", &user_with_default()).await;
    let latest = expect_json(app.get("/subjects/users-value/versions/latest").await, 200).await;
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"], accepted);
    app.finish().await;
}

#[tokio::test]
async fn backward_transitive_rejects_a_change_compatible_only_with_the_latest() {
    let app = spawn_app().await;
    app.set_level("users-value", "BACKWARD_TRANSITIVE").await;
    app.register_ok("users-value", &user_v1()).await;
    app.register_ok("users-value", &user_with_default()).await;

    // Readable against v2 (which has `name`), not against v1.
    let candidate = json!({ "schema": user_without_default() });
    let latest = app
        .post(
            "/compatibility/subjects/users-value/versions/latest",
            &candidate,
        )
        .await;
    assert_eq!(
        expect_json(latest, 200).await,
        json!({ "is_compatible": true })
    );
    let all = app
        .post(
            "/compatibility/subjects/users-value/versions?verbose=true",
            &candidate,
        )
        .await;
    let all = expect_json(all, 200).await;
    assert_eq!(all["is_compatible"], false);
    assert_eq!(all["messages"].as_array().unwrap().len(), 1, "{all}");

    let rejected = app.register("users-value", &user_without_default()).await;
    expect_error(rejected, 409, 409).await;

    // Plain BACKWARD only looks at the latest version.
    app.set_level("users-value", "BACKWARD").await;
    app.register_ok("users-value", &user_without_default())
        .await;
    let versions = expect_json(app.get("/subjects/users-value/versions").await, 200).await;
    assert_eq!(versions, json!([1, 2, 3]));
    app.finish().await;
}

#[tokio::test]
async fn compatibility_checks_a_given_version_and_unknown_ones() {
    let app = spawn_app().await;
    app.register_ok("users-value", &user_v1()).await;
    let candidate = json!({ "schema": user_without_default() });

    let v1 = app
        .post(
            "/compatibility/subjects/users-value/versions/1?verbose=true",
            &candidate,
        )
        .await;
    let v1 = expect_json(v1, 200).await;
    assert_eq!(v1["is_compatible"], false);
    assert!(!v1["messages"].as_array().unwrap().is_empty());

    let missing = app
        .post("/compatibility/subjects/users-value/versions/9", &candidate)
        .await;
    expect_error(missing, 404, 40402).await;
    let unknown = app
        .post("/compatibility/subjects/nobody/versions/latest", &candidate)
        .await;
    expect_error(unknown, 404, 40401).await;
    let fresh = app
        .post("/compatibility/subjects/nobody/versions", &candidate)
        .await;
    assert_eq!(
        expect_json(fresh, 200).await,
        json!({ "is_compatible": true })
    );

    app.set_level("users-value", "NONE").await;
    let none = app
        .post("/compatibility/subjects/users-value/versions/1", &candidate)
        .await;
    assert_eq!(
        expect_json(none, 200).await,
        json!({ "is_compatible": true })
    );
    app.finish().await;
}
