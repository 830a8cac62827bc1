//! The simulator's state. Realms sit behind a lock each, so 100 realms are served in parallel;
//! the other parts have their own small locks, never held across an `.await`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use chrono::{FixedOffset, TimeDelta};
use rand::{SeedableRng, rngs::StdRng};

use crate::{
    clock::SimClock,
    config::Config,
    error::{ConfigError, SimError},
    faults::Faults,
    ledger::Ledger,
    limits::Limiter,
    oauth::Tokens,
    realm::Realm,
    webhooks::{Queue, Webhooks},
};

pub type SharedState = Arc<AppState>;
pub type SharedRealm = Arc<Mutex<Realm>>;

/// Locks, carrying on after a panic elsewhere left the data behind (plain data, still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct AppState {
    pub config: Config,
    pub clock: SimClock,
    pub limiter: Limiter,
    pub webhooks: Webhooks,
    realms: RwLock<HashMap<String, SharedRealm>>,
    tokens: Mutex<Tokens>,
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    /// Fault probabilities and `/control` changes without a seed of their own.
    rng: Mutex<StdRng>,
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
            .map_err(SimError::HttpClient)?;
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
            faults: Mutex::default(),
            ledger: Mutex::new(Ledger::new(config.ledger_capacity)),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
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

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        lock(&self.rng)
    }

    /// Forgets realms, tokens, faults, the ledger, limits and the delivery log; keeps settings.
    pub fn reset(&self) {
        self.realms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *lock(&self.tokens) = Tokens::default();
        self.faults().clear();
        self.ledger().clear();
        self.limiter.reset();
        self.webhooks.clear_log();
    }
}
