//! `POST /api/v1/applications/{id}/status`: a console status change (flow 2).
//!
//! Checked here, in order: the caller may change statuses (staff, ops, admin; a borrower gets
//! 403), the body (`{status, appVersion, force?, reason?}`, nothing else), the application exists
//! in the caller's tenant (404), the console saw its current version (`appVersion`, else 409
//! `stale_version` unless `force` with a reason), and Ventures allows the transition (422
//! `transition_not_allowed`). Then one command event goes to
//! `gateway.application.status-change-requested.v1`, and once the broker has it the answer is 202
//! with the command id; `GET /api/v1/commands/{id}` follows it. Ventures checks the version again
//! where the change is applied.
//!
//! An `Idempotency-Key` header makes a retried POST safe: the same caller, key and body give the
//! same command id, which every later step deduplicates.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use brain_runtime::events::{StatusChangeRequested, topics};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState, SERVICE,
    applications::{self, ApplicationId},
    auth::{Principal, Role},
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi,
};

/// The statuses of a Ventures loan.
pub const STATUSES: [&str; 7] = ["Prospect", "Open", "Approved", "Funded", "Denied", "Withdrawn", "Incomplete"];

/// Longest `reason` accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// Namespace of command ids derived from an `Idempotency-Key`.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x7f0e_42b1_96c3_4d8a_b215_3c6e_0d9f_a481);

/// A status change: the status wanted and the version the console showed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "status": "Approved", "appVersion": 4 }))]
pub struct StatusChange {
    /// The Ventures status wanted (case matters; anything else is 422 `invalid_status`).
    #[schema(schema_with = openapi::ventures_status)]
    pub status: String,
    /// The application's `version` as the console showed it.
    #[schema(minimum = 1, example = 4)]
    pub app_version: i64,
    /// Apply even if the application has moved past `appVersion`; needs a `reason`.
    #[serde(default)]
    #[schema(default = false)]
    pub force: bool,
    /// Why; audited. Required with `force`. At most 500 characters, no control characters but
    /// line feeds; surrounding white space is trimmed.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$")]
    pub reason: Option<String>,
}

/// The answer to an accepted status change (202): the command to follow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusAccepted {
    pub command_id: Uuid,
    #[schema(example = "app-17")]
    pub application_id: String,
    /// Always `pending` here; `GET statusUrl` tells when it is `applied` or `rejected`.
    #[schema(schema_with = openapi::pending_state)]
    pub state: &'static str,
    #[schema(schema_with = openapi::ventures_status)]
    pub to_status: String,
    /// `/api/v1/commands/{commandId}`, also in the `Location` header.
    #[schema(example = "/api/v1/commands/0f6e1f2a-8a4c-4a53-9a55-3c1f1d0e7b11")]
    pub status_url: String,
}

/// Whether Ventures lets a loan go from `from` to `to` through its status endpoint; Funded,
/// Denied and Withdrawn are terminal.
pub fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("Prospect", "Open")
            | ("Open", "Approved")
            | ("Approved", "Funded")
            | ("Incomplete", "Open")
            | ("Prospect" | "Open" | "Approved", "Denied" | "Withdrawn" | "Incomplete")
            | ("Incomplete", "Denied" | "Withdrawn")
    )
}

impl StatusChange {
    /// The body's own rules, before anything is read.
    fn check(&self) -> Result<Option<String>, ApiError> {
        let unprocessable = |code, detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(unprocessable("invalid_status", format!("status must be one of {}", STATUSES.join(", "))));
        }
        if self.app_version < 1 {
            return Err(unprocessable("invalid_app_version", "appVersion is the application's version as the console showed it (≥ 1)".into()));
        }
        let reason = self.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
        if let Some(r) = &reason
            && (r.chars().count() > MAX_REASON_CHARS || r.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(unprocessable("invalid_reason", format!("reason is at most {MAX_REASON_CHARS} characters, without control characters")));
        }
        if self.force && reason.is_none() {
            return Err(unprocessable("reason_required", "force needs a reason; it is audited".into()));
        }
        Ok(reason)
    }
}

