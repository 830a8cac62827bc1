//! The run's figures: a table on stdout and the same figures as JSON, with the commit and the
//! machine they were measured on.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    codec::CodecFigures,
    footprint::Footprint,
    gateway::{LoadClient, LoadRun},
    pipeline::{EndToEnd, RateRun, Search},
    perf_test::PerfTest,
    throughput::Throughput,
};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
    /// `/proc/loadavg` (1, 5 and 15 minutes) when the bench started.
    pub load_average_at_start: String,
    /// The same when the report was written.
    pub load_average_at_end: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let memory_kb: u64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: memory_kb * 1024,
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_average_at_start: load_average(),
            load_average_at_end: load_average(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// `release` or `debug`: how this bench binary was built.
    pub bench: &'static str,
    /// The folder the service binaries were started from.
    pub services: String,
}

/// The three load averages of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU seconds used while one consumer read the records (group join included).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    /// The bench process and its children: the consumer itself (in process, the Python peer, or
    /// the perf test's JVM).
    pub consumer_seconds: f64,
    /// The broker process.
    pub broker_seconds: f64,
    /// Every PostgreSQL process of the machine's server (shared with anything else using it).
    pub database_seconds: f64,
}

impl Cpu {
    /// Per 10,000 of `records`.
    pub fn per_10k(&self, records: u64) -> Cpu {
        let k = 10_000.0 / records.max(1) as f64;
        Cpu {
            consumer_seconds: self.consumer_seconds * k,
            broker_seconds: self.broker_seconds * k,
            database_seconds: self.database_seconds * k,
        }
    }
}

/// Every consumer of figures (1)-(3) on the same records, with the CPU used while it ran.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputFigures {
    pub records: u64,
    pub record_bytes: usize,
    pub keys: u64,
    pub partitions: i32,
    /// The runtime's `BATCH_SIZE`: also the batched peer's and the effect-only limit's batches.
    pub batch_size: usize,
    pub produce_seconds: f64,
    /// (1) bare rdkafka `BaseConsumer`.
    pub limit: Throughput,
    /// (1) Kafka's `kafka-consumer-perf-test`.
    pub perf_test: PerfTest,
    /// (2) Brain's runtime with the batched PostgreSQL effect.
    pub runtime: Throughput,
    /// (2) how the runtime batched: calls, mean batch, time in the effect.
    pub runtime_batches: crate::throughput::RuntimeRun,
    /// (2) the same rows written straight into PostgreSQL, no Kafka.
    pub effect_only: Throughput,
    /// (3) Python, one record at a time.
    pub peer: Throughput,
    /// (3) Python, batches of `batch_size`, the same set-wise statements.
    pub peer_batched: Throughput,
    /// (3) Kafka Connect + Debezium's JDBC sink (reading a JSON copy of the records).
    pub connect: crate::connect::ConnectRun,
    pub limit_cpu: Cpu,
    pub perf_test_cpu: Cpu,
    pub runtime_cpu: Cpu,
    pub effect_only_cpu: Cpu,
    pub peer_cpu: Cpu,
    pub peer_batched_cpu: Cpu,
    pub connect_cpu: Cpu,
    /// `runtime_cpu` per 10,000 records.
    pub runtime_cpu_per_10k: Cpu,
    pub ratios: Ratios,
}

/// Brain's runtime (records/s) ÷ each reference (records/s), all from this run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    pub runtime_vs_limit: f64,
    /// Against the perf test's `fetch.nMsg.sec` (group join excluded, as for the others).
    pub runtime_vs_perf_test: f64,
    pub runtime_vs_effect_only: f64,
    pub runtime_vs_peer: f64,
    pub runtime_vs_peer_batched: f64,
    pub runtime_vs_connect: f64,
}

