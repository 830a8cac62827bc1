//! Figure (3)'s Python peer (`bench/peer/consume.py`): the same records and effect, consumed by a
//! straightforward Python implementation, run with the project virtualenv's interpreter.

use std::{path::Path, time::Duration};

use crate::throughput::{PEER_BATCHED_SCHEMA, PEER_SCHEMA, Throughput, tables};

/// (3) The Python peer (`bench/peer/consume.py`), run with the project virtualenv's interpreter:
/// one record at a time (`batch_size` 1, schema `bench_peer`) or batched (`bench_peer_batched`).
#[allow(clippy::too_many_arguments)]
pub async fn peer(
    python: &Path,
    script: &Path,
    bootstrap: &str,
    topic: &str,
    registry_url: &str,
    database_url: &str,
    count: u64,
    batch_size: usize,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let schema = if batch_size > 1 {
        PEER_BATCHED_SCHEMA
    } else {
        PEER_SCHEMA
    };
    tables(database_url, schema, 1).await?.close().await;
    let group = format!("bench-peer-{batch_size}-{}", uuid::Uuid::new_v4().simple());
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .args([
            "--bootstrap",
            bootstrap,
            "--registry",
            registry_url,
            "--dsn",
            database_url,
            "--schema",
            schema,
        ])
        .args([
            "--topic",
            topic,
            "--group",
            &group,
            "--count",
            &count.to_string(),
            "--batch-size",
            &batch_size.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| {
            anyhow::anyhow!("the Python peer did not read {count} records in {timeout:?}")
        })??;
    anyhow::ensure!(
        output.status.success(),
        "the Python peer failed ({})",
        output.status
    );
    let result: Throughput = serde_json::from_slice(&output.stdout).map_err(|e| {
        anyhow::anyhow!(
            "the Python peer printed no result ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    anyhow::ensure!(
        result.records == count,
        "the Python peer read {} of {count} records",
        result.records
    );
    Ok(result)
}
