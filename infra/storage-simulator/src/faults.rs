//! Injected faults for `/storage`, `/upload` and `/download` requests (never `/control`).
//!
//! Lifetime and latency (`probability`, `count`, `durationSecs`, `latencyMs`, `afterEffect`) are
//! the shared ones of `simulator_kit::faults`. This simulator's part matches requests whose path
//! contains `pathContains` (default: all) and, with `method`, only that method; it answers a GCS
//! error (`status` 429 `rateLimitExceeded`, with `Retry-After` when `retryAfterSecs` is given, or
//! a 5xx), or holds the request for `holdSecs` (default 600) and then answers 504 (`timeout`).

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::{FaultKind, PathScope, Reply, StatusAnswer, StatusFields};

use crate::error::GcsError;

const DEFAULT_HOLD: Duration = Duration::from_secs(600);

/// The active faults.
pub type Faults = simulator_kit::Faults<GcsFault>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcsFaultSpec {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcsFault {
    #[serde(flatten)]
    scope: PathScope,
    #[serde(flatten)]
    answer: StatusAnswer,
}

/// A request as faults see it: method and path.
pub struct Call<'r> {
    pub method: &'r str,
    pub path: &'r str,
}

/// What a fired fault answers instead of the simulator.
#[derive(Debug)]
pub enum Answer {
    Error(GcsError),
    /// Hold the request this long, then answer 504.
    Hold(Duration),
}

impl FaultKind for GcsFault {
    type Spec = GcsFaultSpec;
    type Request<'r> = Call<'r>;
    type Answer = Answer;
    const ANSWERS: &'static str = "status, timeout";

    fn from_spec(spec: GcsFaultSpec) -> Result<Self, String> {
        let fields = StatusFields {
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            timeout: spec.timeout,
            hold_secs: spec.hold_secs,
        };
        Ok(Self {
            scope: PathScope::new(spec.path_contains, spec.method)?,
            answer: StatusAnswer::new(fields, DEFAULT_HOLD)?,
        })
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        self.scope.matches(call.method, call.path)
    }

    fn answer(&self) -> Option<Answer> {
        Some(match self.answer.reply()? {
            Reply::Hold(hold) => Answer::Hold(hold),
            Reply::Error {
                status,
                retry_after_secs,
            } => {
                let error = if status == StatusCode::TOO_MANY_REQUESTS {
                    GcsError::rate_limited(None)
                } else {
                    GcsError::server(status)
                };
                Answer::Error(GcsError {
                    retry_after_secs,
                    ..error
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    type FaultSpec = simulator_kit::FaultSpec<GcsFaultSpec>;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn call<'r>(method: &'r str, path: &'r str) -> Call<'r> {
        Call { method, path }
    }

    #[test]
    fn scoping_counts_and_retry_after() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        let storm = r#"{"status": 429, "retryAfterSecs": 7, "method": "POST", "pathContains": "/upload/", "count": 1}"#;
        faults.add(spec(storm)).unwrap();
        let upload = call("POST", "/upload/storage/v1/b/b/o");
        assert!(
            faults
                .fire(&call("GET", "/storage/v1/b/b/o/x"), &mut rng)
                .is_none()
        );
        let hit = faults.fire(&upload, &mut rng).unwrap();
        let Some(Answer::Error(e)) = hit.answer else {
            panic!("expected an error answer");
        };
        assert_eq!(
            (e.reason, e.retry_after_secs),
            ("rateLimitExceeded", Some(7))
        );
        assert!(faults.fire(&upload, &mut rng).is_none());
        faults
            .add(spec(r#"{"timeout": true, "holdSecs": 2}"#))
            .unwrap();
        let hit = faults
            .fire(&call("GET", "/storage/v1/b/b/o/x"), &mut rng)
            .unwrap();
        assert!(matches!(hit.answer, Some(Answer::Hold(d)) if d == Duration::from_secs(2)));
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "timeout": true}"#,
            r#"{"latencyMs": 5, "retryAfterSecs": 1}"#,
            r#"{"status": 503, "probability": 2}"#,
            r#"{"status": 503, "pathContains": "/control"}"#,
            r#"{"timeout": true, "holdSecs": 0}"#,
            r#"{"uploadError": true}"#,
        ] {
            assert!(
                serde_json::from_str::<FaultSpec>(bad)
                    .map_err(|e| e.to_string())
                    .and_then(|s| faults.add(s))
                    .is_err(),
                "{bad}"
            );
        }
    }
}
