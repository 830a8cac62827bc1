//! The gateway's error responses: `{ "code": "...", "detail": "..." }` with stable codes, listed
//! in `docs/errors.md`. A 5xx body says nothing internal; its cause is logged once here.

use axum::{
    Json,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error, example = json!({ "code": "application_not_found", "detail": "no application app-17" }))]
pub struct ErrorBody {
    /// A stable code (docs/errors.md); new codes may be added, existing ones never change meaning.
    pub code: String,
    /// Human-readable; nothing internal on a 5xx.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// E.g. `WWW-Authenticate` on a 401.
    header: Option<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), header: None }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A database failure: logged with its cause, answered without it.
    pub fn database(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %e, "read model unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "the read model is unavailable; retry later")
            }
            e => {
                tracing::error!(error = %e, "read model query failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { code: self.code.into(), detail: self.detail })).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
