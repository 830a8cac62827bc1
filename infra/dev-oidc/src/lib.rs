//! A development OIDC issuer for `make run` and the tests. **Never for production**: anyone who can
//! reach it can mint any token, so it refuses to listen beyond loopback.
//!
//! - `GET /.well-known/openid-configuration`: discovery (`issuer`, `jwks_uri`).
//! - `GET /jwks.json`: the public keys, each with its `kid` (RFC 7638 thumbprint).
//! - `POST /mint` `{sub, role, tenant, applications?, ttl_secs?, aud?, alg?, ...}` → `{token, kid,
//!   alg, expires_at}` (see [`MintRequest`]).
//! - `POST /control/rotate` `{retire_previous?}`: new keys become current (so relying parties see
//!   a new `kid`); `GET /control/stats`: request counters.
//!
//! Keys (RSA 2048 for RS256, P-256 for ES256) are generated in memory at start-up and never
//! stored. Tests run it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dev_oidc::{Config, DevOidc, MintRequest};
//! let mut config = Config::default();
//! config.listen_addr = "127.0.0.1:0".parse()?;
//! let oidc = DevOidc::start(config).await?.spawn();
//! let token = oidc.issuer().mint(&MintRequest::new("user-1", "staff", "t1"))?.token;
//! # Ok(()) }
//! ```

pub mod client;
mod issuer;
mod keys;
mod routes;
mod token;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::{
    issuer::{Issuer, MintError, Stats},
    keys::{Alg, CryptoError},
    token::{MintRequest, Minted, unsigned},
};

const PREFIX: &str = "DEV_OIDC__";

#[derive(Debug, Clone)]
pub struct Config {
    /// Loopback only; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// `iss` of the tokens; default `http://<bound address>`.
    pub issuer_url: Option<String>,
    /// Default `aud` of the tokens.
    pub audience: String,
    /// Default token lifetime.
    pub token_ttl_secs: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self { listen_addr: SocketAddr::from(([127, 0, 0, 1], 8070)), issuer_url: None, audience: "brain".into(), token_ttl_secs: 3600 }
    }
}

impl Config {
    /// Defaults, then `DEV_OIDC__LISTEN_ADDR`, `__ISSUER_URL`, `__AUDIENCE`, `__TOKEN_TTL_SECS`.
    pub fn from_env() -> anyhow::Result<Self> {
        let get = |field: &str| std::env::var(format!("{PREFIX}{field}")).ok().filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        if let Some(addr) = get("LISTEN_ADDR") {
            config.listen_addr = addr.parse().with_context(|| format!("{PREFIX}LISTEN_ADDR={addr:?} is not an address"))?;
        }
        config.issuer_url = get("ISSUER_URL");
        if let Some(audience) = get("AUDIENCE") {
            config.audience = audience;
        }
        if let Some(ttl) = get("TOKEN_TTL_SECS") {
            config.token_ttl_secs = ttl.parse().with_context(|| format!("{PREFIX}TOKEN_TTL_SECS={ttl:?} is not a number"))?;
        }
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.listen_addr.ip().is_loopback(),
            "{PREFIX}LISTEN_ADDR={}: the dev issuer mints any token for anyone who can reach it, so it listens on loopback only",
            self.listen_addr
        );
        anyhow::ensure!(!self.audience.trim().is_empty(), "{PREFIX}AUDIENCE must not be empty");
        anyhow::ensure!((1..=86_400 * 30).contains(&self.token_ttl_secs), "{PREFIX}TOKEN_TTL_SECS must be 1-2592000");
        Ok(())
    }
}

/// A bound, not yet serving issuer.
pub struct DevOidc {
    listener: TcpListener,
    issuer: Arc<Issuer>,
}

impl DevOidc {
    /// Validates the config, binds the listener and generates the keys.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen_addr).await.with_context(|| format!("binding {}", config.listen_addr))?;
        let url = config.issuer_url.clone().unwrap_or_else(|| format!("http://{}", listener.local_addr().expect("bound listener")));
        let url = url.trim_end_matches('/').to_string();
        let (audience, ttl) = (config.audience.clone(), config.token_ttl_secs);
        let issuer = tokio::task::spawn_blocking(move || Issuer::new(url, audience, ttl)).await??;
        Ok(Self { listener, issuer: Arc::new(issuer) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, routes::router(self.issuer)).with_graceful_shutdown(shutdown.cancelled_owned()).await.context("serving HTTP")
    }

    /// Serves on a background task until the returned handle is dropped.
    pub fn spawn(self) -> RunningIssuer {
        let issuer = self.issuer.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.run_until(shutdown.clone()));
        RunningIssuer { issuer, _task: task, _guard: shutdown.drop_guard() }
    }
}

/// An issuer serving on a background task; dropping it stops the server.
pub struct RunningIssuer {
    issuer: Arc<Issuer>,
    _task: JoinHandle<anyhow::Result<()>>,
    _guard: DropGuard,
}

impl RunningIssuer {
    /// The issuer URL (`iss`), e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        self.issuer.url()
    }

    /// Mint, rotate and read counters in-process.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_to_listen_beyond_loopback() {
        let config = Config { listen_addr: "0.0.0.0:0".parse().unwrap(), ..Config::default() };
        let error = DevOidc::start(config).await.err().expect("refused");
        assert!(error.to_string().contains("loopback only"), "{error}");
    }

    #[tokio::test]
    async fn serves_discovery_jwks_mint_and_rotation() {
        let config = Config { listen_addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
        let oidc = DevOidc::start(config).await.unwrap().spawn();
        let http = reqwest::Client::new();
        let discovery: serde_json::Value =
            http.get(format!("{}/.well-known/openid-configuration", oidc.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(discovery["issuer"], oidc.url());
        let jwks: serde_json::Value = http.get(discovery["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

        let client = client::Client::new(oidc.url());
        let mut request = MintRequest::new("u1", "staff", "t1");
        request.alg = Some(Alg::ES256);
        let minted = client.mint(&request).await.unwrap();
        assert_eq!(minted.kid, oidc.issuer().current_kid(Alg::ES256));
        let bad = http.post(format!("{}/mint", oidc.url())).json(&serde_json::json!({ "sub": "u" })).send().await.unwrap();
        assert_eq!(bad.status(), 400);

        let kids = client.rotate(false).await.unwrap();
        assert!(kids.contains(&oidc.issuer().current_kid(Alg::ES256)));
        assert_ne!(oidc.issuer().current_kid(Alg::ES256), minted.kid);
        let stats = client.stats().await.unwrap();
        assert_eq!((stats.discovery_requests, stats.jwks_requests, stats.rotations), (1, 1, 1));
        assert_eq!(stats.published_kids.len(), 4);
    }
}
