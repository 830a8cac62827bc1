//! The admin API for capability flags and panic mode (`docs/ops/capabilities.md`):
//! - `GET /api/v1/admin/capabilities`: per integration, the decision for tenants without a rule
//!   of their own, panic mode and the flags (an `ops` caller sees the global ones and its own
//!   tenant's);
//! - `PUT /api/v1/admin/capabilities/{integration}`: set or clear a flag (`ops`: its own tenant's
//!   only; `admin`: any, global ones too);
//! - `PUT /api/v1/admin/capabilities/{integration}/panic`: switch panic mode (`admin` only);
//! - `GET /api/v1/admin/capabilities/history`: who changed what, when, why (`read_api.flag_changes`,
//!   kept by dlq-replayer).
//!
//! Changes are published on the flags topic with the token's subject as the actor; every service
//! follows that topic and dlq-replayer records each change in its audit.

use axum::{
    Extension, Json,
    extract::{FromRequestParts, Path, Query, RawQuery, State},
    http::{StatusCode, request::Parts},
};
use brain_runtime::flags::{FlagState, FlagWriter, INTEGRATIONS, writer::FlagError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    admin::require_operator,
    auth::{Principal, Role},
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi::{self, TAG_CAPABILITIES},
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// False until the gateway has read the flags topic (then everything shows as on).
    pub known: bool,
    pub integrations: Vec<IntegrationCapability>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationCapability {
    #[schema(example = "ventures")]
    pub name: String,
    /// On or off for tenants without a flag of their own.
    pub enabled: bool,
    /// What decided it: `panic`, `global` or `default` (the services' own environment overrides
    /// are in their logs and `<service>_capability_enabled`).
    pub source: String,
    pub panic: Option<Switch>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Switch {
    pub on: bool,
    pub actor: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// Absent for the global flag.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub switch: Switch,
}

/// A flag to set or clear.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagChange {
    /// `on`, `off`, or `clear` (the flag no longer applies; the next rule decides).
    #[schema(pattern = "^(on|off|clear)$", example = "off")]
    pub state: String,
    /// The tenant; absent: the global flag (`admin` only). An `ops` caller may name its own only.
    #[schema(min_length = 1, max_length = 128, pattern = "^[^:]+$")]
    pub tenant: Option<String>,
    #[schema(min_length = 1, max_length = 500, example = "tenant migrating to a new Ventures instance")]
    pub reason: String,
}

/// Panic mode to switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PanicChange {
    /// True: the integration off for everyone, probing; false: on again without waiting for probes.
    pub on: bool,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A published change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub change_id: String,
    /// `flag` or `panic`.
    pub kind: String,
    pub integration: String,
    pub tenant: Option<String>,
    /// `on`, `off` or `cleared`.
    pub state: String,
    pub actor: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub changes: Vec<Change>,
}

/// `{integration}`: one Brain knows, else 404 `unknown_integration`.
#[derive(Debug, IntoParams)]
#[into_params(names("integration"), parameter_in = Path)]
pub struct Integration(
    /// `ventures`, `sharefile`, `graph`, `qbo` or `firestore`.
    #[param(value_type = String, pattern = "^(ventures|sharefile|graph|qbo|firestore)$")]
    pub &'static str,
);

