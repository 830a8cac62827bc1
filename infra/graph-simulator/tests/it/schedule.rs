use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestSim, event_body, graph_error, spawn_sim};

fn at(hm: &str) -> Value {
    json!({"dateTime": format!("2026-06-01T{hm}:00"), "timeZone": "UTC"})
}

async fn get_schedule(t: &TestSim, token: &str, request: &Value) -> reqwest::Response {
    let path = "/v1.0/users/ann/calendar/getSchedule";
    t.api(token, Method::POST, path, Some(request)).await
}

/// Ann has seeded items, an API event, a cancelled API event and one shown as free.
async fn ann_with_a_full_morning(t: &TestSim, token: &str) {
    t.seed(json!({"staff": [
        {"id": "ann", "displayName": "Ann Lee", "mail": "ann@contoso.example",
         "workingHours": {"daysOfWeek": ["monday", "friday"], "startTime": "09:00",
                          "endTime": "17:30", "timeZone": "Pacific Standard Time"},
         "busy": [
            {"start": "2026-06-01T09:00:00Z", "end": "2026-06-01T10:00:00Z", "subject": "Standup"},
            {"start": "2026-06-01T10:30:00Z", "end": "2026-06-01T11:00:00Z", "status": "tentative"},
            {"start": "2026-06-01T12:00:00Z", "end": "2026-06-01T13:00:00Z", "status": "oof",
             "isPrivate": true, "subject": "Dentist"}]},
        {"id": "bob"},
    ]}))
    .await;
    let created = t
        .create_event(token, "ann", &event_body("13:00", "14:00", None))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let cancelled: Value = t
        .create_event(token, "ann", &event_body("14:00", "15:00", None))
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/v1.0/users/ann/events/{}/cancel",
        cancelled["id"].as_str().unwrap()
    );
    let comment = json!({"Comment": "Moved"});
    let response = t.api(token, Method::POST, &path, Some(&comment)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mut free = event_body("15:00", "15:30", None);
    free["showAs"] = json!("free");
    t.create_event(token, "ann", &free).await;
}

#[tokio::test]
async fn availability_view_follows_busy_items_and_events() {
    let t = spawn_sim().await;
    let token = t.token().await;
    ann_with_a_full_morning(&t, &token).await;

    let request = json!({
        "schedules": ["ann@contoso.example", "bob", "nobody@contoso.example"],
        "startTime": at("08:00"), "endTime": at("16:00"),
        "availabilityViewInterval": 60,
    });
    let response = get_schedule(&t, &token, &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let ann = &body["value"][0];
    assert_eq!(ann["scheduleId"], "ann@contoso.example");
    // 8 9 10 11 12 13 14 15: busy, tentative, oof, the API event; cancelled and free are free.
    assert_eq!(ann["availabilityView"], "02103200");
    let items = ann["scheduleItems"].as_array().unwrap();
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["busy", "tentative", "oof", "busy"]);
    assert_eq!(items[0]["subject"], "Standup");
    assert_eq!(items[2]["isPrivate"], true);
    assert!(
        items[2].get("subject").is_none(),
        "private items hide their subject"
    );
    assert_eq!(items[3]["subject"], "Loan review");
    assert_eq!(items[3]["isMeeting"], true);
    assert_eq!(
        items[3]["start"],
        json!({"dateTime": "2026-06-01T13:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(
        ann["workingHours"],
        json!({"daysOfWeek": ["monday", "friday"], "startTime": "09:00:00.0000000",
               "endTime": "17:30:00.0000000", "timeZone": {"name": "Pacific Standard Time"}})
    );
    assert_eq!(body["value"][1]["availabilityView"], "00000000");
    assert_eq!(
        body["value"][2]["error"]["responseCode"],
        "ErrorMailRecipientNotFound"
    );

    // The default interval is 30 minutes; a partial last slot still gets a digit.
    let request = json!({"schedules": ["ann"], "startTime": at("08:00"), "endTime": at("16:10")});
    let body: Value = get_schedule(&t, &token, &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["value"][0]["availabilityView"], "00220100332200000");
}

#[tokio::test]
async fn bad_requests_get_graph_errors() {
    let t = spawn_sim().await;
    let token = t.token().await;
    t.seed(json!({"staff": [{"id": "ann"}]})).await;
    let pacific = json!({"dateTime": "2026-06-01T08:00:00", "timeZone": "Pacific Standard Time"});
    let cases = [
        (
            json!({"schedules": ["ann"], "startTime": pacific, "endTime": at("09:00")}),
            "TimeZoneNotSupportedException",
        ),
        (
            json!({"schedules": ["ann"], "startTime": at("10:00"), "endTime": at("09:00")}),
            "ErrorInvalidRequest",
        ),
        (
            json!({"schedules": ["ann"], "startTime": at("08:00"), "endTime": at("09:00"),
                "availabilityViewInterval": 2}),
            "ErrorInvalidRequest",
        ),
    ];
    for (request, code) in cases {
        let response = get_schedule(&t, &token, &request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{request}");
        assert_eq!(graph_error(response).await, code);
    }
    let response = t
        .http
        .post(t.url("/v1.0/users/ann/calendar/getSchedule"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(graph_error(response).await, "BadRequest");
    let path = "/v1.0/users/zed/calendar/getSchedule";
    let body = json!({"schedules": ["ann"], "startTime": at("08:00"), "endTime": at("09:00")});
    let response = t.api(&token, Method::POST, path, Some(&body)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(graph_error(response).await, "ErrorInvalidUser");
}
