//! The fault options most HTTP APIs share, as a ready [`FaultKind`]: `method` scoping,
//! `retryAfterSecs` on a `status` answer, and `timeout`, which holds the request for `holdSecs`
//! (default 600) and then answers 504. A simulator with more options embeds [`Standard`] with
//! `#[serde(flatten)]` in its own kind, but spells out [`StandardSpec`]'s fields in its spec and
//! converts: a `flatten` inside the flattened spec would defeat the spec's `deny_unknown_fields`.

use std::{convert::Infallible, time::Duration};

use serde::{Deserialize, Serialize};

use crate::faults::{Answer, FaultKind, positive_secs};

/// How long a `timeout` fault holds a request without `holdSecs`.
pub const DEFAULT_HOLD_SECS: f64 = 600.0;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardSpec {
    pub retry_after_secs: Option<u64>,
    pub timeout: Option<bool>,
    pub hold_secs: Option<f64>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standard {
    pub retry_after_secs: Option<u64>,
    pub timeout: bool,
    pub hold_secs: f64,
    pub method: Option<String>,
}

impl FaultKind for Standard {
    type Spec = StandardSpec;
    type Custom = Infallible;

    fn answers(spec: &StandardSpec) -> Vec<(&'static str, bool)> {
        vec![("timeout", spec.timeout.unwrap_or(false))]
    }

    fn build(spec: StandardSpec, status: Option<u16>) -> Result<Self, String> {
        if spec.retry_after_secs.is_some() && status.is_none() {
            return Err("retryAfterSecs needs a status".into());
        }
        Ok(Self {
            retry_after_secs: spec.retry_after_secs,
            timeout: spec.timeout.unwrap_or(false),
            hold_secs: positive_secs("holdSecs", spec.hold_secs)?.unwrap_or(DEFAULT_HOLD_SECS),
            method: spec.method,
        })
    }

    fn matches(&self, method: &str, _path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    fn answer(&self, status: Option<u16>) -> Option<Answer<Infallible>> {
        self.answer_with(status)
    }
}

impl Standard {
    /// [`FaultKind::answer`] for a kind that embeds this one and has answers of its own.
    pub fn answer_with<C>(&self, status: Option<u16>) -> Option<Answer<C>> {
        if self.timeout {
            return Some(Answer::Hold(Duration::from_secs_f64(self.hold_secs)));
        }
        status.map(|s| Answer::status(s, self.retry_after_secs))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};
    use serde_json::json;

    use super::*;
    use crate::faults::{FaultSpec, Faults};

    fn add(faults: &mut Faults<Standard>, json: &str) -> Result<u64, String> {
        serde_json::from_str::<FaultSpec<StandardSpec>>(json)
            .map_err(|e| e.to_string())
            .and_then(|spec| faults.add(spec))
    }

    #[test]
    fn scoping_counts_and_retry_after() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        let storm = r#"{"status": 429, "retryAfterSecs": 7, "method": "POST", "pathContains": "/upload/", "count": 1}"#;
        add(&mut faults, storm).unwrap();
        assert!(faults.fire("GET", "/upload/x", &mut rng).is_none());
        assert!(faults.fire("POST", "/other", &mut rng).is_none());
        let hit = faults.fire("post", "/upload/x", &mut rng).unwrap();
        let Some(Answer::Error {
            status,
            retry_after_secs,
        }) = hit.answer
        else {
            panic!("expected an error answer");
        };
        assert_eq!((status.as_u16(), retry_after_secs), (429, Some(7)));
        assert!(faults.fire("POST", "/upload/x", &mut rng).is_none());
        assert!(faults.list().is_empty(), "spent faults are gone");
        add(&mut faults, r#"{"timeout": true, "holdSecs": 2}"#).unwrap();
        let hit = faults.fire("GET", "/x", &mut rng).unwrap();
        assert!(matches!(hit.answer, Some(Answer::Hold(d)) if d == Duration::from_secs(2)));
    }

    #[test]
    fn latencies_add_up_and_the_first_answer_decides() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        add(&mut faults, r#"{"latencyMs": 5, "afterEffect": true}"#).unwrap();
        add(&mut faults, r#"{"status": 503, "latencyMs": 7}"#).unwrap();
        let id = add(&mut faults, r#"{"status": 500}"#).unwrap();
        let hit = faults.fire("GET", "/x", &mut rng).unwrap();
        assert_eq!(hit.latency, Duration::from_millis(12));
        assert!(hit.after_effect);
        assert!(matches!(hit.answer, Some(Answer::Error { status, .. }) if status == 503));
        assert!(faults.remove(id) && !faults.remove(id));
        let listed = serde_json::to_value(faults.list()).unwrap();
        assert_eq!(listed[1]["fired"], json!(1));
        assert_eq!(listed[1]["holdSecs"], json!(600.0));
        assert_eq!(listed[1]["method"], json!(null));
        faults.clear();
        assert!(faults.fire("GET", "/x", &mut rng).is_none());
    }

    #[test]
    fn probability_uses_the_seeded_rng() {
        let fired = |seed| {
            let mut faults = Faults::default();
            let mut rng = StdRng::seed_from_u64(seed);
            add(&mut faults, r#"{"status": 503, "probability": 0.5}"#).unwrap();
            (0..100)
                .filter(|_| faults.fire("GET", "/x", &mut rng).is_some())
                .count()
        };
        assert_eq!(fired(3), fired(3));
        assert!((20..80).contains(&fired(3)), "{}", fired(3));
    }

    #[test]
    fn rejects_nonsense_with_the_reason() {
        let mut faults = Faults::default();
        for (bad, reason) in [
            (r#"{}"#, "a fault needs status, timeout or latencyMs"),
            (r#"{"status": 404}"#, "status must be one of"),
            (
                r#"{"status": 503, "timeout": true}"#,
                "status and timeout exclude each other",
            ),
            (r#"{"latencyMs": 5, "retryAfterSecs": 1}"#, "needs a status"),
            (r#"{"status": 503, "probability": 2}"#, "probability"),
            (r#"{"status": 503, "count": 0}"#, "count"),
            (r#"{"status": 503, "pathContains": "/control"}"#, "/control"),
            (r#"{"timeout": true, "holdSecs": 0}"#, "holdSecs"),
            (r#"{"status": 503, "durationSecs": -1}"#, "durationSecs"),
            (r#"{"uploadError": true}"#, "unknown field"),
        ] {
            let err = add(&mut faults, bad).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
