//! A chaos run: a workload of source changes flows through Brain while a seeded schedule of
//! faults runs (worker SIGKILLs, a PostgreSQL restart, a Ventures outage and 429 storm, poison
//! records and duplicates on the flow topic). Then an independent checker verifies that nothing
//! was lost, nothing was applied twice, no entity's versions went backwards, and the dead-letter
//! topic holds exactly the injected poison. The seed replays the same schedule.
//!
//! Broker faults (`Dose::broker_restarts`, `rolling_restarts`, `leader_changes`) run on the 3-node
//! Apache Kafka cluster of `make chaos`: node kill -9s, a rolling restart and forced leader
//! elections. The flow topic is then read back and losses are split between the broker's (gone
//! from the flow topic; must be 0 on Kafka with acks=all and min.insync.replicas=2) and Brain's
//! (on the topic, never applied); see `checker::LossAttribution`. With `BRAIN_BROKER=tansu`,
//! tansu keeps its data on a local S3 server and its own losses are reported, not failed.

pub mod checker;
pub mod faults;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use brain_events::{topics, wire};
use brain_runtime::{
    producer::{EventProducer, Outgoing},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rdkafka::{
    ClientConfig, Message,
    message::Headers,
    consumer::{Consumer, StreamConsumer},
};
use serde_json::json;

use crate::{
    infra::{Broker, BrokerStorage, S3Server},
    postgres::PrivatePostgres,
    stack::{PROJECTION_WRITER, Stack, VENTURES_SYNC},
    workload::{self, Driver, Expected, Report},
};
use checker::{DeadLetterReport, LossAttribution};
use faults::{Dose, Fault};

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub changes: usize,
    pub loans: usize,
    /// Status changes per second.
    pub rate: f64,
    pub seed: u64,
    pub dose: Dose,
}

impl ChaosConfig {
    /// Broker faults for a 3-node cluster: 3 node kills, one rolling restart, 2 leader changes.
    pub fn with_broker_faults(mut self) -> Self {
        self.dose.broker_restarts = self.dose.broker_restarts.max(3);
        self.dose.rolling_restarts = self.dose.rolling_restarts.max(1);
        self.dose.leader_changes = self.dose.leader_changes.max(2);
        self
    }

    /// The default run: 20,000 changes over 500 loans, at least 10 kills.
    pub fn full(seed: u64) -> Self {
        Self {
            changes: 20_000,
            loans: 500,
            rate: 250.0,
            seed,
            dose: Dose { kills: 10, postgres_restarts: 1, outage_secs: 5, storm: 30, poison: 10, duplicates: 100, broker_restarts: 0, rolling_restarts: 0, leader_changes: 0 },
        }
    }

    /// The short run inside `make test`: every kind of fault, little volume.
    pub fn smoke(seed: u64) -> Self {
        Self {
            changes: 1_500,
            loans: 100,
            rate: 100.0,
            seed,
            dose: Dose { kills: 4, postgres_restarts: 1, outage_secs: 2, storm: 10, poison: 4, duplicates: 20, broker_restarts: 0, rolling_restarts: 0, leader_changes: 0 },
        }
    }
}

#[derive(Debug)]
pub struct ChaosOutcome {
    pub seed: u64,
    pub report: Report,
    pub dead_letters: DeadLetterReport,
    pub kills: u32,
    pub faults: usize,
    pub convergence_after_last_fault: Duration,
    pub total: Duration,
    /// Present when the run had broker faults: losses split between the broker and Brain.
    pub losses: Option<LossAttribution>,
    /// Duplicates actually re-sent (a planned one is skipped while the sampler has seen nothing).
    pub duplicates_sent: usize,
    /// Forced leader elections the run survived.
    pub leader_elections: u32,
}

impl ChaosOutcome {
    /// Whether Brain kept every invariant. With broker faults on tansu, what tansu itself lost
    /// (acknowledged records gone from the flow topic) is reported, not counted against Brain.
    pub fn is_clean(&self) -> bool {
        let (r, d) = (&self.report, &self.dead_letters);
        match &self.losses {
            None => r.is_clean() && d.is_clean() && r.event_log_rows == r.source_versions,
            Some(l) => {
                (l.broker_lost == 0 || Broker::is_tansu())
                    && l.brain_lost == 0
                    && r.duplicates == 0
                    && r.inversions == 0
                    && l.brain_read_model_mismatches == 0
                    && l.brain_firestore_mismatches == 0
                    && l.poison_missing_brain == 0
                    && l.undecodable_other == 0
                    && d.unexpected == 0
                    && d.undecodable == 0
                    && l.brain_lost + l.broker_lost == r.lost
                    && r.event_log_rows + l.broker_lost == r.source_versions
            }
        }
    }
}

