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
mod error;
mod hash;
mod ledger;
mod middleware;
mod objects;
mod state;

use axum::{extract::DefaultBodyLimit, response::IntoResponse};
use simulator_kit::{App, Built};

pub use simulator_kit::RunningSimulator;

pub use crate::{
    config::Config,
    error::{ConfigError, SimError},
    hash::{crc32c, crc32c_base64, md5_base64},
};
use crate::{error::GcsError, state::AppState};

/// `Simulator::start(config).await?` validates the config and binds (port 0 picks a free port);
/// `.spawn()` serves on a background task (a [`RunningSimulator`], whose `base_url()` prefixes
/// `/storage/v1/...`, `/upload/...` and `/control/...`), `.run_until(token)` until the token fires.
pub type Simulator = simulator_kit::Simulator<CloudStorage>;

/// The Cloud Storage API on the kit's server (see [`Simulator`]).
pub struct CloudStorage;

impl App for CloudStorage {
    type Config = Config;

    fn listen_addr(config: &Config) -> std::net::SocketAddr {
        config.listen_addr
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.validate()
    }

    fn build(config: Config) -> Result<Built, SimError> {
        let body_limit = config.max_body_bytes;
        let state = AppState::new(config);
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async { GcsError::not_found().into_response() })
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(state);
        Ok(Built::new(app))
    }
}
