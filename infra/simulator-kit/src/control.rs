//! The `/control` API's plumbing: its error (`{"error": "..."}`), body and query parsing, and the
//! `/control/faults` routes, the same in every simulator.

use std::{collections::HashMap, str::FromStr, sync::MutexGuard};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, post},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::faults::{FaultKind, FaultSpec, Faults};

/// Errors of the `/control` API: `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid JSON body")]
    Json(#[source] serde_json::Error),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) | Self::Json(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
        };
        let message = match &self {
            Self::Json(source) => format!("{self}: {source}"),
            other => other.to_string(),
        };
        (status, Json(json!({"error": message}))).into_response()
    }
}

/// A JSON body, or 400 with serde's reason.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(ControlError::Json)
}

/// The query string as a map (the last of repeated names wins).
pub fn params(raw: Option<String>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The query parameter `name` as a number, `default` when absent, 400 when not a number.
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

/// How the routes reach a simulator's faults from its state.
pub type FaultsOf<S, K> = for<'s> fn(&'s S) -> MutexGuard<'s, Faults<K>>;

/// `POST /control/faults` (201 `{"id"}`, 400 with the reason), `GET` (the live faults),
/// `DELETE` (all), and `DELETE /control/faults/{id}` (204, or 404).
pub fn faults_router<S, K>(faults: FaultsOf<S, K>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    K: FaultKind + Send + 'static,
{
    let add = move |State(state): State<S>, body: Bytes| async move {
        let spec: FaultSpec<K::Spec> = parse(&body)?;
        let id = faults(&state).add(spec).map_err(ControlError::BadRequest)?;
        Ok::<_, ControlError>((StatusCode::CREATED, Json(json!({"id": id}))))
    };
    let list = move |State(state): State<S>| async move {
        let listed: Value = json!(faults(&state).list());
        Json(listed)
    };
    let clear = move |State(state): State<S>| async move {
        faults(&state).clear();
        StatusCode::NO_CONTENT
    };
    let remove = move |State(state): State<S>, Path(id): Path<u64>| async move {
        if faults(&state).remove(id) {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ControlError::NotFound(format!("fault {id}")))
        }
    };
    Router::new()
        .route("/control/faults", post(add).get(list).delete(clear))
        .route("/control/faults/{id}", delete(remove))
}
