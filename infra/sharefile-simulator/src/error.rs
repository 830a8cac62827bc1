//! Errors: the ShareFile error body the API answers with, the `ERROR:` text a `ChunkUri` answers
//! inside an HTTP 200, the control API's error, and the simulator's own start-up errors.
//!
//! A ShareFile error is `{"code":"NotFound","message":{"lang":"en-US","value":"..."},"reason":"NotFound"}`:
//! `code` names the HTTP status, `reason` the cause (`Throttled`, `Conflict`, `FileTooLarge`,
//! `QuotaExceeded`, ...). Each answer carries itself as a response extension so the ledger can
//! record the reason.

use std::{io, net::SocketAddr};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

pub use simulator_kit::{ConfigError, control::ControlError};

/// A ShareFile API error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {reason}: {message}")]
pub struct SfError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// `Retry-After` in seconds, when set (ShareFile's own throttling numbers are unpublished).
    pub retry_after_secs: Option<u64>,
}

impl SfError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            reason,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "NotFound", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            message,
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", "Conflict", message)
    }

    /// 413 `FileTooLarge` (the status is unverified).
    pub fn file_too_large(size: u64, max: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "FileTooLarge",
            format!("The file is {size} bytes; the largest file allowed is {max} bytes"),
        )
    }

    /// 403 `QuotaExceeded` (the status is unverified).
    pub fn quota_exceeded(needed: u64, free: u64) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "QuotaExceeded",
            format!("The account's storage quota is exceeded: {needed} bytes needed, {free} free"),
        )
    }

    /// 429 `Throttled`, with `Retry-After` when given.
    pub fn throttled(retry_after_secs: Option<u64>) -> Self {
        Self {
            retry_after_secs,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Throttled",
                "Too many requests; try again later",
            )
        }
    }

    /// A 5xx (an outage) or 504 (a held request let go).
    pub fn server(status: StatusCode) -> Self {
        let code = match status.as_u16() {
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "InternalServerError",
        };
        Self::new(
            status,
            code,
            code,
            "The server could not process the request",
        )
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": {"lang": "en-US", "value": self.message},
            "reason": self.reason,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// A `ChunkUri` failure: HTTP 200 with a `text/plain` body `ERROR: <message>`; nothing stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ERROR: {0}")]
pub struct UploadError(pub String);

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::OK, self.to_string()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Why the simulator could not start or stopped serving.
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
    #[error("serving HTTP failed")]
    Serve(#[source] io::Error),
    #[error("the simulator task panicked")]
    Panicked(#[from] tokio::task::JoinError),
}
