//! Errors: the Graph error body the API answers with, the control API's error, and the
//! simulator's own start-up errors.
//!
//! A Graph error is `{"error":{"code","message","innerError":{"date","request-id",
//! "client-request-id"}}}`. A [`GraphError`] renders itself with a fresh request id and carries
//! itself as a response extension; the outermost API layer re-renders it with the request's own
//! `request-id` (the one in the response headers and the ledger).

use std::{io, net::SocketAddr};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

pub use simulator_kit::{ConfigError, control::ControlError};

/// A Graph API error: HTTP status, `error.code`, `error.message`, and an optional `Retry-After`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds, sent as the `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after = secs;
        self
    }

    pub fn with_code(mut self, code: &str) -> Self {
        code.clone_into(&mut self.code);
        self
    }

    /// 400 `BadRequest`: unreadable JSON, unknown segment.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `ErrorInvalidRequest`: a readable body Graph would refuse.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
    }

    pub fn unreadable_json() -> Self {
        Self::bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and \
             payload is of valid JSON format.",
        )
    }

    /// 401 `InvalidAuthenticationToken`.
    pub fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    /// 404 `ErrorItemNotFound`: an unknown or deleted event.
    pub fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 404 `ErrorInvalidUser`: no such mailbox.
    pub fn invalid_user(user: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    }

    /// 429 `TooManyRequests`, with `Retry-After` when given.
    pub fn throttled(retry_after: Option<u64>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        )
        .with_retry_after(retry_after)
    }

    /// 429 `ApplicationThrottled`: more than the mailbox's concurrent requests.
    pub fn mailbox_concurrency(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        )
        .with_retry_after(Some(retry_after))
    }

    /// A 5xx (503 `serviceNotAvailable`, others `generalException`).
    pub fn server(status: StatusCode, retry_after: Option<u64>) -> Self {
        let (code, message) = match status {
            StatusCode::SERVICE_UNAVAILABLE => (
                "serviceNotAvailable",
                "The service is temporarily unavailable. Try again later.",
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "timeout",
                "The operation timed out before it could be completed.",
            ),
            _ => ("generalException", "An unspecified error has occurred."),
        };
        Self::new(status, code, message).with_retry_after(retry_after)
    }

    pub fn body(&self, request_id: &str, client_request_id: &str) -> Value {
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }})
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        let mut response = (self.status, Json(self.body(&id, &id))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
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
    #[error("cannot build the notification HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("serving HTTP failed")]
    Serve(#[source] io::Error),
    #[error("the simulator task panicked")]
    Panicked(#[from] tokio::task::JoinError),
}
