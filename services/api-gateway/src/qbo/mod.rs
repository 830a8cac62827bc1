//! QuickBooks Online at the gateway (flow 7):
//! - [`webhook`]: `POST /api/v1/webhooks/qbo`, Intuit's webhooks (no bearer token: the
//!   `intuit-signature` HMAC over the raw body authenticates them), published as one
//!   `gateway.qbo.webhook-received.v1` record per realm for qbo-mirror, which syncs the realm;
//! - [`digest`] and [`trays`]: the advisor's portfolio digest, hygiene tray and decision console,
//!   answered from qbo-mirror's read model (`read_api.qbo_*`), never from QBO.

pub mod advisor;
pub mod cache;
pub mod digest;
pub mod payload;
pub mod seen;
pub mod trays;
pub mod webhook;

use std::{sync::Arc, time::Duration};

use aws_lc_rs::hmac;
use brain_runtime::settings::{Env, SettingsError};
use secrecy::{ExposeSecret, SecretString};

/// The QBO routes' settings.
#[derive(Debug, Clone)]
pub struct QboSettings {
    /// `QBO_WEBHOOK_VERIFIER`: the app's verifier token from Intuit's developer portal. Unset:
    /// the webhook answers 503 `webhooks_not_configured`.
    pub webhook_verifier: Option<SecretString>,
    /// `QBO_WEBHOOK_PUBLISH_TIMEOUT_MS`: how long a delivery waits for Kafka's acknowledgement
    /// before answering 503 (Intuit wants an answer within 3 s, and retries).
    pub webhook_publish_timeout: Duration,
    /// `ADVISOR_VIEWS_CACHE_MS`: how long an answer of the advisor's views is reused ([`cache`]).
    pub views_cache: Duration,
}

impl Default for QboSettings {
    fn default() -> Self {
        Self { webhook_verifier: None, webhook_publish_timeout: Duration::from_millis(2_000), views_cache: Duration::from_millis(1_000) }
    }
}

impl QboSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            webhook_verifier: env.optional::<String>("QBO_WEBHOOK_VERIFIER")?.map(SecretString::from),
            webhook_publish_timeout: env.millis_in("QBO_WEBHOOK_PUBLISH_TIMEOUT", 2_000, 100..=2_900)?,
            views_cache: env.millis_in("ADVISOR_VIEWS_CACHE", 1_000, 0..=60_000)?,
        })
    }
}

/// What the QBO routes keep between requests; cheap to clone.
#[derive(Clone)]
pub struct QboState {
    /// The verifier token as an HMAC-SHA256 key; `None`: webhooks are not configured.
    key: Option<Arc<hmac::Key>>,
    publish_timeout: Duration,
    /// CloudEvent ids already published.
    seen: Arc<seen::SeenEvents>,
    /// The advisor's views' recent answers.
    views: Arc<cache::ViewCache>,
}

impl Default for QboState {
    fn default() -> Self {
        Self::new(&QboSettings::default())
    }
}

impl QboState {
    pub fn new(settings: &QboSettings) -> Self {
        let key = settings.webhook_verifier.as_ref().map(|v| Arc::new(hmac::Key::new(hmac::HMAC_SHA256, v.expose_secret().as_bytes())));
        Self {
            key,
            publish_timeout: settings.webhook_publish_timeout,
            seen: Arc::new(seen::SeenEvents::default()),
            views: Arc::new(cache::ViewCache::new(settings.views_cache)),
        }
    }
}
