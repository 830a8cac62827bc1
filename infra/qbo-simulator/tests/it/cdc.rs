use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Connection, TestSim, fault, spawn_sim};

async fn cdc(t: &TestSim, conn: &Connection, entities: &str, since: &str) -> reqwest::Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("entities", entities)
        .append_pair("changedSince", since)
        .append_pair("minorversion", "75")
        .finish();
    t.get(conn, &format!("/cdc?{q}")).await
}

async fn now(t: &TestSim) -> String {
    t.control_get("/control/clock").await["now"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn advance(t: &TestSim, secs: u64) {
    t.control(
        "/control/clock/advance",
        json!({"secs": secs}),
        StatusCode::OK,
    )
    .await;
}

/// `(entity, objects)` per group of the single CDCResponse element.
fn groups(body: &Value) -> Vec<(String, Vec<Value>)> {
    let cdc = body["CDCResponse"].as_array().unwrap();
    assert_eq!(cdc.len(), 1, "{body}");
    cdc[0]["QueryResponse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let o = g.as_object().unwrap();
            let entity = o
                .keys()
                .find(|k| !["startPosition", "maxResults", "totalCount"].contains(&k.as_str()));
            match entity {
                Some(e) => (e.clone(), o[e].as_array().unwrap().clone()),
                None => (String::new(), Vec::new()),
            }
        })
        .collect()
}

#[tokio::test]
async fn at_most_1000_objects_per_response() {
    let t = spawn_sim().await;
    let conn = t.one_realm(0).await;
    let since = now(&t).await;
    t.control(
        &format!("/control/realms/{}/changes", conn.realm_id),
        json!({"creates": 1100, "entity": "Bill", "seed": 3}),
        StatusCode::OK,
    )
    .await;
    let response = cdc(&t, &conn, "Bill,Invoice", &since).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let groups = groups(&body);
    assert_eq!(groups[0].0, "Bill");
    assert_eq!(groups[0].1.len(), 1000, "capped");
    assert!(groups[1].1.is_empty());
    let group = &body["CDCResponse"][0]["QueryResponse"][0];
    assert_eq!(
        (
            group["startPosition"].as_u64(),
            group["maxResults"].as_u64()
        ),
        (Some(1), Some(1000))
    );
}

#[tokio::test]
async fn deleted_objects_come_after_active_ones_as_stubs() {
    let t = spawn_sim().await;
    let conn = t.one_realm(300).await;
    advance(&t, 5).await;
    let since = now(&t).await;
    advance(&t, 5).await;
    let made = t
        .control(
            &format!("/control/realms/{}/changes", conn.realm_id),
            json!({"creates": 2, "updates": 3, "deletes": 4, "entity": "Invoice", "seed": 9}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(made["count"], 9);
    let body: Value = cdc(&t, &conn, "Invoice", &since)
        .await
        .json()
        .await
        .unwrap();
    let (entity, objects) = &groups(&body)[0];
    assert_eq!(entity, "Invoice");
    assert_eq!(objects.len(), 9);
    let deleted: Vec<&Value> = objects
        .iter()
        .filter(|o| o["status"] == "Deleted")
        .collect();
    assert_eq!(deleted.len(), 4);
    assert!(
        objects[5..].iter().all(|o| o["status"] == "Deleted"),
        "deleted last"
    );
    for stub in deleted {
        let keys: Vec<&String> = stub.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{stub}");
        assert!(stub["Id"].is_string() && stub["MetaData"]["LastUpdatedTime"].is_string());
        assert_eq!(stub["domain"], "QBO");
    }
    // Updated ones carry their new SyncToken; a deleted one is gone from reads.
    let gone = objects.iter().find(|o| o["status"] == "Deleted").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = t.get(&conn, &format!("/invoice/{gone}")).await;
    assert_eq!(fault(response).await.1, "610");
}

#[tokio::test]
async fn looking_back_more_than_30_days_is_a_fault() {
    let t = spawn_sim().await;
    let conn = t.one_realm(10).await;
    let since = now(&t).await;
    assert_eq!(
        cdc(&t, &conn, "Bill", &since).await.status(),
        StatusCode::OK
    );
    advance(&t, 31 * 86_400).await;
    let conn = t.connect(&conn.realm_id, &conn.refresh_token).await; // the hour-long token expired
    let response = cdc(&t, &conn, "Bill", &since).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        fault(response).await,
        ("ValidationFault".into(), "4001".into())
    );
    // A date-only changedSince within the window is fine.
    let today = now(&t).await[..10].to_owned();
    assert_eq!(
        cdc(&t, &conn, "Bill", &today).await.status(),
        StatusCode::OK
    );
    let response = cdc(&t, &conn, "Widget", &today).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
