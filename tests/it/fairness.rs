//! Fairness: one tenant floods a partition; with the fair window, the other tenant's messages are
//! handled in turns with the flood's instead of after all of it. Two consumer groups read the same
//! backlog, one fair and one in plain offset order, and the test compares where the quiet tenant's
//! messages fell in each handling order (positions, not times: a slow machine changes neither).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use brain_events::{LoanStatusChanged, topics};
use brain_runtime::{
    consumer::{self, Applied, ConsumerConfig, Handler, HandlerError, Source},
    kafka,
    producer::EventProducer,
};
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use system_tests::{loan_event, stack::Stack, wait_for};

const FLOOD: usize = 1_500;
const QUIET: usize = 20;

/// A handler as slow as an external call, recording who it handled and when.
struct Slow {
    handled: Mutex<Vec<(String, Instant)>>,
}

impl Handler for Slow {
    type Event = LoanStatusChanged;

    async fn handle(&self, _source: Source<'_>, event: LoanStatusChanged) -> Result<Applied, HandlerError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.handled.lock().expect("lock").push((event.tenant_id, Instant::now()));
        Ok(Applied::Processed)
    }

    fn tenant(&self, event: &LoanStatusChanged) -> Option<String> {
        Some(event.tenant_id.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_make_the_others_wait_for_its_backlog() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("fairness").await?;
    let settings = stack.kafka_settings();
    kafka::ensure_topics(&settings, &[topics::LOAN_STATUS_CHANGED]).await?;
    let codec = stack.codec();

    // The backlog: the flood first, then the quiet tenant, all on partition 0.
    let topic = stack.topic(topics::LOAN_STATUS_CHANGED);
    let raw: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.broker.bootstrap).set("linger.ms", "20").create()?;
    let mut plan: Vec<(String, &str)> = (0..FLOOD).map(|i| (format!("flood-{}", i % 50), "flood")).collect();
    plan.extend((0..QUIET).map(|i| (format!("quiet-{i}"), "quiet")));
    let mut sends = Vec::new();
    for (i, (app, tenant)) in plan.iter().enumerate() {
        let mut event = loan_event(app, i as i64 + 1);
        event.tenant_id = tenant.to_string();
        let payload = codec.encode(&topic, &event).await?;
        sends.push(raw.send_result(FutureRecord::to(&topic).partition(0).key(app.as_str()).payload(&payload)).map_err(|(e, _)| e)?);
    }
    for sent in sends {
        sent.await?.map_err(|(e, _)| e)?;
    }

    let shutdown = tokio_util::sync::CancellationToken::new();
    let producer = EventProducer::new(&settings, codec.clone(), "fairness-test")?;
    let mut runs = Vec::new();
    for (group, fair_window) in [("fairness-fair", 5_000), ("fairness-fifo", 0)] {
        let config = ConsumerConfig { fair_window, ..ConsumerConfig::new("fairness-test", group, &[topics::LOAN_STATUS_CHANGED]) };
        kafka::ensure_topics(&settings, &[&config.dead_letter_topic()]).await?;
        let handler = Arc::new(Slow { handled: Mutex::default() });
        let readiness = brain_runtime::ops::Readiness::default();
        let started = Instant::now();
        let task = tokio::spawn(consumer::run(config, settings.clone(), codec.clone(), producer.clone(), handler.clone(), readiness, shutdown.clone()));
        runs.push((group, handler, started, task));
    }
    for (group, handler, _, _) in &runs {
        wait_for(&format!("{group} to handle the backlog"), Duration::from_secs(120), || async {
            Ok((handler.handled.lock().expect("lock").len() >= FLOOD + QUIET).then_some(()))
        })
        .await?;
    }
    shutdown.cancel();
    let mut last_quiet = Vec::new();
    for (group, handler, started, task) in runs {
        task.await??;
        let handled = handler.handled.lock().expect("lock");
        let positions: Vec<usize> = handled.iter().enumerate().filter(|(_, (t, _))| t == "quiet").map(|(i, _)| i).collect();
        let last = *positions.last().expect("quiet handled");
        let quiet_done = handled[last].1 - started;
        let all_done = handled.last().expect("handled").1 - started;
        println!(
            "fairness: {group}: the quiet tenant's {QUIET} messages done at position {last} of {}, after {:.2} s (the whole backlog: {:.2} s)",
            handled.len(),
            quiet_done.as_secs_f64(),
            all_done.as_secs_f64()
        );
        last_quiet.push(last);
    }
    assert!(last_quiet[1] >= FLOOD, "in offset order the quiet tenant waits for the whole flood");
    // While the quiet tenant has messages waiting, the flood gets every other turn (at most half).
    assert!(last_quiet[0] < 2 * QUIET + 500, "with the fair window the quiet tenant does not wait for the flood (last at {})", last_quiet[0]);
    Ok(())
}
