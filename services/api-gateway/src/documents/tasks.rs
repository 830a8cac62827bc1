//! `GET /api/v1/applications/{id}/tasks`: the application's tasks (one per Ventures condition)
//! as projection-writer keeps them, oldest state change first. Scoped like the application: 404
//! for one the caller may not see.

use axum::{Extension, Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    applications::{ApplicationId, find},
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi,
};

/// One task of an application.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The Ventures condition's id.
    pub task_id: String,
    pub condition_id: String,
    pub title: String,
    /// `open`, `awaiting_upload`, `pending_review` or `completed`.
    #[schema(example = "pending_review")]
    pub state: String,
    pub state_since: DateTime<Utc>,
    /// The condition's status in Ventures (`Open`, `Received`, `Satisfied`, `Waived`).
    pub condition_status: Option<String>,
    pub document_id: Option<Uuid>,
    pub document_name: Option<String>,
    /// The latest upload: `received` (ingested), `stored` (in ShareFile), `rejected` (by the staff).
    pub document_state: Option<String>,
    pub document_at: Option<DateTime<Utc>>,
    /// Why the staff rejected the last document (the task is `awaiting_upload` until another
    /// one is attached).
    pub rejection_reason: Option<String>,
    /// The staff's note when they asked for a document.
    pub request_note: Option<String>,
    /// The staff member the task is assigned to.
    pub assignee: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The tasks of an application.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tasks {
    pub application_id: String,
    pub tasks: Vec<Task>,
}

/// An application's tasks
///
/// One task per Ventures condition, with the state of its latest upload. A task is `completed`
/// only once Ventures satisfied (or waived) its condition.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/tasks",
    operation_id = "listTasks",
    tag = openapi::TAG_DOCUMENTS,
    params(ApplicationId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tasks", body = Tasks),
        (status = 400, description = "`invalid_application_id`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`application_not_found`: no such application for this caller", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Principal>, ApplicationId(id): ApplicationId) -> Result<Json<Tasks>, ApiError> {
    let application = find(&state.pool, &caller, &id).await?;
    let tasks: Vec<Task> = sqlx::query_as(
        "SELECT task_id, condition_id, title, state, state_since, condition_status, document_id, document_name, document_state, document_at,
                rejection_reason, request_note, assignee, updated_at
         FROM read_api.tasks WHERE tenant_id = $1 AND application_id = $2 ORDER BY state_since, task_id",
    )
    .bind(&application.tenant_id)
    .bind(&id)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::database)?;
    Ok(Json(Tasks { application_id: id, tasks }))
}
