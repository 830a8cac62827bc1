//! The control API under `/control` (no auth, never faulted, never in the ledger): seed staff,
//! read calendars as stored (cancelled events and `transactionId`s included), make changes
//! "inside Outlook", read Teams messages and subscriptions, toggle strict conflicts. Faults, the
//! ledger, stats, notifications, tokens and reset are in [`crate::control_ops`].

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{ControlError, GraphError},
    event::{EventInput, Origin},
    events,
    model::Staff,
    seed::{BusySpec, SeedSpec},
    state::{SharedStaff, SharedState, lock},
};

pub use simulator_kit::control::{params, parse};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/control/seed", post(seed))
        .route("/control/staff", get(list_staff))
        .route("/control/staff/{user}", get(staff_detail))
        .route("/control/staff/{user}/busy", post(add_busy))
        .route(
            "/control/users/{user}/events",
            get(user_events).post(create_event),
        )
        .route("/control/users/{user}/events/{id}", delete(delete_event))
        .route("/control/teams/messages", get(teams_messages))
        .route("/control/subscriptions", get(subscriptions))
        .route("/control/settings", get(settings).put(set_settings))
        .merge(crate::control_ops::router())
}

fn staff(state: &SharedState, user: &str) -> Result<SharedStaff, ControlError> {
    state
        .staff(user)
        .ok_or_else(|| ControlError::NotFound(format!("staff {user}")))
}

fn from_graph(error: GraphError) -> ControlError {
    match error.status {
        StatusCode::NOT_FOUND => ControlError::NotFound(error.message),
        _ => ControlError::BadRequest(format!("{}: {}", error.code, error.message)),
    }
}

/// `{"staff":[...]}` → 201 with the ids and mail addresses; an existing id is replaced.
async fn seed(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let spec: SeedSpec = parse(&body)?;
    let staff = spec
        .staff
        .iter()
        .map(|s| s.build())
        .collect::<Result<Vec<Staff>, _>>()
        .map_err(ControlError::BadRequest)?;
    let listed: Vec<Value> = staff
        .iter()
        .map(|s| json!({"id": s.id, "mail": s.mail, "displayName": s.display_name}))
        .collect();
    state.insert_staff(staff);
    tracing::info!(staff = listed.len(), "staff seeded");
    Ok((StatusCode::CREATED, Json(json!({"staff": listed}))))
}

fn summary(staff: &Staff) -> Value {
    let events = staff.events();
    json!({
        "id": staff.id,
        "mail": staff.mail,
        "displayName": staff.display_name,
        "busyItems": staff.busy.len(),
        "events": events.iter().filter(|e| !e.is_cancelled).count(),
        "cancelledEvents": events.iter().filter(|e| e.is_cancelled).count(),
    })
}

async fn list_staff(State(state): State<SharedState>) -> Json<Value> {
    let listed: Vec<Value> = state
        .staff_ids()
        .iter()
        .filter_map(|id| state.staff(id))
        .map(|s| summary(&lock(&s)))
        .collect();
    Json(Value::Array(listed))
}

async fn staff_detail(
    State(state): State<SharedState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let staff = staff(&state, &user)?;
    let staff = lock(&staff);
    let mut value = summary(&staff);
    value["workingHours"] = staff.working_hours.to_json();
    value["busy"] = json!(staff.busy);
    value["requests"] = json!(state.ledger().counts(&staff.id));
    value["inFlight"] = json!(state.limiter.in_flight(&staff.id));
    Ok(Json(value))
}

/// Adds busy items to a calendar (no notification: they are not events).
async fn add_busy(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let specs: Vec<BusySpec> = parse(&body)?;
    let items = specs
        .iter()
        .map(BusySpec::build)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ControlError::BadRequest)?;
    let staff = staff(&state, &user)?;
    let mut staff = lock(&staff);
    staff.busy.extend(items);
    Ok(Json(summary(&staff)))
}

/// Every event as stored, cancelled ones included, with `origin` and `cancelComment`.
async fn user_events(
    State(state): State<SharedState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let staff = staff(&state, &user)?;
    let staff = lock(&staff);
    let events: Vec<Value> = staff
        .events()
        .iter()
        .map(|e| {
            let mut value = e.to_json(&staff);
            value["origin"] = json!(e.origin);
            value["cancelComment"] = json!(e.cancel_comment);
            value
        })
        .collect();
    Ok(Json(json!({"userId": staff.id, "events": events})))
}

/// An event made "inside Outlook": no ledger entry, but subscriptions are notified.
async fn create_event(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let input: EventInput = parse(&body)?;
    staff(&state, &user)?;
    let (value, _) =
        events::create_in(&state, &user, input, Origin::Control).map_err(from_graph)?;
    Ok((StatusCode::CREATED, Json(value)))
}

async fn delete_event(
    State(state): State<SharedState>,
    Path((user, id)): Path<(String, String)>,
) -> Result<StatusCode, ControlError> {
    staff(&state, &user)?;
    events::delete_in(&state, &user, &id).map_err(from_graph)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?teamId=&channelId=`: the messages received, oldest first.
async fn teams_messages(State(state): State<SharedState>, RawQuery(raw): RawQuery) -> Json<Value> {
    let p = params(raw);
    let messages: Vec<Value> = state
        .teams()
        .iter()
        .filter(|m| p.get("teamId").is_none_or(|t| *t == m.team_id))
        .filter(|m| p.get("channelId").is_none_or(|c| *c == m.channel_id))
        .map(|m| json!(m))
        .collect();
    Json(json!({"messages": messages}))
}

/// Every subscription, expired ones included.
async fn subscriptions(State(state): State<SharedState>) -> Json<Value> {
    let now = Utc::now();
    let listed: Vec<Value> = state
        .subscriptions()
        .all()
        .iter()
        .map(|s| {
            let mut value = json!(s);
            value["expired"] = json!(!s.is_live(now));
            value
        })
        .collect();
    Json(json!({"subscriptions": listed}))
}

async fn settings(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({"strictConflicts": state.strict_conflicts()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsPatch {
    strict_conflicts: Option<bool>,
}

async fn set_settings(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let patch: SettingsPatch = parse(&body)?;
    if let Some(on) = patch.strict_conflicts {
        state.set_strict_conflicts(on);
    }
    Ok(settings(State(state)).await)
}