/// Figure (4).
#[derive(Debug, Clone, Serialize)]
pub struct PipelineFigures {
    /// The services' first load: the fixed rate for a few seconds on keys of its own, right after
    /// start-up (cold pools, caches and code paths). Reported, not held to the targets.
    pub cold_start: RateRun,
    /// The fixed-rate run (2,000 events/s for 60 s by default), after the cold start.
    pub fixed: RateRun,
    /// The step search from the fixed-rate run.
    pub search: Search,
}

/// One target of the brief, as measured in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub figure: String,
    pub measured: f64,
    /// `>=` or `<=`.
    pub comparison: &'static str,
    pub target: f64,
    pub unit: &'static str,
    pub met: bool,
}

impl Target {
    pub fn at_least(figure: &str, measured: f64, target: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.into(),
            measured,
            comparison: ">=",
            target,
            unit,
            met: measured >= target,
        }
    }
    pub fn at_most(figure: &str, measured: f64, target: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.into(),
            measured,
            comparison: "<=",
            target,
            unit,
            met: measured <= target,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub commit: String,
    pub timestamp: String,
    pub mode: &'static str,
    pub machine: Machine,
    pub build: Build,
    pub load_client: LoadClient,
    pub throughput: ThroughputFigures,
    pub pipeline: PipelineFigures,
    pub end_to_end: EndToEnd,
    pub gateway: Vec<LoadRun>,
    pub footprint: Vec<Footprint>,
    pub codec: CodecFigures,
    pub replay: crate::replay::ReplayFigures,
    pub targets: Vec<Target>,
    pub total_seconds: f64,
}

/// `git rev-parse HEAD` in `repo`, with `-dirty` when the work tree has changes.
pub fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

