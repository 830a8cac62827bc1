//! Authentication settings: the trusted OIDC issuers (`API_GATEWAY__OIDC_ISSUERS`, a JSON list)
//! and the verifier's timings. Documented in `docs/configuration.md`.

use std::time::Duration;

use brain_runtime::settings::{Env, SettingsError};
use serde::Deserialize;

use super::claims::Role;

/// One trusted issuer. Example (Firebase Auth for borrowers):
/// `{"name": "firebase", "issuer": "https://securetoken.google.com/brain-prod",
///   "audience": "brain-prod", "roles": ["borrower"], "default_role": "borrower"}`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Short name in logs and metrics (default: the issuer URL's host).
    #[serde(default)]
    pub name: Option<String>,
    /// The exact `iss` of its tokens; discovery is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values (a string or a list); a token must name at least one.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Skips discovery and reads the keys here.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Claim holding the role: a string, or a list (Entra ID's `roles`) of which the most
    /// privileged known role counts.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim listing the application ids a borrower may read.
    #[serde(default = "default_applications_claim")]
    pub applications_claim: String,
    /// The role of a token without the role claim (e.g. `borrower` for Firebase Auth users).
    #[serde(default)]
    pub default_role: Option<Role>,
    /// The roles this issuer may grant (default: all); a token claiming another gets 403.
    #[serde(default = "all_roles")]
    pub roles: Vec<Role>,
}

fn default_role_claim() -> String {
    "role".into()
}
fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_applications_claim() -> String {
    "applications".into()
}
fn all_roles() -> Vec<Role> {
    Role::ALL.to_vec()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl IssuerConfig {
    /// The name used in logs and metrics.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| reqwest::Url::parse(&self.issuer).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| self.issuer.clone()))
    }

    fn validate(&self) -> Result<(), String> {
        check_url("issuer", &self.issuer)?;
        if let Some(uri) = &self.jwks_uri {
            check_url("jwks_uri", uri)?;
        }
        if self.audience.is_empty() || self.audience.iter().any(|a| a.trim().is_empty()) {
            return Err(format!("{}: audience must name at least one non-empty value", self.issuer));
        }
        for (field, claim) in [("role_claim", &self.role_claim), ("tenant_claim", &self.tenant_claim), ("applications_claim", &self.applications_claim)] {
            if claim.trim().is_empty() {
                return Err(format!("{}: {field} must not be empty", self.issuer));
            }
        }
        if self.roles.is_empty() {
            return Err(format!("{}: roles must allow at least one role", self.issuer));
        }
        if let Some(role) = self.default_role.filter(|r| !self.roles.contains(r)) {
            return Err(format!("{}: default_role {role} is not among its roles", self.issuer));
        }
        Ok(())
    }
}

/// Issuer and key URLs are HTTPS; plain HTTP only on loopback (the dev issuer).
pub fn check_url(field: &str, raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("{field} {raw:?} is not a URL: {e}"))?;
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!("{field} {raw:?} must be https (plain http only on loopback)")),
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub issuers: Vec<IssuerConfig>,
    /// `AUTH_DISABLED=true`: no token needed; only allowed on a loopback listen address.
    pub disabled: bool,
    /// Clock skew allowed on `exp` and `nbf` (whole seconds count).
    pub leeway: Duration,
    /// At most one JWKS fetch per issuer per this interval when a token names an unknown `kid`.
    pub jwks_min_refetch_interval: Duration,
    /// Background refresh of each issuer's keys.
    pub jwks_refresh_interval: Duration,
    /// Timeout of each discovery or JWKS request.
    pub jwks_timeout: Duration,
    /// Verified tokens remembered until they expire (0: verify every request).
    pub token_cache_size: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            disabled: false,
            leeway: Duration::from_secs(30),
            jwks_min_refetch_interval: Duration::from_secs(30),
            jwks_refresh_interval: Duration::from_secs(600),
            jwks_timeout: Duration::from_secs(5),
            token_cache_size: 10_000,
        }
    }
}

