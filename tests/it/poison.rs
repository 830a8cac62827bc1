use std::{sync::Arc, time::Duration};

use brain_events::{DeadLetter, topics, wire};
use brain_runtime::{
    kafka,
    producer::{EventProducer, Outgoing},
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use system_tests::{
    loan_event,
    stack::{PROJECTION_WRITER, Stack},
    wait_for,
};


/// Random bytes, an unknown schema id and an invalid event on the flow's topic end in the
/// dead-letter topic in decodable envelopes, and the partition keeps flowing past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_and_the_partition_keeps_flowing() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("poison").await?;
    stack.start_services(&[PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let settings = stack.kafka_settings();
    let codec = stack.codec();
    let producer = EventProducer::new(&settings, codec.clone(), "poison-test")?;

    // All on one key, so all on one partition, in this order.
    let key = "app-poison";
    let random: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
    let unknown_schema = wire::frame(999_999, b"\x02\x04junk");
    producer.send(topics::LOAN_STATUS_CHANGED, key, &loan_event(key, 1)).await?;
    for payload in [&random, &unknown_schema] {
        producer.send_raw(Outgoing { topic: topics::LOAN_STATUS_CHANGED, key: Some(key.as_bytes()), payload, headers: vec![] }).await?;
    }
    producer.send(topics::LOAN_STATUS_CHANGED, key, &loan_event("bad/id", 1)).await?;
    producer.send(topics::LOAN_STATUS_CHANGED, key, &loan_event(key, 2)).await?;

    wait_for("the event after the poison to be applied", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let v: Option<i64> = sqlx::query_scalar("SELECT version FROM projection_writer.applications WHERE application_id = $1")
                .bind(key)
                .fetch_optional(&pool)
                .await?;
            Ok((v == Some(2)).then_some(()))
        }
    })
    .await?;

    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &stack.broker.bootstrap)
            .set("group.id", format!("dlq-reader-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .create()?,
    );
    let dlq = topics::dead_letter(PROJECTION_WRITER);
    kafka::ensure_topics(&settings, &[&dlq]).await?;
    consumer.subscribe(&[&stack.topic(&dlq)])?;
    let mut envelopes = Vec::new();
    while envelopes.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        envelopes.push(codec.decode::<DeadLetter>(message.payload().unwrap_or_default()).await?);
    }
    envelopes.sort_by_key(|e| e.source_offset);
    let kinds: Vec<_> = envelopes.iter().map(|e| e.error_kind.as_str()).collect();
    assert_eq!(kinds, ["undecodable", "unknown_schema", "validation"]);
    assert_eq!(envelopes[0].value.as_deref(), Some(random.as_slice()));
    assert_eq!(envelopes[1].value.as_deref(), Some(unknown_schema.as_slice()));
    for e in &envelopes {
        assert_eq!(e.source_topic, stack.topic(topics::LOAN_STATUS_CHANGED));
        assert_eq!(e.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(e.consumer_group, PROJECTION_WRITER);
        assert_eq!(e.error_class, "permanent");
        assert_eq!(e.attempts, 1);
        assert!(
            e.headers.iter().any(|h| h.key == "brain-producer" && h.value.as_deref() == Some(b"poison-test".as_slice())),
            "original headers are kept"
        );
        assert!(e.trace_id.is_some());
    }
    assert_eq!(envelopes[1].source_offset, envelopes[0].source_offset + 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.event_log").fetch_one(&pool).await?;
    assert_eq!(rows, 2, "only the two valid events were applied");
    println!("poison: 3 dead letters ({}), partition kept flowing", kinds.join(", "));
    stack.stop_all().await?;
    Ok(())
}
