//! Injected faults for `/api/v4` requests (never `/control`).
//!
//! Each active fault matches requests whose path starts with its `pathPrefix`, fires with its
//! `probability`, and ends after `count` firings or `durationSecs`, whichever comes first.
//! Several faults may fire on one request: their latencies add up and the first one with a
//! `status` (in creation order) decides the error returned after the delay.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    pub latency_ms: Option<u64>,
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub probability: Option<f64>,
    pub count: Option<u32>,
    pub duration_secs: Option<f64>,
    pub path_prefix: Option<String>,
    /// Let the request make its change first, then wait and answer with the fault: the change
    /// happened but the caller does not know (a lost response).
    pub after_effect: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub id: u64,
    pub latency_ms: Option<u64>,
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub probability: f64,
    /// Firings left, when count-limited.
    pub remaining: Option<u32>,
    pub path_prefix: String,
    pub after_effect: bool,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    deadline: Option<Instant>,
}

impl Fault {
    fn is_live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }
}

/// What the faults that fired on one request ask for.
#[derive(Debug)]
pub struct Hit {
    pub latency: Duration,
    pub error: Option<ApiError>,
    /// The request runs first; the latency and the error come after it.
    pub after_effect: bool,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Fault>,
    next_id: u64,
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, ApiError> {
        let invalid = |m: &str| Err(ApiError::unprocessable(m));
        if spec.latency_ms.is_none() && spec.status.is_none() {
            return invalid("a fault needs latencyMs, status or both");
        }
        if spec.status.is_some_and(|s| !ALLOWED_STATUSES.contains(&s)) {
            return invalid("status must be one of 429, 500, 502, 503, 504");
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return invalid("probability must be between 0 and 1");
        }
        if spec.count == Some(0) {
            return invalid("count must be at least 1");
        }
        let duration = match spec.duration_secs {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                return invalid("durationSecs must be positive");
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
        let path_prefix = spec.path_prefix.unwrap_or_else(|| "/api/v4".to_owned());
        if !path_prefix.starts_with("/api/v4") {
            return invalid("pathPrefix must start with /api/v4 (faults never apply to /control)");
        }
        self.next_id += 1;
        let id = self.next_id;
        self.active.push(Fault {
            id,
            latency_ms: spec.latency_ms,
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            probability,
            remaining: spec.count,
            path_prefix,
            after_effect: spec.after_effect.unwrap_or(false),
            expires_at: duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
            deadline: duration.map(|d| Instant::now() + d),
        });
        Ok(id)
    }

    pub fn list(&mut self) -> Vec<Fault> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        self.active.clone()
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.active.len();
        self.active.retain(|f| f.id != id);
        self.active.len() != before
    }

    /// Rolls every live fault matching `path`; `None` when none fired.
    pub fn fire(&mut self, path: &str) -> Option<Hit> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit> = None;
        for fault in self
            .active
            .iter_mut()
            .filter(|f| path.starts_with(&f.path_prefix))
        {
            if fault.probability < 1.0 && rand::random::<f64>() >= fault.probability {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            let hit = hit.get_or_insert(Hit {
                latency: Duration::ZERO,
                error: None,
                after_effect: false,
            });
            hit.after_effect |= fault.after_effect;
            hit.latency += Duration::from_millis(fault.latency_ms.unwrap_or(0));
            if hit.error.is_none() {
                hit.error = fault.status.map(|s| error_for(s, fault.retry_after_secs));
            }
        }
        self.active.retain(|f| f.is_live(now));
        hit
    }
}

fn error_for(status: u16, retry_after_secs: Option<u64>) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut error = if status == StatusCode::TOO_MANY_REQUESTS {
        ApiError::new(status, "RATE_LIMITED", "rate limit exceeded")
    } else {
        ApiError::new(status, "UNAVAILABLE", "service temporarily unavailable")
    };
    error.retry_after_secs = retry_after_secs;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn count_limited_fault_fires_exactly_n_times() {
        let mut faults = Faults::default();
        faults.add(spec(r#"{"status": 500, "count": 2}"#)).unwrap();
        assert_eq!(
            faults.fire("/api/v4/loans").unwrap().error.unwrap().status,
            500
        );
        assert!(faults.fire("/api/v4/loans").is_some());
        assert!(faults.fire("/api/v4/loans").is_none());
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
        let hit = faults.fire("/api/v4/changes").unwrap();
        assert_eq!(hit.latency, Duration::from_millis(12));
        assert_eq!(hit.error.unwrap().retry_after_secs, Some(3));
        assert_eq!(
            faults.fire("/api/v4/loans").unwrap().latency,
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
        assert!(faults.fire("/api/v4/loans").is_none());
    }
}
