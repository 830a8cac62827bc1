use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use brain_events::{DeadLetter, LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Handler, HandlerError, Source},
    kafka,
    settings::KafkaSettings,
    producer::EventProducer,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use system_tests::{loan_event, stack::Stack, wait_for};

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


/// A key whose dependency stays down holds only its own partition; a panicking handler
/// dead-letters its message and its partition carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_key_holds_only_its_partition_and_a_panic_is_dead_lettered() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("runtime").await?;
    let settings = stack.kafka_settings();
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
        let topic = stack.topic(topics::LOAN_STATUS_CHANGED);
        let payload = codec.encode(&topic, &loan_event(app, 1)).await?;
        let record = FutureRecord::to(&topic).partition(*partition).key(app.as_str()).payload(&payload);
        raw.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
    }

    let probe = Arc::new(Probe::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let producer = EventProducer::new(&settings, codec.clone(), "runtime-test")?;
    let readiness = brain_runtime::ops::Readiness::default();
    let running = tokio::spawn(consumer::run(config.clone(), settings.clone(), codec.clone(), producer, probe.clone(), readiness.clone(), shutdown.clone()));

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
    dlq.subscribe(&[&stack.topic(&config.dead_letter_topic())])?;
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

/// Counts, per partition, the handler calls in flight across every consumer of the group.
#[derive(Default)]
struct InFlight {
    active: Mutex<std::collections::HashMap<i32, i32>>,
    overlaps: std::sync::atomic::AtomicU32,
    handled_by_fast: Mutex<Vec<i32>>,
}

struct ActiveGuard<'a>(&'a InFlight, i32);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        *self.0.active.lock().expect("lock").entry(self.1).or_default() -= 1;
    }
}

/// Slow (`slow`: blocks for a minute, like a hung call) or fast; both record overlaps.
struct Overlap {
    slow: bool,
    flight: Arc<InFlight>,
}

impl Handler for Overlap {
    type Event = LoanStatusChanged;

    async fn handle(&self, source: Source<'_>, _event: LoanStatusChanged) -> Result<Applied, HandlerError> {
        {
            let mut active = self.flight.active.lock().expect("lock");
            let n = active.entry(source.partition).or_default();
            *n += 1;
            if *n > 1 {
                self.flight.overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _guard = ActiveGuard(&self.flight, source.partition);
        if self.slow {
            tokio::time::sleep(Duration::from_secs(60)).await;
        } else {
            self.flight.handled_by_fast.lock().expect("lock").push(source.partition);
        }
        Ok(Applied::Processed)
    }
}

/// A worker stuck past the drain timeout is aborted before its partition's next owner starts,
/// and shutdown ends within one drain deadline for all workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_past_the_drain_timeout_never_overlaps_the_next_owner() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("runtime-drain").await?;
    let settings = KafkaSettings { topic_partitions: 2, ..stack.kafka_settings() };
    let mut config = ConsumerConfig::new("runtime-test", "drain-test", &[topics::LOAN_STATUS_CHANGED]);
    config.drain_timeout = Duration::from_secs(1);
    kafka::ensure_topics(&settings, &[topics::LOAN_STATUS_CHANGED, &config.dead_letter_topic()]).await?;
    let codec = stack.codec();
    let topic = stack.topic(topics::LOAN_STATUS_CHANGED);
    let raw: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.broker.bootstrap).create()?;
    for partition in 0..2 {
        let app = format!("slow-{partition}");
        let payload = codec.encode(&topic, &loan_event(&app, 1)).await?;
        raw.send(FutureRecord::to(&topic).partition(partition).key(app.as_str()).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }

    let flight = Arc::new(InFlight::default());
    let start = |slow: bool, shutdown: tokio_util::sync::CancellationToken| {
        let producer = EventProducer::new(&settings, codec.clone(), "runtime-test").expect("producer");
        let handler = Arc::new(Overlap { slow, flight: flight.clone() });
        tokio::spawn(consumer::run(config.clone(), settings.clone(), codec.clone(), producer, handler, Default::default(), shutdown))
    };
    let stop_a = tokio_util::sync::CancellationToken::new();
    let a = start(true, stop_a.clone());
    wait_for("both partitions to be stuck in the slow member", Duration::from_secs(60), || {
        let flight = flight.clone();
        async move { Ok((flight.active.lock().expect("lock").values().sum::<i32>() == 2).then_some(())) }
    })
    .await?;

    // A second member joins: one partition moves, its stuck worker must be gone before it does.
    let stop_b = tokio_util::sync::CancellationToken::new();
    let b = start(false, stop_b.clone());
    wait_for("the moved partition to be handled by the new member", Duration::from_secs(60), || {
        let flight = flight.clone();
        async move { Ok((!flight.handled_by_fast.lock().expect("lock").is_empty()).then_some(())) }
    })
    .await?;
    assert_eq!(flight.overlaps.load(std::sync::atomic::Ordering::SeqCst), 0, "an old and a new owner ran one partition at once");

    // The slow member still hangs on its other partition: shutdown ends within the drain deadline.
    let stopping = std::time::Instant::now();
    stop_a.cancel();
    tokio::time::timeout(Duration::from_secs(15), a).await???;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(15));
    stop_b.cancel();
    tokio::time::timeout(Duration::from_secs(30), b).await???;
    println!("runtime: stuck worker aborted before the next owner took its partition (overlaps 0); shutdown with a hung handler took {:.1} s (drain timeout 1 s)", took.as_secs_f64());
    Ok(())
}