impl Report {
    /// Writes `<dir>/<timestamp>-<short commit>.json` and returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stamp = self.timestamp.replace([':', '-'], "").replace('T', "-");
        let path = dir.join(format!(
            "{}-{}.json",
            &stamp[..stamp.len().min(15)],
            &self.commit[..self.commit.len().min(12)]
        ));
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(path)
    }

    pub fn print(&self) {
        let t = &self.throughput;
        let m = &self.machine;
        let r = &t.ratios;
        println!();
        let dirty = if self.commit.ends_with("-dirty") {
            " (with uncommitted changes)"
        } else {
            ""
        };
        println!(
            "Brain benchmarks ({} run) · commit {}{dirty} · {}",
            self.mode,
            &self.commit[..self.commit.len().min(12)],
            self.timestamp
        );
        println!(
            "machine: {} cores · {:.1} GiB · {} · Linux {} · load {} at start, {} at end",
            m.nproc,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.cpu_model,
            m.kernel,
            m.load_average_at_start,
            m.load_average_at_end
        );
        println!(
            "build: bench {} · services from {}",
            self.build.bench, self.build.services
        );
        println!();
        println!(
            "Consuming {} records of {} B over {} keys and {} partitions (produced in {:.1} s); batches of {}",
            t.records, t.record_bytes, t.keys, t.partitions, t.produce_seconds, t.batch_size
        );
        row(
            "(1) limit: bare rdkafka consumer, no processing",
            &rate(&t.limit),
        );
        let p = &t.perf_test;
        row(
            "(1) limit: kafka-consumer-perf-test (Java, same Kafka)",
            &format!(
                "{:>9.0} records/s · {:.1} MB/s without the join ({:.2} s); {:.0} records/s · {:.1} MB/s with it",
                p.fetch_records_per_sec,
                p.fetch_mb_per_sec,
                p.fetch_seconds,
                p.records_per_sec,
                p.mb_per_sec
            ),
        );
        row(
            "(2) Brain runtime: batched processed records + upserts",
            &format!(
                "{} · {:.3} × bare · {:.3} × perf-test",
                rate(&t.runtime),
                r.runtime_vs_limit,
                r.runtime_vs_perf_test
            ),
        );
        let b = &t.runtime_batches;
        row(
            "    runtime batches: calls · mean size · partitions in the effect",
            &format!(
                "{} · {:.0} records · {:.2} of {} on average",
                b.batches, b.mean_batch, b.partitions_busy, t.partitions
            ),
        );
        row(
            "(2) effect-only limit: the same rows, no Kafka",
            &format!(
                "{} · Brain {:.2} × effect-only",
                rate(&t.effect_only),
                r.runtime_vs_effect_only
            ),
        );
        row(
            "(3) peer: Python, one record at a time",
            &format!("{} · Brain {:.1} × peer", rate(&t.peer), r.runtime_vs_peer),
        );
        row(
            "(3) peer: Python, batched, same set-wise statements",
            &format!(
                "{} · Brain {:.2} × peer",
                rate(&t.peer_batched),
                r.runtime_vs_peer_batched
            ),
        );
        let c = &t.connect;
        row(
            "(3) peer: Kafka Connect + Debezium JDBC sink, JSON, upsert",
            &format!(
                "{} · Brain {:.2} × Connect",
                rate(&c.throughput),
                r.runtime_vs_connect
            ),
        );
        row(
            "    Connect: tasks · JSON record · start → first write · JVM CPU",
            &format!(
                "{} · {} B · {:.1} s · {:.1} s timed ({:.1} s in all)",
                c.tasks,
                c.record_bytes,
                c.startup_seconds,
                c.jvm_cpu_seconds,
                c.jvm_cpu_seconds_total
            ),
        );
        for (name, cpu) in [
            ("bare", t.limit_cpu),
            ("perf-test", t.perf_test_cpu),
            ("runtime", t.runtime_cpu),
            ("effect-only", t.effect_only_cpu),
            ("peer", t.peer_cpu),
            ("batched peer", t.peer_batched_cpu),
            ("Kafka Connect", t.connect_cpu),
        ] {
            row(
                &format!("    CPU while {name} ran"),
                &format!(
                    "consumer {:.1} s · broker {:.1} s · PostgreSQL {:.1} s",
                    cpu.consumer_seconds, cpu.broker_seconds, cpu.database_seconds
                ),
            );
        }
        let k = &t.runtime_cpu_per_10k;
        row(
            "    runtime: CPU s per 10k records",
            &format!(
                "Brain {:.2} s · broker {:.2} s · PostgreSQL {:.2} s",
                k.consumer_seconds, k.broker_seconds, k.database_seconds
            ),
        );
        println!();
        println!(
            "Pipeline latency (bench → flow topic → projection-writer → Firestore + read model)"
        );
        let c = &self.pipeline.cold_start;
        row(
            &format!(
                "cold start (first load after start-up): {}/s for {:.0} s",
                c.rate_per_sec, c.seconds
            ),
            &percentiles(&c.committed),
        );
        let f = &self.pipeline.fixed;
        rate_run(f);
        let s = &self.pipeline.search;
        for step in &s.steps {
            rate_run(step);
        }
        row(
            &format!(
                "    maximum sustained rate (P99 < {:.0} ms, steps of {:.0} s)",
                s.p99_limit_ms, s.step_seconds
            ),
            &format!(
                "{} events/s (lowest failing: {}; search {:.0} s{})",
                s.max_sustained_per_sec
                    .map_or("none".into(), |r| r.to_string()),
                s.first_failing_per_sec
                    .map_or("none".into(), |r| r.to_string()),
                s.seconds,
                if s.drained {
                    ""
                } else {
                    ", backlog not drained"
                }
            ),
        );
        let e = &self.end_to_end;
        row(
            &format!(
                "end to end: simulator change → Firestore doc ({} changes, sweep {} ms)",
                e.changes, e.sweep_interval_ms
            ),
            &percentiles(&e.latency),
        );
        println!();
        println!(
            "Gateway: GET /api/v1/applications/{{id}} · load: {} · {} connections",
            self.load_client.name, self.load_client.connections
        );
        for g in &self.gateway {
            let mode = g
                .offered_rps
                .map_or("saturation".to_string(), |r| format!("fixed {r} rps"));
            row(
                &format!("{} · {mode}", g.target),
                &format!(
                    "{:.0} req/s · p50 {:.2} ms · p99 {:.2} ms",
                    g.requests_per_sec, g.p50_ms, g.p99_ms
                ),
            );
        }
        println!();
        let p = &self.replay;
        println!(
            "Replay (8): dlq-replayer, {} dead letters read and decoded in {:.2} s, replayed in {:.2} s = {:.0}/s · {:.2} × producing them ({:.0}/s)",
            p.messages, p.scan_seconds, p.replay_seconds, p.replay_per_sec, p.replay_vs_produce, p.produce_per_sec
        );
        println!();
        let c = &self.codec;
        println!(
            "Codec: decoding {} records of {} B into LoanStatusChanged (median of {} rounds)",
            c.records, c.record_bytes, c.rounds
        );
        row("ours: brain_events::Codec::decode", &rate(&c.ours));
        row(
            "schema_registry_converter 6.0 + from_value",
            &format!(
                "{} · ours {:.2} × crate",
                rate(&c.schema_registry_converter),
                c.ours_vs_crate
            ),
        );
        row(
            "    ours, another writer version (decode_body: resolution)",
            &rate(&c.ours_resolving),
        );
        row(
            "    ours with the reader built once instead of per record",
            &rate(&c.reader_built_once),
        );
        println!();
        println!("Footprint");
        for f in &self.footprint {
            row(
                &f.service,
                &format!(
                    "start → ready {:.2} s · RSS idle {} · under pipeline load {}",
                    f.startup_seconds,
                    mib(f.rss_idle_bytes),
                    mib(f.rss_load_bytes)
                ),
            );
        }
        println!();
        println!("Targets");
        for t in &self.targets {
            row(
                &t.figure,
                &format!(
                    "{:.3} {} {} {} {}",
                    t.measured,
                    t.comparison,
                    t.target,
                    t.unit,
                    if t.met { "met" } else { "MISSED" }
                ),
            );
        }
        println!();
        println!("total {:.0} s", self.total_seconds);
    }
}