impl std::fmt::Display for ChaosOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        let d = &self.dead_letters;
        writeln!(f, "chaos seed {} ({} faults, {} kills) in {:.0} s", self.seed, self.faults, self.kills, self.total.as_secs_f64())?;
        writeln!(f, "  applications {} · source versions {} · event_log rows {}", r.applications, r.source_versions, r.event_log_rows)?;
        match &self.losses {
            None => {
                writeln!(f, "  lost {} · duplicated {} · order inversions {} · duplicates re-sent {}", r.lost, r.duplicates, r.inversions, self.duplicates_sent)?;
                writeln!(f, "  read model mismatches {} · Firestore mismatches {}", r.read_model_mismatches, r.firestore_mismatches)?;
                writeln!(f, "  dead letters: injected {} · found {} · missing {} · unexpected {} · undecodable {}", d.injected, d.found, d.missing, d.unexpected, d.undecodable)?;
            }
            Some(l) => {
                writeln!(
                    f,
                    "  broker restarts {} (node kill -9s and rolling-restart steps) · leader elections {} · flow topic read back: {} records, {} of them repeats of a version already there ({} injected, the rest re-sent by producers; absorbed by the consumers)",
                    l.broker_restarts, self.leader_elections, l.topic_records, l.topic_duplicates, self.duplicates_sent
                )?;
                writeln!(f, "  lost by Brain {} (on the flow topic, never applied) · duplicated {} · order inversions {}", l.brain_lost, r.duplicates, r.inversions)?;
                writeln!(
                    f,
                    "  lost by the broker {} (acknowledged source versions gone from the flow topic; fails the run on Kafka, reported only on tansu) · of them final versions {} · poison records {}",
                    l.broker_lost, l.final_versions_lost, l.poison_lost_by_broker
                )?;
                writeln!(
                    f,
                    "  read model mismatches {} · Firestore mismatches {} (of the {} applications whose final version is on the flow topic)",
                    l.brain_read_model_mismatches,
                    l.brain_firestore_mismatches,
                    r.applications - l.final_versions_lost
                )?;
                writeln!(
                    f,
                    "  dead letters: injected {} · found {} · missing {} (+{} lost by the broker) · unexpected {} · undecodable {}",
                    d.injected, d.found, l.poison_missing_brain, l.poison_lost_by_broker, d.unexpected, d.undecodable
                )?;
                if l.undecodable_other > 0 {
                    writeln!(f, "  flow records the checker could not decode (not injected poison): {}", l.undecodable_other)?;
                }
            }
        }
        write!(f, "  converged {:.1} s after the last fault · verdict {}", self.convergence_after_last_fault.as_secs_f64(), if self.is_clean() { "PASS" } else { "FAIL" })
    }
}

/// Keeps a bounded random sample of the records on the flow topic, to re-send as duplicates.
type Sample = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

