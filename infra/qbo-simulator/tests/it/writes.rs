use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{fault, spawn_sim};

fn new_bill() -> Value {
    json!({
        "VendorRef": {"value": "1"},
        "DueDate": "2026-09-30",
        "DocNumber": "INV-77",
        "Line": [{
            "Amount": 120.5,
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}}
        }]
    })
}

#[tokio::test]
async fn same_requestid_same_answer_and_no_second_effect() {
    let t = spawn_sim().await;
    let conn = t.one_realm(0).await;
    let first = t
        .post(&conn, "/bill?requestid=req-1&minorversion=75", &new_bill())
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["Bill"]["TotalAmt"], 120.5);
    assert_eq!(first["Bill"]["Balance"], 120.5);
    assert_eq!(first["Bill"]["SyncToken"], "0");

    let again = t
        .post(&conn, "/bill?requestid=req-1&minorversion=75", &new_bill())
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the original response, time included"
    );
    let other = t.post(&conn, "/bill?requestid=req-2", &new_bill()).await;
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["Bill"]["Id"], first["Bill"]["Id"]);

    let count: Value = t
        .query(&conn, "select count(*) from Bill")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["QueryResponse"]["totalCount"], 2);
    let ledger = t
        .control_get(&format!("/control/ledger?realmId={}", conn.realm_id))
        .await;
    let writes: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/bill"))
        .collect();
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[0]["requestId"], "req-1");
    assert_eq!(
        (
            writes[0]["replayed"].as_bool(),
            writes[1]["replayed"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(writes[2]["status"], 200);
}

#[tokio::test]
async fn a_lost_response_is_recovered_by_retrying_with_the_same_requestid() {
    let t = spawn_sim().await;
    let conn = t.one_realm(0).await;
    t.control(
        "/control/faults",
        json!({"status": 503, "count": 1, "afterEffect": true, "pathContains": "/bill"}),
        StatusCode::CREATED,
    )
    .await;
    let lost = t.post(&conn, "/bill?requestid=lost-1", &new_bill()).await;
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fault(lost).await.0, "SystemFault");
    let retry = t.post(&conn, "/bill?requestid=lost-1", &new_bill()).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let count: Value = t
        .query(&conn, "select count(*) from Bill")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["QueryResponse"]["totalCount"], 1, "created once");
}

#[tokio::test]
async fn sync_token_guards_updates_and_deletes() {
    let t = spawn_sim().await;
    let conn = t.one_realm(0).await;
    let created: Value = t
        .post(&conn, "/bill", &new_bill())
        .await
        .json()
        .await
        .unwrap();
    let id = created["Bill"]["Id"].as_str().unwrap().to_owned();

    // A sparse update changes only what it names.
    let sparse = json!({"Id": id, "SyncToken": "0", "sparse": true, "DueDate": "2026-10-15"});
    let updated: Value = t
        .post(&conn, "/bill?requestid=u-1", &sparse)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["Bill"]["SyncToken"], "1");
    assert_eq!(updated["Bill"]["DueDate"], "2026-10-15");
    assert_eq!(updated["Bill"]["DocNumber"], "INV-77");

    // The old SyncToken is stale: Fault 5010, and nothing changes.
    let stale = t
        .post(
            &conn,
            "/bill?requestid=u-2",
            &json!({"Id": id, "SyncToken": "0", "sparse": true, "DocNumber": "X"}),
        )
        .await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        fault(stale).await,
        ("ValidationFault".into(), "5010".into())
    );
    // The same requestid gets the same Fault again.
    let stale_again = t
        .post(
            &conn,
            "/bill?requestid=u-2",
            &json!({"Id": id, "SyncToken": "1", "DocNumber": "X"}),
        )
        .await;
    assert_eq!(fault(stale_again).await.1, "5010");
    let read: Value = t
        .get(&conn, &format!("/bill/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["Bill"]["DocNumber"], "INV-77");
    assert_eq!(read["Bill"]["SyncToken"], "1");

    // A full update replaces the body; TotalAmt follows the lines, Balance moves with it.
    let mut full = new_bill();
    full["Id"] = json!(id);
    full["SyncToken"] = json!("1");
    full["Line"][0]["Amount"] = json!(200);
    let full: Value = t.post(&conn, "/bill", &full).await.json().await.unwrap();
    assert_eq!(
        (
            full["Bill"]["TotalAmt"].as_f64(),
            full["Bill"]["Balance"].as_f64()
        ),
        (Some(200.0), Some(200.0))
    );
    assert!(full["Bill"].get("DueDate").is_some());

    // Delete needs the current SyncToken too.
    let stale = t
        .post(
            &conn,
            "/bill?operation=delete",
            &json!({"Id": id, "SyncToken": "1"}),
        )
        .await;
    assert_eq!(fault(stale).await.1, "5010");
    let deleted: Value = t
        .post(
            &conn,
            "/bill?operation=delete",
            &json!({"Id": id, "SyncToken": "2"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["Bill"]["status"], "Deleted");
    let gone = t.get(&conn, &format!("/bill/{id}")).await;
    assert_eq!(gone.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fault(gone).await.1, "610");
    let tombstone = t
        .control_get(&format!("/control/realms/{}/bill/{id}", conn.realm_id))
        .await;
    assert_eq!(tombstone["status"], "Deleted");

    // Missing SyncToken on update; malformed body.
    let missing = t
        .post(&conn, "/bill", &json!({"Id": "1", "DocNumber": "x"}))
        .await;
    assert_eq!(fault(missing).await.1, "2020");
    let response = t
        .http
        .post(t.url(&format!("/v3/company/{}/bill", conn.realm_id)))
        .bearer_auth(&conn.access_token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fault(response).await,
        ("ValidationFault".into(), "2010".into())
    );
}
