//! The simulated Cloud Storage JSON API subset: object metadata, `alt=media` downloads (also on
//! the `/download/...` host path `mediaLink` points to), listing by prefix, deletes, and media
//! uploads (`POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=...`), with
//! `ifGenerationMatch` on uploads and deletes and `generation` on reads.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    error::GcsError,
    ledger::Effect,
    middleware::{Target, authenticate, inject_faults, observe},
    objects::Object,
    state::SharedState,
};

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/storage/v1/b/{bucket}/o", get(list))
        .route(
            "/storage/v1/b/{bucket}/o/{*object}",
            get(read).delete(delete_object),
        )
        .route("/download/storage/v1/b/{bucket}/o/{*object}", get(download))
        .route("/upload/storage/v1/b/{bucket}/o", post(upload))
        .route_layer(from_fn_with_state(state.clone(), authenticate))
        .route_layer(from_fn_with_state(state.clone(), inject_faults))
        .layer(from_fn_with_state(state, observe))
}

type Params = HashMap<String, String>;

fn params(raw: Option<&str>) -> Params {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn number(p: &Params, name: &str) -> Result<Option<i64>, GcsError> {
    p.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| GcsError::invalid(format!("Invalid value for {name}: {v}")))
        })
        .transpose()
}

/// `GET .../o/{object}`: the metadata, or with `alt=media` the bytes.
async fn read(
    State(state): State<SharedState>,
    Path((bucket, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GcsError> {
    let p = params(raw.as_deref());
    let object = state
        .store()
        .get(&bucket, &name, number(&p, "generation")?)?
        .clone();
    let target = format!("{bucket}/{name}");
    match p.get("alt").map(String::as_str) {
        None | Some("json") => {
            state.ledger().effect(Effect::Metadata, &target);
            Ok(Json(object.metadata(&state.public_url(&headers))).into_response())
        }
        Some("media") => {
            state.ledger().effect(Effect::Download, &target);
            Ok(media(object))
        }
        Some(other) => Err(GcsError::invalid(format!("Invalid value for alt: {other}"))),
    }
}

/// `GET /download/storage/v1/b/{bucket}/o/{object}` (the `mediaLink`): the bytes.
async fn download(
    State(state): State<SharedState>,
    Path((bucket, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GcsError> {
    let p = params(raw.as_deref());
    let object = state
        .store()
        .get(&bucket, &name, number(&p, "generation")?)?
        .clone();
    state
        .ledger()
        .effect(Effect::Download, &format!("{bucket}/{name}"));
    Ok(media(object))
}

fn media(object: Object) -> Response {
    let goog = HeaderName::from_static;
    let values = [
        (header::CONTENT_TYPE, object.content_type.clone()),
        (header::ETAG, object.etag()),
        (goog("x-goog-generation"), object.generation.to_string()),
        (
            goog("x-goog-metageneration"),
            object.metageneration.to_string(),
        ),
        (
            goog("x-goog-hash"),
            format!("crc32c={},md5={}", object.crc32c, object.md5_hash),
        ),
        (
            goog("x-goog-stored-content-length"),
            object.content.len().to_string(),
        ),
    ];
    let mut response = object.content.into_response();
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `GET .../o?prefix=`: `{"kind":"storage#objects","items":[...]}` (`items` absent when empty).
async fn list(
    State(state): State<SharedState>,
    Path(bucket): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, GcsError> {
    let p = params(raw.as_deref());
    let prefix = p.get("prefix").map(String::as_str).unwrap_or_default();
    let base = state.public_url(&headers);
    let items: Vec<Value> = state
        .store()
        .list(&bucket, prefix)?
        .into_iter()
        .map(|o| o.metadata(&base))
        .collect();
    state.ledger().effect(Effect::List, &bucket);
    let mut body = json!({"kind": "storage#objects"});
    if !items.is_empty() {
        body["items"] = Value::Array(items);
    }
    Ok(Json(body))
}

async fn delete_object(
    State(state): State<SharedState>,
    Path((bucket, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GcsError> {
    let p = params(raw.as_deref());
    let condition = number(&p, "ifGenerationMatch")?;
    state.store().delete(&bucket, &name, condition)?;
    let target = format!("{bucket}/{name}");
    state.ledger().effect(Effect::Delete, &target);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.extensions_mut().insert(Target(target));
    Ok(response)
}

/// `POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=...`: the body is the object,
/// `Content-Type` its content type; answers the object resource.
async fn upload(
    State(state): State<SharedState>,
    Path(bucket): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GcsError> {
    let p = params(raw.as_deref());
    match p.get("uploadType").map(String::as_str) {
        Some("media") => {}
        None => return Err(GcsError::required("uploadType")),
        Some(other) => {
            return Err(GcsError::invalid(format!(
                "uploadType {other} is not simulated (only media)"
            )));
        }
    }
    let name = p
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GcsError::required("name"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_CONTENT_TYPE);
    let condition = number(&p, "ifGenerationMatch")?;
    let object = state
        .store()
        .put(&bucket, name, body.to_vec(), content_type, condition)?;
    let target = format!("{bucket}/{name}");
    state.ledger().effect(Effect::Upload, &target);
    tracing::debug!(%target, generation = object.generation, "object stored");
    let mut response = Json(object.metadata(&state.public_url(&headers))).into_response();
    response.extensions_mut().insert(Target(target));
    Ok(response)
}
