//! The simulator's state: buckets and objects, faults and the ledger, each behind its own small
//! lock, never held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, header};
use rand::{SeedableRng, rngs::StdRng};

use crate::{config::Config, faults::Faults, ledger::Ledger, objects::Store};

pub type SharedState = Arc<AppState>;

/// Locks, carrying on after a panic elsewhere left the data behind (plain data, still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct AppState {
    pub config: Config,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    /// Fault probabilities.
    rng: Mutex<StdRng>,
}

impl AppState {
    pub fn new(config: Config) -> SharedState {
        Arc::new(Self {
            store: Mutex::new(initial_store(&config)),
            faults: Mutex::default(),
            ledger: Mutex::new(Ledger::new(config.ledger_capacity)),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
        })
    }

    /// The prefix of links handed to clients: `public_url`, else `http://<Host>`.
    pub fn public_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.config.public_url {
            return url.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| self.config.listen_addr.to_string());
        format!("http://{host}")
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
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

    /// Back to the configured, empty buckets; forgets faults and the ledger.
    pub fn reset(&self) {
        *self.store() = initial_store(&self.config);
        self.faults().clear();
        self.ledger().clear();
    }
}

fn initial_store(config: &Config) -> Store {
    let mut store = Store::default();
    for bucket in &config.buckets {
        store.create_bucket(bucket);
    }
    store
}
