use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{event_body, graph_error, spawn_sim, two_staff};

#[tokio::test]
async fn create_read_update_cancel_delete() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let response = t
        .create_event(
            &token,
            "ann@contoso.example",
            &event_body("10:00", "11:00", Some("t-1")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["iCalUId"]
            .as_str()
            .unwrap()
            .starts_with("040000008200E00074C5B7101A82E008")
    );
    assert!(
        created["webLink"]
            .as_str()
            .unwrap()
            .starts_with("https://outlook.office365.com/owa/?itemid=")
    );
    let join = created["onlineMeeting"]["joinUrl"].as_str().unwrap();
    assert!(
        join.starts_with("https://teams.microsoft.com/l/meetup-join/19%3ameeting_"),
        "{join}"
    );
    assert_eq!(
        created["organizer"]["emailAddress"]["address"],
        "ann@contoso.example"
    );
    assert_eq!(
        created["attendees"][0]["emailAddress"]["address"],
        "borrower@example.com"
    );
    assert_eq!(created["attendees"][0]["status"]["response"], "none");
    assert_eq!(created["transactionId"], "t-1");
    assert_eq!(created["isCancelled"], false);
    assert_eq!(created["start"]["dateTime"], "2026-06-01T10:00:00.0000000");

    let path = format!("/v1.0/users/ann/events/{}", urlencode(&id));
    let read: Value = t
        .api(&token, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read["changeKey"], created["changeKey"]);

    let patch = json!({"subject": "Loan review (moved)",
                       "end": {"dateTime": "2026-06-01T11:30:00", "timeZone": "UTC"}});
    let updated: Value = t
        .api(&token, Method::PATCH, &path, Some(&patch))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["subject"], "Loan review (moved)");
    assert_eq!(updated["end"]["dateTime"], "2026-06-01T11:30:00.0000000");
    assert_ne!(updated["changeKey"], created["changeKey"]);
    assert_eq!(updated["iCalUId"], created["iCalUId"]);
    assert_eq!(updated["onlineMeeting"], created["onlineMeeting"]);

    let cancel = format!("{path}/cancel");
    let comment = json!({"Comment": "Borrower withdrew"});
    for _ in 0..2 {
        let response = t.api(&token, Method::POST, &cancel, Some(&comment)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let read: Value = t
        .api(&token, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["isCancelled"], true);
    let stored = t.control_get("/control/users/ann/events").await;
    let event = &stored["events"][0];
    assert_eq!(
        (event["isCancelled"].clone(), event["cancelComment"].clone()),
        (json!(true), json!("Borrower withdrew"))
    );
    assert_eq!(event["transactionId"], "t-1");
    assert_eq!(event["origin"], "api");

    assert_eq!(
        t.api(&token, Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let gone = t.api(&token, Method::GET, &path, None).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(graph_error(gone).await, "ErrorItemNotFound");
    let stored = t.control_get("/control/users/ann/events").await;
    assert!(stored["events"].as_array().unwrap().is_empty());
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_repeated_transaction_id_returns_the_same_event() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let body = event_body("10:00", "11:00", Some("booking-42"));
    let first: Value = t
        .create_event(&token, "ann", &body)
        .await
        .json()
        .await
        .unwrap();
    // A retry (even concurrent ones) makes no second event.
    let retries = (0..3).map(|_| t.create_event(&token, "ann", &body));
    for response in futures::future::join_all(retries).await {
        assert_eq!(response.status(), StatusCode::CREATED);
        let again: Value = response.json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
    }
    // The same transactionId for another mailbox is another event.
    let bobs: Value = t
        .create_event(&token, "bob", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["id"], first["id"]);
    // Without a transactionId every create is a new event: a double booking.
    t.create_event(&token, "ann", &event_body("10:00", "11:00", None))
        .await;

    let stats = t.control_get("/control/stats").await;
    let ann = &stats["calendars"]["ann"];
    assert_eq!(ann["eventsCreated"], 2);
    assert_eq!(ann["transactions"]["booking-42"]["requests"], 4);
    assert_eq!(
        ann["transactions"]["booking-42"]["eventIds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ann["withoutTransactionId"], 1);
    assert_eq!(ann["overlappingEvents"], 1);
    assert_eq!(stats["users"]["ann"]["replayed"], 3);
    assert_eq!(stats["users"]["ann"]["eventsCreated"], 2);

    let ledger = t.control_get("/control/ledger?userId=ann").await;
    let creates: Vec<(Value, Value)> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["transactionId"].clone(), e["replayed"].clone()))
        .collect();
    assert_eq!(creates.len(), 5);
    assert_eq!(creates[0], (json!("booking-42"), json!(false)));
    assert_eq!(creates.iter().filter(|c| c.1 == true).count(), 3);
    assert_eq!(creates[4], (Value::Null, json!(false)));
}

#[tokio::test]
async fn strict_conflicts_refuse_overlaps_only_when_enabled() {
    let t = spawn_sim().await;
    let token = t.token().await;
    let mut staff = two_staff();
    staff["staff"][0]["busy"] =
        json!([{"start": "2026-06-01T09:00:00Z", "end": "2026-06-01T10:00:00Z"}]);
    t.seed(staff).await;
    let overlapping = event_body("09:30", "10:30", None);
    assert_eq!(
        t.create_event(&token, "ann", &overlapping).await.status(),
        StatusCode::CREATED,
        "Graph allows overlapping events"
    );
    let settings = t
        .control_put("/control/settings", json!({"strictConflicts": true}))
        .await;
    assert_eq!(settings["strictConflicts"], true);
    let response = t
        .create_event(&token, "ann", &event_body("09:45", "10:15", None))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(graph_error(response).await, "ErrorConflict");
    assert_eq!(
        t.create_event(&token, "ann", &event_body("11:00", "12:00", None))
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn invalid_creates_and_unknown_mailboxes() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(two_staff()).await;
    let no_times = json!({"subject": "x"});
    let response = t.create_event(&token, "ann", &no_times).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(response).await, "ErrorInvalidRequest");
    let backwards = event_body("11:00", "10:00", None);
    assert_eq!(
        t.create_event(&token, "ann", &backwards).await.status(),
        StatusCode::BAD_REQUEST
    );
    let response = t
        .create_event(&token, "zed", &event_body("10:00", "11:00", None))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(graph_error(response).await, "ErrorInvalidUser");
    let response = t.api(&token, Method::GET, "/v1.0/me/events", None).await;
    assert_eq!(graph_error(response).await, "BadRequest");
}
