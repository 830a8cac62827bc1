//! Errors: the Cloud Storage JSON API error body, the control API's error, and the simulator's own
//! start-up errors.
//!
//! A GCS error is `{"error":{"code":404,"message":"...","errors":[{"domain":"global","reason":"notFound","message":"..."}]}}`.
//! Each answer carries itself as a response extension so the ledger can record the reason.

use std::{io, net::SocketAddr};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

pub use simulator_kit::{ConfigError, control::ControlError};

/// A Cloud Storage API error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {reason}: {message}")]
pub struct GcsError {
    pub status: StatusCode,
    pub domain: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// `(locationType, location)` of the offending input, as GCS reports for headers.
    pub location: Option<(&'static str, &'static str)>,
    /// `Retry-After` in seconds (GCS sends none; an injected fault may).
    pub retry_after_secs: Option<u64>,
}

impl GcsError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            domain: "global",
            reason,
            message: message.into(),
            location: None,
            retry_after_secs: None,
        }
    }

    pub fn no_such_object(bucket: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "notFound",
            format!("No such object: {bucket}/{name}"),
        )
    }

    pub fn no_such_bucket() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "notFound",
            "The specified bucket does not exist.",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "notFound", "Not Found")
    }

    pub fn required(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "required",
            format!("Required parameter: {what}"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 412 `conditionNotMet` (an `ifGenerationMatch` that did not hold).
    pub fn condition_not_met() -> Self {
        Self {
            location: Some(("header", "If-Match")),
            ..Self::new(
                StatusCode::PRECONDITION_FAILED,
                "conditionNotMet",
                "At least one of the pre-conditions you specified did not hold.",
            )
        }
    }

    /// 401: no bearer token (`required`) or the wrong one (`authError`).
    pub fn unauthenticated(missing: bool) -> Self {
        let (reason, message) = if missing {
            (
                "required",
                "Anonymous caller does not have storage.objects access to the Google Cloud Storage object.",
            )
        } else {
            ("authError", "Invalid Credentials")
        };
        Self {
            location: Some(("header", "Authorization")),
            ..Self::new(StatusCode::UNAUTHORIZED, reason, message)
        }
    }

    /// 429 `rateLimitExceeded`.
    pub fn rate_limited(retry_after_secs: Option<u64>) -> Self {
        Self {
            domain: "usageLimits",
            retry_after_secs,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "The rate of requests exceeds the rate limit. Please reduce the rate of requests.",
            )
        }
    }

    /// A 5xx (an outage) or 504 (a held request let go).
    pub fn server(status: StatusCode) -> Self {
        let (reason, message) = match status.as_u16() {
            502 => ("badGateway", "Bad Gateway"),
            503 => ("backendError", "Backend Error"),
            504 => ("gatewayTimeout", "Gateway Timeout"),
            _ => ("backendError", "Internal Error"),
        };
        Self::new(status, reason, message)
    }
}

impl IntoResponse for GcsError {
    fn into_response(self) -> Response {
        let mut detail = json!({
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        });
        if let Some((location_type, location)) = self.location {
            detail["locationType"] = json!(location_type);
            detail["location"] = json!(location);
        }
        let body = json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "errors": [detail],
        }});
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
