//! Serving a simulator: one drain deadline, a handle for a simulator on a background task, and
//! what its binary needs (JSON logs, SIGINT/SIGTERM).

use std::{future::Future, io, net::SocketAddr, time::Duration};

use axum::Router;
use tokio::{net::TcpListener, task::JoinError, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests may finish after shutdown before they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` until `shutdown` fires, then drains in-flight requests for up to
/// [`SHUTDOWN_GRACE`] (a held request, e.g. an injected timeout, is dropped after it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        result = server => result,
        () = grace_elapsed(shutdown) => {
            tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "shutdown grace elapsed; dropping open requests");
            Ok(())
        }
    }
}

async fn grace_elapsed(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// A URL to reach `addr` (loopback when bound to every interface).
pub fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub struct Running<E> {
    addr: SocketAddr,
    task: Option<JoinHandle<Result<(), E>>>,
    shutdown: CancellationToken,
    guard: Option<DropGuard>,
}

impl<E: From<JoinError> + Send + 'static> Running<E> {
    /// Spawns `run` (a simulator's `run_until`) with a fresh shutdown token.
    pub fn spawn<F>(addr: SocketAddr, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            addr,
            task: Some(task),
            shutdown: shutdown.clone(),
            guard: Some(shutdown.drop_guard()),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`: the prefix of the simulated API and of `/control/...`.
    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Cancelling this token shuts the server down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), E> {
        drop(self.guard.take());
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// JSON logs on stdout, filtered by `RUST_LOG` (default `info`).
pub fn init_json_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// Runs `run` (a simulator's `run_until`) until SIGINT or SIGTERM, then lets it drain.
pub async fn run_until_signal<F, E>(run: impl FnOnce(CancellationToken) -> F) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let shutdown = CancellationToken::new();
    let run = run(shutdown.clone());
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => result,
        () = cancel_on_signal(shutdown) => run.await,
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM (SIGINT alone where SIGTERM cannot be heard).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the simulator");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
