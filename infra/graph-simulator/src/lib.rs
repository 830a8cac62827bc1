//! A simulator of the Microsoft Graph calendar and Teams APIs (the contract in
//! `/work/shared/EXTERNAL_APIS.md`, "Microsoft Graph"; documented in `docs/simulators/graph.md`):
//! app-only client-credentials tokens, `getSchedule` with its `availabilityView`, events with
//! `transactionId` idempotency, update, cancel and delete, change-notification subscriptions with
//! the validation handshake, Teams channel messages, Graph error bodies, `Retry-After` throttling
//! and the mailbox concurrency limit. A `/control` API seeds staff calendars, injects faults,
//! drops or repeats notifications, and reads every call and effect back.
//!
//! State lives in memory. Test crates start it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> Result<(), graph_simulator::SimError> {
//! use graph_simulator::{Config, Simulator};
//! let mut config = Config::new("tenant-id", "client-id", "client-secret");
//! config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
//! let sim = Simulator::start(config).await?.spawn();
//! let base_url = sim.base_url(); // POST {base_url}/control/seed, then /{tenant}/oauth2, /v1.0 ...
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod config;
mod control;
mod control_ops;
mod delivery;
mod error;
mod event;
mod events;
mod faults;
mod ledger;
mod limits;
mod middleware;
mod model;
mod notifier;
mod schedule;
mod seed;
mod state;
mod subscriptions;
mod teams;
mod time;

use std::net::SocketAddr;

use axum::Router;
use simulator_kit::url_of;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::{
    config::{Config, NotificationConfig},
    error::{ConfigError, SimError},
};
use crate::{notifier::Queue, state::AppState};

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
            .fallback(api::fallback)
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

    /// Serves, and delivers notifications, until `shutdown` fires; then releases held requests
    /// and drains in-flight ones for up to 5 s.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), SimError> {
        let sender = tokio::spawn(delivery::run(
            self.state.clone(),
            self.queue,
            shutdown.clone(),
        ));
        let release = self.state.release.clone();
        let serve = async {
            let result = simulator_kit::serve(self.listener, self.app, &shutdown).await;
            shutdown.cancel();
            result.map_err(SimError::Serve)
        };
        let release_held = async {
            shutdown.cancelled().await;
            release.cancel();
        };
        let (result, ()) = tokio::join!(serve, release_held);
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
