//! Layers around `/v3` and `/oauth2`, outermost first: `observe` (ledger, `intuit_tid`, Fault
//! `time` from the simulated clock); for `/v3` then `authenticate` (bearer token for this realm)
//! and `throttle` (500/min, 10 concurrent per realm); last `inject_faults`.

use std::time::Instant;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;

use simulator_kit::inject::{Injected, nothing};

use crate::{error::Fault, faults::Call, ledger::LedgerEntry, state::SharedState};

/// Response marker: the realm a request concerned, when not in its path (token refreshes).
#[derive(Debug, Clone)]
pub struct RealmTag(pub String);

/// Response marker: replayed from an earlier request with the same `requestid`.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub fault_code: Option<String>,
}

/// Response marker: the answer is a Fault already rendered (a stored write answer).
#[derive(Debug, Clone)]
pub struct FaultCode(pub String);

/// Response marker: refused by the rate or concurrency limit.
#[derive(Debug, Clone, Copy)]
struct Throttled;

/// `/v3/company/{realmId}/...` → the realm id.
pub fn realm_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v3/company/")?
        .split('/')
        .next()
        .filter(|r| !r.is_empty())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let request_id = query_param(query.as_deref(), "requestid");
    let mut response = next.run(request).await;

    let replayed = response.extensions().get::<Replayed>().cloned();
    let fault = response.extensions().get::<Fault>().cloned();
    if let (Some(fault), None) = (&fault, &replayed) {
        let time = state.clock.format_precise(state.clock.now());
        let body = serde_json::to_vec(&fault.body(&time)).expect("JSON values serialize");
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }
    let tid = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&tid) {
        response.headers_mut().insert("intuit_tid", value);
    }
    let realm_id = realm_in_path(&path)
        .map(str::to_owned)
        .or_else(|| response.extensions().get::<RealmTag>().map(|t| t.0.clone()));
    let entry = LedgerEntry {
        seq: 0,
        at: Utc::now(),
        method,
        path,
        query,
        realm_id,
        status: response.status().as_u16(),
        request_id,
        fault_code: fault
            .map(|f| f.error.code)
            .or_else(|| replayed.as_ref().and_then(|r| r.fault_code.clone()))
            .or_else(|| {
                response
                    .extensions()
                    .get::<FaultCode>()
                    .map(|c| c.0.clone())
            }),
        throttled: response.extensions().get::<Throttled>().is_some(),
        injected: response.extensions().get::<Injected>().is_some(),
        replayed: replayed.is_some(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::debug!(
        method = %entry.method,
        path = %entry.path,
        status = entry.status,
        realm_id = ?entry.realm_id,
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
    let path = request.uri().path().to_owned();
    let hit = {
        let mut rng = state.rng();
        let call = Call {
            path: &path,
            realm_id: realm_in_path(&path),
        };
        state.faults().fire(&call, &mut *rng)
    };
    match hit {
        Some(hit) => {
            let render = |fault: Fault| async move { fault.into_response() };
            simulator_kit::inject::run_with(hit, request, next, render, nothing).await
        }
        None => next.run(request).await,
    }
}

/// Requires `Authorization: Bearer <access token>` issued for the realm in the path.
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
        return Fault::unauthenticated("Authorization header missing").into_response();
    };
    let realm_id = realm_in_path(request.uri().path()).unwrap_or_default();
    let verdict = state
        .tokens()
        .authorize(&token, realm_id, state.clock.now());
    match verdict {
        Ok(()) if state.realm(realm_id).is_some() => next.run(request).await,
        Ok(()) => Fault::unauthorized_realm().into_response(),
        Err(fault) => fault.into_response(),
    }
}

/// Holds one of the realm's concurrent slots for the request, or answers 429 ThrottleExceeded.
pub async fn throttle(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let realm_id = realm_in_path(request.uri().path())
        .unwrap_or_default()
        .to_owned();
    match state.limiter.admit(&realm_id) {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(refusal) => {
            tracing::debug!(%realm_id, ?refusal, "throttled");
            let mut response = Fault::throttled().into_response();
            response.extensions_mut().insert(Throttled);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_comes_from_the_path() {
        assert_eq!(realm_in_path("/v3/company/9130/query"), Some("9130"));
        assert_eq!(realm_in_path("/v3/company//query"), None);
        assert_eq!(realm_in_path("/oauth2/v1/tokens/bearer"), None);
        assert_eq!(
            query_param(Some("a=1&requestid=x%20y"), "requestid").as_deref(),
            Some("x y")
        );
    }
}
