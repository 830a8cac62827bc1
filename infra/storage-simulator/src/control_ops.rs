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

/// `?after=<seq>&limit=<n>`: every `/storage`, `/upload` and `/download` call in order.
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
    value["objects"] = json!(store.all().count());
    value["bytes"] = json!(store.all().map(|o| o.content.len()).sum::<usize>());
    Json(value)
}

/// Back to the configured, empty buckets; forgets faults, the ledger and the counters.
async fn reset(State(state): State<SharedState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
