//! What the simulator remembers about requests: idempotency keys with their original responses,
//! the effects log (state-changing API requests, in order) and request counters.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Keys are remembered for a day, like most real idempotency implementations, and the map is
/// bounded so a long-running dev instance cannot grow without limit.
const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_KEYS: usize = 100_000;
const MAX_EFFECTS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// Path and body of the first request; a repeat must match it.
    pub fingerprint: Value,
    pub status: StatusCode,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct IdempotencyKeys {
    responses: HashMap<String, StoredResponse>,
    order: VecDeque<(Instant, String)>,
}

impl IdempotencyKeys {
    pub fn get(&self, key: &str) -> Option<&StoredResponse> {
        self.responses.get(key)
    }

    pub fn insert(&mut self, key: String, response: StoredResponse) {
        let now = Instant::now();
        while let Some((at, old)) = self.order.front() {
            if now.duration_since(*at) < KEY_TTL && self.order.len() < MAX_KEYS {
                break;
            }
            self.responses.remove(old);
            self.order.pop_front();
        }
        self.order.push_back((now, key.clone()));
        self.responses.insert(key, response);
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Effect {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    /// The HTTP status returned (including injected faults).
    pub status: u16,
    /// True when the response was replayed from an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Records {
    pub keys: IdempotencyKeys,
    effects: VecDeque<Effect>,
    pub requests: RequestCounts,
    pub faults_served: u64,
}

impl Records {
    pub fn count_request(&mut self, route: String, status: u16, faulted: bool) {
        self.requests.total += 1;
        *self.requests.by_route.entry(route).or_default() += 1;
        *self
            .requests
            .by_status
            .entry(status.to_string())
            .or_default() += 1;
        if faulted {
            self.faults_served += 1;
        }
    }

    pub fn push_effect(&mut self, effect: Effect) {
        if self.effects.len() >= MAX_EFFECTS {
            self.effects.pop_front();
        }
        self.effects.push_back(effect);
    }

    pub fn effects(&self) -> Vec<Effect> {
        self.effects.iter().cloned().collect()
    }
}

/// A low-cardinality route label such as `PUT /api/v4/loans/{loanId}/status`.
pub fn route_label(method: &str, path: &str) -> String {
    let Some(rest) = path.strip_prefix("/api/v4/") else {
        return format!("{method} other");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let shape: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| match (segments[0], i) {
            ("loans", 1) => "{loanId}",
            ("loans", 3) => "{conditionId}",
            _ => s,
        })
        .collect();
    let shape = shape.join("/");
    const KNOWN: [&str; 7] = [
        "token",
        "loans",
        "loans/{loanId}",
        "loans/{loanId}/status",
        "loans/{loanId}/conditions",
        "loans/{loanId}/conditions/{conditionId}",
        "changes",
    ];
    if KNOWN.contains(&shape.as_str()) {
        format!("{method} /api/v4/{shape}")
    } else {
        format!("{method} other")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_hide_ids() {
        assert_eq!(
            route_label("PUT", "/api/v4/loans/L-1/status"),
            "PUT /api/v4/loans/{loanId}/status"
        );
        assert_eq!(
            route_label("PATCH", "/api/v4/loans/L-1/conditions/C-9"),
            "PATCH /api/v4/loans/{loanId}/conditions/{conditionId}"
        );
        assert_eq!(route_label("GET", "/api/v4/changes"), "GET /api/v4/changes");
        assert_eq!(route_label("GET", "/api/v4/whatever/123"), "GET other");
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        let mut keys = IdempotencyKeys::default();
        for i in 0..MAX_KEYS + 5 {
            let response = StoredResponse {
                fingerprint: Value::Null,
                status: StatusCode::OK,
                body: Value::Null,
            };
            keys.insert(i.to_string(), response);
        }
        assert!(keys.get("0").is_none());
        assert!(keys.get(&(MAX_KEYS + 4).to_string()).is_some());
        assert!(keys.responses.len() <= MAX_KEYS);
    }
}
