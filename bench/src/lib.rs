//! `make bench`: one run on the local dev stack that measures and prints (and writes as JSON under
//! `bench-results/`) the consumer throughput limit, Brain's runtime and a Python peer on the same
//! records; pipeline latency through the real services; the gateway beside a bare axum handler;
//! and each service's footprint. Method and caveats: `docs/benchmarks.md`.
//!
//! Every figure is as measured in this run, and every ratio is computed within it: the machine is
//! shared, so figures from different runs are not comparable.

pub mod footprint;
pub mod gateway;
pub mod pipeline;
pub mod records;
pub mod report;
pub mod throughput;

use std::{path::PathBuf, time::Duration};

use brain_events::{Codec, RegistryClient, codec::SchemaIds};
use system_tests::{
    infra::{self, Broker, Database},
    repo_root,
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC},
};
use tokio_util::sync::CancellationToken;

use crate::report::{Build, Machine, Report, ThroughputFigures};

/// Progress on stderr, with the seconds since the start of the run.
macro_rules! say {
    ($started:expr, $($arg:tt)*) => {
        eprintln!("bench [{:6.1} s] {}", $started.elapsed().as_secs_f64(), format!($($arg)*))
    };
}

#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Brain's benchmarks: throughput, pipeline latency, gateway, footprint")]
pub struct Options {
    /// Tiny sizes (2,000 records, 3 s pipeline, 2 s gateway): checks that the bench works.
    #[arg(long)]
    pub smoke: bool,
    /// Records for figures (1)-(3) [default: 200,000; smoke 2,000].
    #[arg(long)]
    pub records: Option<u64>,
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Application ids the records are keyed by [default: 10,000; smoke 200].
    #[arg(long)]
    pub keys: Option<u64>,
    /// Seconds of each fixed-rate and end-to-end pipeline run [default: 30; smoke 3].
    #[arg(long)]
    pub pipeline_secs: Option<f64>,
    /// Fixed event rates of the pipeline runs, events/s [default: 100,1000; smoke 100,300].
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u32>>,
    /// Simulator status changes per second in the end-to-end run.
    #[arg(long, default_value_t = 10.0)]
    pub e2e_rate: f64,
    /// Seconds of each gateway load run [default: 10; smoke 2].
    #[arg(long)]
    pub gateway_secs: Option<f64>,
    /// The gateway's fixed request rate, requests/s.
    #[arg(long, default_value_t = 1000)]
    pub gateway_rps: u32,
    /// Where the JSON goes [default: <repo>/bench-results].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Python with confluent-kafka and psycopg [default: <repo>/.cache/venv/bin/python].
    #[arg(long)]
    pub python: Option<PathBuf>,
}

impl Options {
    fn pick<T>(&self, given: Option<T>, full: T, smoke: T) -> T {
        given.unwrap_or(if self.smoke { smoke } else { full })
    }
}

