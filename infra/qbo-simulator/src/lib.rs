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

use std::net::SocketAddr;

use axum::{Router, http::StatusCode, response::IntoResponse};
use simulator_kit::url_of;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        let result = simulator_kit::serve(self.listener, self.app, &shutdown)
            .await
            .map_err(SimError::Serve);
        shutdown.cancel();
        let _ = sender.await;
        result
    }

    /// Runs on a background task until the returned handle is stopped or dropped.
    pub fn spawn(self) -> RunningSimulator {
        RunningSimulator::spawn(self.addr, |shutdown| self.run_until(shutdown))
    }
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub type RunningSimulator = simulator_kit::Running<SimError>;
