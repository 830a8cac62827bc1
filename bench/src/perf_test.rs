//! (1) The limit as Kafka's own tool measures it: `kafka-consumer-perf-test` from the same Kafka
//! jars, on the same topic as the bare rdkafka consumer.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// Kafka's own `kafka-consumer-perf-test` (`ConsumerPerformance`, the Java consumer of the same
/// Kafka version) reading the same records in a new group.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PerfTest {
    pub records: u64,
    /// MiB (the tool's "MB": bytes ÷ 1,048,576) of keys and values.
    pub megabytes: f64,
    /// The tool's whole run, group join included: `nMsg.sec`, `MB.sec`.
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Without the group join (`fetch.time.ms`, `fetch.nMsg.sec`, `fetch.MB.sec`): comparable
    /// with the other consumers, which are timed from their first record.
    pub fetch_seconds: f64,
    pub fetch_records_per_sec: f64,
    pub fetch_mb_per_sec: f64,
    pub rebalance_ms: f64,
}

/// Runs `kafka.sh cli consumer-perf-test` on `topic` for `count` records and parses its line.
pub async fn perf_test(
    repo: &Path,
    bootstrap: &str,
    topic: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<PerfTest> {
    let group = format!("bench-perf-test-{}", uuid::Uuid::new_v4().simple());
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(repo.join("infra/kafka/kafka.sh"))
        .args(["cli", "consumer-perf-test", "--bootstrap-server", bootstrap])
        .args(["--topic", topic, "--group", &group])
        .args(["--messages", &count.to_string(), "--timeout", "60000"])
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("consumer-perf-test did not finish in {timeout:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "consumer-perf-test failed ({}): {stdout}",
        output.status
    );
    parse_perf_test(&stdout)
}

/// The tool's result: a header line naming the columns and one line of values.
pub fn parse_perf_test(stdout: &str) -> anyhow::Result<PerfTest> {
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(", ")).collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("start.time"))
        .ok_or_else(|| anyhow::anyhow!("no header in consumer-perf-test output: {stdout}"))?;
    let names: Vec<&str> = lines[header].split(", ").map(str::trim).collect();
    let values: Vec<&str> = lines
        .get(header + 1)
        .ok_or_else(|| anyhow::anyhow!("no figures in consumer-perf-test output: {stdout}"))?
        .split(", ")
        .map(str::trim)
        .collect();
    let field = |name: &str| -> anyhow::Result<f64> {
        let i = names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| anyhow::anyhow!("consumer-perf-test printed no {name}: {stdout}"))?;
        values
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("consumer-perf-test {name} is not a number: {stdout}"))
    };
    Ok(PerfTest {
        records: field("data.consumed.in.nMsg")? as u64,
        megabytes: field("data.consumed.in.MB")?,
        records_per_sec: field("nMsg.sec")?,
        mb_per_sec: field("MB.sec")?,
        fetch_seconds: field("fetch.time.ms")? / 1000.0,
        fetch_records_per_sec: field("fetch.nMsg.sec")?,
        fetch_mb_per_sec: field("fetch.MB.sec")?,
        rebalance_ms: field("rebalance.time.ms")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_perf_test_line() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                   2026-12-01 10:00:00:000, 2026-12-01 10:00:03:000, 195.3125, 65.1042, 200000, 66666.6667, 500, 2500, 78.1250, 80000.0000\n";
        let p = super::parse_perf_test(out).unwrap();
        assert_eq!(p.records, 200_000);
        assert_eq!(p.fetch_records_per_sec, 80_000.0);
        assert_eq!(p.fetch_seconds, 2.5);
        assert_eq!(p.rebalance_ms, 500.0);
    }
}
