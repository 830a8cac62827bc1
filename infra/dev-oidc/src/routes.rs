//! HTTP: discovery and JWKS (what a relying party reads), `POST /mint` and the control API.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use crate::{issuer::{Issuer, MintError}, token::MintRequest};

pub fn router(issuer: Arc<Issuer>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks))
        .route("/mint", post(mint))
        .route("/control/rotate", post(rotate))
        .route("/control/stats", get(stats))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "route_not_found", "no such route".into()) })
        .with_state(issuer)
}

fn error(status: StatusCode, code: &str, detail: String) -> Response {
    (status, Json(json!({ "code": code, "detail": detail }))).into_response()
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    Json(issuer.discovery()).into_response()
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    // Relying parties must refetch on an unknown kid whatever the cache header says; a short
    // max-age keeps the dev issuer honest about rotation.
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(issuer.jwks())).into_response()
}

async fn mint(State(issuer): State<Arc<Issuer>>, request: Result<Json<MintRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text()),
    };
    // RS256 signing is a few hundred microseconds of CPU: keep it off the async workers.
    match tokio::task::spawn_blocking(move || issuer.mint(&request)).await {
        Ok(Ok(minted)) => Json(minted).into_response(),
        Ok(Err(e @ MintError::Empty(_))) => error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Drop the previous keys from the JWKS (tokens they signed stop verifying).
    #[serde(default)]
    retire_previous: bool,
}

async fn rotate(State(issuer): State<Arc<Issuer>>, body: axum::body::Bytes) -> Response {
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
        }
    };
    let rotated = {
        let issuer = issuer.clone();
        tokio::task::spawn_blocking(move || issuer.rotate(request.retire_previous)).await
    };
    match rotated {
        Ok(Ok(kids)) => {
            tracing::info!(?kids, retire_previous = request.retire_previous, "keys rotated");
            Json(json!({ "current_kids": kids, "published_kids": issuer.stats().published_kids })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn stats(State(issuer): State<Arc<Issuer>>) -> Response {
    Json(issuer.stats()).into_response()
}
