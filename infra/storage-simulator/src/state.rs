//! The simulator's state: buckets and objects, and the kit's faults and ledger, each behind its
//! own small lock, never held across an `.await`; and how the kit's middleware and `/control`
//! routes see it ([`Simulated`]).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use simulator_kit::{Call, Core, Simulated, Standard, Target, lock};

use crate::{
    config::Config,
    error::GcsError,
    ledger::{Detail, Effect, Stats},
    objects::Store,
};

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: Config,
    store: Mutex<Store>,
    /// Faults (the kit's standard ones), their RNG, and the ledger.
    core: Core<Standard, Detail, Stats>,
}

impl AppState {
    pub fn new(config: Config) -> SharedState {
        Arc::new(Self {
            store: Mutex::new(initial_store(&config)),
            core: Core::new(config.ledger_capacity, config.seed),
            config,
        })
    }

    /// The prefix of links handed to clients: `public_url`, else `http://<Host>`.
    pub fn public_url(&self, headers: &HeaderMap) -> String {
        let configured = self.config.public_url.as_deref();
        simulator_kit::public_url(configured, self.config.listen_addr, headers)
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Counts an effect when it happens (so a lost response still counts).
    pub fn effect(&self, effect: Effect, target: &str) {
        self.core.ledger().stats_mut().effect(effect, target);
    }
}

impl Simulated for AppState {
    type Fault = Standard;
    type Entry = Detail;
    type Tally = Stats;

    fn core(&self) -> &Core<Standard, Detail, Stats> {
        &self.core
    }

    /// 429 `rateLimitExceeded` or a 5xx GCS error.
    fn error_answer(status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let error = match status {
            StatusCode::TOO_MANY_REQUESTS => GcsError::rate_limited(None),
            status => GcsError::server(status),
        };
        GcsError {
            retry_after_secs,
            ..error
        }
        .into_response()
    }

    fn custom_answer(answer: Infallible) -> Response {
        match answer {}
    }

    fn describe(&self, _call: &Call, response: &mut Response) -> Detail {
        let extensions = response.extensions();
        Detail {
            reason: extensions.get::<GcsError>().map(|e| e.reason.to_owned()),
            target: extensions.get::<Target>().map(|t| t.0.clone()),
        }
    }

    fn stats(&self) -> Value {
        let mut value = json!(self.core.ledger().stats());
        let store = self.store();
        value["objects"] = json!(store.all().count());
        value["bytes"] = json!(store.all().map(|o| o.content.len()).sum::<usize>());
        value
    }

    /// Back to the configured, empty buckets; forgets faults and the ledger.
    fn reset(&self) {
        *self.store() = initial_store(&self.config);
        self.core.reset();
    }
}

fn initial_store(config: &Config) -> Store {
    let mut store = Store::default();
    for bucket in &config.buckets {
        store.create_bucket(bucket);
    }
    store
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn injected_answers_are_gcs_errors() {
        let response = AppState::error_answer(StatusCode::TOO_MANY_REQUESTS, Some(7));
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let error = response.extensions().get::<GcsError>().unwrap();
        assert_eq!(
            (error.reason, error.domain),
            ("rateLimitExceeded", "usageLimits")
        );
        let response = AppState::error_answer(StatusCode::GATEWAY_TIMEOUT, None);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let error = response.extensions().get::<GcsError>().unwrap();
        assert_eq!(error.reason, "gatewayTimeout");
    }
}
