//! A simulator of the QuickBooks Online Accounting API v3 (the contract in
//! `/work/shared/EXTERNAL_APIS.md`, "QuickBooks Online"; documented in `docs/simulators/qbo.md`):
//! OAuth 2 with rotating refresh tokens, realms with bills, invoices, accounts, vendors and
//! customers, the query language with 1-based paging, CDC with its look-back and cap, writes
//! with `SyncToken` checks and `requestid` idempotency, per-realm limits with `ThrottleExceeded`,
//! and signed webhooks in the legacy and CloudEvents formats. A `/control` API seeds realms,
//! makes changes, injects faults, drops or repeats webhooks, and reads every call back.
//!
//! State lives in memory. Test crates start it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> Result<(), qbo_simulator::SimError> {
//! use qbo_simulator::{Config, Simulator};
//! let mut config = Config::new("client-id", "client-secret", "verifier-token");
//! config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
//! let sim = Simulator::start(config).await?.spawn();
//! let base_url = sim.base_url(); // POST {base_url}/control/seed, then /oauth2, /v3 ...
//! # Ok(()) }
//! ```

mod api;
mod cdc;
mod changes;
mod clock;
mod config;
mod control;
mod control_ops;
mod documents;
mod error;
mod faults;
mod ledger;
mod limits;
mod middleware;
mod model;
mod notifications;
mod oauth;
mod query;
mod realm;
mod seed;
mod state;
mod webhooks;

use std::{net::SocketAddr, time::Duration};

use axum::{Router, http::StatusCode, response::IntoResponse};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::{
    config::{Config, WebhookConfig, WebhookFormat},
    error::{ConfigError, SimError},
    notifications::{sign as sign_webhook, verify as verify_webhook},
};
use crate::{
    error::{Fault, FaultType},
    state::AppState,
    webhooks::Queue,
};

/// How long in-flight requests (e.g. ones held by an injected latency) may run after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Simulator {
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    state: state::SharedState,
    queue: Queue,
}

impl Simulator {
    /// Validates the config and binds the listener (port 0 picks a free port).
    pub async fn start(config: Config) -> Result<Self, SimError> {
        config.validate()?;
        let addr = config.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let (state, queue) = AppState::new(config)?;
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async {
                Fault::new(
                    StatusCode::NOT_FOUND,
                    FaultType::ValidationFault,
                    "404",
                    "Not Found",
                    "No such resource",
                )
                .into_response()
            })
            .with_state(state.clone());
        Ok(Self {
            listener,
            addr,
            app,
            state,
            queue,
        })
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Serves, and delivers webhooks, until `shutdown` fires; then drains in-flight requests for
    /// up to 5 s.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), SimError> {
        let sender = tokio::spawn(webhooks::run(
            self.state.clone(),
            self.queue,
            shutdown.clone(),
        ));
        let server = axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let result = tokio::select! {
            result = server => result.map_err(SimError::Serve),
            () = grace_elapsed(&shutdown) => {
                tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "shutdown grace elapsed; dropping open requests");
                Ok(())
            }
        };
        shutdown.cancel();
        let _ = sender.await;
        result
    }

    /// Runs on a background task until the returned handle is stopped or dropped.
    pub fn spawn(self) -> RunningSimulator {
        let addr = self.addr;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.run_until(shutdown.clone()));
        RunningSimulator {
            addr,
            task: Some(task),
            shutdown: shutdown.clone(),
            guard: Some(shutdown.drop_guard()),
        }
    }
}

async fn grace_elapsed(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub struct RunningSimulator {
    addr: SocketAddr,
    task: Option<JoinHandle<Result<(), SimError>>>,
    shutdown: CancellationToken,
    guard: Option<DropGuard>,
}

impl RunningSimulator {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`: prefix of `/oauth2/...`, `/v3/...` and `/control/...`.
    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Cancelling this token shuts the server down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), SimError> {
        drop(self.guard.take());
        match self.task.take() {
            Some(task) => task.await.map_err(SimError::Panicked)?,
            None => Ok(()),
        }
    }
}

/// A URL to reach `addr` (loopback when bound to every interface).
fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}
