//! `make bench`: one run on this machine that measures and prints (and writes as JSON under
//! `bench-results/`) the consumer throughput limit (a bare rdkafka consumer and Kafka's own
//! `kafka-consumer-perf-test`), Brain's runtime with its batched PostgreSQL effect beside the
//! effect-only limit and two Python peers on the same records; pipeline latency and the maximum
//! sustained rate through the real services; the gateway beside a bare axum handler; each
//! service's footprint; the codec beside `schema_registry_converter`; and qbo-mirror's initial
//! sync of the QBO simulator's companies beside fetching their pages. Method and caveats:
//! `docs/benchmarks.md`.
//!
//! Every figure is as measured in this run, and every ratio is computed within it: the machine is
//! shared, so figures from different runs are not comparable.

/// Progress on stderr, with the seconds since the start of the run.
macro_rules! say {
    ($started:expr, $($arg:tt)*) => {
        eprintln!("bench [{:6.1} s] {}", $started.elapsed().as_secs_f64(), format!($($arg)*))
    };
}

pub mod advisor;
pub mod codec;
pub mod commits;
pub mod connect;
pub mod databases;
pub mod end_to_end;
pub mod footprint;
pub mod gateway;
pub mod options;
pub mod peer;
pub mod perf_test;
pub mod pipeline;
#[cfg(test)]
mod pipeline_alone;
pub mod qbo_figures;
pub mod qbo_stream;
pub mod qbo_sync;
pub mod records;
pub mod replay;
pub mod scale;
pub mod slots;
pub mod report;
pub mod targets;
pub mod throughput;

use std::{path::PathBuf, time::Duration};

use brain_events::{Codec, RegistryClient, codec::SchemaIds, topics};
use system_tests::{
    infra::{self, Broker, Database},
    repo_root,
    stack::{API_GATEWAY, PROJECTION_WRITER, Stack, VENTURES_SYNC},
};
use tokio_util::sync::CancellationToken;

pub use crate::options::Options;

pub use databases::drop_database;

use crate::report::{Build, Machine, PipelineFigures, Ratios, Report, ThroughputFigures};


