//! Settings: defaults, then environment variables `SCHEMA_REGISTRY__<FIELD>`.

use std::{fmt, net::SocketAddr};

use anyhow::{Context, bail};

const PREFIX: &str = "SCHEMA_REGISTRY__";

#[derive(Clone)]
pub struct Settings {
    /// PostgreSQL URL; tables live in schema `schema_registry`, created if missing.
    pub database_url: String,
    /// Where the HTTP API listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
}

impl Settings {
    pub const DEFAULT_LISTEN_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);

    /// `SCHEMA_REGISTRY__DATABASE_URL` (required), `SCHEMA_REGISTRY__LISTEN_ADDR`
    /// (default `127.0.0.1:8081`).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |field: &str| lookup(&format!("{PREFIX}{field}"));
        let database_url = match var("DATABASE_URL") {
            Some(url) if !url.trim().is_empty() => url,
            _ => bail!("{PREFIX}DATABASE_URL is required (a PostgreSQL URL)"),
        };
        let listen_addr = match var("LISTEN_ADDR") {
            Some(addr) => addr
                .trim()
                .parse()
                .with_context(|| format!("{PREFIX}LISTEN_ADDR '{addr}' is not a host:port"))?,
            None => Self::DEFAULT_LISTEN_ADDR,
        };
        Ok(Settings {
            database_url,
            listen_addr,
        })
    }
}

impl fmt::Debug for Settings {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &"[redacted]")
            .field("listen_addr", &self.listen_addr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn database_url_is_required() {
        let err = settings(&[]).unwrap_err().to_string();
        assert!(err.contains("SCHEMA_REGISTRY__DATABASE_URL"), "{err}");
    }

    #[test]
    fn listen_addr_defaults_and_parses() {
        let url = ("DATABASE_URL", "postgres://localhost/db");
        assert_eq!(
            settings(&[url]).unwrap().listen_addr,
            Settings::DEFAULT_LISTEN_ADDR
        );
        let custom = settings(&[url, ("LISTEN_ADDR", "0.0.0.0:9000")]).unwrap();
        assert_eq!(custom.listen_addr.port(), 9000);
        let err = settings(&[url, ("LISTEN_ADDR", "nope")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SCHEMA_REGISTRY__LISTEN_ADDR"), "{err}");
    }

    #[test]
    fn debug_hides_the_url() {
        let s = settings(&[("DATABASE_URL", "postgres://u:secret@h/db")]).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
    }
}
