//! System tests: the whole flow on real infrastructure. Run with `make test`.

mod admin_api;
mod audit;
mod auth;
mod breaker;
mod calendar;
mod chaos;
mod commands;
mod crash;
mod documents;
mod fairness;
mod firestore_guard;
mod flags;
mod flow;
mod interop;
mod listener;
mod messages;
mod metrics;
mod openapi;
mod ops_page;
mod outage;
mod poison;
mod qbo;
mod readiness;
mod reassign;
mod reconcile;
mod replay;
mod rebalance;
mod runtime;
mod scale_out;
mod sla;
mod traces;
mod task_actions;

use std::sync::Once;

/// Logs of the test process itself (services log to target/system-tests/<test>/).
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_test_writer().try_init();
    });
}
