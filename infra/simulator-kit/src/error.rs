//! The errors every simulator shares: the `/control` API's error body, a setting that is missing
//! or invalid, and why a simulator could not start or stopped serving.

use std::{io, net::SocketAddr};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Errors of the `/control` API: `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid JSON body")]
    Json(#[source] serde_json::Error),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) | Self::Json(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
        };
        let message = match &self {
            Self::Json(source) => format!("{self}: {source}"),
            other => other.to_string(),
        };
        (status, Json(json!({"error": message}))).into_response()
    }
}

/// A setting that is missing or invalid, naming the variable or field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: invalid value {value:?}")]
    Invalid {
        var: String,
        value: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{field}: {message}")]
    Constraint {
        field: &'static str,
        message: String,
    },
}

impl ConfigError {
    pub fn constraint(field: &'static str, message: impl Into<String>) -> Self {
        Self::Constraint {
            field,
            message: message.into(),
        }
    }
}

/// Why a simulator could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A part of the simulator's own (e.g. an HTTP client for webhooks) could not be built.
    #[error("cannot build {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("serving HTTP failed")]
    Serve(#[source] io::Error),
    #[error("the simulator task panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn control_errors_answer_json_with_the_cause() {
        let response = ControlError::NotFound("fault 3".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let Err(json) = serde_json::from_str::<u8>("x") else {
            panic!("not a number");
        };
        let error = ControlError::Json(json);
        assert!(error.source().is_some());
        assert_eq!(error.into_response().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn setup_errors_keep_their_source() {
        let error = SimError::Setup {
            what: "the webhook HTTP client",
            source: "no TLS backend".into(),
        };
        assert_eq!(error.to_string(), "cannot build the webhook HTTP client");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("no TLS backend")
        );
    }
}
