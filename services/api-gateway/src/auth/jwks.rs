//! One issuer's verification keys: read from its JWKS (found through its discovery document),
//! cached, and refreshed in the background. A token naming a `kid` that is not cached triggers at
//! most one refetch per `jwks_min_refetch_interval` (so random kids cannot make the gateway hammer
//! the issuer); requests with known kids never wait for the network.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use brain_runtime::telemetry::metric_name;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::config::check_url;
use crate::SERVICE;

/// Largest discovery document or JWKS read, and most keys kept per issuer.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_KEYS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered {status}")]
    Status { url: String, status: reqwest::StatusCode },
    #[error("{url} is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} is not the expected JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the discovery document names issuer {found:?}, not {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("bad jwks_uri in the discovery document: {0}")]
    JwksUri(String),
    #[error("{url} holds no RS256 or ES256 signing key with a kid")]
    NoKeys { url: String },
}

/// Why a key could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The issuer's keys are cached but none has this kid, even after a refetch (or a refetch was
    /// not allowed yet).
    UnknownKid,
    /// Nothing is cached and the issuer cannot be reached.
    Unavailable,
}

/// A public key and the one algorithm it verifies.
pub struct VerifyingKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Instant,
}

/// Allows one refetch per `min_interval`.
#[derive(Debug)]
pub struct RefetchGate {
    min_interval: Duration,
    last: Option<Instant>,
}

impl RefetchGate {
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last: None }
    }

    /// True (and the interval starts again) when the last allowed refetch is at least
    /// `min_interval` before `now`.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < self.min_interval) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

/// Health of one issuer's key cache, for `/health/deps`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysStatus {
    pub ok: bool,
    pub keys: usize,
    pub age_secs: Option<f64>,
}

pub struct IssuerKeys {
    name: String,
    issuer: String,
    jwks_uri: Option<String>,
    http: reqwest::Client,
    set: RwLock<Option<Arc<KeySet>>>,
    /// Bumped whenever the set of kids changes: tokens verified under an older generation are
    /// verified again (a key the issuer withdrew stops working at once).
    generation: AtomicU64,
    /// Held while an on-demand refetch runs, so concurrent requests with the same new kid wait for
    /// one fetch instead of each starting one.
    gate: tokio::sync::Mutex<RefetchGate>,
    refresh_interval: Duration,
}

