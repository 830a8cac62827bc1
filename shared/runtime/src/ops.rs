//! The operations endpoint every service serves: `/health` (the process is alive), `/ready`
//! (dependencies reachable and work flowing) and `/metrics` (Prometheus text format).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, http::StatusCode, routing::get};
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics_handle;

/// A flag a service raises when it can do its job.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The ops routes, for services that serve them on their own HTTP port.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/ready",
            get(move || {
                let ready = readiness.get();
                async move {
                    if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
                }
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
