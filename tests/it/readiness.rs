use std::time::Duration;

use brain_events::topics;
use brain_runtime::producer::EventProducer;
use system_tests::{
    loan_event,
    postgres::PrivatePostgres,
    stack::{PROJECTION_WRITER, Stack},
    wait_for,
};


async fn ready(http: &reqwest::Client, url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = http.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// `/ready` goes false while the worker cannot make progress because PostgreSQL is down, says
/// why with a stable reason (no driver error text), and comes back once it is up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_goes_false_while_postgres_is_down_and_comes_back() -> anyhow::Result<()> {
    crate::init_logs();
    let pg = PrivatePostgres::start().await?;
    let mut stack = Stack::start_on("readiness", &pg.url()).await?;
    stack.start_services(&[PROJECTION_WRITER]).await?;
    let url = stack.service(PROJECTION_WRITER).ready_url().to_string();
    let deps = url.replace("/ready", "/health/deps");
    let http = stack.http.clone();
    assert_eq!(ready(&http, &url).await?.0, 200);

    // The registry stores in the same PostgreSQL: one event first, so that producer and consumer
    // both have the schema cached before the server goes down.
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "readiness-test")?;
    producer.send(topics::LOAN_STATUS_CHANGED, "app-q", &loan_event("app-q", 1)).await?;
    let pool = stack.db.connect().await?;
    wait_for("the first event to be applied", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.event_log").fetch_one(&pool).await?;
            Ok((n == 1).then_some(()))
        }
    })
    .await?;
    pool.close().await;
    pg.stop().await?;
    producer.send(topics::LOAN_STATUS_CHANGED, "app-r", &loan_event("app-r", 1)).await?;
    let body = wait_for("/ready to report the database", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), url.clone());
        async move { Ok(ready(&http, &url).await.ok().filter(|(s, _)| *s == 503).map(|(_, b)| b)) }
    })
    .await?;
    assert_eq!(body["checks"]["handler"]["status"], "failing", "{body}");
    assert_eq!(body["checks"]["handler"]["reason"], "database", "{body}");
    let report = http.get(&deps).send().await?.text().await?;
    assert!(!report.to_lowercase().contains("connection refused") && !report.contains("error"), "no driver text: {report}");

    pg.start_again().await?;
    wait_for("/ready to recover", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), url.clone());
        async move { Ok(ready(&http, &url).await.ok().filter(|(s, _)| *s == 200).map(|_| ())) }
    })
    .await?;
    println!("readiness: 503 with handler=database while PostgreSQL was down, 200 again after it came back");
    stack.stop_all().await?;
    Ok(())
}
