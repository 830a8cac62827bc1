//! Layers around `/v1.0` and the token endpoint, outermost first: `observe` (ledger,
//! `request-id`/`client-request-id` headers, Graph error bodies carrying the request id); for
//! `/v1.0` then `authenticate` (bearer token); for mailbox paths `mailbox_limit` (4 in flight per
//! mailbox); last `inject_faults`, so an injected latency holds a mailbox slot as a slow
//! Exchange does.

use std::time::Instant;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use simulator_kit::inject::{Injected, nothing};
use tokio_util::sync::CancellationToken;

use crate::{
    error::GraphError,
    faults::{Answer, Call},
    ledger::{CLIENT_CLOSED, LedgerEntry},
    state::SharedState,
};

/// Bodies read to find a create's `transactionId` (Graph's request limit is 4 MB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Response marker: a create answered with the event of an earlier `transactionId`.
#[derive(Debug, Clone, Copy)]
pub struct Replayed;

/// Response marker: refused by the mailbox concurrency limit.
#[derive(Debug, Clone, Copy)]
struct Throttled;

/// `/v1.0/users/{user}/...` → the user segment, percent-decoded.
pub fn user_in_path(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/v1.0/users/")?.split('/').next()?;
    (!segment.is_empty()).then(|| percent_decode(segment))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records the request when dropped unanswered (the client went away first).
struct Pending<'a> {
    state: &'a SharedState,
    entry: Option<LedgerEntry>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.status = CLIENT_CLOSED;
            self.state.ledger().record(entry);
        }
    }
}

fn transaction_id_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("transactionId")?.as_str().map(str::to_owned)
}

pub async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let is_create = parts.method == "POST" && path.ends_with("/events");
    let (body, transaction_id) = if is_create {
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => {
                let txn = transaction_id_of(&bytes);
                (Body::from(bytes), txn)
            }
            Err(_) => {
                let error = GraphError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "The request body is too large.",
                );
                return error.into_response();
            }
        }
    } else {
        (body, None)
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let user_id = user_in_path(&path).map(|u| state.resolve(&u).unwrap_or(u));
    let mut pending = Pending {
        state: &state,
        entry: Some(LedgerEntry {
            seq: 0,
            at: Utc::now(),
            method: parts.method.to_string(),
            path,
            query: parts.uri.query().map(str::to_owned),
            user_id,
            status: 0,
            error_code: None,
            transaction_id,
            request_id: request_id.clone(),
            client_request_id: client_request_id.clone(),
            throttled: false,
            injected: false,
            replayed: false,
            duration_ms: 0,
        }),
    };
    let mut response = next.run(Request::from_parts(parts, body)).await;

    let client_id = client_request_id.unwrap_or_else(|| request_id.clone());
    let error = response.extensions().get::<GraphError>().cloned();
    if let Some(error) = &error {
        let body = serde_json::to_vec(&error.body(&request_id, &client_id))
            .expect("JSON values serialize");
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }
    for (name, value) in [
        ("request-id", &request_id),
        ("client-request-id", &client_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    let mut entry = pending.entry.take().expect("taken once");
    entry.at = Utc::now();
    entry.status = response.status().as_u16();
    entry.error_code = error.map(|e| e.code);
    entry.throttled = response.extensions().get::<Throttled>().is_some();
    entry.injected = response.extensions().get::<Injected>().is_some();
    entry.replayed = response.extensions().get::<Replayed>().is_some();
    entry.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        method = %entry.method,
        path = %entry.path,
        status = entry.status,
        user_id = ?entry.user_id,
        "api request"
    );
    state.ledger().record(entry);
    response
}

/// Applies the active faults: waits the summed latency, then answers with the fault, holds the
/// request (then 504), or lets it through. With `afterEffect` the request runs first.
pub async fn inject_faults(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let raw_user = user_in_path(&path);
    let resolved = raw_user.as_deref().and_then(|u| state.resolve(u));
    let users: Vec<&str> = raw_user
        .iter()
        .chain(resolved.iter())
        .map(String::as_str)
        .collect();
    let hit = {
        let mut rng = state.rng();
        let call = Call {
            method: request.method().as_str(),
            path: &path,
            users: &users,
        };
        state.faults().fire(&call, &mut *rng)
    };
    let Some(hit) = hit else {
        return next.run(request).await;
    };
    let release = state.release.clone();
    let render = |answer| render(answer, release);
    simulator_kit::inject::run_with(hit, request, next, render, nothing).await
}

/// The fault's answer: its error, or 504 after a hold (cut short at shutdown).
async fn render(answer: Answer, release: CancellationToken) -> Response {
    match answer {
        Answer::Error(error) => error.into_response(),
        Answer::Hold(hold) => {
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = release.cancelled() => {}
            }
            GraphError::server(StatusCode::GATEWAY_TIMEOUT, None).into_response()
        }
    }
}

/// Requires `Authorization: Bearer <access token>` from the token endpoint.
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
    let verdict = state.tokens().authorize(token.as_deref());
    match verdict {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Holds one of the mailbox's concurrent slots for the request, or answers 429
/// `ApplicationThrottled` (`MailboxConcurrency`) with `Retry-After`.
pub async fn mailbox_limit(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = user_in_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let mailbox = state.resolve(&user).unwrap_or(user);
    match state.limiter.admit(&mailbox) {
        Some(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        None => {
            tracing::debug!(%mailbox, "mailbox concurrency limit");
            let retry_after = state.config.concurrency_retry_after.as_secs().max(1);
            let mut response = GraphError::mailbox_concurrency(retry_after).into_response();
            response.extensions_mut().insert(Throttled);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_path() {
        assert_eq!(
            user_in_path("/v1.0/users/ann%40contoso.com/events").as_deref(),
            Some("ann@contoso.com")
        );
        assert_eq!(user_in_path("/v1.0/users//events"), None);
        assert_eq!(user_in_path("/v1.0/subscriptions"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
