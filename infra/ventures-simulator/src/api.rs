//! The simulated Ventures API under `/api/v4`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{ApiError, parse_json},
    middleware::{Replayed, inject_faults, observe, require_token},
    model::{ConditionStatus, DocumentRef, Loan, LoanStatus},
    records::StoredResponse,
    store::{ConditionPatch, SharedState, Store},
};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

pub fn router(state: SharedState) -> Router<SharedState> {
    let protected = Router::new()
        .route("/api/v4/loans", get(list_loans))
        .route("/api/v4/loans/{loan_id}", get(get_loan))
        .route("/api/v4/loans/{loan_id}/status", put(update_status))
        .route(
            "/api/v4/loans/{loan_id}/draft",
            get(crate::drafts::get_draft).patch(crate::drafts::update_draft),
        )
        .route("/api/v4/loans/{loan_id}/conditions", get(list_conditions))
        .route(
            "/api/v4/loans/{loan_id}/conditions/{condition_id}",
            patch(update_condition),
        )
        .route("/api/v4/changes", get(list_changes))
        .route_layer(from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/v4/token", post(issue_token))
        .merge(protected)
        // Outermost last: count every request, including those a fault answers.
        .layer(from_fn_with_state(state.clone(), inject_faults))
        .layer(from_fn_with_state(state, observe))
}

#[derive(Deserialize)]
struct Credentials {
    client: String,
    username: String,
    password: String,
}

async fn issue_token(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let creds: Credentials = parse_json(&body)?;
    let config = &state.config;
    if creds.client != config.client
        || creds.username != config.username
        || creds.password != config.password
    {
        return Err(ApiError::unauthorized(
            "invalid client, username or password",
        ));
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let now = std::time::Instant::now();
    {
        let mut store = state.lock();
        store.tokens.retain(|_, expiry| *expiry > now);
        store.tokens.insert(token.clone(), now + config.token_ttl);
    }
    Ok(Json(
        json!({"token": token, "expiresIn": config.token_ttl.as_secs()}),
    ))
}

#[derive(Deserialize)]
pub struct PageParams {
    cursor: Option<String>,
    limit: Option<String>,
}

impl PageParams {
    fn limit(&self) -> Result<usize, ApiError> {
        let Some(raw) = &self.limit else {
            return Ok(DEFAULT_LIMIT);
        };
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            ))),
        }
    }

    fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

async fn get_loan(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let loan = state.lock().loan(&loan_id)?.loan.clone();
    Ok(Json(json!(loan)))
}

/// Pages by `loanId`. `feedCursor` is the change-feed head as of this page: a client doing a
/// full resync continues the feed from the first page's `feedCursor` (changes made while it was
/// paging then arrive again through the feed rather than being missed).
async fn list_loans(
    State(state): State<SharedState>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit()?;
    let after = match params.cursor() {
        Some(c) => {
            Some(decode_loan_cursor(c).ok_or_else(|| ApiError::bad_request("malformed cursor"))?)
        }
        None => None,
    };
    let store = state.lock();
    let range = match &after {
        Some(id) => store
            .loans
            .range::<String, _>((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded)),
        None => store.loans.range::<String, _>(..),
    };
    let mut loans: Vec<Value> = range.take(limit + 1).map(|(_, e)| json!(e.loan)).collect();
    let has_more = loans.len() > limit;
    loans.truncate(limit);
    let feed_cursor = store.feed.head_cursor();
    drop(store);
    let next_cursor = match loans.last() {
        Some(last) if has_more => Some(encode_loan_cursor(
            last["loanId"].as_str().unwrap_or_default(),
        )),
        _ => None,
    };
    Ok(Json(
        json!({"loans": loans, "nextCursor": next_cursor, "hasMore": has_more, "feedCursor": feed_cursor}),
    ))
}