/// Runs every benchmark, prints the table and writes the JSON; returns the report and its path.
pub async fn run(options: Options) -> anyhow::Result<(Report, PathBuf)> {
    let started = std::time::Instant::now();
    let mut machine = Machine::read();
    let repo = repo_root();
    let records = options.pick(options.records, 200_000, 2_000);
    let keys = options.pick(options.keys, 10_000, 200).min(records).max(1);
    let secs = |given: Option<f64>, full: f64, smoke: f64| {
        Duration::from_secs_f64(options.pick(given, full, smoke))
    };
    let pipeline_rate = options.pick(options.pipeline_rate, 2_000, 100);
    let pipeline_secs = secs(options.pipeline_secs, 60.0, 3.0);
    let cold_secs = secs(options.cold_start_secs, 5.0, 1.0);
    let step_secs = secs(options.step_secs, 15.0, 2.0);
    let max_steps = options.pick(options.max_steps, 5, 1);
    let search_budget = secs(options.search_budget_secs, 240.0, 20.0);
    let e2e_secs = secs(options.e2e_secs, 30.0, 3.0);
    let gateway_secs = secs(options.gateway_secs, 10.0, 2.0);
    let codec_records = options.pick(options.codec_records, 50_000, 2_000);
    let replay_messages = options.pick(options.replay_messages, 10_000, 1_000);
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
    let logs = repo
        .join("target/bench")
        .join(chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string());
    std::fs::create_dir_all(&logs)?;

    // (1)-(3) and the codec on a topic (a namespace of the run's own) and a database of their
    // own, so the services never see these records and the topic holds exactly them.
    let timeout = Duration::from_secs(600 + records / 100);
    let shutdown = CancellationToken::new();
    let broker = Broker::start(logs.join("broker.log")).await?;
    let mut settings = records::kafka_settings(broker.settings());
    // For experiments only (`make bench` sets none): extra librdkafka properties of the bench's
    // own clients in (1)-(3), `key=value;key=value`, as the services' `BRAIN__KAFKA_PROPERTIES`.
    if let Ok(raw) = std::env::var("BRAIN_BENCH__KAFKA_PROPERTIES") {
        settings.properties.extend(
            raw.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string())),
        );
    }
    let topic = broker.topic(topics::LOAN_STATUS_CHANGED);
    let db = Database::create().await?;
    let registry_url = infra::registry(&db, shutdown.clone()).await?;
    let codec = Codec::new(RegistryClient::new(&registry_url)?, SchemaIds::AutoRegister);
    say!(started, "producing {records} records to {topic}");
    let produced = records::produce(&settings, &codec, records, options.record_bytes, keys).await?;
    say!(started, "producing the same records as JSON for Kafka Connect");
    let json = connect::produce_json(&settings, records, options.record_bytes, keys).await?;
    let meter = footprint::CpuMeter {
        broker: footprint::kafka_pid(),
    };
    if meter.broker.is_none() {
        say!(
            started,
            "warning: no pid file for node 1 of BRAIN_TEST_KAFKA_CLUSTER's cluster: broker CPU reads 0"
        );
    }
    let batch_size = throughput::batch_size();
    let database_url = db.url(None);

    say!(started, "(1) bare rdkafka consumer");
    let cpu = meter.start();
    let limit = throughput::bare(&broker.bootstrap, &topic, records, timeout).await?;
    let limit_cpu = meter.since(cpu);
    say!(started, "(1) kafka-consumer-perf-test");
    let cpu = meter.start();
    let perf_test =
        perf_test::perf_test(&repo, &broker.bootstrap, &topic, records, timeout).await?;
    let perf_test_cpu = meter.since(cpu);
    anyhow::ensure!(
        perf_test.records == records,
        "consumer-perf-test read {} of {records} records",
        perf_test.records
    );
    say!(started, "(2) Brain runtime");
    let cpu = meter.start();
    let runtime_run =
        throughput::runtime(&settings, codec.clone(), &database_url, records, timeout).await?;
    let runtime = runtime_run.throughput;
    say!(
        started,
        "    {:.0} records/s · {} batches of {:.0} on average · {:.2} partitions in the effect",
        runtime.records_per_sec,
        runtime_run.batches,
        runtime_run.mean_batch,
        runtime_run.partitions_busy
    );
    for p in &runtime_run.partitions {
        say!(
            started,
            "    partition {}: {} records, batches from {:.2} s to {:.2} s",
            p.partition,
            p.records,
            p.first_batch_at,
            p.last_batch_done_at
        );
    }
    let runtime_cpu = meter.since(cpu);
    say!(started, "(2) effect-only limit (no Kafka)");
    let cpu = meter.start();
    let effect_only = throughput::effect_only(
        &database_url,
        records,
        options.record_bytes,
        keys,
        records::PARTITIONS as usize,
        batch_size,
    )
    .await?;
    let effect_only_cpu = meter.since(cpu);
    let script = repo.join("bench/peer/consume.py");
    let mut peers = Vec::new();
    for size in [1, batch_size] {
        say!(started, "(3) Python peer, batches of {size}");
        let cpu = meter.start();
        let peer = peer::peer(
            &python,
            &script,
            &broker.bootstrap,
            &topic,
            &registry_url,
            &database_url,
            records,
            size,
            timeout,
        )
        .await?;
        peers.push((peer, meter.since(cpu)));
    }
    let [(peer, peer_cpu), (peer_batched, peer_batched_cpu)] = peers[..] else {
        unreachable!("two peers")
    };
    say!(started, "(3) Kafka Connect + Debezium JDBC sink");
    let cpu = meter.start();
    let connect_run = connect::connect_peer(
        &repo,
        &logs,
        &settings,
        &database_url,
        &json,
        records::PARTITIONS as usize,
        timeout,
    )
    .await?;
    let connect_cpu = meter.since(cpu);
    let connect_rate = connect_run.throughput.records_per_sec;
    let pool = db.connect().await?;
    for schema in [
        throughput::RUNTIME_SCHEMA,
        throughput::EFFECT_SCHEMA,
        throughput::PEER_SCHEMA,
        throughput::PEER_BATCHED_SCHEMA,
    ] {
        let rows = throughput::effect_rows(&pool, schema).await?;
        anyhow::ensure!(
            rows == (records as i64, keys as i64),
            "{schema}: (processed, loans) = {rows:?}, expected ({records}, {keys})"
        );
    }
    let rows = throughput::effect_rows(&pool, connect::CONNECT_SCHEMA).await?;
    anyhow::ensure!(
        rows == (0, keys as i64),
        "{}: (processed, loans) = {rows:?}, expected (0, {keys})",
        connect::CONNECT_SCHEMA
    );
    for schema in [
        throughput::EFFECT_SCHEMA,
        throughput::PEER_BATCHED_SCHEMA,
        throughput::PEER_SCHEMA,
        connect::CONNECT_SCHEMA,
    ] {
        anyhow::ensure!(
            throughput::same_loans(&pool, throughput::RUNTIME_SCHEMA, schema).await?,
            "{schema}.loans differs from {}.loans",
            throughput::RUNTIME_SCHEMA
        );
    }
    pool.close().await;
    say!(started, "(7) codec: ours and schema_registry_converter");
    let codec_figures = codec::measure(
        &codec,
        &registry_url,
        &topic,
        codec_records,
        options.record_bytes,
        keys,
    )
    .await?;
    say!(started, "(8) dlq-replayer: {replay_messages} dead letters");
    let replay_figures = replay::measure(&settings, &codec, &registry_url, &database_url, replay_messages).await?;
    shutdown.cancel();
    drop(broker);
    drop_database(&db.name).await?;
    let throughput = ThroughputFigures {
        records,
        record_bytes: produced.record_bytes,
        keys,
        partitions: records::PARTITIONS,
        batch_size,
        produce_seconds: produced.seconds,
        limit,
        perf_test,
        runtime,
        runtime_batches: runtime_run,
        effect_only,
        peer,
        peer_batched,
        limit_cpu,
        perf_test_cpu,
        runtime_cpu,
        effect_only_cpu,
        peer_cpu,
        peer_batched_cpu,
        connect: connect_run,
        connect_cpu,
        runtime_cpu_per_10k: runtime_cpu.per_10k(records),
        ratios: Ratios {
            runtime_vs_limit: runtime.records_per_sec / limit.records_per_sec,
            runtime_vs_perf_test: runtime.records_per_sec / perf_test.fetch_records_per_sec,
            runtime_vs_effect_only: runtime.records_per_sec / effect_only.records_per_sec,
            runtime_vs_peer: runtime.records_per_sec / peer.records_per_sec,
            runtime_vs_peer_batched: runtime.records_per_sec / peer_batched.records_per_sec,
            runtime_vs_connect: runtime.records_per_sec / connect_rate,
        },
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
    let watch = pipeline::Watch {
        service: footprints
            .iter()
            .find(|(name, _, _)| *name == PROJECTION_WRITER)
            .map(|(_, pid, _)| *pid),
        broker: meter.broker,
        emulator: footprint::emulator_pid(),
    };

    // The services' namespace: the bench produces where projection-writer consumes.
    let producer = brain_runtime::producer::EventProducer::new(
        &records::kafka_settings(stack.kafka_settings()),
        stack.codec(),
        "brain-bench",
    )?;
    let pool = stack.db.connect().await?;
    let drain = Duration::from_secs(if options.smoke { 120 } else { 90 });
    say!(started, "(4) warm-up: projection-writer's first events");
    pipeline::warm_up(&producer, &pool, Duration::from_secs(120)).await?;
    say!(
        started,
        "(4) cold start: {pipeline_rate} events/s for {cold_secs:?} on keys of its own"
    );
    let run_at = |rate: u32, secs: Duration| {
        pipeline::fixed_rate(&producer, &pool, rate, secs, 1_000, drain, watch)
    };
    let cold_start = run_at(pipeline_rate, cold_secs).await?;
    say!(started, "    {}", cold_start.summary());
    say!(
        started,
        "(4) {pipeline_rate} events/s for {pipeline_secs:?}"
    );
    let writer_before = pipeline::WriterMetrics::read(stack.service(PROJECTION_WRITER)).await?;
    let fixed = run_at(pipeline_rate, pipeline_secs).await?;
    say!(started, "    {}", fixed.summary());
    let writer = pipeline::WriterMetrics::read(stack.service(PROJECTION_WRITER))
        .await?
        .since(&writer_before);
    say!(
        started,
        "    inside projection-writer: {} batches of {:.1} events on average, {:.1} ms per batch, of which {:.1} ms in the Firestore Commit",
        writer.batches,
        writer.records / writer.batches.max(1.0),
        1000.0 * writer.batch_seconds / writer.batches.max(1.0),
        1000.0 * writer.commit_seconds / writer.commits.max(1.0)
    );
    anyhow::ensure!(
        fixed.complete,
        "only {} of {} events were committed within {drain:?} of the fixed-rate run",
        fixed.committed.samples,
        fixed.events
    );
    say!(started, "(4) end to end");
    let projections = stack.projections().await?;
    let e2e_loans = if options.smoke { 10 } else { 50 };
    let end_to_end = pipeline::end_to_end(
        &stack.sim.base_url(),
        &projections,
        e2e_loans,
        options.e2e_rate,
        e2e_secs,
        Duration::from_secs(300),
    )
    .await?;
    say!(
        started,
        "(4) maximum sustained rate: steps of {step_secs:?} from {pipeline_rate}/s"
    );
    let search = pipeline::search(
        &producer,
        &pool,
        &fixed,
        step_secs,
        max_steps,
        search_budget,
        drain,
        watch,
    )
    .await?;
    stop_sampling.cancel();
    let loaded = sampler.await?;
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
    let gateway_runs =
        gateway::measure(&stack, &pool, options.gateway_rps, gateway_secs).await?;
    let (clients, documents) = if options.smoke { (20, 500) } else { (100, 5_000) };
    say!(started, "(9) the advisor's views: {clients} companies × {documents} documents");
    let advisor = advisor::measure(&stack, clients, documents, gateway_secs).await?;
    for run in &advisor.runs {
        say!(started, "    {}: p95 {:.2} ms · {:.0} req/s", run.target, run.p95_ms, run.requests_per_sec);
    }
    let (qbo_sync, qbo_stream) = qbo_figures::measure(&mut stack, options.smoke, started).await?;
    let (scale_records, scale_keys) = if options.smoke { (2_000, 200) } else { (200_000, 2_000) };
    say!(started, "(13) projection-writer scaled out: {scale_records} events drained by 1, 2 and 3 instances");
    let scale = scale::measure(&mut stack, &producer, &pool, scale_records, scale_keys, Duration::from_secs(600)).await?;
    for run in &scale {
        say!(started, "    {} instance(s): {:.0} events/s ({:.2} × one) in {:.1} s", run.instances, run.records_per_sec, run.vs_one, run.seconds);
    }
    say!(started, "(12) calendar slots at {}/s with Graph down", options.slots_rps);
    let slots = slots::measure(&mut stack, options.slots_rps, gateway_secs).await?;
    say!(started, "    p50 {:.2} ms · p99 {:.2} ms ({:.1} × the bare handler's p99) · availability {:.0} s old", slots.runs[0].p50_ms, slots.runs[0].p99_ms, slots.p99_vs_bare, slots.availability_age_seconds);
    drop(producer);
    pool.close().await;
    stack.stop_all().await?;
    let stack_db = stack.db.name.clone();
    drop(stack);
    drop_database(&stack_db).await?;

    let mut targets = targets::of(
        &replay_figures,
        &throughput,
        &fixed,
        &gateway_runs,
        &advisor,
        pipeline_rate,
        options.gateway_rps,
    );
    targets.push(targets::qbo_sync(&qbo_sync));
    targets.extend(targets::qbo_stream(&qbo_stream));
    targets.push(targets::slots(&slots));
    machine.load_average_at_end = report::load_average();
    let report = Report {
        commit: report::commit(&repo),
        timestamp: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        mode: if options.smoke { "smoke" } else { "full" },
        machine,
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
        load_client: gateway::LoadClient::default(),
        throughput,
        pipeline: PipelineFigures {
            cold_start,
            fixed,
            search,
        },
        end_to_end,
        gateway: gateway_runs,
        footprint,
        codec: codec_figures,
        replay: replay_figures,
        advisor,
        qbo_sync,
        qbo_stream,
        slots,
        scale,
        targets,
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
