//! The simulator's state: the item tree, tokens, upload sessions, limits, and the kit's faults
//! and ledger, each behind its own small lock, never held across an `.await`; and how the kit's
//! middleware and `/control` routes see it ([`Simulated`]).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use simulator_kit::{Call, Core, Simulated, Target, lock};

use crate::{
    config::Config,
    error::{ConfigError, SfError, UploadError},
    faults::ShareFileFault,
    items::Store,
    ledger::{Detail, Ledger, Stats},
    oauth::Tokens,
    upload::Uploads,
};

pub type SharedState = Arc<AppState>;

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
    /// Faults, their RNG, and the ledger.
    core: Core<ShareFileFault, Detail, Stats>,
}

impl AppState {
    pub fn new(config: Config) -> Result<SharedState, ConfigError> {
        let state = Self {
            store: Mutex::new(initial_store(&config)?),
            tokens: Mutex::default(),
            uploads: Mutex::default(),
            limits: Mutex::new(initial_limits(&config)),
            core: Core::new(config.ledger_capacity, config.seed),
            config,
        };
        Ok(Arc::new(state))
    }

    /// The prefix of URLs handed to clients: `public_url`, else `http://<Host>`.
    pub fn public_url(&self, headers: &HeaderMap) -> String {
        let configured = self.config.public_url.as_deref();
        simulator_kit::public_url(configured, self.config.listen_addr, headers)
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

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.core.ledger()
    }
}

impl Simulated for AppState {
    type Fault = ShareFileFault;
    type Entry = Detail;
    type Tally = Stats;

    fn core(&self) -> &Core<ShareFileFault, Detail, Stats> {
        &self.core
    }

    /// 429 `Throttled` or a 5xx ShareFile error.
    fn error_answer(status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let error = match status {
            StatusCode::TOO_MANY_REQUESTS => SfError::throttled(None),
            status => SfError::server(status),
        };
        SfError {
            retry_after_secs,
            ..error
        }
        .into_response()
    }

    fn custom_answer(answer: UploadError) -> Response {
        answer.into_response()
    }

    fn describe(&self, _call: &Call, response: &mut Response) -> Detail {
        let extensions = response.extensions();
        Detail {
            reason: extensions.get::<SfError>().map(|e| e.reason.to_owned()),
            upload_error: extensions.get::<UploadError>().is_some(),
            target: extensions.get::<Target>().map(|t| t.0.clone()),
        }
    }

    fn stats(&self) -> Value {
        let mut value = json!(self.ledger().stats());
        let store = self.store();
        value["files"] = json!(store.files().count());
        value["usedBytes"] = json!(store.used_bytes());
        value
    }

    /// Back to the start: only the configured root folders, no tokens, upload sessions, faults
    /// or ledger, and the configured limits.
    fn reset(&self) {
        *self.store() = initial_store(&self.config).expect("validated at start");
        *self.tokens() = Tokens::default();
        *self.uploads() = Uploads::default();
        *self.limits() = initial_limits(&self.config);
        self.core.reset();
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
    use axum::http::header;

    use super::*;

    #[test]
    fn injected_answers_are_sharefile_errors() {
        let response = AppState::error_answer(StatusCode::TOO_MANY_REQUESTS, Some(7));
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let error = response.extensions().get::<SfError>().unwrap();
        assert_eq!((error.reason, error.code), ("Throttled", "TooManyRequests"));
        let response = AppState::error_answer(StatusCode::GATEWAY_TIMEOUT, None);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let error = response.extensions().get::<SfError>().unwrap();
        assert_eq!(error.reason, "GatewayTimeout");
        let response = AppState::custom_answer(UploadError("full".into()));
        assert_eq!(response.status(), StatusCode::OK);
    }

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
