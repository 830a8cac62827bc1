//! Injected faults for `/api/v4` requests (never `/control`).
//!
//! Lifetime and latency (`probability`, `count`, `durationSecs`, `latencyMs`, `afterEffect`) are
//! the shared ones of `simulator_kit::faults`. This simulator's part matches requests whose path
//! starts with `pathPrefix` (default `/api/v4`) and answers `status` (429 `RATE_LIMITED` or a 5xx
//! `UNAVAILABLE`, with `Retry-After` when `retryAfterSecs` is given).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::faults::{FaultKind, check_status};

use crate::error::ApiError;

const API_PREFIX: &str = "/api/v4";

/// The active faults.
pub type Faults = simulator_kit::Faults<VenturesFault>;
/// A posted fault.
pub type FaultSpec = simulator_kit::FaultSpec<VenturesFaultSpec>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenturesFaultSpec {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VenturesFault {
    status: Option<u16>,
    retry_after_secs: Option<u64>,
    path_prefix: String,
}

impl FaultKind for VenturesFault {
    type Spec = VenturesFaultSpec;
    /// The request's path.
    type Request<'r> = &'r str;
    type Answer = ApiError;
    const ANSWERS: &'static str = "status";

    fn from_spec(spec: VenturesFaultSpec) -> Result<Self, String> {
        check_status(spec.status)?;
        let path_prefix = spec.path_prefix.unwrap_or_else(|| API_PREFIX.to_owned());
        if !path_prefix.starts_with(API_PREFIX) {
            return Err(
                "pathPrefix must start with /api/v4 (faults never apply to /control)".into(),
            );
        }
        Ok(Self {
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            path_prefix,
        })
    }

    fn matches(&self, path: &&str) -> bool {
        path.starts_with(&self.path_prefix)
    }

    fn answer(&self) -> Option<ApiError> {
        let status = StatusCode::from_u16(self.status?).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut error = if status == StatusCode::TOO_MANY_REQUESTS {
            ApiError::new(status, "RATE_LIMITED", "rate limit exceeded")
        } else {
            ApiError::new(status, "UNAVAILABLE", "service temporarily unavailable")
        };
        error.retry_after_secs = self.retry_after_secs;
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fire(faults: &mut Faults, path: &str) -> Option<simulator_kit::Hit<ApiError>> {
        faults.fire(&path, &mut rand::rng())
    }

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn count_limited_fault_fires_exactly_n_times() {
        let mut faults = Faults::default();
        faults.add(spec(r#"{"status": 500, "count": 2}"#)).unwrap();
        assert_eq!(
            fire(&mut faults, "/api/v4/loans")
                .unwrap()
                .answer
                .unwrap()
                .status,
            500
        );
        assert!(fire(&mut faults, "/api/v4/loans").is_some());
        assert!(fire(&mut faults, "/api/v4/loans").is_none());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn path_prefix_limits_matches_and_latencies_add_up() {
        let mut faults = Faults::default();
        faults
            .add(spec(r#"{"latencyMs": 5, "pathPrefix": "/api/v4/changes"}"#))
            .unwrap();
        faults
            .add(spec(
                r#"{"latencyMs": 7, "status": 429, "retryAfterSecs": 3}"#,
            ))
            .unwrap();
        let hit = fire(&mut faults, "/api/v4/changes").unwrap();
        assert_eq!(hit.latency, Duration::from_millis(12));
        assert_eq!(hit.answer.unwrap().retry_after_secs, Some(3));
        assert_eq!(
            fire(&mut faults, "/api/v4/loans").unwrap().latency,
            Duration::from_millis(7)
        );
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "probability": 2}"#,
        ] {
            assert!(faults.add(spec(bad)).is_err(), "{bad}");
        }
        assert!(
            faults
                .add(spec(r#"{"status": 503, "pathPrefix": "/control"}"#))
                .is_err()
        );
        assert!(
            faults
                .add(spec(r#"{"status": 503, "probability": 0}"#))
                .is_ok()
        );
        assert!(fire(&mut faults, "/api/v4/loans").is_none());
    }
}
