//! Figure (5): the application read endpoint under `oha` (crates.io), at a fixed rate and at
//! saturation, beside a bare axum handler (`bench-bare-axum`) measured the same way in the same run.
//!
//! oha is installed once per machine with `cargo install --locked` into a tools folder: under
//! `$XDG_CACHE_HOME/brain/tools` (else `~/.cache/brain/tools`) when `CI=true`, so fresh clones
//! reuse it, else under the repository's `.cache/tools`. `BRAIN_OHA` names another binary.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;

pub const OHA_VERSION: &str = "1.16.0";
/// Connections oha keeps open, in both modes.
pub const CONNECTIONS: u32 = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Oha {
    pub path: PathBuf,
    pub version: String,
    /// Seconds `cargo install` took in this run; `None` when it was already installed.
    pub install_seconds: Option<f64>,
}

/// The oha binary, installing it first if needed.
pub async fn oha(repo: &Path) -> anyhow::Result<Oha> {
    if let Ok(path) = std::env::var("BRAIN_OHA") {
        return Ok(Oha {
            path: path.into(),
            version: "BRAIN_OHA".into(),
            install_seconds: None,
        });
    }
    let root = if std::env::var("CI").is_ok_and(|v| v == "true") {
        let cache = std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
            });
        cache.join("brain/tools")
    } else {
        repo.join(".cache/tools")
    }
    .join(format!("oha-{OHA_VERSION}"));
    let path = root.join("bin/oha");
    let mut install_seconds = None;
    if !path.exists() {
        eprintln!(
            "bench: installing oha {OHA_VERSION} into {} (once per machine)",
            root.display()
        );
        let started = Instant::now();
        // Its own target dir, so it never waits on the workspace's build lock. (oha 1.16 does not
        // compile without a TLS feature, so the default rustls one stays.)
        let status = tokio::process::Command::new("cargo")
            .args([
                "install",
                "--locked",
                "--quiet",
                "oha",
                "--version",
                OHA_VERSION,
                "--root",
            ])
            .arg(&root)
            .arg("--target-dir")
            .arg(root.join("build"))
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .await?;
        anyhow::ensure!(status.success(), "cargo install oha failed ({status})");
        let _ = std::fs::remove_dir_all(root.join("build"));
        install_seconds = Some(started.elapsed().as_secs_f64());
    }
    Ok(Oha {
        path,
        version: OHA_VERSION.into(),
        install_seconds,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    pub target: String,
    /// `fixed` (oha `-q`) or `saturation` (as fast as the connections allow).
    pub mode: String,
    pub offered_rps: Option<u32>,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub success_rate: f64,
}

/// Runs oha against `url` for `duration`, at `rate` requests/s or at saturation.
pub async fn load(
    oha: &Path,
    target: &str,
    url: &str,
    rate: Option<u32>,
    duration: Duration,
) -> anyhow::Result<LoadRun> {
    let mut command = tokio::process::Command::new(oha);
    command
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "-c",
            &CONNECTIONS.to_string(),
        ])
        .arg("-z")
        .arg(format!("{}ms", duration.as_millis()));
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string()]);
    }
    let output = command
        .arg(url)
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "oha failed ({})", output.status);
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let codes = &report["statusCodeDistribution"];
    let ok = codes["200"].as_u64().unwrap_or(0);
    let requests: u64 = codes
        .as_object()
        .map_or(0, |c| c.values().filter_map(Value::as_u64).sum());
    anyhow::ensure!(
        ok > 0 && ok == requests,
        "{target}: {ok} of {requests} responses were 200: {codes}"
    );
    let seconds = report["summary"]["total"].as_f64().unwrap_or(0.0);
    let ms = |p: &str| report["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok(LoadRun {
        target: target.into(),
        mode: if rate.is_some() {
            "fixed"
        } else {
            "saturation"
        }
        .into(),
        offered_rps: rate,
        seconds,
        requests,
        requests_per_sec: report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        success_rate: report["summary"]["successRate"].as_f64().unwrap_or(0.0),
    })
}

/// The bare axum handler as a child process on `port`, ready to serve.
pub async fn bare_axum(port: u16) -> anyhow::Result<tokio::process::Child> {
    let bin = std::env::current_exe()?.with_file_name("bench-bare-axum");
    anyhow::ensure!(
        bin.exists(),
        "{} is not built (cargo build -p brain-bench)",
        bin.display()
    );
    let child = tokio::process::Command::new(&bin)
        .arg(port.to_string())
        .kill_on_drop(true)
        .spawn()?;
    system_tests::wait_for(
        "the bare axum handler",
        Duration::from_secs(20),
        || async move {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    Ok(child)
}
