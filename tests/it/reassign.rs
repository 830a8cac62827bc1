//! A partition handed back to a member whose previous worker on it is not gone yet (aborted on
//! revoke while its thread was blocked) keeps flowing once that worker is finally dropped.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use brain_events::{LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Handler, HandlerError, Source},
    kafka,
    producer::EventProducer,
    settings::KafkaSettings,
};
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use system_tests::{loan_event, stack::Stack, wait_for};

/// How long the first member's first message of each partition holds its thread.
const HANG: Duration = Duration::from_secs(12);

#[derive(Default)]
struct Seen {
    /// (member, partition, application) per handled message.
    handled: Mutex<Vec<(&'static str, i32, String)>>,
    hanging: AtomicU32,
    hung_up: AtomicU32,
}

/// Records what it handles; in member `a` the `hang-*` messages block the thread, as a
/// synchronous call that an abort cannot interrupt.
struct Member {
    name: &'static str,
    seen: Arc<Seen>,
}

impl Handler for Member {
    type Event = LoanStatusChanged;

    async fn handle(&self, source: Source<'_>, event: LoanStatusChanged) -> Result<Applied, HandlerError> {
        if self.name == "a" && event.application_id.starts_with("hang-") && source.attempt == 1 {
            self.seen.hanging.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(HANG);
            self.seen.hung_up.fetch_add(1, Ordering::SeqCst);
        }
        self.seen.handled.lock().expect("lock").push((self.name, source.partition, event.application_id));
        Ok(Applied::Processed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_given_back_before_its_old_worker_is_gone_keeps_flowing() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("reassign").await?;
    let settings = KafkaSettings { topic_partitions: 2, ..stack.kafka_settings() };
    let mut config = ConsumerConfig::new("runtime-test", "reassign-test", &[topics::LOAN_STATUS_CHANGED]);
    config.drain_timeout = Duration::from_millis(300);
    config.max_batch = 1;
    kafka::ensure_topics(&settings, &[topics::LOAN_STATUS_CHANGED, &config.dead_letter_topic()]).await?;
    let codec = stack.codec();
    let topic = stack.topic(topics::LOAN_STATUS_CHANGED);
    let raw: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.broker.bootstrap).create()?;
    let send = |partition: i32, app: String| {
        let (codec, topic, raw) = (codec.clone(), topic.clone(), raw.clone());
        async move {
            let payload = codec.encode(&topic, &loan_event(&app, 1)).await?;
            raw.send(FutureRecord::to(&topic).partition(partition).key(app.as_str()).payload(&payload), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)?;
            anyhow::Ok(())
        }
    };
    for partition in 0..2 {
        send(partition, format!("hang-{partition}")).await?;
    }

    let seen = Arc::new(Seen::default());
    let start = |name: &'static str, shutdown: tokio_util::sync::CancellationToken| {
        let producer = EventProducer::new(&settings, codec.clone(), "runtime-test").expect("producer");
        let handler = Arc::new(Member { name, seen: seen.clone() });
        tokio::spawn(consumer::run(config.clone(), settings.clone(), codec.clone(), producer, handler, Default::default(), shutdown))
    };
    let count = |seen: &Arc<Seen>, member: &'static str| seen.handled.lock().expect("lock").iter().filter(|(m, _, _)| *m == member).count();

    // Member a takes both partitions; the first message of each blocks a thread of it.
    let stop_a = tokio_util::sync::CancellationToken::new();
    let a = start("a", stop_a.clone());
    wait_for("both of a's workers to hang", Duration::from_secs(60), || {
        let seen = seen.clone();
        async move { Ok((seen.hanging.load(Ordering::SeqCst) == 2).then_some(())) }
    })
    .await?;

    // Member b joins, takes one partition (a's worker on it is aborted but cannot be dropped
    // while its thread is blocked), handles its message and leaves: the partition goes back to a.
    let stop_b = tokio_util::sync::CancellationToken::new();
    let b = start("b", stop_b.clone());
    wait_for("b to handle the partition it took", Duration::from_secs(60), || {
        let seen = seen.clone();
        async move { Ok((count(&seen, "b") > 0).then_some(())) }
    })
    .await?;
    stop_b.cancel();
    tokio::time::timeout(Duration::from_secs(30), b).await???;
    assert_eq!(seen.hung_up.load(Ordering::SeqCst), 0, "the partition went back to a while its old worker still hung");

    // The old worker is dropped when its thread is free again; then both partitions get new
    // messages, and a must handle every one of them.
    wait_for("a's hung workers to return", HANG + Duration::from_secs(30), || {
        let seen = seen.clone();
        async move { Ok((seen.hung_up.load(Ordering::SeqCst) == 2).then_some(())) }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut expected = HashSet::new();
    for i in 0..10 {
        for partition in 0..2 {
            let app = format!("after-{partition}-{i}");
            send(partition, app.clone()).await?;
            expected.insert(app);
        }
    }
    let after = |seen: &Arc<Seen>| -> Vec<(i32, String)> {
        seen.handled.lock().expect("lock").iter().filter(|(m, _, app)| *m == "a" && app.starts_with("after-")).map(|(_, p, app)| (*p, app.clone())).collect()
    };
    let waited = wait_for("a to handle the new messages of both partitions", Duration::from_secs(60), || {
        let seen = seen.clone();
        let want = expected.len();
        async move { Ok((after(&seen).len() >= want).then_some(())) }
    })
    .await;
    let handled = after(&seen);
    let per_partition = |p: i32| handled.iter().filter(|(q, _)| *q == p).count();
    println!(
        "reassign: partition handed back to a while its old worker hung ({} s); new messages handled by a: partition 0: {} of 10, partition 1: {} of 10",
        HANG.as_secs(),
        per_partition(0),
        per_partition(1)
    );
    waited?;
    let unique: HashSet<&String> = handled.iter().map(|(_, app)| app).collect();
    assert_eq!(handled.len(), expected.len(), "each new message handled once");
    assert_eq!(unique.len(), expected.len());

    stop_a.cancel();
    tokio::time::timeout(Duration::from_secs(30), a).await???;
    Ok(())
}
