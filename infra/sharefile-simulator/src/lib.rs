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

use axum::{extract::DefaultBodyLimit, response::IntoResponse};
use simulator_kit::{App, Built};

pub use simulator_kit::RunningSimulator;

pub use crate::{
    config::Config,
    error::{ConfigError, SimError},
    names::md5_hex,
};
use crate::{error::SfError, state::AppState};

/// `Simulator::start(config).await?` validates the config and binds (port 0 picks a free port);
/// `.spawn()` serves on a background task (a [`RunningSimulator`], whose `base_url()` prefixes
/// `/oauth/token`, `/sf/v3/...` and `/control/...`), `.run_until(token)` until the token fires.
pub type Simulator = simulator_kit::Simulator<ShareFile>;

/// The ShareFile API on the kit's server (see [`Simulator`]).
pub struct ShareFile;

impl App for ShareFile {
    type Config = Config;

    fn listen_addr(config: &Config) -> std::net::SocketAddr {
        config.listen_addr
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.validate()
    }

    fn build(config: Config) -> Result<Built, SimError> {
        let body_limit = config.max_body_bytes;
        let state = AppState::new(config)?;
        let app = api::router(state.clone())
            .merge(control::router())
            .fallback(|| async { SfError::not_found("No such resource").into_response() })
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(state);
        Ok(Built::new(app))
    }
}
