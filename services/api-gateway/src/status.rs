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
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use brain_runtime::events::{StatusChangeRequested, topics};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    AppState, SERVICE,
    applications::{self, valid_id},
    auth::{Principal, Role},
    body::JsonBody,
    error::ApiError,
};

/// The statuses of a Ventures loan.
pub const STATUSES: [&str; 7] = ["Prospect", "Open", "Approved", "Funded", "Denied", "Withdrawn", "Incomplete"];

/// Longest `reason` accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// Namespace of command ids derived from an `Idempotency-Key`.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x7f0e_42b1_96c3_4d8a_b215_3c6e_0d9f_a481);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusChange {
    pub status: String,
    pub app_version: i64,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub reason: Option<String>,
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

pub async fn post(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(applications::invalid_id());
    }
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
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "commandId": command_id, "applicationId": id, "state": "pending", "toStatus": change.status, "statusUrl": location })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
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
