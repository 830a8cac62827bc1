//! `GET /dead-letters`, `GET /dead-letters/counts`, `GET /dead-letters/{id}` and
//! `POST /dead-letters/park|unpark|discard`.

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use dlq_api::{DeadLetterCounts, DeadLetterDetail, DeadLetterList, DispositionDone, FilterSpec, MAX_IDS, MAX_REASON_CHARS, OperatorDisposition};

use super::{
    AppState,
    error::ServiceError,
    query::{self, Body, TenantScope, text},
};
use crate::{
    dispose::{Action, Disposal, Scope},
    read::{self, Item},
    view,
};

/// Without `limit`, a list holds this many.
const DEFAULT_LIMIT: usize = 100;

async fn scan(state: &AppState, scope: &TenantScope, spec: FilterSpec) -> Result<Vec<Item>, ServiceError> {
    let filter = scope.filter(spec)?;
    read::scan(&state.tools.settings.kafka, &state.tools.codec, &filter).await.map_err(ServiceError::read)
}

pub async fn list(State(state): State<AppState>, scope: TenantScope, RawQuery(raw): RawQuery) -> Result<Json<DeadLetterList>, ServiceError> {
    let query = query::parse(raw.as_deref(), true)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let items = scan(&state, &scope, query.spec).await?;
    let set_aside = state.tools.audit.dispositions().await?;
    let listed = items.iter().take(limit).map(|item| view::summary(item, set_aside.get(&item.envelope.dead_letter_id).map(|(a, _)| a.as_str()))).collect();
    Ok(Json(DeadLetterList { total: items.len(), limit, items: listed }))
}

pub async fn counts(State(state): State<AppState>, scope: TenantScope, RawQuery(raw): RawQuery) -> Result<Json<DeadLetterCounts>, ServiceError> {
    let query = query::parse(raw.as_deref(), false)?;
    let items = scan(&state, &scope, query.spec).await?;
    Ok(Json(view::counts(&items)))
}

pub fn dead_letter_id(id: &str) -> Result<String, ServiceError> {
    uuid::Uuid::parse_str(id).map(|_| id.to_string()).map_err(|_| ServiceError::bad_request("invalid_dead_letter_id", "dead-letter ids are UUIDs"))
}

pub async fn show(State(state): State<AppState>, scope: TenantScope, Path(id): Path<String>) -> Result<Json<DeadLetterDetail>, ServiceError> {
    let id = dead_letter_id(&id)?;
    let items = scan(&state, &scope, FilterSpec { ids: vec![id.clone()], ..FilterSpec::default() }).await?;
    let item = items.first().ok_or_else(|| ServiceError::NotFound { code: "dead_letter_not_found", detail: format!("no dead letter {id}") })?;
    let disposition = state.tools.audit.dispositions().await?.remove(&id);
    Ok(Json(view::detail(item, disposition)))
}

async fn dispose(state: AppState, scope: TenantScope, body: OperatorDisposition, action: Action) -> Result<Json<DispositionDone>, ServiceError> {
    if body.ids.is_empty() || body.ids.len() > MAX_IDS {
        return Err(ServiceError::bad_request("invalid_disposition", format!("ids: 1-{MAX_IDS} dead-letter ids")));
    }
    let mut ids = body.ids.iter().map(|id| dead_letter_id(id)).collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    let disposal = Disposal { ids, action, reason: text("invalid_disposition", "reason", &body.reason, MAX_REASON_CHARS)?, operator: text("invalid_body", "operator", &body.operator, 256)? };
    disposal.apply(&state.tools, &Scope { tenant: scope.0, must_exist: true }).await?;
    tracing::info!(action = action.done(), count = disposal.ids.len(), operator = %disposal.operator, "dead letters set aside");
    Ok(Json(DispositionDone { action: action.done().into(), ids: disposal.ids }))
}

pub async fn park(State(state): State<AppState>, scope: TenantScope, Body(body): Body<OperatorDisposition>) -> Result<Json<DispositionDone>, ServiceError> {
    dispose(state, scope, body, Action::Park).await
}

pub async fn unpark(State(state): State<AppState>, scope: TenantScope, Body(body): Body<OperatorDisposition>) -> Result<Json<DispositionDone>, ServiceError> {
    dispose(state, scope, body, Action::Unpark).await
}

pub async fn discard(State(state): State<AppState>, scope: TenantScope, Body(body): Body<OperatorDisposition>) -> Result<Json<DispositionDone>, ServiceError> {
    dispose(state, scope, body, Action::Discard).await
}
