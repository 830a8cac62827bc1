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

use axum::{http::StatusCode, response::IntoResponse};
use simulator_kit::{App, Built};

pub use simulator_kit::RunningSimulator;

pub use crate::{
    config::{Config, WebhookConfig, WebhookFormat},
    error::{ConfigError, SimError},
    notifications::{sign as sign_webhook, verify as verify_webhook},
};
use crate::{
    error::{Fault, FaultType},
    state::AppState,
};

/// `Simulator::start(config).await?` validates the config and binds (port 0 picks a free port);
/// `.spawn()` serves and delivers webhooks on background tasks (a [`RunningSimulator`], whose
/// `base_url()` prefixes `/oauth2/...`, `/v3/...` and `/control/...`), `.run_until(token)` until
/// the token fires.
pub type Simulator = simulator_kit::Simulator<Qbo>;

/// The QBO API on the kit's server, with webhook delivery beside it (see [`Simulator`]).
pub struct Qbo;

impl App for Qbo {
    type Config = Config;

    fn listen_addr(config: &Config) -> std::net::SocketAddr {
        config.listen_addr
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.validate()
    }

    fn build(config: Config) -> Result<Built, SimError> {
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
        Ok(Built::new(app).with_companion(move |stop| webhooks::run(state, queue, stop)))
    }
}
