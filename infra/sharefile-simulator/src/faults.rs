//! Injected faults for `/oauth`, `/sf/v3` and `ChunkUri` requests (never `/control`).
//!
//! Lifetime and latency (`probability`, `count`, `durationSecs`, `latencyMs`, `afterEffect`) are
//! the shared ones of `simulator_kit::faults`. This simulator's part matches requests whose path
//! contains `pathContains` (default: all) and, with `method`, only that method; it answers a
//! ShareFile error (`status` 429 `Throttled`, with `Retry-After` when `retryAfterSecs` is given,
//! or a 5xx), holds the request for `holdSecs` (default 600) and then answers 504 (`timeout`),
//! or, on `ChunkUri` uploads only, answers HTTP 200 `ERROR: ...` (`uploadError`).

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::{FaultKind, PathScope, Reply, StatusAnswer, StatusFields};

use crate::{
    error::{SfError, UploadError},
    upload::UPLOAD_PATH,
};

const DEFAULT_HOLD: Duration = Duration::from_secs(600);

/// The active faults.
pub type Faults = simulator_kit::Faults<SfFault>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfFaultSpec {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub upload_error: Option<bool>,
    pub message: Option<String>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SfFault {
    #[serde(flatten)]
    scope: PathScope,
    #[serde(flatten)]
    answer: StatusAnswer,
    upload_error: bool,
    message: Option<String>,
}

/// A request as faults see it: method and path.
pub struct Call<'r> {
    pub method: &'r str,
    pub path: &'r str,
}

/// What a fired fault answers instead of the simulator.
#[derive(Debug)]
pub enum Answer {
    Error(SfError),
    Upload(UploadError),
    /// Hold the request this long, then answer 504.
    Hold(Duration),
}

impl FaultKind for SfFault {
    type Spec = SfFaultSpec;
    type Request<'r> = Call<'r>;
    type Answer = Answer;
    const ANSWERS: &'static str = "status, timeout, uploadError";

    fn from_spec(spec: SfFaultSpec) -> Result<Self, String> {
        let upload_error = spec.upload_error.unwrap_or(false);
        if upload_error && (spec.status.is_some() || spec.timeout == Some(true)) {
            return Err("status, timeout and uploadError exclude each other".into());
        }
        if spec.message.is_some() && !upload_error {
            return Err("message applies to uploadError only".into());
        }
        let fields = StatusFields {
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            timeout: spec.timeout,
            hold_secs: spec.hold_secs,
        };
        Ok(Self {
            scope: PathScope::new(spec.path_contains, spec.method)?,
            answer: StatusAnswer::new(fields, DEFAULT_HOLD)?,
            upload_error,
            message: spec.message,
        })
    }

    /// An `uploadError` fault matches `ChunkUri` uploads only.
    fn matches(&self, call: &Call<'_>) -> bool {
        self.scope.matches(call.method, call.path)
            && (!self.upload_error || call.path == UPLOAD_PATH)
    }

    fn answer(&self) -> Option<Answer> {
        if self.upload_error {
            let message = self.message.clone();
            return Some(Answer::Upload(UploadError(message.unwrap_or_else(|| {
                "The upload could not be completed (simulated)".into()
            }))));
        }
        Some(match self.answer.reply()? {
            Reply::Hold(hold) => Answer::Hold(hold),
            Reply::Error {
                status,
                retry_after_secs,
            } => {
                let error = if status == StatusCode::TOO_MANY_REQUESTS {
                    SfError::throttled(None)
                } else {
                    SfError::server(status)
                };
                Answer::Error(SfError {
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

    type FaultSpec = simulator_kit::FaultSpec<SfFaultSpec>;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn call<'r>(method: &'r str, path: &'r str) -> Call<'r> {
        Call { method, path }
    }

    #[test]
    fn scoping_counts_and_upload_errors() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(
                r#"{"status": 429, "retryAfterSecs": 7, "method": "POST", "count": 1}"#,
            ))
            .unwrap();
        faults.add(spec(r#"{"uploadError": true}"#)).unwrap();
        assert!(
            faults
                .fire(&call("GET", "/sf/v3/Items(x)"), &mut rng)
                .is_none()
        );
        let Some(Answer::Error(e)) = faults
            .fire(&call("POST", "/sf/v3/Items(x)/Folder"), &mut rng)
            .unwrap()
            .answer
        else {
            panic!("expected an error answer");
        };
        assert_eq!((e.reason, e.retry_after_secs), ("Throttled", Some(7)));
        assert!(
            faults
                .fire(&call("POST", "/sf/v3/Items(x)/Folder"), &mut rng)
                .is_none()
        );
        let hit = faults.fire(&call("POST", UPLOAD_PATH), &mut rng).unwrap();
        assert!(matches!(hit.answer, Some(Answer::Upload(_))));
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "uploadError": true}"#,
            r#"{"status": 503, "timeout": true}"#,
            r#"{"latencyMs": 5, "retryAfterSecs": 1}"#,
            r#"{"status": 503, "probability": 2}"#,
            r#"{"status": 503, "pathContains": "/control"}"#,
            r#"{"timeout": true, "holdSecs": 0}"#,
        ] {
            assert!(faults.add(spec(bad)).is_err(), "{bad}");
        }
    }
}
