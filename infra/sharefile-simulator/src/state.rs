//! The simulator's state: the item tree, tokens, upload sessions, limits, faults and the ledger,
//! each behind its own small lock, never held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, header};
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    error::{ConfigError, SfError},
    faults::Faults,
    items::Store,
    ledger::Ledger,
    oauth::Tokens,
    upload::Uploads,
};

pub type SharedState = Arc<AppState>;

/// Locks, carrying on after a panic elsewhere left the data behind (plain data, still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The account's limits; `/control/limits` changes them at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    pub quota_bytes: Option<u64>,
    pub max_file_size_bytes: Option<u64>,
}

impl Limits {
    /// Whether a file of `size` bytes may be added to an account using `used` bytes
    /// (`replacing`: bytes freed by the file it replaces).
    pub fn admit(&self, size: u64, used: u64, replacing: u64) -> Result<(), SfError> {
        if let Some(max) = self.max_file_size_bytes
            && size > max
        {
            return Err(SfError::file_too_large(size, max));
        }
        if let Some(quota) = self.quota_bytes {
            let free = quota.saturating_sub(used.saturating_sub(replacing));
            if size > free {
                return Err(SfError::quota_exceeded(size, free));
            }
        }
        Ok(())
    }
}

pub struct AppState {
    pub config: Config,
    store: Mutex<Store>,
    tokens: Mutex<Tokens>,
    uploads: Mutex<Uploads>,
    limits: Mutex<Limits>,
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    /// Fault probabilities.
    rng: Mutex<StdRng>,
}

impl AppState {
    pub fn new(config: Config) -> Result<SharedState, ConfigError> {
        let state = Self {
            store: Mutex::new(initial_store(&config)?),
            tokens: Mutex::default(),
            uploads: Mutex::default(),
            limits: Mutex::new(initial_limits(&config)),
            faults: Mutex::default(),
            ledger: Mutex::new(Ledger::new(config.ledger_capacity)),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
        };
        Ok(Arc::new(state))
    }

    /// The prefix of URLs handed to clients: `public_url`, else `http://<Host>`.
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

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    pub fn uploads(&self) -> MutexGuard<'_, Uploads> {
        lock(&self.uploads)
    }

    pub fn limits(&self) -> MutexGuard<'_, Limits> {
        lock(&self.limits)
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

    /// Back to the start: only the configured root folders, no tokens, upload sessions, faults
    /// or ledger, and the configured limits.
    pub fn reset(&self) {
        *self.store() = initial_store(&self.config).expect("validated at start");
        *self.tokens() = Tokens::default();
        *self.uploads() = Uploads::default();
        *self.limits() = initial_limits(&self.config);
        self.faults().clear();
        self.ledger().clear();
    }
}

fn initial_store(config: &Config) -> Result<Store, ConfigError> {
    let mut store = Store::default();
    for path in &config.root_folders {
        store
            .ensure_path(path)
            .map_err(|e| ConfigError::Constraint {
                field: "root_folders",
                message: e.to_string(),
            })?;
    }
    Ok(store)
}

fn initial_limits(config: &Config) -> Limits {
    Limits {
        quota_bytes: config.quota_bytes,
        max_file_size_bytes: config.max_file_size_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_admit() {
        let limits = Limits {
            quota_bytes: Some(10),
            max_file_size_bytes: Some(6),
        };
        assert!(limits.admit(6, 4, 0).is_ok());
        assert_eq!(limits.admit(7, 0, 0).unwrap_err().reason, "FileTooLarge");
        assert_eq!(limits.admit(6, 5, 0).unwrap_err().reason, "QuotaExceeded");
        assert!(limits.admit(6, 5, 1).is_ok());
    }
}
