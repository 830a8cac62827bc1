//! Injected faults for `/v1.0` and token requests (never `/control`).
//!
//! A fault matches requests whose path contains `pathContains` (default: all), with `method`
//! only that method's, and with `userId` only that mailbox's (`/v1.0/users/{id}/...`, by id or
//! mail); it fires with `probability` (the simulator's seeded RNG) and ends after `count`
//! firings or `durationSecs`, whichever comes first. It answers 429 `TooManyRequests` (a 429
//! storm), a 5xx (an outage), or holds the request (`timeout`) for `holdSecs`, after
//! `latencyMs`; `retryAfterSecs` adds a `Retry-After` header and `code` replaces the error code.
//! Several faults may fire on one request: latencies add up and the first with an answer (in
//! creation order) decides it.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::error::GraphError;

const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// How long a `timeout` fault holds a request without `holdSecs`.
const DEFAULT_HOLD: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub retry_after_secs: Option<u64>,
    pub latency_ms: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub user_id: Option<String>,
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
    pub code: Option<String>,
    pub retry_after_secs: Option<u64>,
    pub latency_ms: Option<u64>,
    pub timeout: bool,
    pub hold_secs: f64,
    pub user_id: Option<String>,
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

impl InjectedFault {
    fn is_live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }

    fn matches(&self, method: &str, path: &str, users: &[&str]) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| users.iter().any(|x| x.eq_ignore_ascii_case(u)))
    }

    fn answer(&self) -> Option<GraphError> {
        let status = StatusCode::from_u16(self.status?).ok()?;
        let mut error = match status {
            StatusCode::TOO_MANY_REQUESTS => GraphError::throttled(self.retry_after_secs),
            s => GraphError::server(s, self.retry_after_secs),
        };
        if let Some(code) = &self.code {
            error.code.clone_from(code);
        }
        Some(error)
    }
}

/// What the faults that fired on one request ask for.
#[derive(Debug, Default)]
pub struct Hit {
    pub latency: Duration,
    pub error: Option<GraphError>,
    /// Hold the request this long, then answer 504.
    pub hold: Option<Duration>,
    pub after_effect: bool,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<InjectedFault>,
    next_id: u64,
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        let timeout = spec.timeout.unwrap_or(false);
        if spec.latency_ms.is_none() && spec.status.is_none() && !timeout {
            return Err("a fault needs status, timeout or latencyMs".into());
        }
        if spec.status.is_some() && timeout {
            return Err("status and timeout exclude each other".into());
        }
        if spec.status.is_some_and(|s| !ALLOWED_STATUSES.contains(&s)) {
            return Err("status must be one of 429, 500, 502, 503, 504".into());
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err("probability must be between 0 and 1".into());
        }
        if spec.count == Some(0) {
            return Err("count must be at least 1".into());
        }
        let positive = |v: Option<f64>, name: &str| match v {
            Some(s) if !(s.is_finite() && s > 0.0) => Err(format!("{name} must be positive")),
            other => Ok(other.map(Duration::from_secs_f64)),
        };
        let duration = positive(spec.duration_secs, "durationSecs")?;
        let hold = positive(spec.hold_secs, "holdSecs")?.unwrap_or(DEFAULT_HOLD);
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
            code: spec.code,
            retry_after_secs: spec.retry_after_secs,
            latency_ms: spec.latency_ms,
            timeout,
            hold_secs: hold.as_secs_f64(),
            user_id: spec.user_id,
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

    /// Rolls every live fault matching the request; `None` when none fired. `users` are the
    /// names of the path's mailbox (as written, and its id).
    pub fn fire(
        &mut self,
        method: &str,
        path: &str,
        users: &[&str],
        rng: &mut StdRng,
    ) -> Option<Hit> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit> = None;
        for fault in self
            .active
            .iter_mut()
            .filter(|f| f.matches(method, path, users))
        {
            if fault.probability < 1.0 && rng.random::<f64>() >= fault.probability {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            fault.fired += 1;
            let hit = hit.get_or_insert_with(Hit::default);
            hit.after_effect |= fault.after_effect;
            hit.latency += Duration::from_millis(fault.latency_ms.unwrap_or(0));
            if hit.error.is_none() && hit.hold.is_none() {
                if fault.timeout {
                    hit.hold = Some(Duration::from_secs_f64(fault.hold_secs));
                } else {
                    hit.error = fault.answer();
                }
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
        assert!(faults.fire("POST", path, &["bob"], &mut rng).is_none());
        let path = "/v1.0/users/ANN/calendar/getSchedule";
        let hit = faults
            .fire("POST", path, &["ANN", "ann"], &mut rng)
            .unwrap();
        let error = hit.error.unwrap();
        assert_eq!(
            (error.code.as_str(), error.retry_after),
            ("TooManyRequests", Some(2))
        );
        assert!(faults.fire("POST", path, &["ann"], &mut rng).is_none());
        let path = "/v1.0/users/bob/events";
        assert!(faults.fire("GET", path, &["bob"], &mut rng).is_none());
        let hit = faults.fire("POST", path, &["bob"], &mut rng).unwrap();
        assert_eq!(hit.error.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_timeout_holds() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(r#"{"timeout": true, "holdSecs": 2}"#))
            .unwrap();
        let hit = faults.fire("GET", "/v1.0/x", &[], &mut rng).unwrap();
        assert_eq!(hit.hold, Some(Duration::from_secs(2)));
        assert!(hit.error.is_none());
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
