//! API errors in Confluent's shape: `{"error_code": 40401, "message": "..."}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{compat::Level, routes::reply};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("{0}")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectConfig(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {}",
        messages.join("; ")
    )]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("{0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between \
         [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are {}", valid_levels())]
    InvalidCompatibility,
    #[error("{0}")]
    BadRequest(String),
    #[error("Error in the backend data store")]
    Backend(#[from] sqlx::Error),
}

fn valid_levels() -> String {
    let names: Vec<&str> = Level::ALL.iter().map(|level| level.as_str()).collect();
    names.join(", ")
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            ApiError::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            ApiError::VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            ApiError::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            ApiError::SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            ApiError::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            ApiError::VersionSoftDeleted(..) => (StatusCode::NOT_FOUND, 40406),
            ApiError::VersionNotSoftDeleted(..) => (StatusCode::NOT_FOUND, 40407),
            ApiError::NoSubjectConfig(_) => (StatusCode::NOT_FOUND, 40408),
            ApiError::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            ApiError::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            ApiError::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            ApiError::InvalidCompatibility => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            ApiError::Backend(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Backend(err) = &self {
            // The client only learns "backend error"; the cause is logged here, once.
            tracing::error!(error = %err, "backend data store failed");
        }
        reply(
            status,
            &json!({ "error_code": code, "message": self.to_string() }),
        )
    }
}
