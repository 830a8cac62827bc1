//! Settings: defaults, then `GRAPH_SIM__*` environment variables, validated at start-up with the
//! failing variable named. The tenant id and the client credentials have no defaults: the
//! start-up scripts and the tests generate them, so none is stored in the repository.

use std::{net::SocketAddr, time::Duration};

use secrecy::SecretString;

use simulator_kit::settings::{ConfigError, Env, constraint};

const PREFIX: &str = "GRAPH_SIM__";

/// How change notifications are delivered; `/control/notifications/settings` changes it at run
/// time.
#[derive(Debug, Clone)]
pub struct NotificationConfig {
    /// The validation handshake must be answered within this (Graph: 10 s).
    pub validation_timeout: Duration,
    /// A notification not answered 2xx within this failed the attempt (Graph: 3 s).
    pub timeout: Duration,
    /// Attempts per notification, the first included; retries back off from `retry_delay`,
    /// doubling. (Graph retries for up to 4 hours.)
    pub max_attempts: u32,
    pub retry_delay: Duration,
    /// Share of notifications never sent, 0..=100 (seeded RNG).
    pub drop_percent: f64,
    /// Share of notifications sent twice, 0..=100 (seeded RNG).
    pub duplicate_percent: f64,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            validation_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            max_attempts: 3,
            retry_delay: Duration::from_secs(1),
            drop_percent: 0.0,
            duplicate_percent: 0.0,
        }
    }
}

impl NotificationConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("notifications.drop_percent", self.drop_percent),
            ("notifications.duplicate_percent", self.duplicate_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(constraint(field, "must be between 0 and 100"));
            }
        }
        if self.max_attempts == 0 {
            return Err(constraint(
                "notifications.max_attempts",
                "must be at least 1",
            ));
        }
        if self.timeout.is_zero() || self.validation_timeout.is_zero() {
            return Err(constraint("notifications.timeout", "must be positive"));
        }
        Ok(())
    }
}

/// `Debug` redacts the secret (`SecretString`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// The tenant in `/{tenant}/oauth2/v2.0/token` and in notifications' `tenantId`.
    pub tenant_id: String,
    /// App registration credentials of the client-credentials grant.
    pub client_id: String,
    pub client_secret: SecretString,
    /// Access token lifetime (Entra ID: about an hour, `expires_in` 3599).
    pub access_token_ttl: Duration,
    /// Requests per mailbox in flight at once (Exchange: 4); the next gets 429.
    pub mailbox_concurrency: u32,
    /// `Retry-After` of a mailbox-concurrency 429.
    pub concurrency_retry_after: Duration,
    /// Longest subscription on events (Graph: 10,080 minutes).
    pub max_subscription_lifetime: Duration,
    /// Refuse (409) creates overlapping a busy time; Graph allows overlaps, so off by default.
    pub strict_conflicts: bool,
    /// Ledger entries kept (oldest dropped first).
    pub ledger_capacity: usize,
    /// Seeds fault probabilities and notification drops and repeats.
    pub seed: u64,
    pub notifications: NotificationConfig,
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8094";

    /// Defaults for everything but the tenant and the credentials, which the caller supplies.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            listen_addr: Self::DEFAULT_LISTEN_ADDR
                .parse()
                .expect("valid default address"),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            access_token_ttl: Duration::from_secs(3599),
            mailbox_concurrency: 4,
            concurrency_retry_after: Duration::from_secs(1),
            max_subscription_lifetime: Duration::from_secs(10_080 * 60),
            strict_conflicts: false,
            ledger_capacity: 200_000,
            seed: 0,
            notifications: NotificationConfig::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an injectable lookup, for unit tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(PREFIX, lookup);
        let mut c = Self::new(
            env.required("TENANT_ID")?,
            env.required("CLIENT_ID")?,
            env.required("CLIENT_SECRET")?,
        );
        fn id<T>(v: T) -> T {
            v
        }
        let secs = Duration::from_secs;
        let millis = Duration::from_millis;
        env.set("LISTEN_ADDR", &mut c.listen_addr, id)?;
        env.set("ACCESS_TOKEN_TTL_SECS", &mut c.access_token_ttl, secs)?;
        env.set("MAILBOX_CONCURRENCY", &mut c.mailbox_concurrency, id)?;
        env.set(
            "CONCURRENCY_RETRY_AFTER_SECS",
            &mut c.concurrency_retry_after,
            secs,
        )?;
        env.set(
            "MAX_SUBSCRIPTION_MINUTES",
            &mut c.max_subscription_lifetime,
            |m: u64| Duration::from_secs(m.saturating_mul(60)),
        )?;
        env.set("STRICT_CONFLICTS", &mut c.strict_conflicts, id)?;
        env.set("LEDGER_CAPACITY", &mut c.ledger_capacity, id)?;
        env.set("SEED", &mut c.seed, id)?;
        let n = &mut c.notifications;
        env.set("VALIDATION_TIMEOUT_MS", &mut n.validation_timeout, millis)?;
        env.set("NOTIFICATION_TIMEOUT_MS", &mut n.timeout, millis)?;
        env.set("NOTIFICATION_MAX_ATTEMPTS", &mut n.max_attempts, id)?;
        env.set("NOTIFICATION_RETRY_DELAY_MS", &mut n.retry_delay, millis)?;
        env.set("NOTIFICATION_DROP_PERCENT", &mut n.drop_percent, id)?;
        env.set(
            "NOTIFICATION_DUPLICATE_PERCENT",
            &mut n.duplicate_percent,
            id,
        )?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("tenant_id", &self.tenant_id),
            ("client_id", &self.client_id),
        ] {
            if value.trim().is_empty() || value.contains('/') {
                return Err(constraint(field, "must be non-empty, without '/'"));
            }
        }
        for (field, d) in [
            ("access_token_ttl", self.access_token_ttl),
            ("max_subscription_lifetime", self.max_subscription_lifetime),
        ] {
            if d.is_zero() {
                return Err(constraint(field, "must be positive"));
            }
        }
        if self.mailbox_concurrency == 0 {
            return Err(constraint("mailbox_concurrency", "must be at least 1"));
        }
        if self.ledger_capacity == 0 {
            return Err(constraint("ledger_capacity", "must be at least 1"));
        }
        self.notifications.validate()
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
        ("GRAPH_SIM__TENANT_ID", "tenant"),
        ("GRAPH_SIM__CLIENT_ID", "id"),
        ("GRAPH_SIM__CLIENT_SECRET", "hunter2"),
    ];

    #[test]
    fn defaults_follow_graph() {
        let c = Config::from_lookup(lookup(&SECRETS)).unwrap();
        assert_eq!(c.mailbox_concurrency, 4);
        assert_eq!(c.notifications.timeout, Duration::from_secs(3));
        assert_eq!(c.notifications.validation_timeout, Duration::from_secs(10));
        assert!(!c.strict_conflicts);
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&SECRETS[..2])).unwrap_err();
        assert!(err.to_string().contains("CLIENT_SECRET"), "{err}");
        let mut vars = SECRETS.to_vec();
        vars.push(("GRAPH_SIM__STRICT_CONFLICTS", "maybe"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(
            err.to_string().contains("GRAPH_SIM__STRICT_CONFLICTS"),
            "{err}"
        );
        let mut vars = SECRETS.to_vec();
        vars.push(("GRAPH_SIM__MAILBOX_CONCURRENCY", "0"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains("mailbox_concurrency"), "{err}");
    }
}
