//! The API's error answers: `{ "code", "detail" }` with stable codes, which the gateway passes on
//! to its callers (`docs/errors.md`). A 5xx says nothing internal; its cause is logged here, once.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dlq_api::ErrorBody;

use crate::{
    dispose::DisposeError,
    job::{self, JobError},
};

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: `invalid_filter`, `invalid_body`, `invalid_dead_letter_id`, `invalid_job_id`,
    /// `invalid_replay`, `invalid_disposition`, `invalid_limit`.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 403: a filter naming another tenant than the caller's.
    #[error("{0}")]
    Forbidden(String),
    /// 404: `dead_letter_not_found`, `replay_job_not_found`, `route_not_found`.
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// 409: `replay_in_progress`, `job_filter_mismatch`.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 503: Kafka or the schema registry (`dead_letters_unavailable`), or the audit database
    /// (`audit_unavailable`).
    #[error("{what} unavailable")]
    Unavailable {
        code: &'static str,
        what: &'static str,
        #[source]
        source: Source,
    },
    /// 503 `shutting_down`: no new replay once the service is stopping.
    #[error("the replayer is shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ServiceError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { code, detail: detail.into() }
    }

    pub fn read(source: anyhow::Error) -> Self {
        Self::Unavailable { code: "dead_letters_unavailable", what: "Kafka or the schema registry", source: source.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::BadRequest { code, detail } => (StatusCode::BAD_REQUEST, code, detail.clone()),
            Self::Forbidden(detail) => (StatusCode::FORBIDDEN, "forbidden", detail.clone()),
            Self::NotFound { code, detail } => (StatusCode::NOT_FOUND, code, detail.clone()),
            Self::Conflict { code, detail } => (StatusCode::CONFLICT, code, detail.clone()),
            Self::Unavailable { code, what, .. } => (StatusCode::SERVICE_UNAVAILABLE, code, format!("{what} cannot be reached; retry later")),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the replayer is shutting down; retry on another instance or after its restart".into()),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::Unavailable { code: "audit_unavailable", what: "the audit database", source: e.into() },
            e => Self::Internal(e.into()),
        }
    }
}

impl From<JobError> for ServiceError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::InvalidRate => Self::bad_request("invalid_replay", e.to_string()),
            JobError::FilterMismatch { .. } => Self::Conflict { code: "job_filter_mismatch", detail: e.to_string() },
            JobError::Audit(e) => e.into(),
            JobError::Read(e) => Self::read(e),
            // Re-publishing failed as a whole (the producer, the audit mid-job): logged, internal.
            JobError::Replay(e) => Self::Internal(e.into()),
        }
    }
}

impl From<DisposeError> for ServiceError {
    fn from(e: DisposeError) -> Self {
        match e {
            DisposeError::NoReason => Self::bad_request("invalid_disposition", e.to_string()),
            DisposeError::NotFound(_) => Self::NotFound { code: "dead_letter_not_found", detail: e.to_string() },
            DisposeError::Audit(e) => e.into(),
            DisposeError::Read(e) => Self::read(e),
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        if status.is_server_error() {
            let cause = job::chain(&self);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(code, error = %cause, "request failed");
            } else {
                tracing::error!(code, error = %cause, "request failed");
            }
        }
        (status, Json(ErrorBody { code: code.into(), detail })).into_response()
    }
}
