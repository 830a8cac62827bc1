//! A simulator of the Ventures loan origination API (`/api/v4`, see `README.md`) with a control
//! API (`/control`) for tests: seed loans, change them "inside Ventures", inject faults, and read
//! back every state-changing request received so tests can assert exactly-once effects.
//!
//! State lives in memory behind one mutex, held only for in-memory work. Test crates start it
//! in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ventures_simulator::{Config, Simulator};
//! let mut config = Config::new("client", "user", "secret");
//! config.listen_addr = "127.0.0.1:0".parse()?;
//! let sim = Simulator::start(config).await?.spawn();
//! let url = sim.base_url();
//! # Ok(()) }
//! ```

mod api;
mod config;
mod control;
mod drafts;
mod error;
mod faults;
mod feed;
mod middleware;
mod model;
mod records;
mod store;

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, response::IntoResponse};
use simulator_kit::url_of;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;
use crate::{error::ApiError, store::AppState};

pub struct Simulator {
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
}

impl Simulator {
    /// Validates the config and binds the listener (port 0 picks a free port).
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let addr = listener.local_addr()?;
        let state = AppState::new(config);
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async { ApiError::not_found("route").into_response() })
            .with_state(state);
        Ok(Self {
            listener,
            addr,
            app,
        })
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Serves until `shutdown` fires, then drains in-flight requests for up to 5 s.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        simulator_kit::serve(self.listener, self.app, &shutdown)
            .await
            .context("serving HTTP")
    }

    /// Runs on a background task until the returned handle is stopped or dropped.
    pub fn spawn(self) -> RunningSimulator {
        RunningSimulator::spawn(self.addr, |shutdown| self.run_until(shutdown))
    }
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub type RunningSimulator = simulator_kit::Running<anyhow::Error>;
