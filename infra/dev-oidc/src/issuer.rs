//! The issuer's state: its key ring (current keys and every published one), minting and rotation.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    keys::{Alg, CryptoError, SigningKey},
    token::{self, MintRequest, Minted},
};

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

struct KeyRing {
    /// The key each algorithm signs with now.
    current: HashMap<Alg, Arc<SigningKey>>,
    /// Every key in the JWKS, newest first (rotation keeps the old ones unless told otherwise).
    published: Vec<Arc<SigningKey>>,
}

impl KeyRing {
    fn generate() -> Result<Self, CryptoError> {
        let current: HashMap<Alg, Arc<SigningKey>> =
            [Alg::RS256, Alg::ES256].into_iter().map(|alg| SigningKey::generate(alg).map(|k| (alg, Arc::new(k)))).collect::<Result<_, _>>()?;
        let published = current.values().cloned().collect();
        Ok(Self { current, published })
    }
}

/// Counters for tests (e.g. that the gateway refetches the JWKS at most once per interval).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Stats {
    pub discovery_requests: u64,
    pub jwks_requests: u64,
    pub tokens_minted: u64,
    pub rotations: u64,
    pub published_kids: Vec<String>,
}

pub struct Issuer {
    url: String,
    audience: String,
    token_ttl_secs: i64,
    ring: RwLock<KeyRing>,
    /// Keys that are never published, per algorithm, made on first use: for forged tokens.
    untrusted: Mutex<HashMap<Alg, Arc<SigningKey>>>,
    discovery_requests: AtomicU64,
    jwks_requests: AtomicU64,
    tokens_minted: AtomicU64,
    rotations: AtomicU64,
}

impl Issuer {
    /// A new issuer with fresh keys. RSA key generation takes a moment: call it off the runtime's
    /// hot path (start-up, or `spawn_blocking`).
    pub fn new(url: impl Into<String>, audience: impl Into<String>, token_ttl_secs: i64) -> Result<Self, CryptoError> {
        Ok(Self {
            url: url.into(),
            audience: audience.into(),
            token_ttl_secs,
            ring: RwLock::new(KeyRing::generate()?),
            untrusted: Mutex::new(HashMap::new()),
            discovery_requests: AtomicU64::new(0),
            jwks_requests: AtomicU64::new(0),
            tokens_minted: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
        })
    }

    /// The `iss` of its tokens, and the base of its discovery document.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn discovery(&self) -> Value {
        self.discovery_requests.fetch_add(1, Ordering::Relaxed);
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/jwks.json", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "role", "tenant", "applications"],
        })
    }

    pub fn jwks(&self) -> Value {
        self.jwks_requests.fetch_add(1, Ordering::Relaxed);
        let ring = self.ring.read().expect("key ring lock");
        json!({ "keys": ring.published.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>() })
    }

    /// The `kid` the issuer currently signs `alg` tokens with.
    pub fn current_kid(&self, alg: Alg) -> String {
        self.ring.read().expect("key ring lock").current[&alg].kid().to_string()
    }

    pub fn mint(&self, request: &MintRequest) -> Result<Minted, MintError> {
        for (field, value) in [("sub", &request.sub), ("role", &request.role), ("tenant", &request.tenant)] {
            if value.trim().is_empty() {
                return Err(MintError::Empty(field));
            }
        }
        let alg = request.alg.unwrap_or_default();
        let published = self.ring.read().expect("key ring lock").current[&alg].clone();
        let key = if request.untrusted_key { self.untrusted_key(alg)? } else { published.clone() };
        let kid = request.kid.clone().unwrap_or_else(|| published.kid().to_string());
        let now = unix_now();
        let claims = request.claim_set(&self.url, &self.audience, self.token_ttl_secs, now);
        let token = token::encode(&key, &kid, &claims)?;
        self.tokens_minted.fetch_add(1, Ordering::Relaxed);
        Ok(Minted { token, kid, alg, expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or_default() })
    }

    /// New keys for both algorithms become current and are published; the previous ones stay in the
    /// JWKS (tokens they signed keep verifying) unless `retire_previous`. Returns the current kids.
    /// Blocks for the RSA key generation.
    pub fn rotate(&self, retire_previous: bool) -> Result<Vec<String>, CryptoError> {
        let fresh = KeyRing::generate()?;
        let mut ring = self.ring.write().expect("key ring lock");
        let mut published: Vec<Arc<SigningKey>> = fresh.published;
        if !retire_previous {
            published.append(&mut ring.published);
        }
        *ring = KeyRing { current: fresh.current, published };
        self.rotations.fetch_add(1, Ordering::Relaxed);
        let mut kids: Vec<String> = ring.current.values().map(|k| k.kid().to_string()).collect();
        kids.sort();
        Ok(kids)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            discovery_requests: self.discovery_requests.load(Ordering::Relaxed),
            jwks_requests: self.jwks_requests.load(Ordering::Relaxed),
            tokens_minted: self.tokens_minted.load(Ordering::Relaxed),
            rotations: self.rotations.load(Ordering::Relaxed),
            published_kids: self.ring.read().expect("key ring lock").published.iter().map(|k| k.kid().to_string()).collect(),
        }
    }

    fn untrusted_key(&self, alg: Alg) -> Result<Arc<SigningKey>, CryptoError> {
        let mut untrusted = self.untrusted.lock().expect("untrusted keys lock");
        if let Some(key) = untrusted.get(&alg) {
            return Ok(key.clone());
        }
        let key = Arc::new(SigningKey::generate(alg)?);
        untrusted.insert(alg, key.clone());
        Ok(key)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_publishes_new_kids_and_keeps_or_retires_the_old() {
        let issuer = Issuer::new("http://127.0.0.1:1", "brain", 60).unwrap();
        let first = issuer.current_kid(Alg::RS256);
        assert_eq!(issuer.stats().published_kids.len(), 2);
        let kids = issuer.rotate(false).unwrap();
        assert!(kids.contains(&issuer.current_kid(Alg::RS256)));
        assert_ne!(issuer.current_kid(Alg::RS256), first);
        assert_eq!(issuer.stats().published_kids.len(), 4);
        assert!(issuer.stats().published_kids.contains(&first));
        issuer.rotate(true).unwrap();
        assert_eq!(issuer.stats().published_kids.len(), 2);
        assert!(!issuer.stats().published_kids.contains(&first));
    }

    #[test]
    fn untrusted_tokens_carry_the_published_kid_but_another_signature() {
        let issuer = Issuer::new("http://127.0.0.1:1", "brain", 60).unwrap();
        let mut request = MintRequest::new("u", "staff", "t1");
        let honest = issuer.mint(&request).unwrap();
        request.untrusted_key = true;
        let forged = issuer.mint(&request).unwrap();
        assert_eq!(honest.kid, forged.kid);
        let keys = issuer.jwks()["keys"].as_array().unwrap().len();
        assert_eq!(keys, 2, "the untrusted key is never published");
        assert!(matches!(issuer.mint(&MintRequest::new("u", " ", "t1")), Err(MintError::Empty("role"))));
    }
}
