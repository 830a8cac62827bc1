//! Injected faults for `/v1.0` and token requests (never `/control`).
//!
//! Lifetime and latency (`probability`, `count`, `durationSecs`, `latencyMs`, `afterEffect`) are
//! the shared ones of `simulator_kit::faults`. This simulator's part matches requests whose path
//! contains `pathContains` (default: all), with `method` only that method's, and with `userId`
//! only that mailbox's (`/v1.0/users/{id}/...`, by id or mail). It answers 429
//! `TooManyRequests` (a 429 storm), a 5xx (an outage), or holds the request (`timeout`) for
//! `holdSecs` (default 300) and then answers 504; `retryAfterSecs` (with a `status`) adds a
//! `Retry-After` header and `code` replaces the error code.

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::{FaultKind, PathScope, Reply, StatusAnswer, StatusFields};

use crate::error::GraphError;

/// How long a `timeout` fault holds a request without `holdSecs`.
const DEFAULT_HOLD: Duration = Duration::from_secs(300);

/// The active faults.
pub type Faults = simulator_kit::Faults<GraphFault>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphFaultSpec {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub retry_after_secs: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub user_id: Option<String>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphFault {
    #[serde(flatten)]
    scope: PathScope,
    #[serde(flatten)]
    answer: StatusAnswer,
    code: Option<String>,
    user_id: Option<String>,
}

/// A request as faults see it: method, path, and the names of the path's mailbox (as written,
/// and its id).
pub struct Call<'r> {
    pub method: &'r str,
    pub path: &'r str,
    pub users: &'r [&'r str],
}

/// What a fired fault answers instead of the simulator.
#[derive(Debug)]
pub enum Answer {
    Error(GraphError),
    /// Hold the request this long, then answer 504.
    Hold(Duration),
}

impl FaultKind for GraphFault {
    type Spec = GraphFaultSpec;
    type Request<'r> = Call<'r>;
    type Answer = Answer;
    const ANSWERS: &'static str = "status, timeout";

    fn from_spec(spec: GraphFaultSpec) -> Result<Self, String> {
        let fields = StatusFields {
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            timeout: spec.timeout,
            hold_secs: spec.hold_secs,
        };
        Ok(Self {
            scope: PathScope::new(spec.path_contains, spec.method)?,
            answer: StatusAnswer::new(fields, DEFAULT_HOLD)?,
            code: spec.code,
            user_id: spec.user_id,
        })
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        self.scope.matches(call.method, call.path)
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| call.users.iter().any(|x| x.eq_ignore_ascii_case(u)))
    }

    fn answer(&self) -> Option<Answer> {
        Some(match self.answer.reply()? {
            Reply::Hold(hold) => Answer::Hold(hold),
            Reply::Error {
                status,
                retry_after_secs,
            } => {
                let mut error = if status == StatusCode::TOO_MANY_REQUESTS {
                    GraphError::throttled(retry_after_secs)
                } else {
                    GraphError::server(status, retry_after_secs)
                };
                if let Some(code) = &self.code {
                    error.code.clone_from(code);
                }
                Answer::Error(error)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    type FaultSpec = simulator_kit::FaultSpec<GraphFaultSpec>;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn call<'r>(method: &'r str, path: &'r str, users: &'r [&'r str]) -> Call<'r> {
        Call {
            method,
            path,
            users,
        }
    }

    fn error_of(hit: simulator_kit::Hit<Answer>) -> GraphError {
        match hit.answer {
            Some(Answer::Error(error)) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn user_method_and_path_scoping_and_counts() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(
                r#"{"status": 429, "userId": "ann", "count": 1, "retryAfterSecs": 2}"#,
            ))
            .unwrap();
        faults
            .add(spec(
                r#"{"status": 503, "pathContains": "/events", "method": "POST"}"#,
            ))
            .unwrap();
        let path = "/v1.0/users/bob/calendar/getSchedule";
        assert!(
            faults
                .fire(&call("POST", path, &["bob"]), &mut rng)
                .is_none()
        );
        let path = "/v1.0/users/ANN/calendar/getSchedule";
        let hit = faults
            .fire(&call("POST", path, &["ANN", "ann"]), &mut rng)
            .unwrap();
        let error = error_of(hit);
        assert_eq!(
            (error.code.as_str(), error.retry_after),
            ("TooManyRequests", Some(2))
        );
        assert!(
            faults
                .fire(&call("POST", path, &["ann"]), &mut rng)
                .is_none()
        );
        let path = "/v1.0/users/bob/events";
        assert!(
            faults
                .fire(&call("GET", path, &["bob"]), &mut rng)
                .is_none()
        );
        let hit = faults
            .fire(&call("POST", path, &["bob"]), &mut rng)
            .unwrap();
        assert_eq!(error_of(hit).status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_timeout_holds() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(r#"{"timeout": true, "holdSecs": 2}"#))
            .unwrap();
        let hit = faults.fire(&call("GET", "/v1.0/x", &[]), &mut rng).unwrap();
        assert!(matches!(hit.answer, Some(Answer::Hold(d)) if d == Duration::from_secs(2)));
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "timeout": true}"#,
            r#"{"status": 503, "probability": 2}"#,
            r#"{"status": 503, "pathContains": "/control"}"#,
            r#"{"status": 503, "count": 0}"#,
        ] {
            assert!(faults.add(spec(bad)).is_err(), "{bad}");
        }
    }
}
