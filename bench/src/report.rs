//! The run's figures: a table on stdout and the same figures as JSON, with the commit and the
//! machine they were measured on.

use std::path::{Path, PathBuf};

use serde::Serialize;

mod print;
pub use print::mib;

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
    pub advisor: crate::advisor::AdvisorFigures,
    /// Figure (10): qbo-mirror's initial sync.
    pub qbo_sync: crate::qbo_sync::QboSyncFigures,
    pub qbo_stream: crate::qbo_stream::QboStreamFigures,
    pub slots: crate::slots::SlotsFigures,
    pub scale: Vec<crate::scale::ScaleRun>,
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
}