impl<S: Send + Sync> FromRequestParts<S> for Integration {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let name = Path::<String>::from_request_parts(parts, state).await.ok().map(|Path(n)| n);
        INTEGRATIONS
            .iter()
            .find(|i| name.as_deref() == Some(**i))
            .map(|i| Self(i))
            .ok_or_else(|| ApiError::not_found("unknown_integration", "the integrations are ventures, sharefile, graph, qbo and firestore"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Capability flags and panic mode
#[utoipa::path(
    get,
    path = "/api/v1/admin/capabilities",
    operation_id = "listCapabilities",
    tag = TAG_CAPABILITIES,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Per integration: the decision, panic mode and the flags the caller may see", body = Capabilities),
        (status = 400, description = "`invalid_query`: this route takes no parameters", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::TIMEOUT, body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Principal>, RawQuery(query): RawQuery) -> Result<Json<Capabilities>, ApiError> {
    require_operator(&caller)?;
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(ApiError::bad_request("invalid_query", "this route takes no parameters"));
    }
    let entries = state.flags.entries();
    let visible = |tenant: &Option<String>| caller.role == Role::Admin || tenant.is_none() || *tenant == caller.tenant;
    let integrations = INTEGRATIONS
        .iter()
        .map(|name| {
            let decision = state.flags.decide(name, None);
            let switch = |s: &brain_runtime::flags::Setting| Switch { on: s.on, actor: s.actor.clone(), reason: s.reason.clone(), changed_at: s.changed_at };
            IntegrationCapability {
                name: name.to_string(),
                enabled: decision.enabled,
                source: serde_json::to_value(decision.source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                panic: entries.iter().find(|e| e.kind == "panic" && e.integration == *name).map(|e| switch(&e.setting)),
                flags: entries
                    .iter()
                    .filter(|e| e.kind == "flag" && e.integration == *name && visible(&e.tenant))
                    .map(|e| Flag { tenant: e.tenant.clone(), switch: switch(&e.setting) })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(Capabilities { known: state.flags.is_loaded(), integrations }))
}

/// Set or clear a capability flag
///
/// Published on the flags topic with the caller as the actor; every instance of every service
/// honours it within seconds. Off for one tenant: that tenant's events of the integration are
/// held (never dropped, never dead-lettered) while the others flow; on again, they drain in order.
#[utoipa::path(
    put,
    path = "/api/v1/admin/capabilities/{integration}",
    operation_id = "setCapabilityFlag",
    tag = TAG_CAPABILITIES,
    params(Integration),
    request_body(content = FlagChange, content_type = "application/json", description = "Unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The change, as published", body = Change),
        (status = 400, description = "`invalid_body` (not JSON, an unknown field, a state that is not on/off/clear, an empty reason, a bad tenant)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: not `ops` or `admin`, or an `ops` caller naming no tenant (a global flag) or another tenant", body = ErrorBody),
        (status = 404, description = "`unknown_integration`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable` (the change could not be published; nothing changed) or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Integration(integration): Integration,
    JsonBody(change): JsonBody<FlagChange>,
) -> Result<Json<Change>, ApiError> {
    require_operator(&caller)?;
    if caller.role != Role::Admin && (change.tenant.is_none() || change.tenant != caller.tenant) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "ops may switch their own tenant's flags only; global flags are for admin"));
    }
    let flag_state = match change.state.as_str() {
        "on" => FlagState::On,
        "off" => FlagState::Off,
        "clear" => FlagState::Cleared,
        _ => return Err(ApiError::bad_request("invalid_body", "state is on, off or clear")),
    };
    check_reason(&change.reason)?;
    let published = FlagWriter::new(state.producer.clone()).set_flag(integration, change.tenant.as_deref(), flag_state, &caller.subject, &change.reason).await;
    published.map(|c| Json(view(c))).map_err(refused)
}

/// Switch panic mode
///
/// On: the integration is off for every tenant and probes once per `PANIC_PROBE_MS` (the services
/// switch it off again after enough good probes). Off: on again at once. `admin` only.
#[utoipa::path(
    put,
    path = "/api/v1/admin/capabilities/{integration}/panic",
    operation_id = "setPanicMode",
    tag = TAG_CAPABILITIES,
    params(Integration),
    request_body(content = PanicChange, content_type = "application/json", description = "Unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The change, as published", body = Change),
        (status = 400, description = "`invalid_body` (not JSON, an unknown field, an empty reason)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: not an `admin` token", body = ErrorBody),
        (status = 404, description = "`unknown_integration`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable` (the change could not be published; nothing changed) or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn panic(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Integration(integration): Integration,
    JsonBody(change): JsonBody<PanicChange>,
) -> Result<Json<Change>, ApiError> {
    caller.require_role(&[Role::Admin]).map_err(ApiError::from)?;
    check_reason(&change.reason)?;
    let published = FlagWriter::new(state.producer.clone()).set_panic(integration, change.on, &caller.subject, &change.reason).await;
    published.map(|c| Json(view(c))).map_err(refused)
}

/// Who changed capabilities, when and why
#[utoipa::path(
    get,
    path = "/api/v1/admin/capabilities/history",
    operation_id = "capabilityHistory",
    tag = TAG_CAPABILITIES,
    params(HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Newest first (an `ops` caller: global changes and its tenant's)", body = History),
        (status = 400, description = "`invalid_limit`: limit is not 1-500, or an unknown parameter", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`dependency_unavailable` (the audit is not readable) or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn history(State(state): State<AppState>, Extension(caller): Extension<Principal>, query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>) -> Result<Json<History>, ApiError> {
    require_operator(&caller)?;
    let limit = match query {
        Ok(Query(HistoryQuery { limit: None })) => 50,
        Ok(Query(HistoryQuery { limit: Some(l) })) if (1..=500).contains(&l) => l,
        _ => return Err(ApiError::bad_request("invalid_limit", "limit is 1-500, and it is the only parameter")),
    };
    let tenant = if caller.role == Role::Admin { None } else { caller.tenant.clone() };
    type Row = (uuid::Uuid, String, String, Option<String>, String, String, String, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT change_id, kind, integration, tenant, state, actor, reason, changed_at FROM read_api.flag_changes
         WHERE $1::text IS NULL OR tenant IS NULL OR tenant = $1 ORDER BY changed_at DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "the capability audit is not there yet: dlq-replayer has not started")
        }
        _ => ApiError::database(e),
    })?;
    let changes = rows
        .into_iter()
        .map(|(id, kind, integration, tenant, state, actor, reason, changed_at)| Change { change_id: id.to_string(), kind, integration, tenant, state, actor, reason, changed_at })
        .collect();
    Ok(Json(History { changes }))
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    let len = reason.trim().chars().count();
    if (1..=500).contains(&len) { Ok(()) } else { Err(ApiError::bad_request("invalid_body", "reason is 1-500 characters")) }
}

fn view(c: brain_runtime::events::CapabilityFlagChanged) -> Change {
    Change {
        change_id: c.change_id,
        kind: c.kind,
        integration: c.integration,
        tenant: c.tenant,
        state: c.state,
        actor: c.actor,
        reason: c.reason,
        changed_at: DateTime::from_timestamp_millis(c.changed_at).unwrap_or_default(),
    }
}

fn refused(e: FlagError) -> ApiError {
    match e {
        FlagError::Publish(source) => {
            tracing::warn!(error = %source, "capability change not published");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the change could not be published; nothing changed; retry")
        }
        other => ApiError::bad_request("invalid_body", other.to_string()),
    }
}
