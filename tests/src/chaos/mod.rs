//! A chaos run: a workload of source changes flows through Brain while a seeded schedule of
//! faults runs (worker SIGKILLs, a PostgreSQL restart, a Ventures outage and 429 storm, poison
//! records and duplicates on the flow topic). Then an independent checker verifies that nothing
//! was lost, nothing was applied twice, no entity's versions went backwards, and the dead-letter
//! topic holds exactly the injected poison. The seed replays the same schedule.

pub mod checker;
pub mod faults;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use brain_events::{topics, wire};
use brain_runtime::{
    producer::{EventProducer, Outgoing},
    settings::KafkaSettings,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use serde_json::json;

use crate::{
    postgres::PrivatePostgres,
    stack::{PROJECTION_WRITER, Stack, VENTURES_SYNC},
    workload::{self, Driver, Expected, Report},
};
use checker::DeadLetterReport;
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
    /// The default run: 20,000 changes over 500 loans, at least 10 kills.
    pub fn full(seed: u64) -> Self {
        Self {
            changes: 20_000,
            loans: 500,
            rate: 250.0,
            seed,
            dose: Dose { kills: 10, postgres_restarts: 1, outage_secs: 5, storm: 30, poison: 10, duplicates: 100 },
        }
    }

    /// The short run inside `make test`: every kind of fault, little volume.
    pub fn smoke(seed: u64) -> Self {
        Self {
            changes: 1_500,
            loans: 100,
            rate: 100.0,
            seed,
            dose: Dose { kills: 4, postgres_restarts: 1, outage_secs: 2, storm: 10, poison: 4, duplicates: 20 },
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
}

impl ChaosOutcome {
    pub fn is_clean(&self) -> bool {
        self.report.is_clean() && self.dead_letters.is_clean() && self.report.event_log_rows == self.report.source_versions
    }
}

impl std::fmt::Display for ChaosOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        let d = &self.dead_letters;
        writeln!(f, "chaos seed {} ({} faults, {} kills) in {:.0} s", self.seed, self.faults, self.kills, self.total.as_secs_f64())?;
        writeln!(f, "  applications {} · source versions {} · event_log rows {}", r.applications, r.source_versions, r.event_log_rows)?;
        writeln!(f, "  lost {} · duplicated {} · order inversions {}", r.lost, r.duplicates, r.inversions)?;
        writeln!(f, "  read model mismatches {} · Firestore mismatches {}", r.read_model_mismatches, r.firestore_mismatches)?;
        writeln!(f, "  dead letters: injected {} · found {} · missing {} · unexpected {} · undecodable {}", d.injected, d.found, d.missing, d.unexpected, d.undecodable)?;
        write!(f, "  converged {:.1} s after the last fault · verdict {}", self.convergence_after_last_fault.as_secs_f64(), if self.is_clean() { "PASS" } else { "FAIL" })
    }
}

/// Keeps a bounded random sample of the records on the flow topic, to re-send as duplicates.
type Sample = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

fn sample_records(bootstrap: &str, seed: u64) -> anyhow::Result<(Sample, tokio::task::JoinHandle<()>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("chaos-sampler-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topics::LOAN_STATUS_CHANGED])?;
    let sample = Arc::new(Mutex::new(Vec::new()));
    let keep = sample.clone();
    let task = tokio::spawn(async move {
        let (mut rng, mut seen) = (StdRng::seed_from_u64(seed), 0usize);
        while let Ok(m) = consumer.recv().await {
            seen += 1;
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
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let settings = KafkaSettings { brokers: stack.broker.bootstrap.clone(), properties: vec![], sasl_password: None, topic_partitions: 6, topic_replication: 1 };
    let producer = EventProducer::new(&settings, stack.codec(), "chaos")?;
    let (sample, sampler) = sample_records(&stack.broker.bootstrap, config.seed)?;
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
                }
            }
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
    workload::wait_converged(&pool, &truth, Duration::from_secs(600)).await?;
    let convergence_after_last_fault = last_fault_end.elapsed();
    let report = workload::check(&pool, &stack.projections().await?, &truth, true).await?;
    let dead_letters = checker::dead_letters(&stack.broker.bootstrap, &stack.codec(), PROJECTION_WRITER, &poison, Duration::from_secs(5)).await?;
    let kills = stack.services.values().map(|s| s.kills).sum();
    stack.stop_all().await?;
    Ok(ChaosOutcome {
        seed: config.seed,
        report,
        dead_letters,
        kills,
        faults: schedule.len(),
        convergence_after_last_fault,
        total: started.elapsed(),
    })
}
