//! The operations endpoint every service serves: `/health` (the process is alive), `/ready`
//! (dependencies reachable and work flowing), `/health/deps` (each readiness check by name) and
//! `/metrics` (Prometheus text format).
//!
//! Readiness is the conjunction of named checks. A service raises `startup` once it is built;
//! the consumer runtime adds `kafka` (brokers reachable) and `handler` (no partition is stuck
//! retrying because a dependency of ours is down). A failing check carries a stable reason code,
//! never a raw driver error: those go to the log, once.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use axum::{Json, Router, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics_handle;

/// One named condition of readiness. It fails while at least one holder reports a failure.
#[derive(Debug)]
struct CheckState {
    failing: AtomicUsize,
    reason: Mutex<&'static str>,
    since: Mutex<Instant>,
}

/// A handle on one check; clone it freely.
#[derive(Debug, Clone)]
pub struct Check(Arc<CheckState>);

impl Check {
    fn new(ok: bool, reason: &'static str) -> Self {
        Self(Arc::new(CheckState {
            failing: AtomicUsize::new(usize::from(!ok)),
            reason: Mutex::new(reason),
            since: Mutex::new(Instant::now()),
        }))
    }

    pub fn is_ok(&self) -> bool {
        self.0.failing.load(Ordering::Acquire) == 0
    }

    /// Sets the check as a whole (for conditions with one owner, e.g. "the brokers are reachable").
    pub fn set(&self, ok: bool, reason: &'static str) {
        let was_ok = self.is_ok();
        self.0.failing.store(usize::from(!ok), Ordering::Release);
        if !ok {
            *self.0.reason.lock().expect("check lock") = reason;
        }
        if was_ok != ok {
            *self.0.since.lock().expect("check lock") = Instant::now();
        }
    }

    /// Reports one failure that lasts until the returned guard is dropped; several holders may
    /// fail at once (e.g. several partitions waiting for PostgreSQL).
    pub fn fail(&self, reason: &'static str) -> FailureGuard {
        *self.0.reason.lock().expect("check lock") = reason;
        if self.0.failing.fetch_add(1, Ordering::AcqRel) == 0 {
            *self.0.since.lock().expect("check lock") = Instant::now();
        }
        FailureGuard(self.clone())
    }

    fn report(&self) -> serde_json::Value {
        let seconds = self.0.since.lock().expect("check lock").elapsed().as_secs();
        if self.is_ok() {
            json!({ "status": "ok", "for_seconds": seconds })
        } else {
            json!({ "status": "failing", "reason": *self.0.reason.lock().expect("check lock"), "for_seconds": seconds })
        }
    }
}

/// Ends one failure of a check when dropped.
#[derive(Debug)]
pub struct FailureGuard(Check);

impl Drop for FailureGuard {
    fn drop(&mut self) {
        if self.0.0.failing.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.0.since.lock().expect("check lock") = Instant::now();
        }
    }
}

/// The set of checks behind `/ready`. Ready when every check is ok (and there is at least one).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<BTreeMap<&'static str, Check>>>);

impl Readiness {
    /// The check `name`, created (failing with `"starting"`) on first use.
    pub fn check(&self, name: &'static str) -> Check {
        self.0.lock().expect("readiness lock").entry(name).or_insert_with(|| Check::new(false, "starting")).clone()
    }

    /// Raises or lowers the service's own `startup` check.
    pub fn set(&self, ready: bool) {
        self.check("startup").set(ready, "not_started");
    }

    pub fn get(&self) -> bool {
        let checks = self.0.lock().expect("readiness lock");
        !checks.is_empty() && checks.values().all(Check::is_ok)
    }

    /// Each check's state as JSON: `{"kafka": {"status": "ok", ...}, ...}`.
    pub fn report(&self) -> serde_json::Value {
        let checks = self.0.lock().expect("readiness lock");
        serde_json::Value::Object(checks.iter().map(|(name, check)| (name.to_string(), check.report())).collect())
    }
}

/// The ops routes, for services that serve them on their own HTTP port.
pub fn routes(readiness: Readiness) -> Router {
    let deps = readiness.clone();
    Router::new()
        .route("/health", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/ready",
            get(move || {
                let (ready, report) = (readiness.get(), readiness.report());
                async move {
                    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, Json(json!({ "ready": ready, "checks": report }))).into_response()
                }
            }),
        )
        .route(
            "/health/deps",
            get(move || {
                let report = deps.report();
                async move { Json(report) }
            }),
        )
        .route("/metrics", get(|| async { metrics_handle().render() }))
}

/// Binds the ops endpoint and serves it until `shutdown` fires. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    metrics_handle();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let app = routes(readiness);
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::warn!(error = %e, "ops endpoint stopped");
        }
    });
    Ok((bound, handle))
}

/// Middleware for a service's HTTP API (`axum::middleware::from_fn_with_state(SERVICE, ...)`):
/// `<service>_http_requests_total{route,method,status}` and
/// `<service>_http_request_duration_seconds{route}`, by matched route (`unmatched` otherwise).
pub async fn record_http_metrics(
    axum::extract::State(service): axum::extract::State<&'static str>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(crate::telemetry::metric_name(service, "http_requests_total"), "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!(crate::telemetry::metric_name(service, "http_request_duration_seconds"), "route" => route).record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_is_ok() {
        let readiness = Readiness::default();
        assert!(!readiness.get(), "no checks yet");
        readiness.set(true);
        assert!(readiness.get());
        let handler = readiness.check("handler");
        handler.set(true, "");
        let (a, b) = (handler.fail("database"), handler.fail("database"));
        assert!(!readiness.get());
        assert_eq!(readiness.report()["handler"]["reason"], "database");
        drop(a);
        assert!(!readiness.get(), "one partition still waits");
        drop(b);
        assert!(readiness.get());
    }
}