fn encode_loan_cursor(loan_id: &str) -> String {
    loan_id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_loan_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusUpdate {
    status: String,
    expected_version: u64,
}

/// `PUT /loans/{loanId}/status`: the outcome (success or error) is stored under the
/// `Idempotency-Key`, and a repeat with the same path and body gets it back without a second
/// effect. Malformed requests (400) are not stored.
async fn update_status(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Value = parse_json(&body)?;
    let update: StatusUpdate = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    idempotent(&state, &headers, &uri, body, |store| {
        apply_status(store, &loan_id, &update).map(|loan| json!(loan))
    })
}

/// Runs `apply` once per `Idempotency-Key` (required): its outcome, success or error, is stored
/// under the key with the request's path and body, and a repeat gets it back (marked
/// `Idempotent-Replayed: true`) without running again; the key with another request is 422.
pub(crate) fn idempotent(
    state: &SharedState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Value,
    apply: impl FnOnce(&mut Store) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header is required"))?
        .to_owned();
    let fingerprint = json!({"path": uri.path(), "body": body});
    let mut store = state.lock();
    if let Some(stored) = store.records.keys.get(&key) {
        if stored.fingerprint != fingerprint {
            return Err(ApiError::unprocessable(
                "Idempotency-Key was already used with a different request",
            ));
        }
        let mut response = (stored.status, Json(stored.body.clone())).into_response();
        response.extensions_mut().insert(Replayed);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    let (status, body) = match apply(&mut store) {
        Ok(value) => (StatusCode::OK, value),
        Err(e) => (e.status, e.body()),
    };
    store.records.keys.insert(
        key,
        StoredResponse {
            fingerprint,
            status,
            body: body.clone(),
        },
    );
    drop(store);
    Ok((status, Json(body)).into_response())
}

/// Ventures' checks, in order: loan exists (404), status known (422), version current (409),
/// transition allowed (422).
fn apply_status(store: &mut Store, loan_id: &str, update: &StatusUpdate) -> Result<Loan, ApiError> {
    let current = &store.loan(loan_id)?.loan;
    let to = LoanStatus::parse(&update.status)
        .ok_or_else(|| ApiError::unprocessable(format!("unknown status {:?}", update.status)))?;
    if current.version != update.expected_version {
        return Err(ApiError::conflict(format!(
            "loan {loan_id} is at version {}, not {}",
            current.version, update.expected_version
        )));
    }
    if !current.status.can_become(to) {
        return Err(ApiError::unprocessable(format!(
            "Ventures does not allow {:?} → {to:?}",
            current.status
        )));
    }
    store.set_status(loan_id, to)
}

async fn list_conditions(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conditions = state.lock().loan(&loan_id)?.conditions.clone();
    Ok(Json(json!({"conditions": conditions})))
}

/// `PATCH /loans/{loanId}/conditions/{conditionId}` with `If-Match: <version>` (quotes and a
/// `W/` prefix are tolerated). Missing `If-Match` is 428 VALIDATION; a stale version is
/// 409 CONFLICT (not 412), matching the loan status endpoint so clients handle one code.
async fn update_condition(
    State(state): State<SharedState>,
    Path((loan_id, condition_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let raw = headers.get("if-match").ok_or_else(|| {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "VALIDATION",
            "the If-Match header is required",
        )
    })?;
    let expected_version = raw
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::bad_request("If-Match must be the condition's version number"))?;
    let patch = parse_condition_patch(&body)?;
    let condition =
        state
            .lock()
            .update_condition(&loan_id, &condition_id, expected_version, patch)?;
    Ok(Json(json!(condition)))
}

fn parse_condition_patch(body: &[u8]) -> Result<ConditionPatch, ApiError> {
    let body: serde_json::Map<String, Value> = parse_json(body)?;
    let mut patch = ConditionPatch::default();
    if let Some(status) = body.get("status") {
        let status = serde_json::from_value::<ConditionStatus>(status.clone())
            .map_err(|_| ApiError::unprocessable(format!("unknown condition status {status}")))?;
        patch.status = Some(status);
    }
    if let Some(document_ref) = body.get("documentRef") {
        let document_ref = serde_json::from_value::<Option<DocumentRef>>(document_ref.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid documentRef: {e}")))?;
        patch.document_ref = Some(document_ref);
    }
    if patch.status.is_none() && patch.document_ref.is_none() {
        return Err(ApiError::unprocessable(
            "nothing to update: send status and/or documentRef",
        ));
    }
    Ok(patch)
}

async fn list_changes(
    State(state): State<SharedState>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit()?;
    let page = state.lock().feed.page(params.cursor(), limit)?;
    Ok(Json(json!(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loan_cursor_round_trips() {
        let c = encode_loan_cursor("L-ü/1");
        assert_eq!(decode_loan_cursor(&c).as_deref(), Some("L-ü/1"));
        assert_eq!(decode_loan_cursor("zz"), None);
    }

    #[test]
    fn condition_patch_distinguishes_absent_and_null_document_ref() {
        let p = parse_condition_patch(br#"{"documentRef": null}"#).unwrap();
        assert_eq!(p.document_ref, Some(None));
        let p = parse_condition_patch(br#"{"status": "Received"}"#).unwrap();
        assert_eq!(
            (p.status, p.document_ref),
            (Some(ConditionStatus::Received), None)
        );
        assert_eq!(
            parse_condition_patch(br#"{"status": "Done"}"#)
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(parse_condition_patch(b"{}").unwrap_err().status, 422);
    }
}
