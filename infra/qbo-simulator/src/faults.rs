//! Injected faults for `/v3` and `/oauth2` requests (never `/control`).
//!
//! A fault matches requests whose path contains `pathContains` (default: all) and, with
//! `realmId`, only that realm's; it fires with `probability` (the simulator's seeded RNG) and
//! ends after `count` firings or `durationSecs`, whichever comes first. It answers 429
//! `ThrottleExceeded` (a 429 storm), a 5xx `SystemFault` (an outage), or a `SystemFault` inside an
//! HTTP 200 (`faultIn200`), after `latencyMs`. Several faults may fire on one request: latencies
//! add up and the first with an answer (in creation order) decides it.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::error::Fault;

const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    pub status: Option<u16>,
    #[serde(rename = "faultIn200")]
    pub fault_in_200: Option<bool>,
    pub latency_ms: Option<u64>,
    pub realm_id: Option<String>,
    pub path_contains: Option<String>,
    pub probability: Option<f64>,
    pub count: Option<u32>,
    pub duration_secs: Option<f64>,
    /// The request runs (its write happens), then the fault answers: a lost response.
    pub after_effect: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedFault {
    pub id: u64,
    pub status: Option<u16>,
    #[serde(rename = "faultIn200")]
    pub fault_in_200: bool,
    pub latency_ms: Option<u64>,
    pub realm_id: Option<String>,
    pub path_contains: Option<String>,
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

    fn matches(&self, path: &str, realm_id: Option<&str>) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p))
            && self.realm_id.as_deref().is_none_or(|r| Some(r) == realm_id)
    }

    fn answer(&self) -> Option<Fault> {
        if self.fault_in_200 {
            return Some(Fault::system(StatusCode::OK));
        }
        match self.status? {
            429 => Some(Fault::throttled()),
            s => Some(Fault::system(
                StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            )),
        }
    }
}

/// What the faults that fired on one request ask for.
#[derive(Debug)]
pub struct Hit {
    pub latency: Duration,
    pub fault: Option<Fault>,
    pub after_effect: bool,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<InjectedFault>,
    next_id: u64,
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        let fault_in_200 = spec.fault_in_200.unwrap_or(false);
        if spec.latency_ms.is_none() && spec.status.is_none() && !fault_in_200 {
            return Err("a fault needs status, faultIn200 or latencyMs".into());
        }
        if spec.status.is_some() && fault_in_200 {
            return Err("status and faultIn200 exclude each other".into());
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
        let duration = match spec.duration_secs {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                return Err("durationSecs must be positive".into());
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
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
            fault_in_200,
            latency_ms: spec.latency_ms,
            realm_id: spec.realm_id,
            path_contains: spec.path_contains,
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
    pub fn fire(&mut self, path: &str, realm_id: Option<&str>, rng: &mut StdRng) -> Option<Hit> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit> = None;
        for fault in self.active.iter_mut().filter(|f| f.matches(path, realm_id)) {
            if fault.probability < 1.0 && rng.random::<f64>() >= fault.probability {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            fault.fired += 1;
            let hit = hit.get_or_insert(Hit {
                latency: Duration::ZERO,
                fault: None,
                after_effect: false,
            });
            hit.after_effect |= fault.after_effect;
            hit.latency += Duration::from_millis(fault.latency_ms.unwrap_or(0));
            if hit.fault.is_none() {
                hit.fault = fault.answer();
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
    fn realm_and_path_scoping_and_counts() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(r#"{"status": 429, "realmId": "7", "count": 1}"#))
            .unwrap();
        faults
            .add(spec(r#"{"faultIn200": true, "pathContains": "/cdc"}"#))
            .unwrap();
        assert!(
            faults
                .fire("/v3/company/8/query", Some("8"), &mut rng)
                .is_none()
        );
        let hit = faults
            .fire("/v3/company/7/query", Some("7"), &mut rng)
            .unwrap();
        assert_eq!(hit.fault.unwrap().error.code, "3001");
        assert!(
            faults
                .fire("/v3/company/7/query", Some("7"), &mut rng)
                .is_none()
        );
        let hit = faults
            .fire("/v3/company/7/cdc", Some("7"), &mut rng)
            .unwrap();
        assert_eq!(hit.fault.unwrap().status, StatusCode::OK);
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "faultIn200": true}"#,
            r#"{"status": 503, "probability": 2}"#,
            r#"{"status": 503, "pathContains": "/control"}"#,
        ] {
            assert!(faults.add(spec(bad)).is_err(), "{bad}");
        }
    }
}