/// Change an application's status
///
/// A console status change (flow 2), applied in Ventures. Checked in order: the role (staff, ops
/// or admin), the body, the application in the caller's tenant, the version (`appVersion`, unless
/// `force`) and the transition. Then one command is queued and the answer is 202 with its id;
/// `GET /api/v1/commands/{id}` follows it. An `Idempotency-Key` makes a retry safe: the same
/// caller, key and body give the same command id.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/status",
    operation_id = "changeStatus",
    tag = openapi::TAG_APPLICATIONS,
    params(
        ApplicationId,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255,
            description = "Makes a retried POST safe: the same caller, key and body give the same command id. 1-255 visible ASCII characters."),
    ),
    request_body(content = StatusChange, content_type = "application/json", description = "At most 64 KiB; unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued: the command is on its way to Ventures", body = StatusAccepted,
            headers(("Location" = String, description = "`/api/v1/commands/{commandId}`")),
            links(("GetCommand" = (operation_id = "getCommand", parameters(("id" = "$response.body#/commandId")),
                description = "Where the command stands")))),
        (status = 400, description = "`invalid_application_id`, `invalid_body` (not JSON, an unknown field, a missing one or a wrong type; the detail names it) or `invalid_idempotency_key`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: a borrower (status changes are made from the console), or a token that grants nothing here", body = ErrorBody),
        (status = 404, description = "`application_not_found`: no such application for this caller", body = ErrorBody),
        (status = 409, description = "`stale_version`: `appVersion` is not the application's current version; reload it, or send `force` with a `reason`", body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_status`, `invalid_app_version`, `invalid_reason`, `reason_required` or `transition_not_allowed`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable` (retry with the same `Idempotency-Key`), `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn post(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApplicationId(id): ApplicationId,
    headers: HeaderMap,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    if caller.role == Role::Borrower {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "status changes are made from the console (staff, ops or admin)"));
    }
    let idempotency_key = idempotency_key(&headers)?;
    let reason = change.check()?;
    let current = applications::find(&state.pool, &caller, &id).await?;
    if change.app_version != current.version && !change.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_version",
            format!("the application is at version {}, not {}; reload it, or send force with a reason", current.version, change.app_version),
        ));
    }
    if !transition_allowed(&current.ventures_status, &change.status) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "transition_not_allowed",
            format!("Ventures does not allow {} → {}", current.ventures_status, change.status),
        ));
    }

    let command_id = match &idempotency_key {
        Some(key) => {
            let body = json!([caller.tenant, caller.subject, key, id, change.status, change.app_version, change.force, reason]);
            Uuid::new_v5(&KEY_NAMESPACE, body.to_string().as_bytes())
        }
        None => Uuid::new_v4(),
    };
    let correlation_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map_or_else(|| command_id.to_string(), str::to_string);
    let command = StatusChangeRequested {
        event_id: command_id.to_string(),
        occurred_at: chrono::Utc::now().timestamp_millis(),
        tenant_id: current.tenant_id.clone(),
        correlation_id,
        causation_id: None,
        producer: SERVICE.to_string(),
        application_id: id.clone(),
        loan_id: current.loan_id.clone(),
        from_status: current.ventures_status.clone(),
        to_status: change.status.clone(),
        app_version: change.app_version,
        force: change.force,
        reason,
        actor_subject: caller.subject.clone(),
        actor_role: caller.role.as_str().to_string(),
    };
    state.producer.send(topics::STATUS_CHANGE_REQUESTED, &id, &command).await.map_err(|e| {
        tracing::warn!(error = %e, "the status-change command could not be published");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the command could not be queued; retry (with the same Idempotency-Key)")
    })?;
    state.recent.insert(command_id, &current.tenant_id, &id, &change.status);
    if change.force {
        tracing::info!(%command_id, application_id = %id, to = %change.status, "forced status change queued");
    }
    let location = format!("/api/v1/commands/{command_id}");
    let header = HeaderValue::from_str(&location);
    let accepted = StatusAccepted { command_id, application_id: id, state: "pending", to_status: change.status, status_url: location };
    let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    if let Ok(value) = header {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

/// The optional `Idempotency-Key`: 1-255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key is 1-255 visible ASCII characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(status: &str, force: bool, reason: Option<&str>) -> StatusChange {
        StatusChange { status: status.into(), app_version: 3, force, reason: reason.map(str::to_string) }
    }

    #[test]
    fn bodies_are_checked_before_anything_is_read() {
        assert!(change("Approved", false, None).check().is_ok());
        assert!(change("approved", false, None).check().is_err());
        assert!(change("Approved", true, None).check().is_err());
        assert!(change("Approved", true, Some("  ")).check().is_err());
        assert_eq!(change("Approved", true, Some(" late fax ")).check().unwrap().as_deref(), Some("late fax"));
        assert!(change("Approved", false, Some(&"x".repeat(501))).check().is_err());
        assert!(change("Approved", false, Some("a\u{7}b")).check().is_err());
        let body: Result<StatusChange, _> = serde_json::from_str(r#"{"status":"Open","appVersion":1,"extra":1}"#);
        assert!(body.is_err(), "unknown fields are refused");
    }

    #[test]
    fn transitions_follow_ventures() {
        assert!(transition_allowed("Open", "Approved"));
        assert!(transition_allowed("Approved", "Funded"));
        assert!(!transition_allowed("Open", "Funded"));
        assert!(!transition_allowed("Funded", "Open"));
        assert!(!transition_allowed("Open", "Open"));
    }
}
