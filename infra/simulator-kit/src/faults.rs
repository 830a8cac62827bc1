//! Injected faults, the part every simulator shares.
//!
//! A fault posted to `/control/faults` has two parts. The simulator's own part ([`FaultKind`])
//! says which requests it matches (`pathContains`, `method`, a realm or mailbox, ...) and what it
//! answers instead of the simulator (an API error, a held request, ...). The shared part says how
//! often and for how long: it fires with `probability` (the simulator's RNG) and ends after
//! `count` firings or `durationSecs`, whichever comes first; it adds `latencyMs` before the
//! answer; with `afterEffect` the request runs first (its effect happens) and the answer replaces
//! the response: a lost response. A fault needs an answer, a latency or both.
//!
//! Several faults may fire on one request: latencies add up and the first with an answer (in
//! creation order) decides it. A field neither part knows is refused, like a malformed value.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize, de::DeserializeOwned, de::IgnoredAny};

/// The HTTP statuses a fault may answer with: a 429 storm or an outage.
pub const ALLOWED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// A simulator's own part of a fault.
pub trait FaultKind: Clone + Serialize + Sized {
    /// Its fields as posted (camelCase JSON), flattened beside the shared ones.
    type Spec: DeserializeOwned;
    /// What a request shows of itself to be matched.
    type Request<'r>;
    /// What a firing fault answers instead of the simulator.
    type Answer;
    /// The fields that give an answer, for the error when a fault has none and no latency,
    /// e.g. `"status, timeout"`.
    const ANSWERS: &'static str;

    /// Checks the posted fields and keeps what matching and answering need.
    fn from_spec(spec: Self::Spec) -> Result<Self, String>;
    fn matches(&self, request: &Self::Request<'_>) -> bool;
    /// `None` for a fault that only adds latency.
    fn answer(&self) -> Option<Self::Answer>;
}

/// The shared fields of a posted fault.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifetime {
    pub latency_ms: Option<u64>,
    pub probability: Option<f64>,
    pub count: Option<u32>,
    pub duration_secs: Option<f64>,
    /// The request runs (its effect happens), then the fault answers: a lost response.
    pub after_effect: Option<bool>,
}

/// A posted fault: the shared fields and the simulator's own, and nothing else.
#[derive(Debug, Deserialize)]
#[serde(
    try_from = "PostedFault<S>",
    bound(deserialize = "S: DeserializeOwned")
)]
pub struct FaultSpec<S> {
    pub lifetime: Lifetime,
    pub kind: S,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned"))]
struct PostedFault<S> {
    #[serde(flatten)]
    lifetime: Lifetime,
    #[serde(flatten)]
    kind: S,
    /// What neither part took.
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

impl<S> TryFrom<PostedFault<S>> for FaultSpec<S> {
    type Error = String;

    fn try_from(posted: PostedFault<S>) -> Result<Self, String> {
        match posted.unknown.keys().next() {
            Some(field) => Err(format!("unknown field `{field}`")),
            None => Ok(Self {
                lifetime: posted.lifetime,
                kind: posted.kind,
            }),
        }
    }
}

/// An active fault as `/control/faults` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedFault<K> {
    pub id: u64,
    #[serde(flatten)]
    pub kind: K,
    pub latency_ms: Option<u64>,
    pub probability: f64,
    /// Firings left, when count-limited.
    pub remaining: Option<u32>,
    pub after_effect: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub fired: u64,
    #[serde(skip)]
    deadline: Option<Instant>,
}

impl<K> InjectedFault<K> {
    fn is_live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }
}

/// What the faults that fired on one request ask for.
#[derive(Debug)]
pub struct Hit<A> {
    pub latency: Duration,
    pub answer: Option<A>,
    pub after_effect: bool,
}

/// The active faults of one simulator, in creation order.
#[derive(Debug)]
pub struct Faults<K> {
    active: Vec<InjectedFault<K>>,
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

impl<K: FaultKind> Faults<K> {
    /// Checks and activates a fault; its id, or why it was refused.
    pub fn add(&mut self, spec: FaultSpec<K::Spec>) -> Result<u64, String> {
        let Lifetime {
            latency_ms,
            probability,
            count,
            duration_secs,
            after_effect,
        } = spec.lifetime;
        let kind = K::from_spec(spec.kind)?;
        if kind.answer().is_none() && latency_ms.is_none() {
            return Err(format!("a fault needs {} or latencyMs", K::ANSWERS));
        }
        let probability = probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err("probability must be between 0 and 1".into());
        }
        if count == Some(0) {
            return Err("count must be at least 1".into());
        }
        let duration = positive_secs("durationSecs", duration_secs)?;
        self.next_id += 1;
        self.active.push(InjectedFault {
            id: self.next_id,
            kind,
            latency_ms,
            probability,
            remaining: count,
            after_effect: after_effect.unwrap_or(false),
            expires_at: duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
            fired: 0,
            deadline: duration.map(|d| Instant::now() + d),
        });
        Ok(self.next_id)
    }