impl IssuerKeys {
    pub fn new(name: String, issuer: String, jwks_uri: Option<String>, http: reqwest::Client, min_refetch: Duration, refresh_interval: Duration) -> Self {
        Self { name, issuer, jwks_uri, http, set: RwLock::new(None), generation: AtomicU64::new(0), gate: tokio::sync::Mutex::new(RefetchGate::new(min_refetch)), refresh_interval }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn cached(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.set.read().expect("key set lock").as_ref().and_then(|set| set.keys.get(kid).cloned())
    }

    fn has_keys(&self) -> bool {
        self.set.read().expect("key set lock").is_some()
    }

    /// The key `kid`: from the cache, or after one rate-limited refetch.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut gate = self.gate.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if !gate.try_acquire(Instant::now()) {
            metrics::counter!(metric_name(SERVICE, "jwks_fetches_total"), "issuer" => self.name.clone(), "trigger" => "unknown_kid", "outcome" => "rate_limited").increment(1);
            return Err(if self.has_keys() { KeyError::UnknownKid } else { KeyError::Unavailable });
        }
        let _ = self.refresh("unknown_kid").await;
        drop(gate);
        match self.cached(kid) {
            Some(key) => Ok(key),
            None if self.has_keys() => Err(KeyError::UnknownKid),
            None => Err(KeyError::Unavailable),
        }
    }

    /// Fetches the keys and replaces the cached set (a set without usable keys is an error and
    /// changes nothing). Returns whether the set of kids changed.
    pub async fn refresh(&self, trigger: &'static str) -> Result<bool, FetchError> {
        let result = self.fetch().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(metric_name(SERVICE, "jwks_fetches_total"), "issuer" => self.name.clone(), "trigger" => trigger, "outcome" => outcome).increment(1);
        match result {
            Ok(keys) => {
                let count = keys.len();
                let mut set = self.set.write().expect("key set lock");
                let changed = set.as_ref().is_none_or(|old| old.keys.len() != keys.len() || keys.keys().any(|kid| !old.keys.contains_key(kid)));
                *set = Some(Arc::new(KeySet { keys, fetched_at: Instant::now() }));
                if changed {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                drop(set);
                metrics::gauge!(metric_name(SERVICE, "jwks_keys"), "issuer" => self.name.clone()).set(count as f64);
                if changed {
                    tracing::info!(issuer = %self.name, keys = count, trigger, "issuer keys loaded");
                }
                Ok(changed)
            }
            Err(e) => {
                let cached = self.has_keys();
                tracing::warn!(issuer = %self.name, trigger, cached, error = %e, source = ?std::error::Error::source(&e), "fetching the issuer's keys failed");
                Err(e)
            }
        }
    }

    /// Keeps the keys fresh until `shutdown`: at once, then every refresh interval; after a failure
    /// it retries sooner (1 s, doubling, at most the refresh interval).
    pub async fn refresh_forever(self: Arc<Self>, shutdown: CancellationToken) {
        let mut retry = Duration::from_secs(1);
        loop {
            let wait = match self.refresh("background").await {
                Ok(_) => {
                    retry = Duration::from_secs(1);
                    self.refresh_interval
                }
                Err(_) => {
                    let wait = retry.min(self.refresh_interval);
                    retry = (retry * 2).min(self.refresh_interval);
                    wait
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    pub fn status(&self) -> KeysStatus {
        match self.set.read().expect("key set lock").as_ref() {
            Some(set) => KeysStatus { ok: true, keys: set.keys.len(), age_secs: Some(set.fetched_at.elapsed().as_secs_f64()) },
            None => KeysStatus { ok: false, keys: 0, age_secs: None },
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyingKey>>, FetchError> {
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer != self.issuer {
                    return Err(FetchError::IssuerMismatch { expected: self.issuer.clone(), found: discovery.issuer });
                }
                check_url("jwks_uri", &discovery.jwks_uri).map_err(FetchError::JwksUri)?;
                discovery.jwks_uri
            }
        };
        let raw: RawKeySet = self.get_json(&jwks_uri).await?;
        let keys: HashMap<String, Arc<VerifyingKey>> = raw.keys.into_iter().filter_map(usable).take(MAX_KEYS).collect();
        if keys.is_empty() {
            return Err(FetchError::NoKeys { url: jwks_uri });
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let http = |source| FetchError::Http { url: url.to_string(), source };
        let mut response = self.http.get(url).send().await.map_err(http)?;
        if !response.status().is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: response.status() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge { url: url.to_string() });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| FetchError::Json { url: url.to_string(), source })
    }
}

/// A JWKS entry the gateway verifies with: a signing key with a kid, RSA (RS256) or P-256
/// (ES256). Symmetric (`oct`) keys are never accepted, so HS* tokens cannot verify.
fn usable(raw: serde_json::Value) -> Option<(String, Arc<VerifyingKey>)> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) if matches!(declared, None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 && matches!(declared, None | Some(KeyAlgorithm::ES256)) => Algorithm::ES256,
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, Arc::new(VerifyingKey { alg, key })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_refetch_gate_allows_one_refetch_per_interval() {
        let mut gate = RefetchGate::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(gate.try_acquire(t0), "the first refetch is allowed");
        assert!(!gate.try_acquire(t0));
        assert!(!gate.try_acquire(t0 + Duration::from_secs(29)));
        assert!(gate.try_acquire(t0 + Duration::from_secs(30)));
        assert!(!gate.try_acquire(t0 + Duration::from_secs(31)));
        assert!(gate.try_acquire(t0 + Duration::from_secs(61)));
    }

    #[tokio::test]
    async fn unknown_kids_refetch_at_most_once_per_interval() {
        // An issuer that cannot be reached: each allowed refetch is one failed attempt.
        let keys = IssuerKeys::new("test".into(), "http://127.0.0.1:9".into(), None, reqwest::Client::new(), Duration::from_secs(3600), Duration::from_secs(3600));
        assert_eq!(keys.key("k1").await.err(), Some(KeyError::Unavailable));
        assert!(keys.gate.lock().await.last.is_some(), "the first miss tried a fetch");
        let started = Instant::now();
        for kid in ["k2", "k3", "k4"] {
            assert_eq!(keys.key(kid).await.err(), Some(KeyError::Unavailable));
        }
        assert!(started.elapsed() < Duration::from_millis(100), "rate-limited misses do not touch the network");
    }

    #[test]
    fn only_rs256_and_es256_signing_keys_with_a_kid_are_used() {
        let rsa = json!({ "kty": "RSA", "kid": "r1", "use": "sig", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB" });
        let ec = json!({ "kty": "EC", "kid": "e1", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM" });
        assert_eq!(usable(rsa.clone()).map(|(kid, k)| (kid, k.alg)), Some(("r1".into(), Algorithm::RS256)));
        assert_eq!(usable(ec.clone()).map(|(kid, k)| (kid, k.alg)), Some(("e1".into(), Algorithm::ES256)));
        let with = |base: &serde_json::Value, field: &str, value: serde_json::Value| {
            let mut jwk = base.clone();
            if value.is_null() { jwk.as_object_mut().unwrap().remove(field); } else { jwk[field] = value; }
            jwk
        };
        assert!(usable(with(&rsa, "kid", json!(null))).is_none(), "no kid");
        assert!(usable(with(&rsa, "use", json!("enc"))).is_none(), "encryption key");
        assert!(usable(with(&rsa, "alg", json!("RS512"))).is_none(), "other algorithm");
        assert!(usable(with(&ec, "alg", json!("RS256"))).is_none(), "algorithm not matching the key");
        assert!(usable(json!({ "kty": "oct", "kid": "h1", "k": "c2VjcmV0" })).is_none(), "symmetric key");
    }
}
