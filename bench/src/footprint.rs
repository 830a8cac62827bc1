//! Figure (6): start-up time (spawn → `/ready` 200) and resident memory (`VmRSS`) of each service.
//!
//! The harness's `ServiceProcess` keeps its child private, so the bench finds each service as its
//! own child process running the service's binary, and reads the ready address from the child's
//! environment. It polls `/ready` every 10 ms (the harness polls every 200 ms).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde::Serialize;
use system_tests::{process, stack::Stack};

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub service: String,
    pub startup_seconds: f64,
    pub rss_idle_bytes: u64,
    /// The largest `VmRSS` sampled (every 250 ms) during the pipeline load.
    pub rss_load_bytes: u64,
}

/// The pid of node 1 of the run's Kafka cluster (`BRAIN_TEST_KAFKA_CLUSTER`), from its pid file.
pub fn kafka_pid() -> Option<u32> {
    let cluster = std::env::var("BRAIN_TEST_KAFKA_CLUSTER").ok()?;
    let file = system_tests::repo_root().join(format!(".dev/run/kafka-{cluster}-node1.pid"));
    std::fs::read_to_string(file)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds of every `postgres` process on the machine, with what their exited children used
/// (the postmaster's waited-for backends): the database server's CPU so far.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "postgres").then(|| cpu_seconds(pid, true))?
        })
        .sum()
}

/// The pid of the Firestore emulator at `FIRESTORE_EMULATOR_HOST`: the `node` process running
/// `launcher.mjs` with that `--port` (the one `bench.sh` or `make test` started).
pub fn emulator_pid() -> Option<u32> {
    let host = std::env::var("FIRESTORE_EMULATOR_HOST").ok()?;
    let port = host.rsplit_once(':')?.1.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let launcher = args.iter().any(|a| a.ends_with("launcher.mjs"));
            let on_port = args.windows(2).any(|w| w[0] == "--port" && w[1] == port);
            (launcher && on_port).then_some(pid)
        })
}

/// The pid of this process's child running `binary`.
pub fn child_pid(binary: &Path) -> Option<u32> {
    let me = std::process::id();
    let binary = binary.canonicalize().ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let exe = std::fs::read_link(entry.path().join("exe")).ok()?;
            (ppid == me && exe == binary).then_some(pid)
        })
}

/// CPU seconds (user + system) `pid` has used: its own, plus its waited-for children's with
/// `children`. Linux reports them in USER_HZ ticks, 100 per second on every architecture we run.
pub fn cpu_seconds(pid: u32, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After `(comm)`: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    let fields: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields[0] + fields[1] + if children { fields[2] + fields[3] } else { 0 };
    Some(ticks as f64 / 100.0)
}

/// `VmRSS` of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The `/ready` URL a child serves, from its environment (`*__OPS_ADDR`, or the gateway's
/// `API_GATEWAY__LISTEN_ADDR`, which serves `/ready` on its API port).
fn ready_url(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let find = |suffix: &str| {
        vars.iter().find_map(|v| {
            v.split_once('=')
                .filter(|(k, _)| k.ends_with(suffix))
                .map(|(_, v)| v.to_string())
        })
    };
    let addr = find("__LISTEN_ADDR").or_else(|| find("__OPS_ADDR"))?;
    Some(format!("http://{addr}/ready"))
}

/// Starts `name` through the harness and returns its pid and spawn → `/ready` time.
pub async fn start_timed(stack: &mut Stack, name: &'static str) -> anyhow::Result<(u32, f64)> {
    let binary = process::binary(name);
    let spawned = Instant::now();
    let watch = async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?;
        let deadline = spawned + Duration::from_secs(90);
        let mut url = None;
        let mut pid = None;
        loop {
            anyhow::ensure!(Instant::now() < deadline, "{name} was not ready in 90 s");
            if url.is_none() {
                pid = child_pid(&binary);
                url = pid.and_then(ready_url);
            }
            if let Some(url) = &url
                && http
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                return Ok((pid.expect("pid with url"), spawned.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (started, watched) = tokio::join!(stack.service(name).start(), watch);
    started?;
    watched
}

/// Samples `VmRSS` of `pids` every 250 ms until `stop` fires; returns each pid's maximum.
pub async fn sample_max_rss(pids: Vec<u32>, stop: tokio_util::sync::CancellationToken) -> Vec<u64> {
    let mut max = vec![0u64; pids.len()];
    loop {
        for (i, pid) in pids.iter().enumerate() {
            max[i] = max[i].max(rss_bytes(*pid).unwrap_or(0));
        }
        tokio::select! {
            _ = stop.cancelled() => return max,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// CPU seconds of this process (with its waited-for children), of the broker and of PostgreSQL.
pub struct CpuMeter {
    pub broker: Option<u32>,
}

impl CpuMeter {
    pub fn start(&self) -> crate::report::Cpu {
        crate::report::Cpu {
            consumer_seconds: cpu_seconds(std::process::id(), true).unwrap_or(0.0),
            broker_seconds: self
                .broker
                .and_then(|pid| cpu_seconds(pid, false))
                .unwrap_or(0.0),
            database_seconds: postgres_cpu_seconds(),
        }
    }

    pub fn since(&self, start: crate::report::Cpu) -> crate::report::Cpu {
        let now = self.start();
        crate::report::Cpu {
            consumer_seconds: now.consumer_seconds - start.consumer_seconds,
            broker_seconds: now.broker_seconds - start.broker_seconds,
            database_seconds: (now.database_seconds - start.database_seconds).max(0.0),
        }
    }
}
