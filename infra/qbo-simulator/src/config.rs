//! Settings: defaults, then `QBO_SIM__*` environment variables, validated at start-up with the
//! failing variable named. The OAuth client credentials and the webhook verifier token have no
//! defaults: the start-up scripts generate them, so none is stored in the repository.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use simulator_kit::settings::{ConfigError, Env, constraint};

const PREFIX: &str = "QBO_SIM__";

/// Payload format of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"eventNotifications":[...]}`.
    Legacy,
    /// A JSON array of CloudEvents (now mandatory at Intuit).
    CloudEvents,
    /// Each delivery picks one of the two (seeded), so a receiver sees both.
    Mixed,
}

impl FromStr for WebhookFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legacy" => Ok(Self::Legacy),
            "cloudevents" => Ok(Self::CloudEvents),
            "mixed" => Ok(Self::Mixed),
            other => Err(format!(
                "expected legacy, cloudevents or mixed, got {other:?}"
            )),
        }
    }
}

/// Where and how change notifications are delivered; `/control/webhooks` can change all of it
/// at run time.
#[derive(Clone)]
pub struct WebhookConfig {
    /// No URL: notifications are recorded as `undeliverable` and not sent.
    pub url: Option<String>,
    /// The HMAC key of `intuit-signature`.
    pub verifier_token: SecretString,
    pub format: WebhookFormat,
    /// Share of deliveries never sent, 0..=100 (seeded RNG).
    pub drop_percent: f64,
    /// Share of deliveries sent twice, 0..=100 (seeded RNG).
    pub duplicate_percent: f64,
    /// How long changes are gathered into one delivery.
    pub batch_delay: Duration,
    /// Most events in one delivery (Intuit: 100 CloudEvents).
    pub max_events: usize,
    /// A receiver slower than this failed the attempt (Intuit wants an answer within 3 s).
    pub timeout: Duration,
    /// Attempts per delivery, the first included; retries back off from `retry_delay`, doubling.
    pub max_attempts: u32,
    pub retry_delay: Duration,
    /// `Content-Type` of CloudEvents deliveries.
    pub cloudevents_content_type: String,
}

