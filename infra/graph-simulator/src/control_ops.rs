//! `/control` for test machinery: injected faults, the call ledger, stats (events per mailbox
//! and per `transactionId`, to assert "no double booking"), the notification log and its
//! settings, token revocation, and reset.

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    control::{params, parse},
    error::ControlError,
    state::{SharedState, lock},
};
use simulator_kit::control::{faults_router, number};

const DEFAULT_PAGE: usize = 1000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .merge(faults_router(|state: &SharedState| state.faults()))
        .route("/control/ledger", get(ledger))
        .route("/control/stats", get(stats))
        .route("/control/notifications", get(notifications))
        .route(
            "/control/notifications/settings",
            get(notification_settings).put(set_notification_settings),
        )
        .route("/control/tokens/revoke", post(revoke_tokens))
        .route("/control/reset", post(reset))
}

/// `?after=<seq>&userId=<id>&limit=<n>`: every `/v1.0` and token call in order.
async fn ledger(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let user = p
        .get("userId")
        .map(|u| state.resolve(u).unwrap_or_else(|| u.clone()));
    let ledger = state.ledger();
    let entries = ledger.read(
        number(&p, "after", 0)?,
        user.as_deref(),
        number(&p, "limit", DEFAULT_PAGE)?,
    );
    Ok(Json(
        json!({"entries": entries, "lastSeq": ledger.last_seq()}),
    ))
}

/// Per mailbox: events made, live, cancelled, overlapping pairs, and per `transactionId` the
/// create requests that carried it and the events it made (more than one: a double booking).
fn calendars(state: &SharedState) -> Map<String, Value> {
    state
        .staff_ids()
        .iter()
        .filter_map(|id| state.staff(id))
        .map(|staff| {
            let staff = lock(&staff);
            let events = staff.events();
            let value = json!({
                "eventsCreated": staff.events_created,
                "events": events.iter().filter(|e| !e.is_cancelled).count(),
                "cancelledEvents": events.iter().filter(|e| e.is_cancelled).count(),
                "withoutTransactionId": events.iter().filter(|e| e.transaction_id.is_none()).count(),
                "overlappingEvents": staff.overlapping_events(),
                "transactions": staff.transactions,
            });
            (staff.id.clone(), value)
        })
        .collect()
}

async fn stats(State(state): State<SharedState>) -> Json<Value> {
    let (total, users) = {
        let ledger = state.ledger();
        (ledger.total().clone(), ledger.all_counts())
    };
    Json(json!({
        "requests": total,
        "users": users,
        "calendars": calendars(&state),
        "notifications": state.notifier.counts(),
        "notificationsPending": state.notifier.pending(),
        "subscriptions": state.subscriptions().all().len(),
        "teamsMessages": state.teams().len(),
    }))
}

/// `?after=<seq>&limit=<n>`: validation handshakes and notification POSTs in order.
async fn notifications(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let records = state
        .notifier
        .records(number(&p, "after", 0)?, number(&p, "limit", DEFAULT_PAGE)?);
    Ok(Json(json!({
        "records": records,
        "counts": state.notifier.counts(),
        "pending": state.notifier.pending(),
    })))
}

async fn notification_settings(State(state): State<SharedState>) -> Json<Value> {
    let s = state.notifier.settings();
    let c = &s.config;
    Json(json!({
        "validationTimeoutMs": c.validation_timeout.as_millis() as u64,
        "timeoutMs": c.timeout.as_millis() as u64,
        "maxAttempts": c.max_attempts,
        "retryDelayMs": c.retry_delay.as_millis() as u64,
        "dropPercent": c.drop_percent,
        "duplicatePercent": c.duplicate_percent,
        "dropNext": s.drop_next,
        "duplicateNext": s.duplicate_next,
    }))
}

/// Every field optional; `seed` reseeds the drop/repeat RNG.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NotificationPatch {
    validation_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    retry_delay_ms: Option<u64>,
    drop_percent: Option<f64>,
    duplicate_percent: Option<f64>,
    drop_next: Option<u32>,
    duplicate_next: Option<u32>,
    seed: Option<u64>,
}

async fn set_notification_settings(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let patch: NotificationPatch = parse(&body)?;
    let mut s = state.notifier.settings();
    let c = &mut s.config;
    let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
    c.validation_timeout = ms(patch.validation_timeout_ms, c.validation_timeout);
    c.timeout = ms(patch.timeout_ms, c.timeout);
    c.retry_delay = ms(patch.retry_delay_ms, c.retry_delay);
    c.max_attempts = patch.max_attempts.unwrap_or(c.max_attempts);
    c.drop_percent = patch.drop_percent.unwrap_or(c.drop_percent);
    c.duplicate_percent = patch.duplicate_percent.unwrap_or(c.duplicate_percent);
    s.drop_next = patch.drop_next.unwrap_or(s.drop_next);
    s.duplicate_next = patch.duplicate_next.unwrap_or(s.duplicate_next);
    s.config
        .validate()
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    state.notifier.set_settings(s, patch.seed);
    Ok(notification_settings(State(state)).await)
}

/// Every access token stops working: the next `/v1.0` call is 401 until a new token.
async fn revoke_tokens(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({"revoked": state.tokens().revoke_all()}))
}

/// Forgets staff, tokens, faults, the ledger, subscriptions, Teams messages and the
/// notification log.
async fn reset(State(state): State<SharedState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
