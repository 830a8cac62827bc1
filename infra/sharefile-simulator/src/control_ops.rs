//! `/control` for test machinery, part two: injected faults, the call ledger, the effect
//! counters, and reset.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use serde_json::{Value, json};

use crate::{
    control::{params, parse},
    error::ControlError,
    faults::FaultSpec,
    state::SharedState,
};

const DEFAULT_PAGE: usize = 1000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/control/faults/{id}", delete(remove_fault))
        .route("/control/ledger", get(ledger))
        .route("/control/stats", get(stats))
        .route("/control/reset", post(reset))
}

fn number<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, ControlError> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ControlError::BadRequest(format!("{name} must be a number"))),
    }
}

async fn add_fault(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let spec: FaultSpec = parse(&body)?;
    let id = state.faults().add(spec).map_err(ControlError::BadRequest)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn list_faults(State(state): State<SharedState>) -> Json<Value> {
    Json(json!(state.faults().list()))
}

async fn clear_faults(State(state): State<SharedState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(
    State(state): State<SharedState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ControlError> {
    if state.faults().remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ControlError::NotFound(format!("fault {id}")))
    }
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
