//! Settings: defaults, then `VENTURES_SIM__*` environment variables, validated at start-up.
//!
//! The three credentials have no defaults: the start-up scripts generate dev credentials, so none
//! are ever stored in the repository.

use std::{fmt, net::SocketAddr, time::Duration};

use anyhow::{Context, bail};

const PREFIX: &str = "VENTURES_SIM__";

#[derive(Clone)]
pub struct Config {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Credentials `POST /api/v4/token` accepts.
    pub client: String,
    pub username: String,
    pub password: String,
    /// Lifetime of issued bearer tokens.
    pub token_ttl: Duration,
    /// Number of change-feed entries kept; a cursor older than the oldest kept entry gets 410.
    pub feed_retention: usize,
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8090";
    pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
    pub const DEFAULT_FEED_RETENTION: usize = 100_000;

    /// Defaults for everything but the credentials, which the caller supplies.
    pub fn new(
        client: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            listen_addr: Self::DEFAULT_LISTEN_ADDR
                .parse()
                .expect("valid default address"),
            client: client.into(),
            username: username.into(),
            password: password.into(),
            token_ttl: Self::DEFAULT_TOKEN_TTL,
            feed_retention: Self::DEFAULT_FEED_RETENTION,
        }
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an injectable lookup, for unit tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get =
            |field: &str| lookup(&format!("{PREFIX}{field}")).filter(|v| !v.trim().is_empty());
        let required =
            |field: &str| get(field).with_context(|| format!("{PREFIX}{field} is required"));

        let mut config = Self::new(
            required("CLIENT")?,
            required("USERNAME")?,
            required("PASSWORD")?,
        );
        if let Some(v) = get("LISTEN_ADDR") {
            config.listen_addr = v
                .trim()
                .parse()
                .with_context(|| format!("{PREFIX}LISTEN_ADDR: invalid socket address {v:?}"))?;
        }
        if let Some(v) = get("TOKEN_TTL_SECS") {
            let secs: u64 = v
                .trim()
                .parse()
                .with_context(|| format!("{PREFIX}TOKEN_TTL_SECS: not a whole number: {v:?}"))?;
            if secs == 0 {
                bail!("{PREFIX}TOKEN_TTL_SECS must be at least 1");
            }
            config.token_ttl = Duration::from_secs(secs);
        }
        if let Some(v) = get("FEED_RETENTION") {
            config.feed_retention = v
                .trim()
                .parse()
                .with_context(|| format!("{PREFIX}FEED_RETENTION: not a whole number: {v:?}"))?;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.feed_retention == 0 {
            bail!("{PREFIX}FEED_RETENTION must be at least 1");
        }
        if self.token_ttl.is_zero() {
            bail!("token_ttl must be positive");
        }
        Ok(())
    }
}

/// The password is redacted.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("client", &self.client)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("token_ttl", &self.token_ttl)
            .field("feed_retention", &self.feed_retention)
            .finish()
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

    const CREDS: [(&str, &str); 3] = [
        ("VENTURES_SIM__CLIENT", "c"),
        ("VENTURES_SIM__USERNAME", "u"),
        ("VENTURES_SIM__PASSWORD", "p"),
    ];

    #[test]
    fn defaults_apply_when_only_credentials_are_set() {
        let config = Config::from_lookup(lookup(&CREDS)).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8090");
        assert_eq!(config.token_ttl, Duration::from_secs(3600));
        assert_eq!(config.feed_retention, 100_000);
        assert!(!format!("{config:?}").contains("\"p\""));
    }

    #[test]
    fn missing_credential_names_the_variable() {
        let err = Config::from_lookup(lookup(&CREDS[..2])).unwrap_err();
        assert!(err.to_string().contains("VENTURES_SIM__PASSWORD"), "{err}");
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let mut vars = CREDS.to_vec();
        vars.push(("VENTURES_SIM__FEED_RETENTION", "lots"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(
            err.to_string().contains("VENTURES_SIM__FEED_RETENTION"),
            "{err}"
        );
    }
}
