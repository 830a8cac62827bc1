//! Brain's services as child processes of a test, so they can be killed like in production.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::{repo_root, wait_for};

/// The built binary of a workspace package (`make test` builds them first).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join(name)
}

pub struct ServiceProcess {
    pub name: &'static str,
    /// Command-line arguments (e.g. `serve` for dlq-replayer).
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready_url: String,
    log: PathBuf,
    child: Option<Child>,
    pub starts: u32,
    pub kills: u32,
}

impl ServiceProcess {
    pub fn new(name: &'static str, env: Vec<(String, String)>, ready_url: String, log: PathBuf) -> Self {
        Self { name, args: Vec::new(), env, ready_url, log, child: None, starts: 0, kills: 0 }
    }

    /// The process runs with these arguments.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The process's environment (for running its CLI with the same settings).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// The URL of the process's `/ready`.
    pub fn ready_url(&self) -> &str {
        &self.ready_url
    }

    /// Sets (or replaces) one variable of the process's environment for its next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// `set_env` for each pair.
    pub fn set_envs(&mut self, pairs: &[(&str, &str)]) {
        for (key, value) in pairs {
            self.set_env(key, value);
        }
    }

    /// The sum of every sample of `name` on the process's `/metrics` (0 when it has none yet).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let url = self.ready_url.replace("/ready", "/metrics");
        let text = reqwest::get(&url).await?.error_for_status()?.text().await?;
        Ok(sum_of_metric(&text, name))
    }

    /// Starts the process and waits until its `/ready` answers 200.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let bin = binary(self.name);
        anyhow::ensure!(bin.exists(), "{} is not built: run `cargo build --workspace --bins`", bin.display());
        let log = std::fs::File::options().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(&bin);
        // Settings come only from this harness, never from the developer's shell.
        for (key, _) in std::env::vars() {
            if ["BRAIN__", "VENTURES_SYNC__", "PROJECTION_WRITER__", "API_GATEWAY__", "FIRESTORE_CHANGE_LISTENER__", "DLQ_REPLAYER__"].iter().any(|p| key.starts_with(p)) {
                command.env_remove(key);
            }
        }
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", std::env::var("BRAIN_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        let http = reqwest::Client::new();
        let url = self.ready_url.clone();
        let name = self.name;
        let result = wait_for(&format!("{name} to be ready"), Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await;
        if result.is_err() {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = tail.lines().rev().take(20).collect();
            anyhow::bail!("{name} did not become ready; log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        Ok(())
    }

    /// Started by this harness and not stopped or killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no shutdown hooks, no final commit, no flush.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
            self.kills += 1;
        }
        Ok(())
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
            }
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(status) => anyhow::ensure!(status?.success(), "{} exited with failure on SIGTERM", self.name),
                Err(_) => {
                    child.kill().await?;
                    anyhow::bail!("{} did not stop within 30 s of SIGTERM", self.name);
                }
            }
        }
        Ok(())
    }
}

/// Sums the samples of one metric in the Prometheus text format (any labels).
pub fn sum_of_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            (rest.starts_with(' ') || rest.starts_with('{')).then_some(rest)
        })
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_a_metric_over_its_labels_and_nothing_else() {
        let text = "# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3\na_total_more 7\nb 1\n";
        assert_eq!(super::sum_of_metric(text, "a_total"), 5.0);
        assert_eq!(super::sum_of_metric(text, "c"), 0.0);
    }
}
