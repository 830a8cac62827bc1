//! Layers around `/api/v4`: request accounting (outermost), fault injection, bearer-token auth.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use simulator_kit::inject::{Injected, nothing};

use crate::{
    error::ApiError,
    records::{Effect, route_label},
    store::SharedState,
};

/// Response marker: the body was replayed from an earlier request with the same idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Replayed;

/// Counts every `/api/v4` request and logs each state-changing one (not token requests) as an
/// effect, with the status finally returned.
pub async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let idempotency_key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;

    let status = response.status().as_u16();
    let faulted = response.extensions().get::<Injected>().is_some();
    let changes_state =
        !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && path != "/api/v4/token";
    let route = route_label(method.as_str(), &path);
    tracing::debug!(%method, %path, status, faulted, "api request");
    let mut store = state.lock();
    store.records.count_request(route, status, faulted);
    if changes_state {
        store.records.push_effect(Effect {
            at: Utc::now(),
            method: method.to_string(),
            path,
            idempotency_key,
            status,
            replayed: response.extensions().get::<Replayed>().is_some(),
        });
    }
    response
}

/// Applies the active faults: waits the summed latency, then answers with the fault's error or
/// lets the request through. With `afterEffect` the request runs first (its change is made),
/// then the wait, then the fault's error if it has one instead of the real answer.
pub async fn inject_faults(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let hit = state
        .lock()
        .faults
        .fire(&request.uri().path(), &mut rand::rng());
    match hit {
        Some(hit) => {
            let render = |error: ApiError| async move { error.into_response() };
            simulator_kit::inject::run_with(hit, request, next, render, nothing).await
        }
        None => next.run(request).await,
    }
}

/// Requires `Authorization: Bearer <token>` with a token from `POST /api/v4/token` that has not
/// expired.
pub async fn require_token(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = token else {
        return ApiError::unauthorized("missing bearer token").into_response();
    };
    let expiry = state.lock().tokens.get(&token).copied();
    match expiry {
        Some(expiry) if expiry > Instant::now() => next.run(request).await,
        Some(_) => ApiError::unauthorized("token expired").into_response(),
        None => ApiError::unauthorized("unknown token").into_response(),
    }
}
