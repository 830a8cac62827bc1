//! Bearer token → verified claims → [`Principal`].
//!
//! Order of checks: the header's shape (`unauthenticated`), then the JOSE header: only RS256 and
//! ES256 with a `kid` (so `alg: none` and HS* never reach a key), then the issuer (`iss`, read
//! before verification only to choose the keys), then the key, which fixes the one algorithm
//! accepted, then signature, `iss`, `aud`, `exp` and `nbf` (with the leeway), and last the claims
//! mapping (`forbidden`).

use std::{sync::Arc, time::Duration};

use axum::http::HeaderValue;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    AuthError,
    cache::TokenCache,
    claims::{self, Principal},
    config::{AuthSettings, IssuerConfig},
    jwks::{IssuerKeys, KeyError},
};

/// Longest token accepted (Entra ID tokens with many groups run to a few KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

pub(super) struct Issuer {
    pub config: IssuerConfig,
    pub keys: Arc<IssuerKeys>,
    rs256: Validation,
    es256: Validation,
}

impl Issuer {
    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        match alg {
            Algorithm::RS256 => Some(&self.rs256),
            Algorithm::ES256 => Some(&self.es256),
            _ => None,
        }
    }
}

pub(super) struct Verifier {
    pub issuers: Vec<Issuer>,
    cache: TokenCache,
}

impl Verifier {
    pub fn new(settings: &AuthSettings, http: &reqwest::Client) -> Self {
        let leeway = settings.leeway.as_secs();
        let validation = |config: &IssuerConfig, alg| {
            let mut v = Validation::new(alg);
            v.leeway = leeway;
            v.validate_exp = true;
            v.validate_nbf = true;
            v.set_issuer(&[&config.issuer]);
            v.set_audience(&config.audience);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v
        };
        let issuers = settings
            .issuers
            .iter()
            .map(|config| Issuer {
                keys: Arc::new(IssuerKeys::new(
                    config.label(),
                    config.issuer.clone(),
                    config.jwks_uri.clone(),
                    http.clone(),
                    settings.jwks_min_refetch_interval,
                    settings.jwks_refresh_interval,
                )),
                rs256: validation(config, Algorithm::RS256),
                es256: validation(config, Algorithm::ES256),
                config: config.clone(),
            })
            .collect();
        Self { issuers, cache: TokenCache::new(settings.token_cache_size, leeway as i64) }
    }

    pub async fn verify(&self, authorization: Option<&HeaderValue>) -> Result<Principal, AuthError> {
        let token = bearer(authorization)?;
        let now = unix_now();
        if let Some(cached) = self.cache.get(token, now, |i| self.issuers[i].keys.generation()) {
            return cached;
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::invalid_because("the token header is unreadable or names an unsupported algorithm", e))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::invalid(format!("algorithm {:?} is not accepted (RS256, ES256)", header.alg)));
        }
        let kid = header.kid.as_deref().ok_or_else(|| AuthError::invalid("the token header has no kid"))?;
        let iss = unverified_issuer(token)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.config.issuer == iss)
            .ok_or_else(|| AuthError::invalid("the token's issuer is not trusted"))?;
        // Read before the key lookup: keys fetched meanwhile bump it, and the entry is re-verified.
        let generation = issuer.keys.generation();
        let key = issuer.keys.key(kid).await.map_err(|e| match e {
            KeyError::UnknownKid => AuthError::invalid("the token's kid is not among the issuer's keys"),
            KeyError::Unavailable => AuthError::IssuerUnavailable,
        })?;
        if key.alg != header.alg {
            return Err(AuthError::invalid("the token's algorithm does not match its key"));
        }
        let validation = issuer.validation(key.alg).expect("keys are RS256 or ES256");
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation).map_err(rejection)?;
        let principal = claims::principal(&issuer.config, &data.claims)?;
        let expires_at = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        self.cache.insert(token, &principal, expires_at, index, generation, now);
        Ok(principal)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if it has the shape of a JWS.
fn bearer(authorization: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Unauthenticated("send Authorization: Bearer <token>"))?;
    let value = value.to_str().map_err(|_| AuthError::Unauthenticated("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Unauthenticated("send Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated("the Authorization scheme must be Bearer"));
    }
    let token = token.trim();
    let base64url = |part: &str| part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let parts: Vec<&str> = token.split('.').collect();
    let jws = token.len() <= MAX_TOKEN_LEN && parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty() && parts.iter().all(|p| base64url(p));
    if !jws {
        return Err(AuthError::Unauthenticated("the bearer token is not a JWT"));
    }
    Ok(token)
}

/// `iss` of a token that is not verified yet: it only chooses whose keys to verify with.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = B64.decode(payload).map_err(|_| AuthError::invalid("the token payload is not base64url"))?;
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|_| AuthError::invalid("the token payload is not a JSON object"))?;
    peek.iss.ok_or_else(|| AuthError::invalid("the token has no issuer (iss)"))
}

fn rejection(e: jsonwebtoken::errors::Error) -> AuthError {
    let reason = match e.kind() {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::InvalidSignature => "the signature does not verify".to_string(),
        ErrorKind::InvalidAudience => "the token is not meant for this API (aud)".to_string(),
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted".to_string(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_string(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_string(),
        _ => "the token cannot be verified".to_string(),
    };
    AuthError::InvalidToken { reason, source: Some(e) }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn the_bearer_header_must_carry_a_jws() {
        assert_eq!(bearer(Some(&header("Bearer aGVhZA.cGF5bG9hZA.c2ln"))).unwrap(), "aGVhZA.cGF5bG9hZA.c2ln");
        assert_eq!(bearer(Some(&header("bearer  aGVhZA.cGF5bG9hZA."))).unwrap(), "aGVhZA.cGF5bG9hZA.", "alg none is refused later, as invalid_token");
        for bad in ["", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer a.b", "Bearer a.b.c.d", "Bearer .b.c", "Bearer a+b.c.d", "Bearer a.b.c d"] {
            assert_eq!(bearer(Some(&header(bad))).unwrap_err().code(), "unauthenticated", "{bad:?}");
        }
        assert_eq!(bearer(None).unwrap_err().code(), "unauthenticated");
        let long = format!("Bearer {}.b.c", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(bearer(Some(&header(&long))).unwrap_err().code(), "unauthenticated");
    }

    #[test]
    fn the_issuer_is_peeked_from_the_payload() {
        let token = format!("h.{}.s", B64.encode(r#"{"iss":"https://idp","sub":"u"}"#));
        assert_eq!(unverified_issuer(&token).unwrap(), "https://idp");
        let token = format!("h.{}.s", B64.encode(r#"{"sub":"u"}"#));
        assert_eq!(unverified_issuer(&token).unwrap_err().code(), "invalid_token");
        assert_eq!(unverified_issuer("h.!!.s").unwrap_err().code(), "invalid_token");
    }
}
