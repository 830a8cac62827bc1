//! Layers around the API, outermost first: `observe` (the ledger), `inject_faults`, then
//! `authenticate` (only when a bearer token is configured). Faults come before authentication:
//! an outage answers whoever calls.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use secrecy::ExposeSecret;
use simulator_kit::inject::{Injected, keep};

use crate::{
    error::GcsError,
    faults::{Answer, Call},
    ledger::LedgerEntry,
    state::SharedState,
};

/// Response marker: the `bucket/object` an upload or delete changed.
#[derive(Debug, Clone)]
pub struct Target(pub String);

pub async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let response = next.run(request).await;
    let extensions = response.extensions();
    let entry = LedgerEntry {
        seq: 0,
        at: Utc::now(),
        method,
        path,
        query,
        status: response.status().as_u16(),
        reason: extensions.get::<GcsError>().map(|e| e.reason.to_owned()),
        injected: extensions.get::<Injected>().is_some(),
        target: extensions.get::<Target>().map(|t| t.0.clone()),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::debug!(
        method = %entry.method,
        path = %entry.path,
        status = entry.status,
        reason = ?entry.reason,
        "api request"
    );
    state.ledger().record(entry);
    response
}

/// Applies the active faults: waits the summed latency, then answers with the fault or lets the
/// request through. With `afterEffect` the request runs first, then the wait and the fault.
pub async fn inject_faults(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let hit = {
        let mut rng = state.rng();
        state.faults().fire(
            &Call {
                method: &method,
                path: &path,
            },
            &mut *rng,
        )
    };
    match hit {
        Some(hit) => {
            simulator_kit::inject::run_with(hit, request, next, render, keep::<Target>).await
        }
        None => next.run(request).await,
    }
}

async fn render(answer: Answer) -> Response {
    match answer {
        Answer::Error(error) => error.into_response(),
        Answer::Hold(hold) => {
            // A client with a shorter timeout has given up long before; dropping the
            // connection cancels this wait.
            tokio::time::sleep(hold).await;
            GcsError::server(StatusCode::GATEWAY_TIMEOUT).into_response()
        }
    }
}

/// With `bearer_token` configured, requires `Authorization: Bearer <it>`.
pub async fn authenticate(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.config.bearer_token else {
        return next.run(request).await;
    };
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token {
        None => GcsError::unauthenticated(true).into_response(),
        Some(token) if token != expected.expose_secret() => {
            GcsError::unauthenticated(false).into_response()
        }
        Some(_) => next.run(request).await,
    }
}
