//! The token-free operational routes: liveness (`/health`, `/api/v1/health`), readiness
//! (`/ready`: the read model answers), dependencies (`/health/deps`) and Prometheus metrics.

use std::time::{Duration, Instant};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::{
    AppState,
    error::ErrorBody,
    openapi::{TAG_OPERATIONS, TIMEOUT},
};

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(schema_with = ok)]
    pub status: &'static str,
}

fn ok() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).enum_values(Some(["ok"])).build()
}

/// The gateway's dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dependencies {
    pub postgres: PostgresStatus,
    /// Each issuer's key cache, by issuer name (`{"disabled": true}` when authentication is off).
    /// Reported, not required: one issuer down does not make the gateway unavailable.
    #[schema(value_type = Object)]
    pub issuers: serde_json::Value,
}

/// Whether the read model answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresStatus {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A 503 of `/health/deps`: the report, or the timeout's error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DependenciesUnavailable {
    Report(Dependencies),
    Timeout(ErrorBody),
}

/// Liveness
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The process is up", body = Health),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Liveness, under the API's prefix
#[utoipa::path(
    get,
    path = "/api/v1/health",
    operation_id = "apiHealth",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The process is up", body = Health),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn api_health() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn ping(pool: &PgPool) -> Result<Duration, sqlx::Error> {
    let started = Instant::now();
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(started.elapsed())
}

/// Readiness
///
/// Ready when the read model (PostgreSQL) answers.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "`read model unavailable` (text), or `request_timeout` (JSON)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    match ping(&state.pool).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "read model unavailable").into_response(),
    }
}

/// Dependencies
///
/// The read model's latency and each issuer's key cache; 503 while the read model is down.
#[utoipa::path(
    get,
    path = "/health/deps",
    operation_id = "dependencies",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The read model answers", body = Dependencies),
        (status = 503, description = "The read model does not answer (the report), or `request_timeout`", body = DependenciesUnavailable),
    )
)]
pub async fn deps(State(state): State<AppState>) -> Response {
    let postgres = match ping(&state.pool).await {
        Ok(latency) => PostgresStatus { ok: true, latency_ms: Some(latency.as_secs_f64() * 1000.0), error: None },
        Err(e) => PostgresStatus { ok: false, latency_ms: None, error: Some(e.to_string()) },
    };
    let status = if postgres.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Dependencies { postgres, issuers: state.auth.status() })).into_response()
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn metrics() -> String {
    brain_runtime::telemetry::metrics_handle().render()
}
