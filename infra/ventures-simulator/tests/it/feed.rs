use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_sim, spawn_sim_with};

async fn changes(t: &crate::helpers::TestSim, query: &str) -> Value {
    let response = t.get(&format!("/api/v4/changes{query}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn seqs(page: &Value) -> Vec<u64> {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn pages_with_limit_and_cursor_then_polls() {
    let t = spawn_sim().await;
    for id in ["L-1", "L-2", "L-3"] {
        t.create_loan(id).await;
    }
    assert_eq!(
        t.put_status("L-2", "k", "Open", 1).await.status(),
        StatusCode::OK
    );

    let first = changes(&t, "?limit=3").await;
    assert_eq!(seqs(&first), [1, 2, 3]);
    assert_eq!(first["hasMore"], true);
    let c = &first["changes"][0];
    assert_eq!(
        (c["entityType"].as_str(), c["changeType"].as_str()),
        (Some("loan"), Some("created"))
    );
    assert_eq!(
        (c["entityId"].as_str(), c["loanId"].as_str()),
        (Some("L-1"), Some("L-1"))
    );
    assert_eq!(c["data"]["loanId"], "L-1");

    let cursor = first["nextCursor"].as_str().unwrap();
    let second = changes(&t, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(seqs(&second), [4]);
    assert_eq!(second["hasMore"], false);
    let c = &second["changes"][0];
    assert_eq!(c["changeType"], "status_changed");
    assert_eq!(c["version"], 2);
    assert_eq!(
        (c["data"]["status"].as_str(), c["data"]["version"].as_u64()),
        (Some("Open"), Some(2))
    );

    // Nothing new: same cursor back, so a client can keep polling.
    let cursor = second["nextCursor"].as_str().unwrap();
    let idle = changes(&t, &format!("?cursor={cursor}")).await;
    assert!(seqs(&idle).is_empty());
    assert_eq!(idle["nextCursor"], cursor);
}

#[tokio::test]
async fn listing_feed_cursor_continues_after_a_resync() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;
    let listing: Value = t.get("/api/v4/loans").await.json().await.unwrap();
    t.control(
        "/control/loans/L-1/status",
        json!({"status": "Open"}),
        StatusCode::OK,
    )
    .await;

    let cursor = listing["feedCursor"].as_str().unwrap();
    let page = changes(&t, &format!("?cursor={cursor}")).await;
    assert_eq!(seqs(&page), [2]);
    assert_eq!(page["changes"][0]["changeType"], "status_changed");
}

#[tokio::test]
async fn trimmed_feed_expires_old_cursors() {
    let t = spawn_sim().await;
    t.create_loan("L-1").await;
    let old = changes(&t, "").await["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in ["L-2", "L-3", "L-4"] {
        t.create_loan(id).await;
    }
    let trimmed = t
        .control("/control/feed/trim", json!({"keepLast": 1}), StatusCode::OK)
        .await;
    assert_eq!(trimmed["changes"], 1);

    let response = t.get(&format!("/api/v4/changes?cursor={old}")).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "CURSOR_EXPIRED");
    // No cursor means "from the beginning", which is gone too.
    assert_eq!(t.get("/api/v4/changes").await.status(), StatusCode::GONE);

    // The resync path: the listing's feedCursor is valid.
    let listing: Value = t.get("/api/v4/loans").await.json().await.unwrap();
    assert_eq!(listing["loans"].as_array().unwrap().len(), 4);
    let page = changes(
        &t,
        &format!("?cursor={}", listing["feedCursor"].as_str().unwrap()),
    )
    .await;
    assert!(seqs(&page).is_empty());
}

#[tokio::test]
async fn retention_limit_applies_automatically() {
    let t = spawn_sim_with(|c| c.feed_retention = 2).await;
    for id in ["L-1", "L-2", "L-3"] {
        t.create_loan(id).await;
    }
    assert_eq!(t.control_get("/control/stats").await["changes"], 2);
    assert_eq!(t.get("/api/v4/changes").await.status(), StatusCode::GONE);
    assert_eq!(
        t.get("/api/v4/changes?cursor=garbage").await.status(),
        StatusCode::BAD_REQUEST
    );
}
