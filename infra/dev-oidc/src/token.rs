//! What `POST /mint` accepts and how a token is put together (compact JWS: header.payload.signature).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::keys::{Alg, CryptoError, SigningKey};

/// A token request. Only `sub`, `role` and `tenant` are required; the rest exist so tests can
/// make every kind of bad token the gateway must refuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    pub sub: String,
    /// `borrower`, `staff`, `ops`, `admin` (anything else is minted as given, for negative tests).
    pub role: String,
    pub tenant: String,
    /// The applications a borrower may read (claim `applications`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<Vec<String>>,
    /// Lifetime in seconds (default: the issuer's); negative mints a token that has already expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
    /// Default: the issuer's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// `RS256` (default) or `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<Alg>,
    /// `nbf` relative to now, in seconds (default 0; positive: not valid yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_secs: Option<i64>,
    /// Overrides `iss` (default: this issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Overrides the header's `kid` (default: the signing key's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Sign with a key that is never published (under the published key's `kid` unless `kid` is
    /// given): a forged token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrusted_key: bool,
    /// Extra claims merged last (they may replace any claim above); `null` removes a claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
}

impl MintRequest {
    pub fn new(sub: impl Into<String>, role: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            role: role.into(),
            tenant: tenant.into(),
            applications: None,
            ttl_secs: None,
            aud: None,
            alg: None,
            not_before_secs: None,
            iss: None,
            kid: None,
            untrusted_key: false,
            claims: None,
        }
    }

    /// The claim set at `now` (seconds since the epoch) for `issuer` and `audience` by default.
    pub fn claim_set(&self, issuer: &str, audience: &str, default_ttl_secs: i64, now: i64) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.iss.as_deref().unwrap_or(issuer)));
        claims.insert("sub".into(), json!(self.sub));
        claims.insert("aud".into(), json!(self.aud.as_deref().unwrap_or(audience)));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now + self.not_before_secs.unwrap_or(0)));
        claims.insert("exp".into(), json!(now + self.ttl_secs.unwrap_or(default_ttl_secs)));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        claims.insert("role".into(), json!(self.role));
        claims.insert("tenant".into(), json!(self.tenant));
        if let Some(applications) = &self.applications {
            claims.insert("applications".into(), json!(applications));
        }
        for (name, value) in self.claims.iter().flatten() {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
        claims
    }
}

/// What `POST /mint` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Minted {
    pub token: String,
    pub kid: String,
    pub alg: Alg,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// Signs `claims` with `key`, announcing `kid` in the header.
pub fn encode(key: &SigningKey, kid: &str, claims: &Map<String, Value>) -> Result<String, CryptoError> {
    let header = json!({ "alg": key.alg().as_str(), "typ": "JWT", "kid": kid });
    let mut token = format!("{}.{}", B64.encode(header.to_string()), B64.encode(Value::Object(claims.clone()).to_string()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&B64.encode(signature));
    Ok(token)
}

/// An unsigned token (`alg: none`), which every verifier must refuse. For tests.
pub fn unsigned(kid: Option<&str>, claims: &Map<String, Value>) -> String {
    let mut header = json!({ "alg": "none", "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    format!("{}.{}.", B64.encode(header.to_string()), B64.encode(Value::Object(claims.clone()).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_have_defaults_and_overrides() {
        let mut request = MintRequest::new("u1", "staff", "t1");
        let claims = request.claim_set("http://iss", "brain", 3600, 1_000);
        assert_eq!(claims["iss"], "http://iss");
        assert_eq!(claims["aud"], "brain");
        assert_eq!(claims["exp"], 4_600);
        assert_eq!(claims["nbf"], 1_000);
        assert!(!claims.contains_key("applications"));

        request.ttl_secs = Some(-60);
        request.applications = Some(vec!["a1".into()]);
        request.claims = Some(serde_json::from_value(json!({ "tenant": null, "roles": ["staff"] })).unwrap());
        let claims = request.claim_set("http://iss", "brain", 3600, 1_000);
        assert_eq!(claims["exp"], 940);
        assert_eq!(claims["applications"], json!(["a1"]));
        assert!(!claims.contains_key("tenant"));
        assert_eq!(claims["roles"], json!(["staff"]));
    }

    #[test]
    fn tokens_are_compact_jws() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let claims = MintRequest::new("u1", "staff", "t1").claim_set("http://iss", "brain", 60, 0);
        let token = encode(&key, key.kid(), &claims).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], key.kid());
        assert_eq!(header["alg"], "ES256");
        let signature = B64.decode(parts[2]).unwrap();
        assert!(key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature));
        assert!(unsigned(None, &claims).ends_with('.'));
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        assert!(serde_json::from_value::<MintRequest>(json!({ "sub": "u", "role": "staff", "tenant": "t", "tenat": "x" })).is_err());
    }
}
