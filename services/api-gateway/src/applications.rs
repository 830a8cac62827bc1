//! `GET /api/v1/applications/{id}`: the console read model of one application.
//!
//! Scoped by the caller: an application of another tenant, or (for a borrower) one that is not
//! theirs, is answered exactly like one that does not exist (404), so nothing leaks.

use axum::{
    Extension, Json,
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi,
};

/// The console read model of one application.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[schema(example = "app-17")]
    pub application_id: String,
    pub tenant_id: String,
    /// The loan's id in Ventures.
    pub loan_id: String,
    pub loan_number: String,
    pub loan_type: String,
    /// The loan's status as Ventures last reported it.
    #[schema(example = "Open")]
    pub ventures_status: String,
    pub status_changed_at: DateTime<Utc>,
    pub amount_requested_cents: i64,
    pub amount_approved_cents: Option<i64>,
    /// The loan's version in Ventures: what `appVersion` of a status change refers to.
    #[schema(minimum = 1)]
    pub version: i64,
    pub source_occurred_at: DateTime<Utc>,
    pub projected_at: DateTime<Utc>,
    pub correlation_id: String,
}

/// Application ids are what Firestore accepts as a document id, within reason.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') && id != "." && id != ".."
}

/// `{id}` of an application route, checked by [`valid_id`]: anything else, including a path that
/// is not UTF-8 once percent-decoded, is 400 `invalid_application_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct ApplicationId(
    /// The application's id: 1-128 letters, digits, `-`, `_` and `.`, but not `.` or `..`.
    #[param(pattern = r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128, example = "app-17")]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for ApplicationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if valid_id(&id) => Ok(Self(id)),
            _ => Err(invalid_id()),
        }
    }
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

/// One application
///
/// The console read model of one application in the caller's tenant (a borrower: one listed in
/// its token). Any other application is 404, exactly like one that does not exist.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}",
    operation_id = "getApplication",
    tag = openapi::TAG_APPLICATIONS,
    params(ApplicationId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The application", body = Application),
        (status = 400, description = "`invalid_application_id`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`application_not_found`: no such application for this caller", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, ApplicationId(id): ApplicationId) -> Result<Json<Application>, ApiError> {
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
