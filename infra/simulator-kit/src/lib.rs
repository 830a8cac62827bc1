//! The plumbing the in-memory simulators of external SaaS APIs (`infra/*-simulator`) share, so
//! each simulator holds only its API: the fault model and `/control/faults`, the middleware that
//! applies faults and records the call ledger, the ledger with `/control/ledger` and
//! `/control/stats`, `/control/reset`, the server's start, spawn and graceful shutdown, the
//! errors, and settings from `<PREFIX><FIELD>` environment variables. See `README.md` for how a
//! simulator plugs in.

mod config;
mod control;
mod error;
mod faults;
mod http;
mod ledger;
mod middleware;
mod server;
mod standard;
mod state;

pub use crate::{
    config::{Env, check_http_url, vars_lookup},
    control::{number, params, parse, router as control_router},
    error::{ConfigError, ControlError, SimError},
    faults::{Answer, Fault, FaultKind, FaultSpec, Faults, Hit, positive_secs},
    http::{bearer_token, public_url, url_of},
    ledger::{CallCounts, Ledger, LedgerEntry, Tally},
    middleware::{Call, Target, inject_faults, observe},
    server::{App, Built, RunningSimulator, Simulator, init_json_logs},
    standard::{DEFAULT_HOLD_SECS, Standard, StandardSpec},
    state::{Core, Simulated, lock},
};
