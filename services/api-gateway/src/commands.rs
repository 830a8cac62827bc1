//! `GET /api/v1/commands/{id}`: where a status-change command stands (`pending`, `applied`, or
//! `rejected` with Ventures' reason), from the read model projection-writer keeps.
//!
//! A command this gateway instance queued moments ago, not yet projected, is answered `pending`
//! from the instance's own memory (`RecentCommands`), so a client polling right after its 202 does
//! not see a 404. Scoped like applications: another tenant's command, or (for a borrower) one on
//! an application that is not theirs, is answered 404.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Extension, Json,
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    AppState,
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi,
};

/// Where a status change stands.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    pub command_id: Uuid,
    #[schema(example = "app-17")]
    pub application_id: String,
    /// `pending`, then `applied` or `rejected`.
    #[schema(schema_with = openapi::command_state)]
    pub state: String,
    #[schema(schema_with = openapi::ventures_status)]
    pub to_status: String,
    /// The application's status when the change was asked for.
    pub from_status: Option<String>,
    pub app_version: Option<i64>,
    pub force: Option<bool>,
    pub reason: Option<String>,
    pub actor_subject: Option<String>,
    pub actor_role: Option<String>,
    /// With `rejected`: `stale_version`, `transition_refused` or `loan_not_found`.
    pub reason_code: Option<String>,
    /// With `rejected`: Ventures' message.
    pub rejection: Option<String>,
    /// With `applied`: the loan's version after the change.
    pub applied_version: Option<i64>,
    pub requested_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub correlation_id: String,
    /// False while the command is known only to the gateway that queued it.
    #[sqlx(default)]
    pub projected: bool,
}

/// `{id}` of a command route: a UUID, else 400 `invalid_command_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct CommandId(
    /// The command id of the 202 that queued it.
    #[param(value_type = String, format = Uuid, example = "0f6e1f2a-8a4c-4a53-9a55-3c1f1d0e7b11")]
    pub Uuid,
);

impl<S: Send + Sync> FromRequestParts<S> for CommandId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Path::<String>::from_request_parts(parts, state).await.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok());
        id.map(Self).ok_or_else(|| ApiError::bad_request("invalid_command_id", "command ids are UUIDs"))
    }
}

const QUERY: &str = "SELECT command_id, application_id, state, to_status, from_status, app_version, force, reason, actor_subject,
        actor_role, reason_code, rejection, applied_version, requested_at, resolved_at, correlation_id, true AS projected
 FROM read_api.status_commands WHERE command_id = $1 AND ($2::text IS NULL OR tenant_id = $2)";

/// Where a status change stands
///
/// `pending`, then `applied` (with `appliedVersion`) or `rejected` (with `reasonCode` and
/// Ventures' message in `rejection`). Visible as soon as the 202 is sent: until projection-writer
/// has it, the gateway instance that queued it answers `pending` from memory (`projected: false`).
/// Scoped like applications: another tenant's command, or a borrower's on an application not
/// theirs, is 404.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}",
    operation_id = "getCommand",
    tag = openapi::TAG_COMMANDS,
    params(CommandId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The command", body = Command),
        (status = 400, description = "`invalid_command_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`command_not_found`: no such command for this caller", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, CommandId(command_id): CommandId) -> Result<Json<Command>, ApiError> {
    let not_found = || ApiError::not_found("command_not_found", format!("no command {command_id}"));
    let row: Option<Command> = sqlx::query_as(QUERY)
        .bind(command_id)
        .bind(caller.tenant.as_deref())
        .fetch_optional(&state.pool)
        .await
        .map_err(ApiError::database)?;
    let command = match row {
        Some(command) => command,
        None => state.recent.get(command_id, caller.tenant.as_deref()).ok_or_else(not_found)?,
    };
    if !caller.may_read_application(&command.application_id) {
        return Err(not_found());
    }
    Ok(Json(command))
}

/// How long a queued command is remembered while projection-writer catches up.
const REMEMBER_FOR: Duration = Duration::from_secs(300);
/// At most this many are remembered; the oldest go first.
const MAX_REMEMBERED: usize = 10_000;

struct Queued {
    tenant_id: String,
    application_id: String,
    to_status: String,
    at: Instant,
    queued_at: DateTime<Utc>,
}

/// The commands this instance queued recently.
#[derive(Clone, Default)]
pub struct RecentCommands(Arc<Mutex<HashMap<Uuid, Queued>>>);

impl RecentCommands {
    pub fn insert(&self, id: Uuid, tenant_id: &str, application_id: &str, to_status: &str) {
        let mut map = self.0.lock().expect("recent commands lock");
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, q| q.at.elapsed() < REMEMBER_FOR);
            if map.len() >= MAX_REMEMBERED
                && let Some(oldest) = map.iter().min_by_key(|(_, q)| q.at).map(|(id, _)| *id)
            {
                map.remove(&oldest);
            }
        }
        let queued = Queued { tenant_id: tenant_id.into(), application_id: application_id.into(), to_status: to_status.into(), at: Instant::now(), queued_at: Utc::now() };
        map.insert(id, queued);
    }

    fn get(&self, id: Uuid, tenant: Option<&str>) -> Option<Command> {
        let map = self.0.lock().expect("recent commands lock");
        let q = map.get(&id).filter(|q| q.at.elapsed() < REMEMBER_FOR && tenant.is_none_or(|t| t == q.tenant_id))?;
        Some(Command {
            command_id: id,
            application_id: q.application_id.clone(),
            state: "pending".into(),
            to_status: q.to_status.clone(),
            from_status: None,
            app_version: None,
            force: None,
            reason: None,
            actor_subject: None,
            actor_role: None,
            reason_code: None,
            rejection: None,
            applied_version: None,
            requested_at: Some(q.queued_at),
            resolved_at: None,
            correlation_id: String::new(),
            projected: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_commands_are_scoped_by_tenant_and_bounded() {
        let recent = RecentCommands::default();
        let id = Uuid::new_v4();
        recent.insert(id, "a", "app-1", "Approved");
        assert_eq!(recent.get(id, Some("a")).map(|c| c.state), Some("pending".to_string()));
        assert!(recent.get(id, Some("b")).is_none());
        assert!(recent.get(id, None).is_some());
        for _ in 0..MAX_REMEMBERED + 5 {
            recent.insert(Uuid::new_v4(), "a", "app", "Open");
        }
        assert!(recent.0.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
