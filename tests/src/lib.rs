//! The system-test harness: real broker, PostgreSQL, schema registry, Firestore emulator and
//! Ventures simulator, with Brain's services as child processes that tests can SIGKILL.
//!
//! Each test gets its own broker process, database, registry and simulator, and its own Firestore
//! project id on the shared emulator (`FIRESTORE_EMULATOR_HOST`, started by `make test`).

pub mod chaos;
pub mod infra;
pub mod postgres;
pub mod process;
pub mod stack;
pub mod workload;

use std::{future::Future, time::Duration};

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last error: {last_error:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
