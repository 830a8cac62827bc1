//! `GET /api/v1/inbox`: the staff's open work, the tasks not yet completed, with their SLA:
//! breached tasks first, then by due time (tasks without an SLA last); `?assignee=me` for the
//! caller's own (`unassigned`, or another staff member's id). From projection-writer's
//! read model (`read_api.staff_inbox`), within the caller's tenant.

use axum::{Extension, Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::{Principal, Role},
    error::{ApiError, ErrorBody},
    openapi,
    qbo::advisor::Params,
};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// One piece of open work.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    pub task_id: String,
    pub application_id: String,
    pub title: String,
    /// `open`, `awaiting_upload` or `pending_review`.
    pub state: String,
    pub state_since: DateTime<Utc>,
    pub document_name: Option<String>,
    pub document_state: Option<String>,
    /// When the state's SLA runs out (none: the state has no SLA).
    pub due_at: Option<DateTime<Utc>>,
    /// When the SLA was breached, if it was.
    pub breached_at: Option<DateTime<Utc>>,
    /// Whose work it is (none: unassigned).
    pub assignee: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inbox {
    pub items: Vec<InboxItem>,
    /// Of the items, how many breached their SLA.
    pub breached: usize,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which [`Params`] reads
pub struct InboxQuery {
    /// How many items (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Whose work: `me` (the caller's), `unassigned`, or a staff member's user id. All of the
    /// tenant's open work when left out.
    assignee: Option<String>,
}

/// The staff inbox
///
/// Open work of the caller's tenant: tasks not yet completed with their SLA, breached first, then
/// by due time; `assignee=me` narrows it to the caller's own work. Roles staff, ops and admin.
#[utoipa::path(
    get,
    path = "/api/v1/inbox",
    operation_id = "staffInbox",
    tag = openapi::TAG_DOCUMENTS,
    params(InboxQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Open work, breaches first, then by due time", body = Inbox),
        (status = 400, description = "`invalid_limit` (not 1-500) or `invalid_query` (an unknown or repeated parameter, or a malformed assignee)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: a borrower (the inbox is the staff's), or a token that grants nothing here", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, params: Params) -> Result<Json<Inbox>, ApiError> {
    if caller.role == Role::Borrower {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the inbox is the staff's (staff, ops, admin)"));
    }
    let params = params.only(&["limit", "assignee"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    // (filter on, the assignee or NULL for unassigned)
    let (filtered, assignee) = match params.get("assignee").map(str::trim) {
        None => (false, None),
        Some("me") => (true, Some(caller.subject.clone())),
        Some("unassigned") => (true, None),
        Some(a) if super::actions::valid_staff_id(a) => (true, Some(a.to_string())),
        Some(_) => return Err(ApiError::bad_request("invalid_query", "assignee is me, unassigned or a staff member's user id (1-128 characters, no '/')")),
    };
    let items: Vec<InboxItem> = sqlx::query_as(
        "SELECT task_id, application_id, title, state, state_since, document_name, document_state, due_at, breached_at, assignee
         FROM read_api.staff_inbox WHERE ($1::text IS NULL OR tenant_id = $1) AND (NOT $3 OR assignee IS NOT DISTINCT FROM $4)
         ORDER BY breached_at IS NULL, due_at NULLS LAST, state_since, task_id LIMIT $2",
    )
    .bind(caller.tenant.as_deref())
    .bind(limit)
    .bind(filtered)
    .bind(assignee)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::database)?;
    let breached = items.iter().filter(|i| i.breached_at.is_some()).count();
    Ok(Json(Inbox { items, breached }))
}
