use serde_json::json;

use crate::helpers::{expect_error, expect_json, spawn_app, user_v1, user_with_default};

#[tokio::test]
async fn soft_deleted_subjects_vanish_but_ids_resolve() {
    let app = spawn_app().await;
    let id = app.register_ok("users-value", &user_v1()).await;
    app.register_ok("users-value", &user_with_default()).await;

    // Permanent delete needs a soft delete first.
    let early = app.delete("/subjects/users-value?permanent=true").await;
    expect_error(early, 404, 40405).await;

    let deleted = expect_json(app.delete("/subjects/users-value").await, 200).await;
    assert_eq!(deleted, json!([1, 2]));
    expect_error(app.delete("/subjects/users-value").await, 404, 40404).await;
    assert_eq!(
        expect_json(app.get("/subjects").await, 200).await,
        json!([])
    );
    let with_deleted = expect_json(app.get("/subjects?deleted=true").await, 200).await;
    assert_eq!(with_deleted, json!(["users-value"]));
    expect_error(app.get("/subjects/users-value/versions").await, 404, 40401).await;
    let by_id = expect_json(app.get(&format!("/schemas/ids/{id}")).await, 200).await;
    assert_eq!(by_id["schema"], user_v1());

    let purged = app.delete("/subjects/users-value?permanent=true").await;
    assert_eq!(expect_json(purged, 200).await, json!([1, 2]));
    let with_deleted = expect_json(app.get("/subjects?deleted=true").await, 200).await;
    assert_eq!(with_deleted, json!([]));

    // Re-registering after a hard delete starts again at version 1 with the same id.
    assert_eq!(app.register_ok("users-value", &user_v1()).await, id);
    let latest = expect_json(app.get("/subjects/users-value/versions/latest").await, 200).await;
    assert_eq!(latest["version"], 1);
    app.finish().await;
}

#[tokio::test]
async fn deleting_single_versions() {
    let app = spawn_app().await;
    app.register_ok("users-value", &user_v1()).await;
    app.register_ok("users-value", &user_with_default()).await;

    let permanent_first = app
        .delete("/subjects/users-value/versions/2?permanent=true")
        .await;
    expect_error(permanent_first, 404, 40407).await;
    assert_eq!(
        expect_json(
            app.delete("/subjects/users-value/versions/latest").await,
            200
        )
        .await,
        json!(2)
    );
    expect_error(
        app.delete("/subjects/users-value/versions/2").await,
        404,
        40406,
    )
    .await;
    expect_error(
        app.get("/subjects/users-value/versions/2").await,
        404,
        40402,
    )
    .await;
    let latest = expect_json(app.get("/subjects/users-value/versions/latest").await, 200).await;
    assert_eq!(latest["version"], 1);
    let hidden = app
        .get("/subjects/users-value/versions/2?deleted=true")
        .await;
    assert_eq!(expect_json(hidden, 200).await["version"], 2);

    let purged = app
        .delete("/subjects/users-value/versions/2?permanent=true")
        .await;
    assert_eq!(expect_json(purged, 200).await, json!(2));
    let all = expect_json(
        app.get("/subjects/users-value/versions?deleted=true").await,
        200,
    )
    .await;
    assert_eq!(all, json!([1]));
    expect_error(
        app.delete("/subjects/users-value/versions/5").await,
        404,
        40402,
    )
    .await;
    app.finish().await;
}
