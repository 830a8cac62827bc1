//! Layers around the API, outermost first: `observe` (the ledger) on `/oauth`, `/sf/v3` and the
//! `ChunkUri`; `inject_faults` on all three; `authenticate` (a live bearer token) on `/sf/v3`.
//! Faults come before authentication: an outage answers whoever calls.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use simulator_kit::inject::{Injected, keep};

use crate::{
    error::{SfError, UploadError},
    faults::{Answer, Call},
    ledger::LedgerEntry,
    oauth::Refused,
    state::SharedState,
};

/// Response marker: the path of the folder created or the file stored.
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
        reason: extensions.get::<SfError>().map(|e| e.reason.to_owned()),
        upload_error: extensions.get::<UploadError>().is_some(),
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
        Answer::Upload(error) => error.into_response(),
        Answer::Hold(hold) => {
            // A client with a shorter timeout has given up long before; dropping the
            // connection cancels this wait.
            tokio::time::sleep(hold).await;
            SfError::server(StatusCode::GATEWAY_TIMEOUT).into_response()
        }
    }
}

/// Requires `Authorization: Bearer <access token>` from `/oauth/token`.
pub async fn authenticate(
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
        return SfError::unauthorized("Authorization header missing").into_response();
    };
    let verdict = state.tokens().authorize(&token);
    match verdict {
        Ok(()) => next.run(request).await,
        Err(Refused::Expired) => SfError::unauthorized("The access token expired").into_response(),
        Err(Refused::Unknown) => SfError::unauthorized("Invalid access token").into_response(),
    }
}