    /// The live faults (spent and expired ones are forgotten).
    pub fn list(&mut self) -> Vec<InjectedFault<K>> {
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
    pub fn fire(&mut self, request: &K::Request<'_>, rng: &mut impl Rng) -> Option<Hit<K::Answer>> {
        let now = Instant::now();
        self.active.retain(|f| f.is_live(now));
        let mut hit: Option<Hit<K::Answer>> = None;
        for fault in self.active.iter_mut().filter(|f| f.kind.matches(request)) {
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
                hit.answer = fault.kind.answer();
            }
        }
        self.active.retain(|f| f.is_live(now));
        hit
    }
}

/// A positive, finite number of seconds, or why not.
pub fn positive_secs(field: &str, value: Option<f64>) -> Result<Option<Duration>, String> {
    match value {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(format!("{field} must be positive")),
        other => Ok(other.map(Duration::from_secs_f64)),
    }
}

/// `status`, when given, is one of [`ALLOWED_STATUSES`].
pub fn check_status(status: Option<u16>) -> Result<(), String> {
    match status {
        Some(s) if !ALLOWED_STATUSES.contains(&s) => {
            Err("status must be one of 429, 500, 502, 503, 504".into())
        }
        _ => Ok(()),
    }
}

/// Faults never apply to `/control`: a `pathContains` naming it is refused.
pub fn outside_control(path_contains: Option<&str>) -> Result<(), String> {
    match path_contains {
        Some(p) if p.contains("/control") => Err("faults never apply to /control".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    /// A kind matching on a path substring and answering with a status.
    #[derive(Debug, Clone, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        status: Option<u16>,
        path_contains: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusSpec {
        status: Option<u16>,
        path_contains: Option<String>,
    }

    impl FaultKind for Status {
        type Spec = StatusSpec;
        type Request<'r> = &'r str;
        type Answer = u16;
        const ANSWERS: &'static str = "status";

        fn from_spec(spec: StatusSpec) -> Result<Self, String> {
            check_status(spec.status)?;
            outside_control(spec.path_contains.as_deref())?;
            Ok(Self {
                status: spec.status,
                path_contains: spec.path_contains,
            })
        }

        fn matches(&self, path: &&str) -> bool {
            self.path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
        }

        fn answer(&self) -> Option<u16> {
            self.status
        }
    }

    fn add(faults: &mut Faults<Status>, json: &str) -> Result<u64, String> {
        let spec: FaultSpec<StatusSpec> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        faults.add(spec)
    }

    #[test]
    fn count_scoping_latency_and_first_answer() {
        let mut faults = Faults::<Status>::default();
        let mut rng = StdRng::seed_from_u64(1);
        add(&mut faults, r#"{"latencyMs": 20, "pathContains": "/a"}"#).unwrap();
        add(
            &mut faults,
            r#"{"status": 503, "count": 1, "latencyMs": 5}"#,
        )
        .unwrap();
        add(
            &mut faults,
            r#"{"status": 429, "pathContains": "/a", "afterEffect": true}"#,
        )
        .unwrap();
        let hit = faults.fire(&"/a/1", &mut rng).unwrap();
        assert_eq!(
            (hit.latency, hit.answer, hit.after_effect),
            (Duration::from_millis(25), Some(503), true)
        );
        let hit = faults.fire(&"/a/1", &mut rng).unwrap();
        assert_eq!(hit.answer, Some(429));
        assert!(faults.fire(&"/b", &mut rng).is_none());
        let listed = serde_json::to_value(faults.list()).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 2);
        assert_eq!(listed[0]["pathContains"], "/a");
        assert_eq!(listed[0]["fired"], 2);
    }

    #[test]
    fn probability_rolls_the_seeded_rng() {
        let mut faults = Faults::<Status>::default();
        let mut rng = StdRng::seed_from_u64(7);
        add(&mut faults, r#"{"status": 500, "probability": 0.5}"#).unwrap();
        let fired = (0..1000)
            .filter(|_| faults.fire(&"/x", &mut rng).is_some())
            .count();
        assert!((400..600).contains(&fired), "{fired}");
    }

    #[test]
    fn refused_specs() {
        let mut faults = Faults::<Status>::default();
        for bad in [
            r#"{}"#,
            r#"{"pathContains": "/a"}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "probability": 1.5}"#,
            r#"{"status": 503, "count": 0}"#,
            r#"{"status": 503, "durationSecs": 0}"#,
            r#"{"status": 503, "pathContains": "/control/x"}"#,
            r#"{"status": 503, "statusCode": 1}"#,
            r#"{"status": "503"}"#,
        ] {
            assert!(add(&mut faults, bad).is_err(), "{bad}");
        }
        let err = add(&mut faults, r#"{"status": 503, "colour": "red"}"#).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(faults.list().is_empty());
    }

    #[test]
    fn removal_and_expiry() {
        let mut faults = Faults::<Status>::default();
        let id = add(&mut faults, r#"{"status": 500}"#).unwrap();
        add(&mut faults, r#"{"status": 500, "durationSecs": 0.001}"#).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(faults.list().len(), 1);
        assert!(faults.remove(id) && !faults.remove(id));
        assert!(faults.list().is_empty());
    }
}
