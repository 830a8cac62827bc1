//! The system-test harness: real broker, PostgreSQL, schema registry, Firestore emulator and
//! Ventures simulator, with Brain's services as child processes that tests can SIGKILL.
//!
//! Each test gets its own broker process, database, registry, simulator and dev OIDC issuer (the
//! gateway trusts it; `Stack::token` mints), and its own Firestore project id on the shared
//! emulator (`FIRESTORE_EMULATOR_HOST`, started by `make test`).

pub mod chaos;
pub mod infra;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod stack;
pub mod topics;
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

/// A valid `LoanStatusChanged` for tests that publish events themselves: a fresh event id, the
/// status `Status<version>`, stamped now.
pub fn loan_event(app: &str, version: i64) -> brain_events::LoanStatusChanged {
    let now = chrono::Utc::now().timestamp_millis();
    brain_events::LoanStatusChanged {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: now,
        tenant_id: "t1".into(),
        correlation_id: format!("{app}-{version}"),
        causation_id: None,
        producer: "system-test".into(),
        application_id: app.into(),
        version,
        source_seq: version,
        loan: brain_events::LoanState {
            loan_id: format!("L-{app}"),
            loan_number: "1".into(),
            loan_type: "7A".into(),
            status: format!("Status{version}"),
            status_changed_at: now,
            borrower_entity_id: "B".into(),
            amount_requested_cents: 1,
            amount_approved_cents: None,
            updated_at: now,
        },
    }
}
