//! The run's figures: a table on stdout and the same figures as JSON, with the commit and the
//! machine they were measured on.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    footprint::Footprint,
    gateway::LoadRun,
    pipeline::{EndToEnd, RateRun},
    throughput::Throughput,
};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
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

/// CPU seconds used while one consumer read the records (group join included).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    /// The bench process and its children: the consumer itself (in process, or the Python peer).
    pub consumer_seconds: f64,
    /// The broker process.
    pub broker_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputFigures {
    pub records: u64,
    pub record_bytes: usize,
    pub keys: u64,
    pub partitions: i32,
    pub produce_seconds: f64,
    pub limit: Throughput,
    pub runtime: Throughput,
    pub peer: Throughput,
    pub limit_cpu: Cpu,
    pub runtime_cpu: Cpu,
    pub peer_cpu: Cpu,
    /// runtime ÷ limit, both records/s from this run.
    pub runtime_vs_limit: f64,
    /// runtime ÷ peer, both records/s from this run.
    pub runtime_vs_peer: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub commit: String,
    pub timestamp: String,
    pub mode: &'static str,
    pub machine: Machine,
    pub build: Build,
    pub oha: crate::gateway::Oha,
    pub throughput: ThroughputFigures,
    pub pipeline: Vec<RateRun>,
    pub end_to_end: EndToEnd,
    pub gateway: Vec<LoadRun>,
    pub footprint: Vec<Footprint>,
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
            "machine: {} cores · {:.1} GiB · {} · Linux {}",
            m.nproc,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.cpu_model,
            m.kernel
        );
        println!(
            "build: bench {} · services from {}",
            self.build.bench, self.build.services
        );
        println!();
        println!(
            "Consuming {} records of {} B over {} keys and {} partitions (produced in {:.1} s)",
            t.records, t.record_bytes, t.keys, t.partitions, t.produce_seconds
        );
        row(
            "(1) limit: bare rdkafka consumer, no processing",
            &rate(&t.limit),
        );
        row(
            "(2) Brain runtime: processed record + upsert",
            &format!("{} · {:.3} × limit", rate(&t.runtime), t.runtime_vs_limit),
        );
        row(
            "(3) peer: Python confluent-kafka + psycopg",
            &format!("{} · Brain {:.2} × peer", rate(&t.peer), t.runtime_vs_peer),
        );
        for (name, cpu) in [
            ("(1)", t.limit_cpu),
            ("(2)", t.runtime_cpu),
            ("(3)", t.peer_cpu),
        ] {
            row(
                &format!("    CPU while {name} ran"),
                &format!(
                    "consumer {:.1} s · broker {:.1} s",
                    cpu.consumer_seconds, cpu.broker_seconds
                ),
            );
        }
        println!();
        println!(
            "Pipeline latency (bench → flow topic → projection-writer → Firestore + read model)"
        );
        for r in &self.pipeline {
            row(
                &format!(
                    "{}/s for {:.0} s ({} events): event → committed",
                    r.rate_per_sec, r.seconds, r.events
                ),
                &percentiles(&r.committed),
            );
            row(
                "    sustained (events ÷ first send → last commit)",
                &format!("{:.0} events/s", r.sustained_per_sec),
            );
            row(
                "    event → event_log.recorded_at (transaction start)",
                &percentiles(&r.event_log),
            );
        }
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
            "Gateway: GET /api/v1/applications/{{id}} with oha {} ({} connections)",
            self.oha.version,
            crate::gateway::CONNECTIONS
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
        println!("total {:.0} s", self.total_seconds);
    }
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

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}
