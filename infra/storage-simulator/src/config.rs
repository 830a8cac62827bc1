//! Settings: defaults, then `STORAGE_SIM__*` environment variables, validated at start-up with
//! the failing variable named. Nothing is required: without `BEARER_TOKEN` the API takes
//! anonymous calls (as the dev stack's emulators do).

use std::{fmt, net::SocketAddr};

use secrecy::SecretString;

use simulator_kit::settings::{ConfigError, Env, constraint};

const PREFIX: &str = "STORAGE_SIM__";

#[derive(Clone)]
pub struct Config {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Prefix of `selfLink` and `mediaLink`, e.g. `http://storage-simulator:8093`. Unset:
    /// `http://<Host header of the request>`.
    pub public_url: Option<String>,
    /// Buckets that exist at start (and after `/control/reset`).
    pub buckets: Vec<String>,
    /// When set, every API call needs `Authorization: Bearer <this>`; unset, none is checked.
    pub bearer_token: Option<SecretString>,
    /// Largest request body the server reads (uploads included).
    pub max_body_bytes: usize,
    /// Ledger entries kept (oldest dropped first).
    pub ledger_capacity: usize,
    /// Seeds the RNG of fault probabilities.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: Self::DEFAULT_LISTEN_ADDR
                .parse()
                .expect("valid default address"),
            public_url: None,
            buckets: Vec::new(),
            bearer_token: None,
            max_body_bytes: 256 * 1024 * 1024,
            ledger_capacity: 100_000,
            seed: 0,
        }
    }
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8093";

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an injectable lookup, for unit tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(PREFIX, lookup);
        let mut c = Self::default();
        env.set("LISTEN_ADDR", &mut c.listen_addr, |v| v)?;
        c.public_url = env
            .get("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(buckets) = env.get("BUCKETS") {
            c.buckets = buckets
                .split(',')
                .map(|b| b.trim().to_owned())
                .filter(|b| !b.is_empty())
                .collect();
        }
        c.bearer_token = env.get("BEARER_TOKEN").map(SecretString::from);
        env.set("MAX_BODY_BYTES", &mut c.max_body_bytes, |v| v)?;
        env.set("LEDGER_CAPACITY", &mut c.ledger_capacity, |v| v)?;
        env.set("SEED", &mut c.seed, |v| v)?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(constraint("max_body_bytes", "must be at least 1"));
        }
        if self.ledger_capacity == 0 {
            return Err(constraint("ledger_capacity", "must be at least 1"));
        }
        if let Some(bad) = self.buckets.iter().find(|b| !valid_bucket_name(b)) {
            return Err(constraint(
                "buckets",
                &format!("{bad:?} is not a bucket name (3-63 of a-z, 0-9, -, _, .)"),
            ));
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(constraint(
                "public_url",
                "must start with http:// or https://",
            ));
        }
        Ok(())
    }
}

/// GCS bucket names: 3 to 63 characters of lower-case letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub fn valid_bucket_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
}

/// The bearer token is redacted by `SecretString`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("public_url", &self.public_url)
            .field("buckets", &self.buckets)
            .field("bearer_token", &self.bearer_token)
            .field("max_body_bytes", &self.max_body_bytes)
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

    #[test]
    fn defaults_buckets_and_redaction() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert!(c.bearer_token.is_none() && c.buckets.is_empty());
        let c = Config::from_lookup(lookup(&[
            ("STORAGE_SIM__BUCKETS", "brain-uploads, other.bucket"),
            ("STORAGE_SIM__BEARER_TOKEN", "hunter2"),
        ]))
        .unwrap();
        assert_eq!(c.buckets, ["brain-uploads", "other.bucket"]);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&[("STORAGE_SIM__SEED", "x")])).unwrap_err();
        assert!(err.to_string().contains("STORAGE_SIM__SEED"), "{err}");
        let err =
            Config::from_lookup(lookup(&[("STORAGE_SIM__BUCKETS", "Bad_Bucket")])).unwrap_err();
        assert!(err.to_string().contains("buckets"), "{err}");
        assert!(!valid_bucket_name("ab") && !valid_bucket_name("-ab") && valid_bucket_name("a-b"));
    }
}
