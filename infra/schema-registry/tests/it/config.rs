use serde_json::json;

use crate::helpers::{expect_error, expect_json, spawn_app, user_v1, user_without_default};

#[tokio::test]
async fn config_is_global_by_default_and_settable_per_subject() {
    let app = spawn_app().await;
    let global = expect_json(app.get("/config").await, 200).await;
    assert_eq!(global, json!({ "compatibilityLevel": "BACKWARD" }));

    expect_error(app.get("/config/users-value").await, 404, 40408).await;
    let fallback = app.get("/config/users-value?defaultToGlobal=true").await;
    assert_eq!(
        expect_json(fallback, 200).await,
        json!({ "compatibilityLevel": "BACKWARD" })
    );

    let set = app
        .put("/config/users-value", &json!({ "compatibility": "full" }))
        .await;
    assert_eq!(
        expect_json(set, 200).await,
        json!({ "compatibility": "FULL" })
    );
    let got = expect_json(app.get("/config/users-value").await, 200).await;
    assert_eq!(got, json!({ "compatibilityLevel": "FULL" }));
    expect_error(app.get("/config/orders-value").await, 404, 40408).await;

    let invalid = app
        .put(
            "/config/users-value",
            &json!({ "compatibility": "SIDEWAYS" }),
        )
        .await;
    expect_error(invalid, 422, 42203).await;

    let deleted = expect_json(app.delete("/config/users-value").await, 200).await;
    assert_eq!(deleted, json!({ "compatibilityLevel": "FULL" }));
    expect_error(app.get("/config/users-value").await, 404, 40408).await;
    expect_error(app.delete("/config/users-value").await, 404, 40401).await;

    let set = app
        .put("/config", &json!({ "compatibility": "NONE" }))
        .await;
    assert_eq!(
        expect_json(set, 200).await,
        json!({ "compatibility": "NONE" })
    );
    let global = expect_json(app.get("/config").await, 200).await;
    assert_eq!(global, json!({ "compatibilityLevel": "NONE" }));
    app.finish().await;
}

#[tokio::test]
async fn subject_level_overrides_global_when_registering() {
    let app = spawn_app().await;
    app.register_ok("loose", &user_v1()).await;
    app.register_ok("strict", &user_v1()).await;
    app.set_level("loose", "NONE").await;

    app.register_ok("loose", &user_without_default()).await;
    expect_error(
        app.register("strict", &user_without_default()).await,
        409,
        409,
    )
    .await;
    app.finish().await;
}