/// Runs every benchmark, prints the table and writes the JSON; returns the report and its path.
pub async fn run(options: Options) -> anyhow::Result<(Report, PathBuf)> {
    let started = std::time::Instant::now();
    let repo = repo_root();
    let records = options.pick(options.records, 200_000, 2_000);
    let keys = options.pick(options.keys, 10_000, 200).min(records).max(1);
    let pipeline_secs = Duration::from_secs_f64(options.pick(options.pipeline_secs, 30.0, 3.0));
    let gateway_secs = Duration::from_secs_f64(options.pick(options.gateway_secs, 10.0, 2.0));
    let rates = options.pick(options.rates.clone(), vec![100, 1000], vec![100, 300]);
    let python = options
        .python
        .clone()
        .unwrap_or_else(|| repo.join(".cache/venv/bin/python"));
    anyhow::ensure!(
        python.exists(),
        "no Python at {} — run `make setup` first",
        python.display()
    );
    infra::emulator_host()?;
    let oha = gateway::oha(&repo).await?;
    let logs = repo
        .join("target/bench")
        .join(chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string());
    std::fs::create_dir_all(&logs)?;

    // (1)-(3) on a broker and database of their own, so the services never see these records.
    let timeout = Duration::from_secs(600 + records / 100);
    let shutdown = CancellationToken::new();
    let broker = Broker::start(logs.join("broker.log")).await?;
    let db = Database::create().await?;
    let registry_url = infra::registry(&db, shutdown.clone()).await?;
    let codec = Codec::new(RegistryClient::new(&registry_url)?, SchemaIds::AutoRegister);
    let settings = records::kafka_settings(&broker.bootstrap);
    say!(started, "producing {records} records");
    let produced = records::produce(&settings, &codec, records, options.record_bytes, keys).await?;
    let tansu = std::env::var("BRAIN_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join(".cache/bin/tansu"));
    let meter = CpuMeter {
        broker: footprint::child_pid(&tansu),
    };
    say!(started, "(1) bare consumer");
    let cpu = meter.start();
    let limit = throughput::bare(&broker.bootstrap, records, timeout).await?;
    let limit_cpu = meter.since(cpu);
    say!(started, "(2) Brain runtime");
    let cpu = meter.start();
    let runtime =
        throughput::runtime(&settings, codec.clone(), &db.url(None), records, timeout).await?;
    let runtime_cpu = meter.since(cpu);
    say!(started, "(3) Python peer");
    let script = repo.join("bench/peer/consume.py");
    let cpu = meter.start();
    let peer = throughput::peer(
        &python,
        &script,
        &broker.bootstrap,
        &registry_url,
        &db.url(None),
        records,
        timeout,
    )
    .await?;
    let peer_cpu = meter.since(cpu);
    let pool = db.connect().await?;
    for schema in [throughput::RUNTIME_SCHEMA, throughput::PEER_SCHEMA] {
        let rows = throughput::effect_rows(&pool, schema).await?;
        anyhow::ensure!(
            rows == (records as i64, keys as i64),
            "{schema}: (processed, loans) = {rows:?}, expected ({records}, {keys})"
        );
    }
    pool.close().await;
    shutdown.cancel();
    drop(broker);
    drop_database(&db.name).await?;
    let throughput = ThroughputFigures {
        records,
        record_bytes: produced.record_bytes,
        keys,
        partitions: records::PARTITIONS,
        produce_seconds: produced.seconds,
        limit,
        runtime,
        peer,
        limit_cpu,
        runtime_cpu,
        peer_cpu,
        runtime_vs_limit: runtime.records_per_sec / limit.records_per_sec,
        runtime_vs_peer: runtime.records_per_sec / peer.records_per_sec,
    };

    // (4)-(6) through the real services.
    say!(
        started,
        "starting the stack (broker, database, registry, simulator)"
    );
    let mut stack = Stack::start("bench").await?;
    let mut footprints = Vec::new();
    for name in [VENTURES_SYNC, PROJECTION_WRITER, API_GATEWAY] {
        say!(started, "starting {name}");
        let (pid, startup) = footprint::start_timed(&mut stack, name).await?;
        footprints.push((name, pid, startup));
    }
    tokio::time::sleep(Duration::from_secs(if options.smoke { 1 } else { 5 })).await;
    let idle: Vec<u64> = footprints
        .iter()
        .map(|(_, pid, _)| footprint::rss_bytes(*pid).unwrap_or(0))
        .collect();
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(footprint::sample_max_rss(
        footprints.iter().map(|(_, pid, _)| *pid).collect(),
        stop_sampling.clone(),
    ));

    let producer = brain_runtime::producer::EventProducer::new(
        &records::kafka_settings(&stack.broker.bootstrap),
        stack.codec(),
        "brain-bench",
    )?;
    let pool = stack.db.connect().await?;
    let drain = Duration::from_secs(300);
    say!(started, "(4) warm-up: projection-writer's first events");
    pipeline::warm_up(&producer, &pool, Duration::from_secs(120)).await?;
    let mut pipeline = Vec::new();
    for rate in &rates {
        say!(started, "(4) {rate} events/s for {pipeline_secs:?}");
        pipeline.push(
            pipeline::fixed_rate(&producer, &pool, *rate, pipeline_secs, 1_000, drain).await?,
        );
    }
    say!(started, "(4) end to end");
    let projections = stack.projections().await?;
    let e2e_loans = if options.smoke { 10 } else { 50 };
    let end_to_end = pipeline::end_to_end(
        &stack.sim.base_url(),
        &projections,
        e2e_loans,
        options.e2e_rate,
        pipeline_secs,
        drain,
    )
    .await?;
    stop_sampling.cancel();
    let loaded = sampler.await?;
    drop(producer);
    let footprint = footprints
        .iter()
        .zip(idle.iter().zip(loaded))
        .map(|((name, _, startup), (idle, load))| footprint::Footprint {
            service: name.to_string(),
            startup_seconds: *startup,
            rss_idle_bytes: *idle,
            rss_load_bytes: load,
        })
        .collect();

    say!(started, "(5) gateway");
    let app: String =
        sqlx::query_scalar("SELECT application_id FROM projection_writer.applications LIMIT 1")
            .fetch_one(&pool)
            .await?;
    let bare_port = system_tests::free_port();
    let _bare = gateway::bare_axum(bare_port).await?;
    let targets = [
        (
            "api-gateway",
            format!("{}/api/v1/applications/{app}", stack.gateway_url),
        ),
        (
            "bare-axum",
            format!("http://127.0.0.1:{bare_port}/api/v1/applications/{app}"),
        ),
    ];
    let mut gateway_runs = Vec::new();
    for rate in [Some(options.gateway_rps), None] {
        for (target, url) in &targets {
            gateway_runs.push(gateway::load(&oha.path, target, url, rate, gateway_secs).await?);
        }
    }
    pool.close().await;
    stack.stop_all().await?;
    let stack_db = stack.db.name.clone();
    drop(stack);
    drop_database(&stack_db).await?;

    let report = Report {
        commit: report::commit(&repo),
        timestamp: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        mode: if options.smoke { "smoke" } else { "full" },
        machine: Machine::read(),
        build: Build {
            bench: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            services: system_tests::process::binary(API_GATEWAY)
                .canonicalize()?
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        },
        oha,
        throughput,
        pipeline,
        end_to_end,
        gateway: gateway_runs,
        footprint,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    say!(started, "done");
    report.print();
    let path = report.write(
        &options
            .out
            .clone()
            .unwrap_or_else(|| repo.join("bench-results")),
    )?;
    println!("figures written to {}", path.display());
    Ok((report, path))
}

/// CPU seconds of this process (with its waited-for children) and of the broker.
struct CpuMeter {
    broker: Option<u32>,
}

impl CpuMeter {
    fn start(&self) -> report::Cpu {
        report::Cpu {
            consumer_seconds: footprint::cpu_seconds(std::process::id(), true).unwrap_or(0.0),
            broker_seconds: self
                .broker
                .and_then(|pid| footprint::cpu_seconds(pid, false))
                .unwrap_or(0.0),
        }
    }

    fn since(&self, start: report::Cpu) -> report::Cpu {
        let now = self.start();
        report::Cpu {
            consumer_seconds: now.consumer_seconds - start.consumer_seconds,
            broker_seconds: now.broker_seconds - start.broker_seconds,
        }
    }
}

/// Drops a database the bench created (they hold hundreds of thousands of rows).
async fn drop_database(name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&Database::server_url()).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
