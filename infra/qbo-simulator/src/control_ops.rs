//! `/control` for test machinery: injected faults, the simulated clock, webhook settings and the
//! delivery log, the call ledger, counters, and reset.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    routing::{get, post},
};
use chrono::TimeDelta;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{config::WebhookFormat, control::parse, error::ControlError, state::SharedState};
use simulator_kit::control::{faults_router, number};

const DEFAULT_PAGE: usize = 1000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .merge(faults_router(|state: &SharedState| state.faults()))
        .route("/control/clock", get(clock))
        .route("/control/clock/advance", post(advance_clock))
        .route("/control/webhooks", get(webhooks).put(set_webhooks))
        .route("/control/webhooks/deliveries", get(deliveries))
        .route("/control/ledger", get(ledger))
        .route("/control/stats", get(stats))
        .route("/control/reset", post(reset))
}

fn params(raw: Option<String>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn clock(State(state): State<SharedState>) -> Json<Value> {
    let now = state.clock.now();
    Json(json!({
        "now": state.clock.format_precise(now),
        "nowUtc": now,
        "timeScale": state.config.time_scale,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    secs: f64,
}

/// Moves the simulated clock forward (tokens expire, the CDC look-back moves).
async fn advance_clock(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let Advance { secs } = parse(&body)?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(ControlError::BadRequest(
            "secs must be a non-negative number".into(),
        ));
    }
    state
        .clock
        .advance(TimeDelta::milliseconds((secs * 1000.0) as i64));
    Ok(clock(State(state)).await)
}

async fn webhooks(State(state): State<SharedState>) -> Json<Value> {
    let s = state.webhooks.settings();
    Json(json!({
        "url": s.url,
        "format": s.format,
        "dropPercent": s.drop_percent,
        "duplicatePercent": s.duplicate_percent,
        "batchDelayMs": s.batch_delay.as_millis() as u64,
        "maxEvents": s.max_events,
        "timeoutMs": s.timeout.as_millis() as u64,
        "maxAttempts": s.max_attempts,
        "retryDelayMs": s.retry_delay.as_millis() as u64,
        "cloudEventsContentType": s.cloudevents_content_type,
        "pending": state.webhooks.pending(),
        "counts": state.webhooks.counts(),
    }))
}

/// Every field optional; `"url": ""` stops sending.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookPatch {
    url: Option<String>,
    verifier_token: Option<String>,
    format: Option<WebhookFormat>,
    drop_percent: Option<f64>,
    duplicate_percent: Option<f64>,
    batch_delay_ms: Option<u64>,
    max_events: Option<usize>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    retry_delay_ms: Option<u64>,
    cloud_events_content_type: Option<String>,
    /// Reseeds the drop/repeat RNG.
    seed: Option<u64>,
}

async fn set_webhooks(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let patch: WebhookPatch = parse(&body)?;
    let mut s = state.webhooks.settings();
    if let Some(url) = patch.url {
        s.url = Some(url).filter(|u| !u.is_empty());
    }
    if let Some(token) = patch.verifier_token {
        s.verifier_token = SecretString::from(token);
    }
    s.format = patch.format.unwrap_or(s.format);
    s.drop_percent = patch.drop_percent.unwrap_or(s.drop_percent);
    s.duplicate_percent = patch.duplicate_percent.unwrap_or(s.duplicate_percent);
    s.batch_delay = patch
        .batch_delay_ms
        .map_or(s.batch_delay, Duration::from_millis);
    s.max_events = patch.max_events.unwrap_or(s.max_events);
    s.timeout = patch.timeout_ms.map_or(s.timeout, Duration::from_millis);
    s.max_attempts = patch.max_attempts.unwrap_or(s.max_attempts);
    s.retry_delay = patch
        .retry_delay_ms
        .map_or(s.retry_delay, Duration::from_millis);
    if let Some(content_type) = patch.cloud_events_content_type {
        s.cloudevents_content_type = content_type;
    }
    s.validate()
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    state.webhooks.set_settings(s, patch.seed);
    Ok(webhooks(State(state)).await)
}

/// `?after=<seq>&limit=<n>`: deliveries in order, with their events and outcome.
async fn deliveries(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let list = state
        .webhooks
        .deliveries(number(&p, "after", 0)?, number(&p, "limit", DEFAULT_PAGE)?);
    Ok(Json(json!({"deliveries": list})))
}

/// `?after=<seq>&realmId=<id>&limit=<n>`: every `/v3` and `/oauth2` call in order.
async fn ledger(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let p = params(raw);
    let ledger = state.ledger();
    let entries = ledger.read(
        number(&p, "after", 0)?,
        p.get("realmId").map(String::as_str),
        number(&p, "limit", DEFAULT_PAGE)?,
    );
    Ok(Json(
        json!({"entries": entries, "lastSeq": ledger.last_seq()}),
    ))
}

async fn stats(State(state): State<SharedState>) -> Json<Value> {
    let ledger = state.ledger();
    Json(json!({
        "requests": ledger.total(),
        "realms": ledger.all_counts(),
        "realmCount": state.realm_ids().len(),
        "webhooks": state.webhooks.counts(),
        "webhooksPending": state.webhooks.pending(),
    }))
}

/// Forgets realms, tokens, faults, the ledger, limits and the delivery log.
async fn reset(State(state): State<SharedState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
