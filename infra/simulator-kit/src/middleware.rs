//! The layers around a simulated API: `observe` (outermost: records every call in the ledger)
//! and `inject_faults` (applies the active faults). Mount them on the API routes only, never on
//! `/control`:
//!
//! ```text
//! .route_layer(from_fn_with_state(state.clone(), simulator_kit::inject_faults::<AppState>))
//! .layer(from_fn_with_state(state, simulator_kit::observe::<AppState>))
//! ```

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::Response,
};
use chrono::Utc;

use crate::{faults::Answer, ledger::LedgerEntry, state::Simulated};

/// The request side of a ledger entry.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
}

/// Response marker: what the call created or changed (a path, `bucket/object`). Kept when an
/// `afterEffect` fault replaces the answer, so the ledger still names the effect.
#[derive(Debug, Clone)]
pub struct Target(pub String);

/// Response marker: an injected fault fired on this request.
#[derive(Debug, Clone, Copy)]
struct Injected;

/// Records the call in the ledger, with what [`Simulated::describe`] adds.
pub async fn observe<S: Simulated>(
    State(state): State<Arc<S>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let call = Call {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
    };
    let mut response = next.run(request).await;
    let detail = state.describe(&call, &mut response);
    let entry = LedgerEntry {
        seq: 0,
        at: Utc::now(),
        status: response.status().as_u16(),
        injected: response.extensions().get::<Injected>().is_some(),
        duration_ms: started.elapsed().as_millis() as u64,
        method: call.method,
        path: call.path,
        query: call.query,
        detail,
    };
    tracing::debug!(
        method = %entry.method,
        path = %entry.path,
        status = entry.status,
        detail = ?entry.detail,
        "api request"
    );
    state.core().ledger().record(entry);
    response
}

/// Applies the active faults: waits the summed latency, then answers with the fault or lets the
/// request through. With `afterEffect` the request runs first, then the wait and the fault.
pub async fn inject_faults<S: Simulated>(
    State(state): State<Arc<S>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let hit = {
        let core = state.core();
        let mut rng = core.rng();
        core.faults().fire(&method, &path, &mut rng)
    };
    let Some(hit) = hit else {
        return next.run(request).await;
    };
    let mut response = if hit.after_effect {
        let response = next.run(request).await;
        tokio::time::sleep(hit.latency).await;
        match hit.answer {
            Some(answer) => {
                // The effect happened: the ledger still names it.
                let target = response.extensions().get::<Target>().cloned();
                let mut lost = render::<S>(answer).await;
                if let Some(target) = target {
                    lost.extensions_mut().insert(target);
                }
                lost
            }
            None => response,
        }
    } else {
        if !hit.latency.is_zero() {
            tokio::time::sleep(hit.latency).await;
        }
        match hit.answer {
            Some(answer) => render::<S>(answer).await,
            None => next.run(request).await,
        }
    };
    response.extensions_mut().insert(Injected);
    response
}

async fn render<S: Simulated>(
    answer: Answer<<S::Fault as crate::faults::FaultKind>::Custom>,
) -> Response {
    match answer {
        Answer::Error {
            status,
            retry_after_secs,
        } => S::error_answer(status, retry_after_secs),
        Answer::Hold(hold) => {
            // A client with a shorter timeout has given up long before; dropping the
            // connection cancels this wait.
            tokio::time::sleep(hold).await;
            S::error_answer(StatusCode::GATEWAY_TIMEOUT, None)
        }
        Answer::Custom(custom) => S::custom_answer(custom),
    }
}