impl WebhookConfig {
    pub fn new(verifier_token: impl Into<String>) -> Self {
        Self {
            url: None,
            verifier_token: SecretString::from(verifier_token.into()),
            format: WebhookFormat::CloudEvents,
            drop_percent: 0.0,
            duplicate_percent: 0.0,
            batch_delay: Duration::from_millis(50),
            max_events: 100,
            timeout: Duration::from_secs(3),
            max_attempts: 3,
            retry_delay: Duration::from_millis(500),
            cloudevents_content_type: "application/cloudevents+json".to_owned(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let percent = |field, v: f64| {
            if (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(constraint(field, "must be between 0 and 100"))
            }
        };
        percent("webhook.drop_percent", self.drop_percent)?;
        percent("webhook.duplicate_percent", self.duplicate_percent)?;
        if !(1..=1000).contains(&self.max_events) {
            return Err(constraint("webhook.max_events", "must be 1..=1000"));
        }
        if self.max_attempts == 0 {
            return Err(constraint("webhook.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Config {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// OAuth client credentials (HTTP Basic on the token endpoint).
    pub client_id: String,
    pub client_secret: SecretString,
    /// Access token lifetime, in simulated time (QBO: 1 h).
    pub access_token_ttl: Duration,
    /// Refresh token lifetime, in simulated time (QBO: 100 days).
    pub refresh_token_ttl: Duration,
    /// Simulated seconds per real second (60: an hour passes in a minute).
    pub time_scale: f64,
    /// The companies' UTC offset in timestamps, in minutes (default -420, Pacific daylight time).
    pub utc_offset_minutes: i32,
    /// Requests per realm allowed in any `rate_window` (real time); QBO: 500 per minute.
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// Requests per realm in flight at once; QBO: 10.
    pub max_concurrent_per_realm: u32,
    /// How far back `changedSince` may reach, in simulated time (QBO: 30 days).
    pub cdc_lookback: Duration,
    /// Objects in one CDC response (QBO: 1,000).
    pub cdc_max_objects: usize,
    /// Ledger entries kept (oldest dropped first).
    pub ledger_capacity: usize,
    /// Seeds the RNG of fault probabilities and webhook drops and repeats.
    pub seed: u64,
    pub webhook: WebhookConfig,
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8091";

    /// Defaults for everything but the secrets, which the caller supplies.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        verifier_token: impl Into<String>,
    ) -> Self {
        Self {
            listen_addr: Self::DEFAULT_LISTEN_ADDR
                .parse()
                .expect("valid default address"),
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(100 * 24 * 3600),
            time_scale: 1.0,
            utc_offset_minutes: -420,
            rate_limit: 500,
            rate_window: Duration::from_secs(60),
            max_concurrent_per_realm: 10,
            cdc_lookback: Duration::from_secs(30 * 24 * 3600),
            cdc_max_objects: 1000,
            ledger_capacity: 200_000,
            seed: 0,
            webhook: WebhookConfig::new(verifier_token),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an injectable lookup, for unit tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(PREFIX, lookup);
        let mut c = Self::new(
            env.required("CLIENT_ID")?,
            env.required("CLIENT_SECRET")?,
            env.required("WEBHOOK_VERIFIER_TOKEN")?,
        );
        let secs = |v: f64| Duration::from_secs_f64(v);
        let millis = Duration::from_millis;
        env.set("LISTEN_ADDR", &mut c.listen_addr, |v| v)?;
        env.set("ACCESS_TOKEN_TTL_SECS", &mut c.access_token_ttl, secs)?;
        env.set("REFRESH_TOKEN_TTL_SECS", &mut c.refresh_token_ttl, secs)?;
        env.set("TIME_SCALE", &mut c.time_scale, |v| v)?;
        env.set("UTC_OFFSET_MINUTES", &mut c.utc_offset_minutes, |v| v)?;
        env.set("RATE_LIMIT", &mut c.rate_limit, |v| v)?;
        env.set("RATE_WINDOW_SECS", &mut c.rate_window, secs)?;
        env.set(
            "MAX_CONCURRENT_PER_REALM",
            &mut c.max_concurrent_per_realm,
            |v| v,
        )?;
        env.set("CDC_LOOKBACK_SECS", &mut c.cdc_lookback, secs)?;
        env.set("CDC_MAX_OBJECTS", &mut c.cdc_max_objects, |v| v)?;
        env.set("LEDGER_CAPACITY", &mut c.ledger_capacity, |v| v)?;
        env.set("SEED", &mut c.seed, |v| v)?;
        let w = &mut c.webhook;
        w.url = env.get("WEBHOOK_URL");
        env.set("WEBHOOK_FORMAT", &mut w.format, |v| v)?;
        env.set("WEBHOOK_DROP_PERCENT", &mut w.drop_percent, |v| v)?;
        env.set("WEBHOOK_DUPLICATE_PERCENT", &mut w.duplicate_percent, |v| v)?;
        env.set("WEBHOOK_BATCH_DELAY_MS", &mut w.batch_delay, millis)?;
        env.set("WEBHOOK_MAX_ATTEMPTS", &mut w.max_attempts, |v| v)?;
        env.set("WEBHOOK_RETRY_DELAY_MS", &mut w.retry_delay, millis)?;
        env.set("WEBHOOK_TIMEOUT_MS", &mut w.timeout, millis)?;
        env.set("WEBHOOK_MAX_EVENTS", &mut w.max_events, |v| v)?;
        if let Some(content_type) = env.get("WEBHOOK_CLOUDEVENTS_CONTENT_TYPE") {
            w.cloudevents_content_type = content_type;
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(constraint("time_scale", "must be positive"));
        }
        if self.utc_offset_minutes.abs() >= 24 * 60 {
            return Err(constraint("utc_offset_minutes", "must be within a day"));
        }
        for (field, d) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("rate_window", self.rate_window),
            ("cdc_lookback", self.cdc_lookback),
        ] {
            if d.is_zero() {
                return Err(constraint(field, "must be positive"));
            }
        }
        for (field, n) in [
            ("rate_limit", self.rate_limit as usize),
            (
                "max_concurrent_per_realm",
                self.max_concurrent_per_realm as usize,
            ),
            ("cdc_max_objects", self.cdc_max_objects),
            ("ledger_capacity", self.ledger_capacity),
        ] {
            if n == 0 {
                return Err(constraint(field, "must be at least 1"));
            }
        }
        self.webhook.validate()
    }
}

/// Secrets are redacted by `SecretString`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("time_scale", &self.time_scale)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("max_concurrent_per_realm", &self.max_concurrent_per_realm)
            .field("cdc_max_objects", &self.cdc_max_objects)
            .field("webhook_url", &self.webhook.url)
            .field("webhook_format", &self.webhook.format)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const SECRETS: [(&str, &str); 3] = [
        ("QBO_SIM__CLIENT_ID", "id"),
        ("QBO_SIM__CLIENT_SECRET", "hunter2"),
        ("QBO_SIM__WEBHOOK_VERIFIER_TOKEN", "verifier"),
    ];

    #[test]
    fn defaults_follow_qbo() {
        let c = Config::from_lookup(lookup(&SECRETS)).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(3600));
        assert_eq!((c.rate_limit, c.max_concurrent_per_realm), (500, 10));
        assert_eq!(c.cdc_max_objects, 1000);
        assert_eq!(c.webhook.format, WebhookFormat::CloudEvents);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("verifier"),
            "{debug}"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&SECRETS[..2])).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_VERIFIER_TOKEN"), "{err}");
        let mut vars = SECRETS.to_vec();
        vars.push(("QBO_SIM__WEBHOOK_FORMAT", "xml"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains("QBO_SIM__WEBHOOK_FORMAT"), "{err}");
        let mut vars = SECRETS.to_vec();
        vars.push(("QBO_SIM__RATE_LIMIT", "0"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains("rate_limit"), "{err}");
    }
}
