//! The simulator's state. Realms sit behind a lock each, so 100 realms are served in parallel;
//! the other parts (the kit's faults and ledger among them) have their own small locks, never held
//! across an `.await`. [`Simulated`] is how the kit's middleware and `/control` routes see it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{FixedOffset, TimeDelta};
use rand::rngs::StdRng;
use serde_json::{Value, json};
use simulator_kit::{Call, Core, LedgerEntry, Simulated};

pub use simulator_kit::lock;

use crate::{
    clock::SimClock,
    config::Config,
    error::{ConfigError, Fault, SimError},
    faults::QboFault,
    ledger::{Counts, Detail, Ledger},
    limits::Limiter,
    middleware,
    oauth::Tokens,
    realm::Realm,
    webhooks::{Queue, Webhooks},
};

pub type SharedState = Arc<AppState>;
pub type SharedRealm = Arc<Mutex<Realm>>;

pub struct AppState {
    pub config: Config,
    pub clock: SimClock,
    pub limiter: Limiter,
    pub webhooks: Webhooks,
    realms: RwLock<HashMap<String, SharedRealm>>,
    tokens: Mutex<Tokens>,
    /// Faults, the RNG of their probabilities (and of `/control` changes without a seed of their
    /// own), and the ledger.
    core: Core<QboFault, Detail, Counts>,
}

impl AppState {
    pub fn new(config: Config) -> Result<(SharedState, Queue), SimError> {
        let zone = FixedOffset::east_opt(config.utc_offset_minutes * 60).ok_or_else(|| {
            ConfigError::Constraint {
                field: "utc_offset_minutes",
                message: "not a valid offset".into(),
            }
        })?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| SimError::Setup {
                what: "the webhook HTTP client",
                source: Box::new(e),
            })?;
        let (webhooks, queue) = Webhooks::new(config.webhook.clone(), config.seed, http);
        let state = Self {
            clock: SimClock::new(config.time_scale, zone),
            limiter: Limiter::new(
                config.rate_limit,
                config.rate_window,
                config.max_concurrent_per_realm,
            ),
            webhooks,
            realms: RwLock::default(),
            tokens: Mutex::default(),
            core: Core::new(config.ledger_capacity, config.seed),
            config,
        };
        Ok((Arc::new(state), queue))
    }

    pub fn realm(&self, realm_id: &str) -> Option<SharedRealm> {
        self.realms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(realm_id)
            .cloned()
    }

    pub fn realm_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .realms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Adds (or replaces) realms and connects each: returns `(realm id, refresh token)`.
    pub fn insert_realms(&self, realms: Vec<Realm>) -> Vec<(String, String)> {
        let expires = self.clock.now()
            + TimeDelta::from_std(self.config.refresh_token_ttl).unwrap_or(TimeDelta::MAX);
        let mut tokens = lock(&self.tokens);
        let mut map = self.realms.write().unwrap_or_else(|p| p.into_inner());
        realms
            .into_iter()
            .map(|realm| {
                let id = realm.id.clone();
                let token = tokens.connect(&id, expires);
                map.insert(id.clone(), Arc::new(Mutex::new(realm)));
                (id, token)
            })
            .collect()
    }

    /// A new refresh token for a realm (a reconnect); `None` for an unknown realm.
    pub fn reconnect(&self, realm_id: &str) -> Option<String> {
        self.realm(realm_id)?;
        let expires = self.clock.now()
            + TimeDelta::from_std(self.config.refresh_token_ttl).unwrap_or(TimeDelta::MAX);
        Some(lock(&self.tokens).connect(realm_id, expires))
    }

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.core.ledger()
    }

    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.core.rng()
    }
}

impl Simulated for AppState {
    type Fault = QboFault;
    type Entry = Detail;
    type Tally = Counts;

    fn core(&self) -> &Core<QboFault, Detail, Counts> {
        &self.core
    }

    /// 429 `ThrottleExceeded` (never with `Retry-After`) or a 5xx `SystemFault`.
    fn error_answer(status: StatusCode, _retry_after_secs: Option<u64>) -> Response {
        match status {
            StatusCode::TOO_MANY_REQUESTS => Fault::throttled(),
            status => Fault::system(status),
        }
        .into_response()
    }

    fn custom_answer(fault: Fault) -> Response {
        fault.into_response()
    }

    fn describe(&self, call: &Call, response: &mut Response) -> Detail {
        middleware::describe(self, call, response)
    }

    fn stats(&self) -> Value {
        let ledger = self.ledger();
        json!({
            "requests": ledger.stats().total(),
            "realms": ledger.stats().all_counts(),
            "realmCount": self.realm_ids().len(),
            "webhooks": self.webhooks.counts(),
            "webhooksPending": self.webhooks.pending(),
        })
    }

    /// Forgets realms, tokens, faults, the ledger, limits and the delivery log; keeps settings.
    fn reset(&self) {
        self.realms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *lock(&self.tokens) = Tokens::default();
        self.core.reset();
        self.limiter.reset();
        self.webhooks.clear_log();
    }

    /// `?realmId=`: only that realm's calls.
    fn keep(params: &HashMap<String, String>, entry: &LedgerEntry<Detail>) -> bool {
        let realm_id = entry.detail.realm_id.as_deref();
        params
            .get("realmId")
            .is_none_or(|r| realm_id == Some(r.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_answers_are_qbo_faults() {
        let response = AppState::error_answer(StatusCode::TOO_MANY_REQUESTS, Some(3));
        assert!(!response.headers().contains_key("retry-after"));
        let fault = response.extensions().get::<Fault>().unwrap();
        assert_eq!(fault.error.code, "3001");
        let response = AppState::error_answer(StatusCode::BAD_GATEWAY, None);
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let fault = response.extensions().get::<Fault>().unwrap();
        assert_eq!(fault.error.code, "10000");
    }
}
