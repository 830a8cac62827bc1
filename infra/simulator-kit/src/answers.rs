//! Parts of a fault that most simulators share: scoping by path and method, and answering with an
//! API error or a held request. A simulator's [`FaultKind`](crate::FaultKind) lists their posted
//! fields itself (flat, beside its own) and keeps these as `#[serde(flatten)]` fields for listing.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;

use crate::faults::{check_status, outside_control, positive_secs};

/// Matches requests whose path contains `pathContains` (default: all) and, with `method`, only
/// that method's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathScope {
    pub path_contains: Option<String>,
    pub method: Option<String>,
}

impl PathScope {
    /// Refuses a `pathContains` naming `/control`.
    pub fn new(path_contains: Option<String>, method: Option<String>) -> Result<Self, String> {
        outside_control(path_contains.as_deref())?;
        Ok(Self {
            path_contains,
            method,
        })
    }

    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// Answers an API error with `status` (429 or a 5xx; `Retry-After` from `retryAfterSecs`) or,
/// with `timeout`, holds the request for `holdSecs` and then answers 504.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub timeout: bool,
    pub hold_secs: f64,
}

/// The posted fields of a [`StatusAnswer`].
#[derive(Debug, Default)]
pub struct StatusFields {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
}

/// What a [`StatusAnswer`] asks the simulator to answer, in its own error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Error {
        status: StatusCode,
        retry_after_secs: Option<u64>,
    },
    /// Hold the request this long, then answer 504.
    Hold(Duration),
}

impl StatusAnswer {
    /// `default_hold` applies to a `timeout` without `holdSecs`.
    pub fn new(fields: StatusFields, default_hold: Duration) -> Result<Self, String> {
        let timeout = fields.timeout.unwrap_or(false);
        if fields.status.is_some() && timeout {
            return Err("status and timeout exclude each other".into());
        }
        check_status(fields.status)?;
        if fields.retry_after_secs.is_some() && fields.status.is_none() {
            return Err("retryAfterSecs needs a status".into());
        }
        let hold = positive_secs("holdSecs", fields.hold_secs)?.unwrap_or(default_hold);
        Ok(Self {
            status: fields.status,
            retry_after_secs: fields.retry_after_secs,
            timeout,
            hold_secs: hold.as_secs_f64(),
        })
    }

    /// `None` when the fault only adds latency.
    pub fn reply(&self) -> Option<Reply> {
        if self.timeout {
            return Some(Reply::Hold(Duration::from_secs_f64(self.hold_secs)));
        }
        let status = StatusCode::from_u16(self.status?).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Some(Reply::Error {
            status,
            retry_after_secs: self.retry_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        status: Option<u16>,
        timeout: Option<bool>,
        hold_secs: Option<f64>,
    ) -> Result<StatusAnswer, String> {
        let fields = StatusFields {
            status,
            timeout,
            hold_secs,
            ..StatusFields::default()
        };
        StatusAnswer::new(fields, Duration::from_secs(300))
    }

    #[test]
    fn status_hold_and_latency_only() {
        let storm = StatusAnswer::new(
            StatusFields {
                status: Some(429),
                retry_after_secs: Some(3),
                ..StatusFields::default()
            },
            Duration::from_secs(300),
        )
        .unwrap();
        assert_eq!(
            storm.reply(),
            Some(Reply::Error {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after_secs: Some(3)
            })
        );
        let held = answer(None, Some(true), None).unwrap();
        assert_eq!(held.reply(), Some(Reply::Hold(Duration::from_secs(300))));
        assert_eq!(answer(None, None, None).unwrap().reply(), None);
        assert!(answer(Some(503), Some(true), None).is_err());
        assert!(answer(None, Some(true), Some(-1.0)).is_err());
        assert!(answer(Some(418), None, None).is_err());
    }

    #[test]
    fn path_scope() {
        let scope = PathScope::new(Some("/events".into()), Some("post".into())).unwrap();
        assert!(scope.matches("POST", "/v1.0/me/events"));
        assert!(!scope.matches("GET", "/v1.0/me/events"));
        assert!(!scope.matches("POST", "/v1.0/me/calendar"));
        assert!(PathScope::new(Some("/control/faults".into()), None).is_err());
    }
}
