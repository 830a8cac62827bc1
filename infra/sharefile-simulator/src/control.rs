//! `/control` for test machinery, part one: the item tree (create folders, list items and files,
//! read a file's bytes and hash), the account's limits and the tokens.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::ControlError,
    items::{Kind, Store},
    render,
    state::{Limits, SharedState},
};

pub use simulator_kit::control::{params, parse};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/control/folders", post(create_folders))
        .route("/control/items", get(items))
        .route("/control/files", get(files))
        .route("/control/files/{id}", get(file))
        .route("/control/files/{id}/content", get(file_content))
        .route("/control/limits", get(limits).put(set_limits))
        .route("/control/tokens/expire", post(expire_tokens))
        .route("/control/tokens/revoke", post(revoke_tokens))
        .merge(crate::control_ops::router())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFolders {
    path: String,
}

/// `{"path": "/Clients/Acme"}`: creates the missing folders (not counted as API effects).
async fn create_folders(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let NewFolders { path } = parse(&body)?;
    if !path.starts_with('/') {
        return Err(ControlError::BadRequest("path must start with /".into()));
    }
    let mut store = state.store();
    let folder = store
        .ensure_path(&path)
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let path = store.path_of(&folder.id);
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": folder.id, "path": path})),
    ))
}

/// The whole tree, every file (by path) and the bytes used.
async fn items(State(state): State<SharedState>) -> Json<Value> {
    let store = state.store();
    Json(json!({
        "tree": render::tree(&store, store.root_id()),
        "files": all_files(&store),
        "usedBytes": store.used_bytes(),
    }))
}

fn all_files(store: &Store) -> Vec<Value> {
    let mut files: Vec<Value> = store
        .files()
        .map(|f| render::file_summary(store, f))
        .collect();
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    files
}

/// Every file, or with `?path=` the one file there.
async fn files(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let store = state.store();
    let Some(path) = params(raw).remove("path") else {
        return Ok(Json(Value::Array(all_files(&store))));
    };
    store
        .by_path(&path)
        .filter(|i| !i.is_folder())
        .map(|f| Json(render::file_summary(&store, f)))
        .ok_or_else(|| ControlError::NotFound(format!("file {path}")))
}

async fn file(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let store = state.store();
    store
        .get(&id)
        .filter(|i| !i.is_folder())
        .map(|f| Json(render::file_summary(&store, f)))
        .ok_or_else(|| ControlError::NotFound(format!("file {id}")))
}

async fn file_content(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Response, ControlError> {
    let store = state.store();
    match store.get(&id).map(|i| &i.kind) {
        Some(Kind::File { content, .. }) => Ok(content.clone().into_response()),
        _ => Err(ControlError::NotFound(format!("file {id}"))),
    }
}

async fn limits(State(state): State<SharedState>) -> Json<Value> {
    let limits = *state.limits();
    let used = state.store().used_bytes();
    Json(json!({
        "quotaBytes": limits.quota_bytes,
        "maxFileSizeBytes": limits.max_file_size_bytes,
        "usedBytes": used,
    }))
}

/// `{"quotaBytes": n|null, "maxFileSizeBytes": n|null}` (null or absent: no limit).
async fn set_limits(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let new: Limits = parse(&body)?;
    *state.limits() = new;
    Ok(limits(State(state)).await)
}

/// Every access token expires now: the next API call is 401 until the client refreshes.
async fn expire_tokens(State(state): State<SharedState>) -> Json<Value> {
    let expired = state.tokens().expire_access();
    Json(json!({"expired": expired}))
}

/// Every access and refresh token stops working: the client must log in again.
async fn revoke_tokens(State(state): State<SharedState>) -> StatusCode {
    state.tokens().revoke_all();
    StatusCode::NO_CONTENT
}