fn rate_run(r: &RateRun) {
    row(
        &format!(
            "{}/s for {:.0} s ({} events): event → committed",
            r.rate_per_sec, r.seconds, r.events
        ),
        &percentiles(&r.committed),
    );
    row(
        "    sustained (committed ÷ first send → last commit)",
        &format!(
            "{:.0} events/s{} · produced {:.0}/s",
            r.sustained_per_sec,
            if r.complete {
                ""
            } else {
                " (NOT all committed in time)"
            },
            r.produced_per_sec
        ),
    );
    row(
        "    event → event_log.recorded_at (transaction start)",
        &percentiles(&r.event_log),
    );
    row(
        "    projection-writer: RSS max · CPU (per 10k events)",
        &format!(
            "{} · {:.1} s ({:.2} s)",
            mib(r.service_rss_max_bytes),
            r.service_cpu_seconds,
            r.service_cpu_seconds * 10_000.0 / r.events.max(1) as f64,
        ),
    );
    row(
        "    CPU: broker · emulator · PostgreSQL · bench",
        &format!(
            "{:.1} s · {:.1} s · {:.1} s · {:.1} s",
            r.broker_cpu_seconds,
            r.emulator_cpu_seconds,
            r.database_cpu_seconds,
            r.bench_cpu_seconds
        ),
    );
}

fn row(label: &str, value: &str) {
    println!("  {label:<62} {value}");
}

fn rate(t: &Throughput) -> String {
    format!("{:>9.0} records/s ({:.2} s)", t.records_per_sec, t.seconds)
}

fn percentiles(l: &crate::pipeline::Latency) -> String {
    format!(
        "P50 {:.0} ms · P95 {:.0} ms · P99 {:.0} ms · max {:.0} ms",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
    )
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}
