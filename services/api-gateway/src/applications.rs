//! `GET /api/v1/applications/{id}`: the console read model of one application.
//!
//! Scoped by the caller: an application of another tenant, or (for a borrower) one that is not
//! theirs, is answered exactly like one that does not exist (404), so nothing leaks.

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{AppState, auth::Principal, error::ApiError};

#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub application_id: String,
    pub tenant_id: String,
    pub loan_id: String,
    pub loan_number: String,
    pub loan_type: String,
    pub ventures_status: String,
    pub status_changed_at: DateTime<Utc>,
    pub amount_requested_cents: i64,
    pub amount_approved_cents: Option<i64>,
    pub version: i64,
    pub source_occurred_at: DateTime<Utc>,
    pub projected_at: DateTime<Utc>,
    pub correlation_id: String,
}

/// Application ids are what Firestore accepts as a document id, within reason.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') && id != "." && id != ".."
}

/// The read-model query: one application, within the caller's tenant (`$2`; NULL only when
/// authentication is disabled).
pub const QUERY: &str = "SELECT application_id, tenant_id, loan_id, loan_number, loan_type, ventures_status, status_changed_at,
        amount_requested_cents, amount_approved_cents, version, source_occurred_at, projected_at, correlation_id
 FROM read_api.applications WHERE application_id = $1 AND ($2::text IS NULL OR tenant_id = $2)";

pub fn invalid_id() -> ApiError {
    ApiError::bad_request("invalid_application_id", "application ids are 1-128 characters of letters, digits, '-', '_' and '.'")
}

/// The application `id` as `caller` may see it: 404 when it does not exist, belongs to another
/// tenant or (for a borrower) is not theirs.
pub async fn find(pool: &sqlx::PgPool, caller: &Principal, id: &str) -> Result<Application, ApiError> {
    let not_found = || ApiError::not_found("application_not_found", format!("no application {id}"));
    if !caller.may_read_application(id) {
        return Err(not_found());
    }
    let row: Option<Application> = sqlx::query_as(QUERY).bind(id).bind(caller.tenant.as_deref()).fetch_optional(pool).await.map_err(ApiError::database)?;
    row.ok_or_else(not_found)
}

pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, Path(id): Path<String>) -> Result<Json<Application>, ApiError> {
    if !valid_id(&id) {
        return Err(invalid_id());
    }
    find(&state.pool, &caller, &id).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn ids_are_checked_at_the_edge() {
        assert!(valid_id("app-1_x.y"));
        assert!(!valid_id(""));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(129)));
        assert!(!valid_id("a b"));
    }
}