fn sample_records(broker: &crate::infra::Broker, partitions: i32, seed: u64) -> anyhow::Result<(Sample, tokio::task::JoinHandle<()>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", format!("chaos-sampler-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    // Assigned, not subscribed: the sampler starts at once and never joins the services' group.
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(&broker.topic(topics::LOAN_STATUS_CHANGED), partition, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let sample = Arc::new(Mutex::new(Vec::new()));
    let keep = sample.clone();
    let task = tokio::spawn(async move {
        let (mut rng, mut seen) = (StdRng::seed_from_u64(seed), 0usize);
        loop {
            // Errors are transient (e.g. while the broker restarts): librdkafka reconnects.
            let m = match consumer.recv().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "sampler: consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            seen += 1;
            if seen == 1 {
                tracing::debug!("sampler: first record from the flow topic");
            }
            // Duplicates copy valid records only: those ventures-sync produced (not poison).
            let from_ventures_sync = m.headers().is_some_and(|h| {
                h.iter().any(|h| h.key == "brain-producer" && h.value == Some(b"ventures-sync".as_slice()))
            });
            if !from_ventures_sync {
                continue;
            }
            let record = (m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
            let mut sample = keep.lock().expect("sample lock");
            if sample.len() < 256 {
                sample.push(record);
            } else if rng.random_range(0..seen) < 256 {
                let slot = rng.random_range(0..256);
                sample[slot] = record;
            }
        }
    });
    Ok((sample, task))
}

pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosOutcome> {
    let started = Instant::now();
    let pg = PrivatePostgres::start().await?;
    let mut stack = Stack::start_on("chaos", &pg.url()).await?;
    let broker_restarts = config.dose.has_broker_faults();
    anyhow::ensure!(
        !broker_restarts || Broker::is_tansu() || stack.broker.nodes() >= 3,
        "broker faults need the 3-node cluster that make chaos starts (or BRAIN_BROKER=tansu)"
    );
    // tansu with broker restarts keeps its data on a local S3 server of this run's own (memory
    // storage would lose everything on restart). Nothing has used the broker yet.
    let _s3 = if broker_restarts && Broker::is_tansu() {
        let s3 = S3Server::start(stack.logs.join("s3.log")).await?;
        stack.broker.switch_storage(BrokerStorage::s3(&s3)).await?;
        Some(s3)
    } else {
        None
    };
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let settings = stack.kafka_settings();
    let producer = EventProducer::new(&settings, stack.codec(), "chaos")?;
    let (sample, sampler) = sample_records(&stack.broker, settings.topic_partitions, config.seed)?;
    let mut rng = StdRng::seed_from_u64(config.seed);

    let mut expected = Expected::default();
    let mut driver = Driver::new(&stack.sim.base_url(), config.seed);
    driver.create_loans("app", config.loans, &mut expected).await?;
    let apps: Vec<String> = expected.loans.keys().cloned().collect();
    let window = Duration::from_secs_f64(config.changes as f64 / config.rate);
    let schedule = faults::plan(&config.dose, window, &mut rng);
    let (changes, rate) = (config.changes, config.rate);
    let workload = tokio::spawn(async move { driver.change_statuses(changes, Some(rate), &mut expected).await });

    let begin = Instant::now();
    let mut poison = BTreeSet::new();
    let mut duplicates_sent = 0;
    let mut last_fault_end = begin;
    let sim = stack.sim.base_url();
    for planned in &schedule {
        tokio::time::sleep_until((begin + planned.at).into()).await;
        let key = apps[rng.random_range(0..apps.len())].clone();
        tracing::info!(at_ms = planned.at.as_millis() as u64, fault = ?planned.fault, "fault");
        let mut ends = Instant::now();
        match &planned.fault {
            Fault::Kill(victim) => {
                stack.service(victim).kill().await?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                stack.service(victim).start().await?;
            }
            Fault::PostgresRestart => pg.restart().await?,
            Fault::VenturesOutage { secs } => {
                stack.http.post(format!("{sim}/control/faults")).json(&json!({ "status": 503, "durationSecs": secs })).send().await?.error_for_status()?;
                ends += Duration::from_secs(*secs);
            }
            Fault::RateLimitStorm { count } => {
                stack.http.post(format!("{sim}/control/faults")).json(&json!({ "status": 429, "retryAfterSecs": 1, "count": count })).send().await?.error_for_status()?;
            }
            Fault::Poison { unknown_schema } => {
                let mut payload: Vec<u8> = (0..rng.random_range(8..256)).map(|_| rng.random()).collect();
                if *unknown_schema {
                    payload = wire::frame(rng.random_range(1_000_000..2_000_000), &payload);
                } else {
                    payload[0] = rng.random_range(1..=255); // not the magic byte
                }
                producer.send_raw(Outgoing { topic: topics::LOAN_STATUS_CHANGED, key: Some(key.as_bytes()), payload: &payload, headers: vec![] }).await?;
                poison.insert(payload);
            }
            Fault::Duplicate => {
                let record = {
                    let sample = sample.lock().expect("sample lock");
                    (!sample.is_empty()).then(|| sample[rng.random_range(0..sample.len())].clone())
                };
                if let Some((key, payload)) = record {
                    producer.send_raw(Outgoing { topic: topics::LOAN_STATUS_CHANGED, key: Some(&key), payload: &payload, headers: vec![] }).await?;
                    duplicates_sent += 1;
                }
            }
            // The services are not touched: their Kafka clients reconnect by themselves.
            Fault::BrokerRestart => {
                let node = rng.random_range(1..=stack.broker.nodes());
                stack.broker.restart(node).await?;
            }
            Fault::RollingRestart => stack.broker.rolling_restart().await?,
            Fault::LeaderChange => stack.broker.move_leaders().await?,
        }
        last_fault_end = last_fault_end.max(ends);
    }
    workload.await??;
    sampler.abort();
    tokio::time::sleep_until(last_fault_end.into()).await;
    // The fault window is over: lift whatever the services have not yet run into.
    stack.http.delete(format!("{sim}/control/faults")).send().await?.error_for_status()?;

    // The checker's truth is the source itself, not the driver's bookkeeping.
    let truth = checker::source_truth(&stack.http, &sim, &stack.credentials).await?;
    if broker_restarts {
        wait_settled(&pool, &truth, &stack.broker, &stack.codec(), Duration::from_secs(600)).await?;
    } else {
        workload::wait_converged(&pool, &truth, Duration::from_secs(600)).await?;
    }
    let convergence_after_last_fault = last_fault_end.elapsed();
    let projections = stack.projections().await?;
    let report = workload::check(&pool, &projections, &truth, true).await?;
    let dead_letters = checker::dead_letters(&stack.broker, &stack.codec(), PROJECTION_WRITER, &poison, Duration::from_secs(60)).await?;
    let losses = if broker_restarts {
        // Read the flow topic back with a fresh consumer: whatever is not there any more, the
        // broker lost; whatever is there but has no event_log row, Brain lost.
        let topic = checker::flow_topic(&stack.broker, &stack.codec()).await?;
        let missing = checker::missing_from_event_log(&pool, &truth).await?;
        let (mut losses, reachable) = LossAttribution::attribute(stack.broker.restarts, &topic, &missing, &truth, &dead_letters, &poison);
        let brain = workload::check(&pool, &projections, &reachable, true).await?;
        losses.brain_read_model_mismatches = brain.read_model_mismatches;
        losses.brain_firestore_mismatches = brain.firestore_mismatches;
        Some(losses)
    } else {
        None
    };
    let kills = stack.services.values().map(|s| s.kills).sum();
    let leader_elections = stack.broker.leader_elections;
    stack.stop_all().await?;
    Ok(ChaosOutcome {
        seed: config.seed,
        report,
        dead_letters,
        kills,
        faults: schedule.len(),
        convergence_after_last_fault,
        total: started.elapsed(),
        losses,
        duplicates_sent,
        leader_elections,
    })
}

/// Like `workload::wait_converged`, for runs where the broker may have lost an application's
/// final version: returns once every application is at its final version, or once the read
/// model has stopped moving for 30 s and every application still short of its final version
/// has that version missing from the flow topic (nothing left that Brain could apply).
async fn wait_settled(pool: &sqlx::PgPool, truth: &workload::Expected, broker: &crate::infra::Broker, codec: &brain_events::Codec, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut moved) = (BTreeMap::new(), Instant::now());
    loop {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT application_id, version FROM projection_writer.applications").fetch_all(pool).await?;
        let applied: BTreeMap<String, i64> = rows.into_iter().collect();
        let behind: Vec<(String, i64)> =
            truth.loans.iter().filter(|(app, (_, v, _))| applied.get(*app) != Some(v)).map(|(app, (_, v, _))| (app.clone(), *v)).collect();
        if behind.is_empty() {
            return Ok(());
        }
        if applied != last {
            (last, moved) = (applied, Instant::now());
        } else if moved.elapsed() >= Duration::from_secs(30) {
            let topic = checker::flow_topic(broker, codec).await?;
            let reachable = behind.iter().filter(|key| topic.versions.contains(*key)).count();
            tracing::warn!(behind = behind.len(), reachable, "the read model stopped short of the source");
            if reachable == 0 {
                return Ok(());
            }
            moved = Instant::now();
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out after {timeout:?} waiting for the read model to settle ({} applications behind)", behind.len());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
