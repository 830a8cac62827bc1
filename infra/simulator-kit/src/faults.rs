//! The fault model every simulator shares (`POST /control/faults`), for API requests only, never
//! `/control`.
//!
//! A fault matches requests whose path contains `pathContains` (default: all) and whatever its
//! simulator's [`FaultKind`] adds (a method, a realm, ...); it fires with `probability` (the
//! simulator's seeded RNG) and ends after `count` firings or `durationSecs`, whichever comes
//! first. It answers `status` (429 or a 5xx, in the API's own error body) or an answer its kind
//! adds (a held request, an `ERROR:` upload, a fault inside a 200), after `latencyMs`. Several
//! faults may fire on one request: latencies add up and the first with an answer (in creation
//! order) decides it.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// The body of `POST /control/faults`: the common fields, and the simulator's own beside them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec<S> {
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub path_contains: Option<String>,
    pub probability: Option<f64>,
    pub count: Option<u32>,
    pub duration_secs: Option<f64>,
    /// The request runs (its effect happens), then the fault answers: a lost response.
    pub after_effect: Option<bool>,
    #[serde(flatten)]
    pub kind: S,
}

/// An active fault, as `GET /control/faults` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault<K> {
    pub id: u64,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub path_contains: Option<String>,
    pub probability: f64,
    /// Firings left, when count-limited.
    pub remaining: Option<u32>,
    pub after_effect: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub fired: u64,
    #[serde(flatten)]
    pub kind: K,
    #[serde(skip)]
    deadline: Option<Instant>,
}

/// What a fired fault answers instead of the simulator.
#[derive(Debug)]
pub enum Answer<C> {
    /// The API's error for this status (429 or a 5xx), with `Retry-After` when given.
    Error {
        status: StatusCode,
        retry_after_secs: Option<u64>,
    },
    /// Hold the request this long, then answer 504.
    Hold(Duration),
    /// An answer only this simulator knows (an `ERROR:` upload, a fault inside a 200).
    Custom(C),
}

impl<C> Answer<C> {
    /// The error for an (already validated) injected status.
    pub fn status(status: u16, retry_after_secs: Option<u64>) -> Self {
        Self::Error {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            retry_after_secs,
        }
    }
}

/// What a simulator adds to the common fault: its own spec fields, matching and answers.
pub trait FaultKind: Clone + Serialize + Send + 'static {
    /// The simulator's own fields of a spec (no `deny_unknown_fields`: the spec denies them).
    type Spec: DeserializeOwned + Send;
    /// The answers only this simulator renders (see [`Answer::Custom`]).
    type Custom: Send + 'static;
    /// The JSON names of the answers this kind adds besides `status`, each with whether the spec
    /// asks for it (a fault has at most one answer).
    fn answers(spec: &Self::Spec) -> Vec<(&'static str, bool)>;
    /// Checks the spec's own fields (after the common checks) and builds the live part.
    fn build(spec: Self::Spec, status: Option<u16>) -> Result<Self, String>;
    /// Whether the fault applies to the request, beyond `pathContains`.
    fn matches(&self, method: &str, path: &str) -> bool;
    /// What the fault answers, given its `status`; `None` for a latency-only fault.
    fn answer(&self, status: Option<u16>) -> Option<Answer<Self::Custom>>;
}

/// What the faults that fired on one request ask for.
#[derive(Debug)]
pub struct Hit<C> {
    pub latency: Duration,
    pub answer: Option<Answer<C>>,
    pub after_effect: bool,
}

/// The active faults, in creation order.
#[derive(Debug)]
pub struct Faults<K> {
    active: Vec<Fault<K>>,
    next_id: u64,
}

impl<K> Default for Faults<K> {
    fn default() -> Self {
        Self {
            active: Vec::new(),
            next_id: 0,
        }
    }
}

/// `Ok(None)` when unset; an error naming `field` unless finite and positive.
pub fn positive_secs(field: &str, value: Option<f64>) -> Result<Option<f64>, String> {
    match value {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(format!("{field} must be positive")),
        other => Ok(other),
    }
}

/// "a fault needs status, timeout or latencyMs" and "status and timeout exclude each other".
fn answer_messages(names: &[&str]) -> (String, String) {
    let needs = match names {
        [] => "a fault needs status or latencyMs".to_owned(),
        names => format!("a fault needs status, {} or latencyMs", names.join(", ")),
    };
    let all: Vec<&str> = std::iter::once("status")
        .chain(names.iter().copied())
        .collect();
    let (last, rest) = all.split_last().expect("status is always there");
    (
        needs,
        format!("{} and {last} exclude each other", rest.join(", ")),
    )
}

impl<K> Fault<K> {
    fn is_live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }
}

impl<K: FaultKind> Faults<K> {
    /// Validates the spec and activates it; the error is the message `/control` answers.
    pub fn add(&mut self, spec: FaultSpec<K::Spec>) -> Result<u64, String> {
        let answers = K::answers(&spec.kind);
        let asked = usize::from(spec.status.is_some()) + answers.iter().filter(|a| a.1).count();
        if asked > 1 || (asked == 0 && spec.latency_ms.is_none()) {
            let names: Vec<&str> = answers.iter().map(|a| a.0).collect();
            let (needs, exclusive) = answer_messages(&names);
            return Err(if asked == 0 { needs } else { exclusive });
        }
        if spec.status.is_some_and(|s| !ALLOWED_STATUSES.contains(&s)) {
            return Err("status must be one of 429, 500, 502, 503, 504".into());
        }
        let kind = K::build(spec.kind, spec.status)?;
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err("probability must be between 0 and 1".into());
        }
        if spec.count == Some(0) {
            return Err("count must be at least 1".into());
        }
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
        self.active.push(Fault {
            id: self.next_id,
            status: spec.status,
            latency_ms: spec.latency_ms,
            path_contains: spec.path_contains,
            probability,
            remaining: spec.count,
            after_effect: spec.after_effect.unwrap_or(false),
            expires_at: duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
            fired: 0,
            kind,
            deadline: duration.map(|d| Instant::now() + d),
        });
        Ok(self.next_id)
    }

    pub fn list(&mut self) -> Vec<Fault<K>> {
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
    pub fn fire(&mut self, method: &str, path: &str, rng: &mut StdRng) -> Option<Hit<K::Custom>> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit<K::Custom>> = None;
        let matching = self.active.iter_mut().filter(|f| {
            f.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && f.kind.matches(method, path)
        });
        for fault in matching {
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
                hit.answer = fault.kind.answer(fault.status);
            }
        }
        self.active.retain(|f| f.is_live(now));
        hit
    }
}
