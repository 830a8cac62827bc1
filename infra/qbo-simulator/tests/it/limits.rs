use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_sim_with;

#[tokio::test]
async fn over_the_rate_limit_is_429_throttle_exceeded_per_realm() {
    let t = spawn_sim_with(|c| {
        c.rate_limit = 20;
        c.rate_window = Duration::from_secs(60);
    })
    .await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 5})).await;
    let a = t.connect(&realms[0].0, &realms[0].1).await;
    let b = t.connect(&realms[1].0, &realms[1].1).await;
    for _ in 0..20 {
        assert_eq!(
            t.query(&a, "select * from Bill").await.status(),
            StatusCode::OK
        );
    }
    let response = t.query(&a, "select * from Bill").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        response.headers().get("retry-after").is_none(),
        "QBO sends no Retry-After"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["Fault"],
        json!({"Error": [{
            "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "Detail": "The request limit was reached.",
            "code": "3001"
        }], "type": "SERVICE"})
    );
    assert_eq!(
        t.query(&b, "select * from Bill").await.status(),
        StatusCode::OK,
        "other realms unaffected"
    );

    let detail = t
        .control_get(&format!("/control/realms/{}", a.realm_id))
        .await;
    assert_eq!(detail["requests"]["throttled"], 1);
    assert_eq!(detail["requests"]["byStatus"]["429"], 1);
}

#[tokio::test]
async fn more_than_10_concurrent_requests_per_realm_are_throttled() {
    let t = spawn_sim_with(|_| {}).await;
    let realms = t.seed(json!({"realms": 2, "documentsPerRealm": 5})).await;
    let a = t.connect(&realms[0].0, &realms[0].1).await;
    let b = t.connect(&realms[1].0, &realms[1].1).await;
    // Slow answers hold their slots, as a slow QBO does.
    t.control(
        "/control/faults",
        json!({"latencyMs": 400, "pathContains": "/query"}),
        StatusCode::CREATED,
    )
    .await;
    let calls = (0..12).map(|_| t.query(&a, "select * from Bill"));
    let statuses: Vec<StatusCode> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, throttled), (10, 2), "{statuses:?}");
    assert_eq!(
        t.query(&b, "select * from Bill").await.status(),
        StatusCode::OK
    );
}