impl AuthSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        let issuers = match env.optional::<String>("OIDC_ISSUERS")? {
            None => Vec::new(),
            Some(raw) => parse_issuers(&raw).map_err(|reason| SettingsError::Invalid { var: "API_GATEWAY__OIDC_ISSUERS".into(), value: raw.clone(), reason })?,
        };
        Ok(Self {
            issuers,
            disabled: env.or("AUTH_DISABLED", false)?,
            leeway: env.millis_in("AUTH_LEEWAY", defaults.leeway.as_millis() as u64, 0..=300_000)?,
            jwks_min_refetch_interval: env.millis_in("JWKS_MIN_REFETCH_INTERVAL", defaults.jwks_min_refetch_interval.as_millis() as u64, 100..=3_600_000)?,
            jwks_refresh_interval: env.millis_in("JWKS_REFRESH_INTERVAL", defaults.jwks_refresh_interval.as_millis() as u64, 1_000..=86_400_000)?,
            jwks_timeout: env.millis_in("JWKS_TIMEOUT", defaults.jwks_timeout.as_millis() as u64, 100..=60_000)?,
            token_cache_size: env.ranged("AUTH_TOKEN_CACHE_SIZE", defaults.token_cache_size, 0..=1_000_000)?,
        })
    }
}

/// Parses and validates the JSON list of issuers.
pub fn parse_issuers(raw: &str) -> Result<Vec<IssuerConfig>, String> {
    let issuers: Vec<IssuerConfig> = serde_json::from_str(raw).map_err(|e| format!("expected a JSON list of issuers: {e}"))?;
    for (i, issuer) in issuers.iter().enumerate() {
        issuer.validate()?;
        if issuers[..i].iter().any(|other| other.issuer == issuer.issuer) {
            return Err(format!("{} is listed twice", issuer.issuer));
        }
        if issuers[..i].iter().any(|other| other.label() == issuer.label()) {
            return Err(format!("two issuers are named {:?}: give them distinct names", issuer.label()));
        }
    }
    Ok(issuers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_parse_with_defaults() {
        let issuers = parse_issuers(
            r#"[{"name": "firebase", "issuer": "https://securetoken.google.com/p", "audience": "p", "roles": ["borrower"], "default_role": "borrower"},
                {"issuer": "https://login.microsoftonline.com/tid/v2.0", "audience": ["api://brain", "client-id"], "role_claim": "roles", "tenant_claim": "brain_tenant"}]"#,
        )
        .unwrap();
        assert_eq!(issuers[0].label(), "firebase");
        assert_eq!(issuers[0].tenant_claim, "tenant");
        assert_eq!(issuers[0].roles, vec![Role::Borrower]);
        assert_eq!(issuers[1].label(), "login.microsoftonline.com");
        assert_eq!(issuers[1].audience.len(), 2);
        assert_eq!(issuers[1].roles, Role::ALL.to_vec());
        assert_eq!(issuers[1].role_claim, "roles");
    }

    #[test]
    fn bad_issuers_are_refused_with_a_reason() {
        for (raw, expected) in [
            (r#"{"issuer": "https://a"}"#, "JSON list"),
            (r#"[{"issuer": "http://idp.example.com", "audience": "a"}]"#, "must be https"),
            (r#"[{"issuer": "https://a.example", "audience": []}]"#, "audience"),
            (r#"[{"issuer": "https://a.example", "audience": "a", "roles": ["borrower"], "default_role": "staff"}]"#, "default_role"),
            (r#"[{"issuer": "https://a.example", "audience": "a", "role": "x"}]"#, "unknown field"),
            (r#"[{"issuer": "https://a.example", "audience": "a", "roles": ["root"]}]"#, "unknown variant"),
            (r#"[{"issuer": "https://a.example", "audience": "a"}, {"issuer": "https://a.example", "audience": "b"}]"#, "twice"),
        ] {
            let error = parse_issuers(raw).expect_err(raw);
            assert!(error.contains(expected), "{raw}: {error}");
        }
        assert!(parse_issuers(r#"[{"issuer": "http://127.0.0.1:8070", "audience": "brain"}]"#).is_ok());
        assert!(parse_issuers(r#"[{"issuer": "http://localhost:8070", "audience": "brain"}]"#).is_ok());
    }
}
