//! `POST /api/v1/applications/{id}/tasks/{taskId}/actions`: a staff member's action on a task:
//! `assign` it (to themselves or another staff member: the per-staff inbox), `request_upload`
//! (the borrower is asked for a document: `awaiting_upload`, with an optional note) or `reject`
//! the document under review (back to `awaiting_upload` with the reason, which the borrower
//! sees). Checked against the task's state here (409 when it does not allow the action) and again
//! by projection-writer when it applies the `TaskActionRequested` (a task that moved meanwhile
//! keeps its state).

use axum::{
    Extension, Json,
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
};
use brain_runtime::events::{TaskActionRequested, topics};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    AppState, SERVICE,
    applications::valid_id,
    auth::{Principal, Role},
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi,
};

/// Longest reason or note, in characters.
const MAX_REASON_CHARS: usize = 500;

/// `{id}` and `{taskId}` of the route, each checked like an application id: else 400
/// `invalid_application_id` / `invalid_task_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id", "taskId"), parameter_in = Path)]
pub struct TaskPath(
    /// The application's id.
    #[param(value_type = String, example = "app-17")]
    pub String,
    /// The task's id (its Ventures condition's).
    #[param(value_type = String, example = "C-3")]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for TaskPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(Path((app, task))) = Path::<(String, String)>::from_request_parts(parts, state).await else {
            return Err(ApiError::bad_request("invalid_application_id", "application and task ids are 1-128 letters, digits, -, _ and ."));
        };
        if !valid_id(&app) {
            return Err(ApiError::bad_request("invalid_application_id", "application ids are 1-128 letters, digits, -, _ and ."));
        }
        if !valid_id(&task) {
            return Err(ApiError::bad_request("invalid_task_id", "task ids are 1-128 letters, digits, -, _ and ."));
        }
        Ok(Self(app, task))
    }
}

/// What the staff member does.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "action": "reject", "reason": "The statement is cut off; please upload all pages." }))]
pub struct TaskAction {
    /// `assign`, `request_upload` or `reject`.
    pub action: String,
    /// `assign`: the staff member (their user id, 1-128 characters without `/`); the caller when
    /// left out.
    #[serde(default)]
    pub assignee: Option<String>,
    /// `reject`: why, shown to the borrower (required); `request_upload`: an optional note. At
    /// most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to an accepted action (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionAccepted {
    pub command_id: Uuid,
    pub application_id: String,
    pub task_id: String,
    pub action: String,
    /// The task's state when the action was accepted; the read model and Firestore show the new
    /// one once projection-writer applied it.
    pub state: String,
}

/// Act on a task
///
/// Staff, ops and admin: assign the task, ask the borrower for a document, or reject the document
/// under review with a reason (the task goes back to `awaiting_upload` until a different document
/// is attached in Ventures).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/tasks/{taskId}/actions",
    operation_id = "actOnTask",
    tag = openapi::TAG_DOCUMENTS,
    params(TaskPath),
    request_body(content = TaskAction, content_type = "application/json", description = "At most 64 KiB; unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: projection-writer applies it", body = ActionAccepted),
        (status = 400, description = "`invalid_application_id`, `invalid_task_id` or `invalid_body`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: a borrower (actions are the staff's), or a token that grants nothing here", body = ErrorBody),
        (status = 404, description = "`task_not_found`: no such task of that application in the caller's tenant", body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 409, description = "`task_state_conflict`: the task's state does not allow the action (reject: only `pending_review`; request_upload: `open` or `awaiting_upload`; assign: not `completed`)", body = ErrorBody),
        (status = 422, description = "`invalid_action`, `reason_required`, `invalid_reason` or `invalid_assignee`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable`, `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn post(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    TaskPath(application_id, task_id): TaskPath,
    JsonBody(body): JsonBody<TaskAction>,
) -> Result<(StatusCode, Json<ActionAccepted>), ApiError> {
    if caller.role == Role::Borrower {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "task actions are the staff's (staff, ops, admin)"));
    }
    let (assignee, reason) = check(&body, &caller)?;
    let task: Option<(String, String)> =
        sqlx::query_as("SELECT tenant_id, state FROM read_api.tasks WHERE task_id = $1 AND application_id = $2 AND ($3::text IS NULL OR tenant_id = $3)")
            .bind(&task_id)
            .bind(&application_id)
            .bind(caller.tenant.as_deref())
            .fetch_optional(&state.pool)
            .await
            .map_err(ApiError::database)?;
    let (tenant_id, task_state) = task.ok_or_else(|| ApiError::not_found("task_not_found", format!("no task {task_id} of application {application_id}")))?;
    let allowed = match body.action.as_str() {
        "assign" => task_state != "completed",
        "request_upload" => matches!(task_state.as_str(), "open" | "awaiting_upload"),
        _ => task_state == "pending_review",
    };
    if !allowed {
        return Err(ApiError::new(StatusCode::CONFLICT, "task_state_conflict", format!("the task is {task_state}: it cannot take {}", body.action)));
    }
    let command_id = Uuid::new_v4();
    let event = TaskActionRequested {
        event_id: command_id.to_string(),
        occurred_at: chrono::Utc::now().timestamp_millis(),
        tenant_id,
        correlation_id: command_id.to_string(),
        causation_id: None,
        producer: SERVICE.to_string(),
        application_id: application_id.clone(),
        task_id: task_id.clone(),
        action: body.action.clone(),
        staff_id: caller.subject.clone(),
        assignee,
        reason,
    };
    state.producer.send(topics::TASK_ACTION_REQUESTED, &application_id, &event).await.map_err(|e| {
        tracing::warn!(error = %e, "the task action could not be queued");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the action could not be queued; retry")
    })?;
    tracing::info!(%command_id, %application_id, %task_id, action = %body.action, "task action accepted");
    Ok((StatusCode::ACCEPTED, Json(ActionAccepted { command_id, application_id, task_id, action: body.action, state: task_state })))
}

/// A staff member's user id that can name their Firestore inbox (`staff/{id}/inbox`): 1-128
/// characters, no `/` or control characters, not `.`, `..` or `__…__` (reserved by Firestore).
pub fn valid_staff_id(id: &str) -> bool {
    let chars = id.chars().count();
    (1..=128).contains(&chars)
        && !id.contains('/')
        && !id.chars().any(char::is_control)
        && id != "."
        && id != ".."
        && !(id.len() >= 4 && id.starts_with("__") && id.ends_with("__"))
}

/// The assignee and reason the action carries, checked.
fn check(body: &TaskAction, caller: &Principal) -> Result<(Option<String>, Option<String>), ApiError> {
    let unprocessable = |code, detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
    let reason = body.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    if let Some(r) = &reason
        && (r.chars().count() > MAX_REASON_CHARS || r.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(unprocessable("invalid_reason", format!("reason is at most {MAX_REASON_CHARS} characters, no control characters but line breaks")));
    }
    match body.action.as_str() {
        "assign" => {
            let assignee = body.assignee.as_deref().map(str::trim).unwrap_or(&caller.subject).to_string();
            if !valid_staff_id(&assignee) {
                return Err(unprocessable("invalid_assignee", "assignee is a staff member's user id: 1-128 characters, no '/', not '.', '..' or '__…__'".into()));
            }
            Ok((Some(assignee), None))
        }
        "request_upload" => Ok((None, reason)),
        "reject" => match reason {
            Some(r) => Ok((None, Some(r))),
            None => Err(unprocessable("reason_required", "a rejection says why (reason), for the borrower".into())),
        },
        other => Err(unprocessable("invalid_action", format!("action {other:?} is not assign, request_upload or reject"))),
    }
}
