//! `/control` for test machinery, part one: buckets, and objects put, listed and read directly
//! (not API calls: no faults, no ledger entry, no effect counted).

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{config::valid_bucket_name, error::ControlError, objects::Object, state::SharedState};

pub use simulator_kit::control::{params, parse};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/control/buckets", post(create_bucket).get(buckets))
        .route("/control/objects", get(objects))
        .route(
            "/control/objects/{bucket}/{*name}",
            get(object).put(put_object),
        )
        .merge(crate::control_ops::router())
}

/// What `/control` shows of an object (`md5Hash` and `crc32c` as the API spells them).
fn summary(object: &Object) -> Value {
    json!({
        "bucket": object.bucket,
        "name": object.name,
        "size": object.content.len(),
        "contentType": object.content_type,
        "md5Hash": object.md5_hash,
        "crc32c": object.crc32c,
        "generation": object.generation.to_string(),
        "timeCreated": object.created,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBucket {
    name: String,
}

fn check_bucket(name: &str) -> Result<(), ControlError> {
    if valid_bucket_name(name) {
        Ok(())
    } else {
        Err(ControlError::BadRequest(format!(
            "{name:?} is not a bucket name (3-63 of a-z, 0-9, -, _, .)"
        )))
    }
}

/// `{"name": "brain-uploads"}` → 201 `{"name", "created"}` (`created` false when it existed).
async fn create_bucket(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let NewBucket { name } = parse(&body)?;
    check_bucket(&name)?;
    let created = state.store().create_bucket(&name);
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "created": created})),
    ))
}

async fn buckets(State(state): State<SharedState>) -> Json<Value> {
    let buckets: Vec<Value> = state
        .store()
        .bucket_counts()
        .into_iter()
        .map(|(name, objects)| json!({"name": name, "objects": objects}))
        .collect();
    Json(Value::Array(buckets))
}

/// `?bucket=&prefix=`: every object (filtered), in bucket and name order.
async fn objects(State(state): State<SharedState>, RawQuery(raw): RawQuery) -> Json<Value> {
    let p = params(raw);
    let prefix = p.get("prefix").map(String::as_str).unwrap_or_default();
    let store = state.store();
    let listed: Vec<Value> = store
        .all()
        .filter(|o| p.get("bucket").is_none_or(|b| *b == o.bucket))
        .filter(|o| o.name.starts_with(prefix))
        .map(summary)
        .collect();
    Json(Value::Array(listed))
}

/// The object's summary, or with `?alt=media` its bytes.
async fn object(
    State(state): State<SharedState>,
    Path((bucket, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ControlError> {
    let store = state.store();
    let object = store
        .get(&bucket, &name, None)
        .map_err(|_| ControlError::NotFound(format!("object {bucket}/{name}")))?;
    if params(raw).get("alt").is_some_and(|a| a == "media") {
        return Ok(object.content.clone().into_response());
    }
    Ok(Json(summary(object)).into_response())
}

/// The body becomes the object (a new generation), `Content-Type` its content type; the bucket
/// is created when missing. 201 with the object resource.
async fn put_object(
    State(state): State<SharedState>,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    check_bucket(&bucket)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let mut store = state.store();
    store.create_bucket(&bucket);
    let object = store
        .put(&bucket, &name, body.to_vec(), content_type, None)
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(object.metadata(&state.public_url(&headers))),
    ))
}
