//! Errors: the QBO `Fault` body the API answers with, the control API's error, and the
//! simulator's own start-up errors.
//!
//! A QBO error is `{"Fault":{"Error":[{"Message","Detail","code"}],"type"},"time"}`. The `time`
//! is the simulated clock's: a [`Fault`] renders itself with the wall clock and carries itself as
//! a response extension, and the outermost API layer re-renders it with the simulated time.

use std::{io, net::SocketAddr};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::SimClock;

pub use simulator_kit::{ConfigError, control::ControlError};

/// `Fault.type` values the real API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FaultType {
    ValidationFault,
    SystemFault,
    AuthenticationFault,
    AuthorizationFault,
    /// The throttle body spells it this way.
    #[serde(rename = "SERVICE")]
    Service,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultError {
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Detail")]
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
}

/// A QBO API error: an HTTP status (200 for a fault inside a success) and the `Fault` body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {fault_type:?} {code}: {detail}", code = self.error.code, detail = self.error.detail)]
pub struct Fault {
    pub status: StatusCode,
    pub fault_type: FaultType,
    pub error: FaultError,
}

impl Fault {
    pub fn new(
        status: StatusCode,
        fault_type: FaultType,
        code: &str,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            fault_type,
            error: FaultError {
                message: message.into(),
                detail: detail.into(),
                code: code.to_owned(),
                element: None,
            },
        }
    }

    /// 429 `ThrottleExceeded`, exactly as the real API spells it (no `Retry-After`).
    pub fn throttled() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            FaultType::Service,
            "3001",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.",
        )
    }

    /// 401: missing, unknown, expired or revoked access token.
    pub fn unauthenticated(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            FaultType::AuthenticationFault,
            "3200",
            "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            detail,
        )
    }

    /// 403: the token belongs to another realm (or the realm does not exist).
    pub fn unauthorized_realm() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            FaultType::AuthorizationFault,
            "3100",
            "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
            "The application is not authorized for this company.",
        )
    }

    /// 400 ValidationFault with the given code.
    pub fn validation(code: &str, message: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            FaultType::ValidationFault,
            code,
            message,
            detail,
        )
    }

    pub fn query_parse(detail: impl Into<String>) -> Self {
        Self::validation(
            "4000",
            "Error parsing query",
            format!("QueryParserError: {}", detail.into()),
        )
    }

    pub fn not_found(entity: &str, id: &str) -> Self {
        Self::validation(
            "610",
            "Object Not Found",
            format!("Object Not Found : {entity} {id} does not exist or has been deleted."),
        )
    }

    /// Code 5010: the `SyncToken` sent is not the entity's current one.
    pub fn stale_object() -> Self {
        Self::validation(
            "5010",
            "Stale Object Error",
            "Stale Object Error : You and another user were working on the same thing. \
             The other user finished before you did, so your work was not saved.",
        )
    }

    /// A `SystemFault` with the given HTTP status (5xx, or 200 for a fault inside a success).
    pub fn system(status: StatusCode) -> Self {
        Self::new(
            status,
            FaultType::SystemFault,
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving your data.",
        )
    }

    pub fn body(&self, time: &str) -> Value {
        json!({"Fault": {"Error": [self.error], "type": self.fault_type}, "time": time})
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let time = SimClock::wall().format_precise(chrono::Utc::now());
        let mut response = (self.status, Json(self.body(&time))).into_response();
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
    #[error("cannot build the webhook HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("serving HTTP failed")]
    Serve(#[source] io::Error),
    #[error("the simulator task panicked")]
    Panicked(#[from] tokio::task::JoinError),
}
