//! Injected faults for `/oauth`, `/sf/v3` and `ChunkUri` requests (never `/control`).
//!
//! A fault matches requests whose path contains `pathContains` (default: all) and, with
//! `method`, only that method; it fires with `probability` (the simulator's seeded RNG) and ends
//! after `count` firings or `durationSecs`, whichever comes first. It answers a ShareFile error
//! (`status` 429 `Throttled`, with `Retry-After` when `retryAfterSecs` is given, or a 5xx), holds
//! the request for `holdSecs` and then answers 504 (`timeout`), or, on `ChunkUri` uploads only,
//! answers HTTP 200 `ERROR: ...` (`uploadError`), each after `latencyMs`. Several faults may fire
//! on one request: latencies add up and the first with an answer (in creation order) decides it.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{
    error::{SfError, UploadError},
    upload::UPLOAD_PATH,
};

const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
const DEFAULT_HOLD_SECS: f64 = 600.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub latency_ms: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub upload_error: Option<bool>,
    pub message: Option<String>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
    pub probability: Option<f64>,
    pub count: Option<u32>,
    pub duration_secs: Option<f64>,
    /// The request runs (its effect happens), then the fault answers: a lost response.
    pub after_effect: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedFault {
    pub id: u64,
    pub status: Option<u16>,
    pub retry_after_secs: Option<u64>,
    pub latency_ms: Option<u64>,
    pub timeout: bool,
    pub hold_secs: f64,
    pub upload_error: bool,
    pub message: Option<String>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
    pub probability: f64,
    /// Firings left, when count-limited.
    pub remaining: Option<u32>,
    pub after_effect: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub fired: u64,
    #[serde(skip)]
    deadline: Option<Instant>,
}

/// What a fired fault answers instead of the simulator.
#[derive(Debug)]
pub enum Answer {
    Error(SfError),
    Upload(UploadError),
    /// Hold the request this long, then answer 504.
    Hold(Duration),
}

impl InjectedFault {
    fn is_live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && (!self.upload_error || path == UPLOAD_PATH)
    }

    fn answer(&self) -> Option<Answer> {
        if self.upload_error {
            let message = self.message.clone();
            return Some(Answer::Upload(UploadError(message.unwrap_or_else(|| {
                "The upload could not be completed (simulated)".into()
            }))));
        }
        if self.timeout {
            return Some(Answer::Hold(Duration::from_secs_f64(self.hold_secs)));
        }
        let error = match self.status? {
            429 => SfError::throttled(None),
            s => {
                SfError::server(StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
            }
        };
        Some(Answer::Error(SfError {
            retry_after_secs: self.retry_after_secs,
            ..error
        }))
    }
}

/// What the faults that fired on one request ask for.
#[derive(Debug)]
pub struct Hit {
    pub latency: Duration,
    pub answer: Option<Answer>,
    pub after_effect: bool,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<InjectedFault>,
    next_id: u64,
}

fn positive_secs(field: &str, value: Option<f64>) -> Result<Option<f64>, String> {
    match value {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(format!("{field} must be positive")),
        other => Ok(other),
    }
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        let timeout = spec.timeout.unwrap_or(false);
        let upload_error = spec.upload_error.unwrap_or(false);
        let answers =
            usize::from(spec.status.is_some()) + usize::from(timeout) + usize::from(upload_error);
        if answers == 0 && spec.latency_ms.is_none() {
            return Err("a fault needs status, timeout, uploadError or latencyMs".into());
        }
        if answers > 1 {
            return Err("status, timeout and uploadError exclude each other".into());
        }
        if spec.status.is_some_and(|s| !ALLOWED_STATUSES.contains(&s)) {
            return Err("status must be one of 429, 500, 502, 503, 504".into());
        }
        if spec.retry_after_secs.is_some() && spec.status.is_none() {
            return Err("retryAfterSecs needs a status".into());
        }
        if spec.message.is_some() && !upload_error {
            return Err("message applies to uploadError only".into());
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err("probability must be between 0 and 1".into());
        }
        if spec.count == Some(0) {
            return Err("count must be at least 1".into());
        }
        let hold_secs = positive_secs("holdSecs", spec.hold_secs)?.unwrap_or(DEFAULT_HOLD_SECS);
        let duration =
            positive_secs("durationSecs", spec.duration_secs)?.map(Duration::from_secs_f64);
        if spec
            .path_contains
            .as_deref()
            .is_some_and(|p| p.contains("/control"))
        {
            return Err("faults never apply to /control".into());
        }
        self.next_id += 1;
        self.active.push(InjectedFault {
            id: self.next_id,
            status: spec.status,
            retry_after_secs: spec.retry_after_secs,
            latency_ms: spec.latency_ms,
            timeout,
            hold_secs,
            upload_error,
            message: spec.message,
            path_contains: spec.path_contains,
            method: spec.method,
            probability,
            remaining: spec.count,
            after_effect: spec.after_effect.unwrap_or(false),
            expires_at: duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
            fired: 0,
            deadline: duration.map(|d| Instant::now() + d),
        });
        Ok(self.next_id)
    }

    pub fn list(&mut self) -> Vec<InjectedFault> {
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

    /// Rolls every live fault matching the request; `None` when none fired.
    pub fn fire(&mut self, method: &str, path: &str, rng: &mut StdRng) -> Option<Hit> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit> = None;
        for fault in self.active.iter_mut().filter(|f| f.matches(method, path)) {
            if fault.probability < 1.0 && rng.random::<f64>() >= fault.probability {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            fault.fired += 1;
            let hit = hit.get_or_insert(Hit {
                latency: Duration::ZERO,
                answer: None,
                after_effect: false,
            });
            hit.after_effect |= fault.after_effect;
            hit.latency += Duration::from_millis(fault.latency_ms.unwrap_or(0));
            if hit.answer.is_none() {
                hit.answer = fault.answer();
            }
        }
        self.active.retain(|f| f.is_live(now));
        hit
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
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
        assert!(faults.fire("GET", "/sf/v3/Items(x)", &mut rng).is_none());
        let Some(Answer::Error(e)) = faults
            .fire("POST", "/sf/v3/Items(x)/Folder", &mut rng)
            .unwrap()
            .answer
        else {
            panic!("expected an error answer");
        };
        assert_eq!((e.reason, e.retry_after_secs), ("Throttled", Some(7)));
        assert!(
            faults
                .fire("POST", "/sf/v3/Items(x)/Folder", &mut rng)
                .is_none()
        );
        let hit = faults.fire("POST", UPLOAD_PATH, &mut rng).unwrap();
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
