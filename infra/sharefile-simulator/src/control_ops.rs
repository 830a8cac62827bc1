//! `/control` for test machinery, part two: injected faults, the call ledger, the effect
//! counters, and reset.

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{control::params, error::ControlError, state::SharedState};
use simulator_kit::control::{faults_router, number};

const DEFAULT_PAGE: usize = 1000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .merge(faults_router(|state: &SharedState| state.faults()))
        .route("/control/ledger", get(ledger))
        .route("/control/stats", get(stats))
        .route("/control/reset", post(reset))
}

/// `?after=<seq>&limit=<n>`: every `/oauth`, `/sf/v3` and `ChunkUri` call in order.
async fn ledger(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let ledger = state.ledger();
    let entries = ledger.read(number(&p, "after", 0)?, number(&p, "limit", DEFAULT_PAGE)?);
    Ok(Json(
        json!({"entries": entries, "lastSeq": ledger.last_seq()}),
    ))
}

async fn stats(State(state): State<SharedState>) -> Json<Value> {
    let mut value = json!(state.ledger().stats());
    let store = state.store();
    value["files"] = json!(store.files().count());
    value["usedBytes"] = json!(store.used_bytes());
    Json(value)
}

/// Back to the configured root folders; forgets tokens, upload sessions, faults, the ledger and
/// the counters; limits return to their configured values.
async fn reset(State(state): State<SharedState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
