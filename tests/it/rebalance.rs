use std::time::{Duration, Instant};

use brain_events::topics;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use system_tests::{
    loan_event,
    stack::{PROJECTION_WRITER, Stack},
    wait_for,
};

const APPS: usize = 240;
const VERSIONS: i64 = 60;


async fn applied(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM projection_writer.event_log").fetch_one(pool).await?)
}

async fn wait_applied(pool: &sqlx::PgPool, at_least: i64, timeout: Duration) -> anyhow::Result<()> {
    wait_for(&format!("{at_least} events applied"), timeout, || async move { Ok((applied(pool).await? >= at_least).then_some(())) }).await
}

/// Two instances of projection-writer under a backlog, through every kind of rebalance (scale
/// out, scale in, SIGKILL of one): every partition keeps being consumed, every version is applied
/// exactly once, and after a SIGKILL the survivor takes the dead member's partitions over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_under_backlog_keep_every_partition_flowing_through_rebalances() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("rebalance").await?;
    let settings = stack.kafka_settings();
    brain_runtime::kafka::ensure_topics(&settings, &[topics::LOAN_STATUS_CHANGED]).await?;
    let codec = stack.codec();
    let topic = stack.topic(topics::LOAN_STATUS_CHANGED);
    let raw: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.broker.bootstrap).set("linger.ms", "20").create()?;
    let apps: Vec<String> = (0..APPS).map(|i| format!("app-{i:03}")).collect();
    let mut sent = Vec::with_capacity(APPS * VERSIONS as usize);
    for version in 1..=VERSIONS {
        for app in &apps {
            let payload = codec.encode(&topic, &loan_event(app, version)).await?;
            sent.push(raw.send_result(FutureRecord::to(&topic).key(app.as_str()).payload(&payload)).map_err(|(e, _)| e)?);
        }
    }
    for delivery in sent {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let total = (APPS as i64) * VERSIONS;
    let pool = stack.db.connect().await?;

    // Small batches and a slow linger keep the backlog long enough to rebalance under it.
    let mut a = stack.instance(PROJECTION_WRITER, "projection-writer-a");
    let mut b = stack.instance(PROJECTION_WRITER, "projection-writer-b");
    a.set_env("PROJECTION_WRITER__BATCH_SIZE", "20");
    b.set_env("PROJECTION_WRITER__BATCH_SIZE", "20");
    a.start().await?;
    wait_applied(&pool, 1_000, Duration::from_secs(60)).await?;
    b.start().await?; // scale out
    let mark = applied(&pool).await?;
    wait_applied(&pool, mark + 2_000, Duration::from_secs(60)).await?;
    b.stop().await?; // scale in
    let mark = applied(&pool).await?;
    wait_applied(&pool, mark + 1_000, Duration::from_secs(60)).await?;
    b.start().await?; // out again, then one member dies
    let mark = applied(&pool).await?;
    wait_applied(&pool, mark + 1_000, Duration::from_secs(60)).await?;
    a.kill().await?;
    wait_applied(&pool, total, Duration::from_secs(180)).await?;

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (entity_id, version)) FROM projection_writer.event_log").fetch_one(&pool).await?;
    let at_final: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.applications WHERE version = $1")
        .bind(VERSIONS)
        .fetch_one(&pool)
        .await?;
    assert_eq!((rows, distinct), (total, total), "every version applied exactly once");
    assert_eq!(at_final, APPS as i64, "every application at its final version");

    // Failover: both members up and idle, one is SIGKILLed, then one event per partition. The
    // survivor must take over the dead member's partitions and apply every one of them.
    a.start().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.kill().await?;
    let killed = Instant::now();
    for partition in 0..settings.topic_partitions {
        let app = format!("failover-{partition}");
        let payload = codec.encode(&topic, &loan_event(&app, 1)).await?;
        raw.send(FutureRecord::to(&topic).partition(partition).key(app.as_str()).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    wait_applied(&pool, total + i64::from(settings.topic_partitions), Duration::from_secs(60)).await?;
    let failover = killed.elapsed();
    println!(
        "rebalance: {total} events over {APPS} loans through scale-out, scale-in and a SIGKILL: applied {rows}, distinct {distinct}; failover after SIGKILL: {:.1} s until every partition was consumed again",
        failover.as_secs_f64()
    );
    b.stop().await?;
    Ok(())
}
