//! A simulator of the Google Cloud Storage JSON API subset the mobile app's uploads need (the
//! contract in `/work/shared/EXTERNAL_APIS.md`, "Google Cloud Storage"; documented in
//! `docs/simulators/storage.md`): media uploads, object metadata with `md5Hash`, `crc32c` and
//! `generation`, `alt=media` downloads, listing, deletes, `ifGenerationMatch`, GCS error bodies
//! and optional bearer auth. A `/control` API creates buckets, puts objects directly, injects
//! faults (latency, 429 with or without `Retry-After`, 5xx, held requests, outages) and reads back
//! every call and every stored object.
//!
//! State lives in memory. Test crates start it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> Result<(), storage_simulator::SimError> {
//! use storage_simulator::{Config, Simulator};
//! let config = Config {
//!     listen_addr: "127.0.0.1:0".parse().expect("valid address"),
//!     buckets: vec!["brain-uploads".into()],
//!     ..Config::default()
//! };
//! let sim = Simulator::start(config).await?.spawn();
//! let base_url = sim.base_url(); // {base_url}/upload/storage/v1/b/brain-uploads/o?uploadType=media&name=...
//! # Ok(()) }
//! ```

mod api;
mod config;
mod control;
mod control_ops;
mod error;
mod faults;
mod hash;
mod ledger;
mod middleware;
mod objects;
mod state;

use std::net::SocketAddr;

use axum::{Router, extract::DefaultBodyLimit, response::IntoResponse};
use simulator_kit::url_of;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::{
    config::Config,
    error::{ConfigError, SimError},
    hash::{crc32c, crc32c_base64, md5_base64},
};
use crate::{error::GcsError, state::AppState};

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
        let state = AppState::new(config);
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async { GcsError::not_found().into_response() })
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
