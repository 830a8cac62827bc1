use serde_json::json;

use crate::helpers::{expect_json, spawn_app, spawn_on, user_v1, user_with_default};

#[tokio::test]
async fn register_lookup_and_get_by_id() {
    let app = spawn_app().await;
    let schema = user_v1();

    let response = app.register("users-value", &schema).await;
    assert_eq!(
        response.headers()["content-type"],
        schema_registry::CONTENT_TYPE
    );
    let id = expect_json(response, 200).await["id"].as_i64().unwrap();

    let by_id = expect_json(app.get(&format!("/schemas/ids/{id}")).await, 200).await;
    assert_eq!(by_id, json!({ "schema": schema }));
    let with_max = app
        .get(&format!("/schemas/ids/{id}?fetchMaxId=true&subject=x"))
        .await;
    assert_eq!(expect_json(with_max, 200).await["maxId"], id);
    let raw = app.get(&format!("/schemas/ids/{id}/schema")).await;
    assert_eq!(expect_json(raw, 200).await["name"], "User");

    // Lookup ignores formatting: same schema, other whitespace and key order.
    let reformatted = r#"{ "namespace": "brain.test", "name": "User",
        "fields": [ { "type": "long", "name": "id" } ], "type": "record" }"#;
    let found = app
        .post(
            "/subjects/users-value?normalize=False",
            &json!({ "schema": reformatted }),
        )
        .await;
    let expected = json!({ "subject": "users-value", "id": id, "version": 1, "schema": schema });
    assert_eq!(expect_json(found, 200).await, expected);

    for version in ["1", "latest", "-1"] {
        let got = app
            .get(&format!("/subjects/users-value/versions/{version}"))
            .await;
        assert_eq!(expect_json(got, 200).await, expected);
    }
    let raw = app
        .get("/subjects/users-value/versions/latest/schema")
        .await;
    assert_eq!(expect_json(raw, 200).await["type"], "record");
    let refs = app
        .get("/subjects/users-value/versions/1/referencedby")
        .await;
    assert_eq!(expect_json(refs, 200).await, json!([]));

    // Registering it again (even reformatted) returns the same id and makes no new version.
    let again = app
        .post(
            "/subjects/users-value/versions",
            &json!({ "schema": reformatted, "schemaType": "AVRO", "references": [] }),
        )
        .await;
    assert_eq!(expect_json(again, 200).await["id"], id);
    let versions = expect_json(app.get("/subjects/users-value/versions").await, 200).await;
    assert_eq!(versions, json!([1]));

    let subjects = expect_json(app.get("/subjects").await, 200).await;
    assert_eq!(subjects, json!(["users-value"]));
    let usages = expect_json(app.get(&format!("/schemas/ids/{id}/versions")).await, 200).await;
    assert_eq!(usages, json!([{ "subject": "users-value", "version": 1 }]));
    let types = expect_json(app.get("/schemas/types").await, 200).await;
    assert_eq!(types, json!(["AVRO"]));
    assert_eq!(expect_json(app.get("/").await, 200).await, json!({}));
    assert_eq!(
        expect_json(app.get("/mode").await, 200).await,
        json!({ "mode": "READWRITE" })
    );
    assert_eq!(app.get("/health").await.status(), 200);
    app.finish().await;
}

#[tokio::test]
async fn accepts_any_registry_content_type() {
    let app = spawn_app().await;
    let body = json!({ "schema": user_v1() }).to_string();
    for content_type in [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    ] {
        let response = app
            .client
            .post(format!("{}/subjects/s/versions", app.address))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(expect_json(response, 200).await["id"], 1, "{content_type}");
    }
    app.finish().await;
}

#[tokio::test]
async fn ids_survive_a_restart() {
    let app = spawn_app().await;
    let first = app.register_ok("users-value", &user_v1()).await;
    let database_url = app.database_url.clone();
    app.stop().await;

    let app = spawn_on(&database_url).await;
    let by_id = expect_json(app.get(&format!("/schemas/ids/{first}")).await, 200).await;
    assert_eq!(by_id["schema"], user_v1());
    assert_eq!(app.register_ok("users-value", &user_v1()).await, first);
    let second = app.register_ok("users-value", &user_with_default()).await;
    assert!(second > first, "{second} > {first}");
    let versions = expect_json(app.get("/subjects/users-value/versions").await, 200).await;
    assert_eq!(versions, json!([1, 2]));
    app.finish().await;
}

#[tokio::test]
async fn same_schema_in_two_subjects_gets_one_id() {
    let app = spawn_app().await;
    let a = app.register_ok("orders-value", &user_v1()).await;
    let b = app.register_ok("users-value", &user_v1()).await;
    assert_eq!(a, b);
    let subjects = expect_json(app.get(&format!("/schemas/ids/{a}/subjects")).await, 200).await;
    assert_eq!(subjects, json!(["orders-value", "users-value"]));
    let other = app.register_ok("users-value", &user_with_default()).await;
    assert_ne!(other, a);
    app.finish().await;
}

#[tokio::test]
async fn concurrent_registrations_do_not_duplicate_ids_or_versions() {
    let app = spawn_app().await;
    app.set_level("busy", "NONE").await;
    let same = (0..8).map(|i| app.register_ok_owned(format!("subject-{i}"), user_v1()));
    let ids = futures_join(same).await;
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");

    let distinct = (0..8).map(|i| {
        let schema = format!(r#"{{"type":"enum","name":"E{i}","symbols":["A"]}}"#);
        app.register_ok_owned("busy".to_owned(), schema)
    });
    let mut ids = futures_join(distinct).await;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    let versions = expect_json(app.get("/subjects/busy/versions").await, 200).await;
    assert_eq!(versions, json!([1, 2, 3, 4, 5, 6, 7, 8]));
    app.finish().await;
}

/// Runs the registrations concurrently on the test's runtime.
async fn futures_join(
    registrations: impl Iterator<Item = tokio::task::JoinHandle<i64>>,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for handle in registrations.collect::<Vec<_>>() {
        ids.push(handle.await.expect("registration task"));
    }
    ids
}

impl crate::helpers::TestApp {
    fn register_ok_owned(&self, subject: String, schema: String) -> tokio::task::JoinHandle<i64> {
        let client = self.client.clone();
        let url = format!("{}/subjects/{subject}/versions", self.address);
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({ "schema": schema }))
                .send()
                .await
                .expect("request sent");
            expect_json(response, 200).await["id"].as_i64().unwrap()
        })
    }
}
