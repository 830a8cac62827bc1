//! The control API under `/control` (no auth, never faulted, never in the ledger): seed realms,
//! read entities and counts, make changes "inside QuickBooks", reconnect or revoke a realm.
//! Faults, the clock, webhooks, the ledger and stats are in [`crate::control_ops`].

use std::time::Instant;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    changes::{self, ChangeSpec},
    error::ControlError,
    model::EntityKind,
    seed::{self, SeedSpec},
    state::{SharedState, lock},
};

pub use simulator_kit::control::parse;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/control/seed", post(seed_realms))
        .route("/control/realms", get(list_realms))
        .route("/control/realms/{realm_id}", get(realm_detail))
        .route("/control/realms/{realm_id}/reconnect", post(reconnect))
        .route("/control/realms/{realm_id}/revoke", post(revoke))
        .route("/control/realms/{realm_id}/changes", post(realm_changes))
        .route("/control/realms/{realm_id}/{entity}/{id}", get(entity))
        .route("/control/changes", post(many_changes))
        .merge(crate::control_ops::router())
}

/// `{"realms": N, "documentsPerRealm": M, "seed": S, ...}` → the realms with their refresh
/// tokens. Generation runs off the async threads, one realm per core at a time.
async fn seed_realms(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    let spec: SeedSpec = parse(&body)?;
    spec.validate().map_err(ControlError::BadRequest)?;
    let started = Instant::now();
    let ids = spec.realm_ids();
    let as_of = spec.as_of.unwrap_or_else(|| state.clock.now_millis());
    let generator = state.clone();
    let realms = tokio::task::spawn_blocking(move || {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(ids.len());
        let chunk = ids.len().div_ceil(workers.max(1));
        std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(chunk.max(1))
                .enumerate()
                .map(|(c, chunk_ids)| {
                    let (spec, clock) = (&spec, &generator.clock);
                    scope.spawn(move || {
                        chunk_ids
                            .iter()
                            .enumerate()
                            .map(|(i, id)| seed::generate(spec, id, c * chunk + i, clock, as_of))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("seed generation does not panic"))
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|e| ControlError::BadRequest(format!("seeding failed: {e}")))?;
    let names: Vec<String> = realms.iter().map(|r| r.company_name.clone()).collect();
    let connected = state.insert_realms(realms);
    let listed: Vec<Value> = connected
        .into_iter()
        .zip(names)
        .map(|((realm_id, token), name)| {
            json!({"realmId": realm_id, "companyName": name, "refreshToken": token})
        })
        .collect();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(realms = listed.len(), elapsed_ms, "realms seeded");
    Ok((
        StatusCode::CREATED,
        Json(json!({"realms": listed, "elapsedMs": elapsed_ms})),
    ))
}

fn summary(state: &SharedState, realm_id: &str) -> Option<Value> {
    let realm = state.realm(realm_id)?;
    let realm = lock(&realm);
    let connected = state.tokens().current(realm_id).is_some();
    Some(json!({
        "realmId": realm_id,
        "companyName": realm.company_name,
        "documents": realm.counts(),
        "lastChange": changes::last_change(&realm).map(|t| state.clock.format(t)),
        "requests": state.ledger().counts(realm_id),
        "connected": connected,
    }))
}

async fn list_realms(State(state): State<SharedState>) -> Json<Value> {
    let realms: Vec<Value> = state
        .realm_ids()
        .iter()
        .filter_map(|id| summary(&state, id))
        .collect();
    Json(Value::Array(realms))
}

/// One realm's counts, plus its current refresh token (tests reconnect clients with it).
async fn realm_detail(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let mut value = summary(&state, &realm_id).ok_or_else(|| not_found(&realm_id))?;
    value["refreshToken"] = json!(state.tokens().current(&realm_id));
    Ok(Json(value))
}

fn not_found(realm_id: &str) -> ControlError {
    ControlError::NotFound(format!("realm {realm_id}"))
}

async fn reconnect(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let token = state
        .reconnect(&realm_id)
        .ok_or_else(|| not_found(&realm_id))?;
    Ok(Json(json!({"realmId": realm_id, "refreshToken": token})))
}

/// Revokes the realm's refresh token and its access tokens: the client must be reconnected.
async fn revoke(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
) -> Result<StatusCode, ControlError> {
    state.realm(&realm_id).ok_or_else(|| not_found(&realm_id))?;
    state.tokens().revoke(&realm_id);
    Ok(StatusCode::NO_CONTENT)
}

/// The entity as stored now, tombstones included (the API's read hides them).
async fn entity(
    State(state): State<SharedState>,
    Path((realm_id, entity, id)): Path<(String, String, u64)>,
) -> Result<Json<Value>, ControlError> {
    let kind = EntityKind::parse(&entity)
        .ok_or_else(|| ControlError::BadRequest(format!("unknown entity {entity}")))?;
    let realm = state.realm(&realm_id).ok_or_else(|| not_found(&realm_id))?;
    let realm = lock(&realm);
    let record = realm
        .get(kind, id)
        .ok_or_else(|| ControlError::NotFound(format!("{entity} {id}")))?;
    Ok(Json(record.to_json(&state.clock)))
}

async fn realm_changes(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let mut spec: ChangeSpec = parse(&body)?;
    spec.realm_ids = Some(vec![realm_id]);
    make_changes(&state, &spec)
}

async fn many_changes(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let spec: ChangeSpec = parse(&body)?;
    make_changes(&state, &spec)
}

/// Applies the spec to each realm and queues one webhook notification per change.
fn make_changes(state: &SharedState, spec: &ChangeSpec) -> Result<Json<Value>, ControlError> {
    let kinds = spec.kinds().map_err(ControlError::BadRequest)?;
    let ids = spec.realm_ids.clone().unwrap_or_else(|| state.realm_ids());
    let realms = ids
        .iter()
        .map(|id| state.realm(id).ok_or_else(|| not_found(id)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut all = Vec::new();
    for (index, realm) in realms.iter().enumerate() {
        let mut rng = spec.rng(index, &mut state.rng());
        let changes = changes::apply(&mut lock(realm), spec, &kinds, &mut rng, &state.clock);
        all.extend(changes);
    }
    state.webhooks.notify(all.iter().cloned());
    let listed: Vec<Value> = all
        .iter()
        .map(|c| {
            let mut v = json!(c);
            v["lastUpdated"] = json!(state.clock.format(c.at));
            v
        })
        .collect();
    Ok(Json(json!({"count": listed.len(), "changes": listed})))
}
