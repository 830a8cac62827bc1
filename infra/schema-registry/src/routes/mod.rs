//! HTTP API, shaped like Confluent Schema Registry's REST API (AVRO only).
//!
//! Bodies are parsed as JSON whatever their content type (Confluent accepts
//! `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
//! `application/json` and `application/octet-stream`); answers are
//! `application/vnd.schemaregistry.v1+json`. Boolean query flags accept `true` in any case,
//! because Python's `requests` sends `True`.

mod compatibility;
mod config;
mod schemas;
mod subjects;

use std::collections::HashMap;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::{
    avro::{self, ParsedSchema},
    error::ApiError,
    store::Store,
};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type ApiResult = Result<Response, ApiError>;
type Params = axum::extract::Query<HashMap<String, String>>;

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/mode", get(mode))
        .route("/schemas/types", get(schemas::types))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
        .route("/schemas/ids/{id}/versions", get(schemas::versions))
        .route("/schemas/ids/{id}/subjects", get(schemas::subjects))
        .route("/subjects", get(subjects::list))
        .route(
            "/subjects/{subject}",
            post(subjects::lookup).delete(subjects::delete),
        )
        .route(
            "/subjects/{subject}/versions",
            get(subjects::versions).post(subjects::register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subjects::version).delete(subjects::delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subjects::raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(subjects::referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility::against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility::against_version),
        )
        .route("/config", get(config::get_global).put(config::put_global))
        .route(
            "/config/{subject}",
            get(config::get_subject)
                .put(config::put_subject)
                .delete(config::delete_subject),
        )
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(store)
}

/// A JSON answer with the registry's content type.
pub(crate) fn reply<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "failed to serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn ok<T: Serialize + ?Sized>(body: &T) -> ApiResult {
    Ok(reply(StatusCode::OK, body))
}

/// A stored schema text as the whole body (the `/schema` endpoints).
fn raw(schema: String) -> ApiResult {
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema,
    )
        .into_response())
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("Invalid JSON body: {err}")))
}

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    references: Option<Vec<serde_json::Value>>,
}

/// Parses a request body into an Avro schema; anything unsupported is a 42201.
fn parse_schema_body(body: &Bytes) -> Result<ParsedSchema, ApiError> {
    let request: SchemaRequest = json_body(body)?;
    if let Some(kind) = request.schema_type.as_deref()
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(ApiError::InvalidSchema(format!(
            "Schema type {kind} is not supported: this development registry only supports AVRO"
        )));
    }
    if request
        .references
        .as_ref()
        .is_some_and(|refs| !refs.is_empty())
    {
        return Err(ApiError::InvalidSchema(
            "Schema references are not supported by this development registry".to_owned(),
        ));
    }
    let text = request
        .schema
        .ok_or_else(|| ApiError::InvalidSchema("Empty schema".to_owned()))?;
    avro::parse(&text).map_err(ApiError::InvalidSchema)
}

async fn root() -> ApiResult {
    ok(&json!({}))
}

async fn health(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => reply(StatusCode::OK, &json!({ "status": "UP" })),
        Err(err) => {
            tracing::warn!(error = %err, "health check cannot reach the database");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "DOWN" }),
            )
        }
    }
}

async fn mode() -> ApiResult {
    ok(&json!({ "mode": "READWRITE" }))
}

async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        &json!({ "error_code": 404, "message": "HTTP 404 Not Found" }),
    )
}
