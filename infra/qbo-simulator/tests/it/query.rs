use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{fault, spawn_sim};

#[tokio::test]
async fn pages_are_one_based_and_full_until_the_last() {
    let t = spawn_sim().await;
    let conn = t.one_realm(2600).await;
    let count: Value = t
        .query(&conn, "select count(*) from Bill")
        .await
        .json()
        .await
        .unwrap();
    let total = count["QueryResponse"]["totalCount"].as_u64().unwrap() as usize;
    assert!(total > 1000, "{count}");

    let mut ids = HashSet::new();
    let mut start = 1;
    loop {
        let q = format!("select * from Bill STARTPOSITION {start} MAXRESULTS 1000");
        let response = t.query(&conn, &q).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("intuit_tid"));
        let body: Value = response.json().await.unwrap();
        assert!(body["time"].is_string());
        let page = &body["QueryResponse"];
        let Some(bills) = page["Bill"].as_array() else {
            assert_eq!(
                page,
                &serde_json::json!({}),
                "an empty result is QueryResponse {{}}"
            );
            break;
        };
        assert_eq!(page["startPosition"], start);
        assert_eq!(page["maxResults"], bills.len());
        for bill in bills {
            assert!(
                ids.insert(bill["Id"].as_str().unwrap().to_owned()),
                "duplicate {}",
                bill["Id"]
            );
            assert!(bill["SyncToken"].is_string());
            assert!(bill["MetaData"]["LastUpdatedTime"].is_string());
            assert!(bill["TotalAmt"].is_number() && bill["Balance"].is_number());
        }
        if bills.len() < 1000 {
            break;
        }
        start += 1000;
    }
    assert_eq!(ids.len(), total);

    // MAXRESULTS above 1000 is capped; without it, 100.
    let body: Value = t
        .query(&conn, "select * from Bill maxresults 5000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["QueryResponse"]["maxResults"], 1000);
    let body: Value = t
        .query(&conn, "select * from Bill")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["QueryResponse"]["maxResults"], 100);
}

#[tokio::test]
async fn where_last_updated_time_and_orderby() {
    let t = spawn_sim().await;
    let conn = t.one_realm(400).await;
    let all: Value = t
        .query(
            &conn,
            "select * from Invoice ORDERBY MetaData.LastUpdatedTime MAXRESULTS 1000",
        )
        .await
        .json()
        .await
        .unwrap();
    let invoices = all["QueryResponse"]["Invoice"].as_array().unwrap();
    let times: Vec<&str> = invoices
        .iter()
        .map(|i| i["MetaData"]["LastUpdatedTime"].as_str().unwrap())
        .collect();
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(
        times.windows(2).all(|w| parse(w[0]) <= parse(w[1])),
        "sorted by LastUpdatedTime"
    );

    let pivot = times[times.len() / 2];
    let q = format!(
        "select * from Invoice where MetaData.LastUpdatedTime > '{pivot}' ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    );
    let newer: Value = t.query(&conn, &q).await.json().await.unwrap();
    let newer = newer["QueryResponse"]["Invoice"].as_array().unwrap();
    // Times are shown to the second but kept to the millisecond, so entities shown with the
    // pivot's second may or may not be newer than it.
    let later = times.iter().filter(|t| parse(t) > parse(pivot)).count();
    let same_or_later = times.iter().filter(|t| parse(t) >= parse(pivot)).count();
    assert!(
        (later..=same_or_later).contains(&newer.len()),
        "{later} <= {} <= {same_or_later}",
        newer.len()
    );
    assert!(
        newer
            .iter()
            .all(|i| parse(i["MetaData"]["LastUpdatedTime"].as_str().unwrap()) >= parse(pivot))
    );

    // Accounts: the bank accounts with balances, AP and AR.
    let banks: Value = t
        .query(&conn, "select * from Account where AccountType = 'Bank'")
        .await
        .json()
        .await
        .unwrap();
    let banks = banks["QueryResponse"]["Account"].as_array().unwrap();
    assert_eq!(banks.len(), 2);
    assert!(banks.iter().all(|a| a["CurrentBalance"].as_f64().unwrap() >= 0.0 && a["Classification"] == "Asset"));
    let ap: Value = t
        .query(
            &conn,
            "select * from Account where AccountType = 'Accounts Payable'",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ap["QueryResponse"]["Account"][0]["Name"],
        "Accounts Payable (A/P)"
    );
}

#[tokio::test]
async fn malformed_queries_are_a_validation_fault() {
    let t = spawn_sim().await;
    let conn = t.one_realm(1).await;
    for bad in [
        "select * from Bil",
        "select * from Bill STARTPOSITION 0",
        "select * frm Bill",
    ] {
        let response = t.query(&conn, bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            fault(response).await,
            ("ValidationFault".into(), "4000".into())
        );
    }
}

#[tokio::test]
async fn query_can_be_posted_as_text() {
    let t = spawn_sim().await;
    let conn = t.one_realm(20).await;
    let response = t
        .http
        .post(t.url(&format!(
            "/v3/company/{}/query?minorversion=75",
            conn.realm_id
        )))
        .bearer_auth(&conn.access_token)
        .header("Content-Type", "application/text")
        .body("select count(*) from Vendor")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["QueryResponse"]["totalCount"], 10);
}
