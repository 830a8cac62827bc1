use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use brain_events::{DeadLetter, LoanState, LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Handler, HandlerError, Source},
    kafka,
    producer::EventProducer,
    settings::KafkaSettings,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use system_tests::{stack::Stack, wait_for};

/// Records what it handled; panics on one key and finds its dependency down for another.
#[derive(Default)]
struct Probe {
    handled: Mutex<Vec<(i32, String)>>,
}

impl Handler for Probe {
    type Event = LoanStatusChanged;

    async fn handle(&self, source: Source<'_>, event: LoanStatusChanged) -> Result<Applied, HandlerError> {
        match event.application_id.as_str() {
            "panics" => panic!("a bug in the handler"),
            "stuck" => Err(HandlerError::unavailable("test", "the dependency is down")),
            app => {
                self.handled.lock().expect("lock").push((source.partition, app.to_string()));
                Ok(Applied::Processed)
            }
        }
    }
}

fn event(app: &str) -> LoanStatusChanged {
    LoanStatusChanged {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: 0,
        tenant_id: "t".into(),
        correlation_id: "c".into(),
        causation_id: None,
        producer: "runtime-test".into(),
        application_id: app.into(),
        version: 1,
        source_seq: 0,
        loan: LoanState {
            loan_id: "L".into(),
            loan_number: "1".into(),
            loan_type: "7A".into(),
            status: "Open".into(),
            status_changed_at: 0,
            borrower_entity_id: "B".into(),
            amount_requested_cents: 1,
            amount_approved_cents: None,
            updated_at: 0,
        },
    }
}

/// A key whose dependency stays down holds only its own partition; a panicking handler
/// dead-letters its message and its partition carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_key_holds_only_its_partition_and_a_panic_is_dead_lettered() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("runtime").await?;
    let settings = KafkaSettings { brokers: stack.broker.bootstrap.clone(), properties: vec![], sasl_password: None, topic_partitions: 6, topic_replication: 1 };
    let config = ConsumerConfig::new("runtime-test", "runtime-test", &[topics::LOAN_STATUS_CHANGED]);
    kafka::ensure_topics(&settings, &[topics::LOAN_STATUS_CHANGED, &config.dead_letter_topic()]).await?;
    let codec = stack.codec();

    // Explicit partitions: 0 starts with the stuck key, 1 with the panicking one.
    let raw: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.broker.bootstrap).create()?;
    let mut plan = vec![(0, "stuck".to_string()), (1, "panics".to_string())];
    for partition in 0..6 {
        plan.extend((0..5).map(|i| (partition, format!("app-{partition}-{i}"))));
    }
    for (partition, app) in &plan {
        let payload = codec.encode(topics::LOAN_STATUS_CHANGED, &event(app)).await?;
        let record = FutureRecord::to(topics::LOAN_STATUS_CHANGED).partition(*partition).key(app.as_str()).payload(&payload);
        raw.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
    }

    let probe = Arc::new(Probe::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let producer = EventProducer::new(&settings, codec.clone(), "runtime-test")?;
    let running = tokio::spawn(consumer::run(config.clone(), settings.clone(), codec.clone(), producer, probe.clone(), shutdown.clone()));

    // Partitions 1-5 are handled completely, partition 0 not at all past its stuck head.
    wait_for("partitions 1-5 to be handled", Duration::from_secs(90), || {
        let probe = probe.clone();
        async move { Ok((probe.handled.lock().expect("lock").iter().filter(|(p, _)| *p != 0).count() == 25).then_some(())) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(probe.handled.lock().expect("lock").iter().all(|(p, _)| *p != 0), "nothing behind the stuck key was handled");

    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.broker.bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()?;
    dlq.subscribe(&[&config.dead_letter_topic()])?;
    let message = tokio::time::timeout(Duration::from_secs(60), dlq.recv()).await??;
    let envelope = codec.decode::<DeadLetter>(message.payload().unwrap_or_default()).await?;
    assert_eq!(envelope.error_kind, "handler_panic");
    assert!(envelope.error_message.contains("a bug in the handler"));
    assert_eq!((envelope.source_partition, envelope.key.as_deref()), (1, Some(b"panics".as_slice())));

    // Shutdown with a message still retrying (the stuck one) is clean and prompt.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    Ok(())
}
