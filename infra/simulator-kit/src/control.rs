//! The `/control` routes every simulator has: injected faults (`POST`, `GET`, `DELETE
//! /control/faults`, `DELETE /control/faults/{id}`), the call ledger (`GET
//! /control/ledger?after=&limit=`), the counters (`GET /control/stats`) and `POST /control/reset`;
//! and the helpers a simulator's own `/control` routes use.

use std::{collections::HashMap, str::FromStr, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{
    error::ControlError,
    faults::{FaultKind, FaultSpec},
    state::Simulated,
};

/// Ledger entries per page without `limit`.
const DEFAULT_PAGE: usize = 1000;

pub fn router<S: Simulated>() -> Router<Arc<S>> {
    Router::new()
        .route(
            "/control/faults",
            post(add_fault::<S>)
                .get(list_faults::<S>)
                .delete(clear_faults::<S>),
        )
        .route("/control/faults/{id}", delete(remove_fault::<S>))
        .route("/control/ledger", get(ledger::<S>))
        .route("/control/stats", get(stats::<S>))
        .route("/control/reset", post(reset::<S>))
}

/// A JSON body, or 400 naming what is wrong with it.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(ControlError::Json)
}

/// The query string's parameters (the last of repeated ones).
pub fn params(raw: Option<String>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Parameter `name` as a number, `default` when absent, 400 when not a number.
pub fn number<T: FromStr>(
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

async fn add_fault<S: Simulated>(
    State(state): State<Arc<S>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let spec: FaultSpec<<S::Fault as FaultKind>::Spec> = parse(&body)?;
    let id = state
        .core()
        .faults()
        .add(spec)
        .map_err(ControlError::BadRequest)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn list_faults<S: Simulated>(State(state): State<Arc<S>>) -> Json<Value> {
    Json(json!(state.core().faults().list()))
}

async fn clear_faults<S: Simulated>(State(state): State<Arc<S>>) -> StatusCode {
    state.core().faults().clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault<S: Simulated>(
    State(state): State<Arc<S>>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ControlError> {
    if state.core().faults().remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ControlError::NotFound(format!("fault {id}")))
    }
}

/// `?after=<seq>&limit=<n>` (and what [`Simulated::keep`] reads): every API call in order.
async fn ledger<S: Simulated>(
    State(state): State<Arc<S>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let (after, limit) = (number(&p, "after", 0)?, number(&p, "limit", DEFAULT_PAGE)?);
    let ledger = state.core().ledger();
    let entries = ledger.read_where(after, limit, |e| S::keep(&p, e));
    Ok(Json(
        json!({"entries": entries, "lastSeq": ledger.last_seq()}),
    ))
}

async fn stats<S: Simulated>(State(state): State<Arc<S>>) -> Json<Value> {
    Json(state.stats())
}

async fn reset<S: Simulated>(State(state): State<Arc<S>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        let p = params(Some("after=3&limit=x&realmId=a%20b".into()));
        assert_eq!(number(&p, "after", 0_u64).unwrap(), 3);
        assert_eq!(number(&p, "missing", 9_usize).unwrap(), 9);
        let err = number(&p, "limit", 0_usize).unwrap_err();
        assert_eq!(err.to_string(), "limit must be a number");
        assert_eq!(p["realmId"], "a b");
        assert!(params(None).is_empty());
        assert!(parse::<Value>(b"{").is_err());
    }
}
