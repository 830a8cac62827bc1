//! A simulator of the ShareFile REST API v3 (the contract in `/work/shared/EXTERNAL_APIS.md`,
//! "ShareFile REST API v3"; documented in `docs/simulators/sharefile.md`): OAuth with the
//! password and refresh grants, folders by path and id, the Standard raw upload through
//! `Upload2` and a `ChunkUri` that may answer `ERROR:` inside an HTTP 200, ShareFile error bodies,
//! quota and file-size limits. A `/control` API creates folders, injects faults (latency, 429
//! with or without `Retry-After`, 5xx, held requests, outages, `ERROR:` uploads) and reads back
//! every call, every stored file and its MD5.
//!
//! State lives in memory. Test crates start it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> Result<(), sharefile_simulator::SimError> {
//! use sharefile_simulator::{Config, Simulator};
//! let mut config = Config::new("client-id", "client-secret", "user@example.com", "password");
//! config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
//! config.root_folders = vec!["/Clients".into()];
//! let sim = Simulator::start(config).await?.spawn();
//! let base_url = sim.base_url(); // POST {base_url}/oauth/token, then {base_url}/sf/v3/...
//! # Ok(()) }
//! ```

mod api;
mod config;
mod control;
mod control_ops;
mod error;
mod faults;
mod items;
mod ledger;
mod middleware;
mod names;
mod oauth;
mod render;
mod state;
mod upload;

use std::net::SocketAddr;

use axum::{Router, extract::DefaultBodyLimit, response::IntoResponse};
use simulator_kit::url_of;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::{
    config::Config,
    error::{ConfigError, SimError},
    names::md5_hex,
};
use crate::{error::SfError, state::AppState};

pub struct Simulator {
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
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
        let body_limit = config.max_body_bytes;
        let state = AppState::new(config)?;
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async { SfError::not_found("No such resource").into_response() })
            .layer(DefaultBodyLimit::max(body_limit))
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

    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Serves until `shutdown` fires; then drains in-flight requests for up to 5 s.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), SimError> {
        simulator_kit::serve(self.listener, self.app, &shutdown)
            .await
            .map_err(SimError::Serve)
    }

    /// Runs on a background task until the returned handle is stopped or dropped.
    pub fn spawn(self) -> RunningSimulator {
        RunningSimulator::spawn(self.addr, |shutdown| self.run_until(shutdown))
    }
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub type RunningSimulator = simulator_kit::Running<SimError>;
