//! Verified claims → the caller ([`Principal`]): role, tenant and, for borrowers, their
//! applications. Which claims hold them is per issuer ([`IssuerConfig`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AuthError, config::IssuerConfig};

/// Ordered by privilege: when a token lists several roles, the highest counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads its own applications only.
    Borrower,
    /// Reads its tenant's applications.
    Staff,
    /// Operators (flags, replay), within their tenant.
    Ops,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Borrower, Role::Staff, Role::Ops, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Borrower => "borrower",
            Role::Staff => "staff",
            Role::Ops => "ops",
            Role::Admin => "admin",
        }
    }

    /// Case-insensitive; `None` for names Brain does not know.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest tenant id and most applications a token may carry.
const MAX_TENANT_LEN: usize = 128;
const MAX_APPLICATIONS: usize = 1_000;

/// The authenticated caller. Every read-model query is scoped by `tenant`.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub` of the token.
    pub subject: String,
    pub role: Role,
    /// `None` only when authentication is disabled (`API_GATEWAY__AUTH_DISABLED`, loopback only):
    /// then nothing is scoped.
    pub tenant: Option<String>,
    /// For borrowers: the applications they may read. Empty for the other roles.
    pub applications: Vec<String>,
}

impl Principal {
    /// The caller when authentication is disabled: an admin of every tenant.
    pub fn unrestricted() -> Self {
        Self { subject: "auth-disabled".into(), role: Role::Admin, tenant: None, applications: Vec::new() }
    }

    /// 403 `forbidden` unless the caller has one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        Err(AuthError::Forbidden(format!("role {} may not do this", self.role)))
    }

    /// Whether the caller may see application `id` of its tenant: borrowers only their own
    /// (the caller answers 404 otherwise, so nothing leaks about other applications).
    pub fn may_read_application(&self, id: &str) -> bool {
        self.role != Role::Borrower || self.applications.iter().any(|a| a == id)
    }
}

/// Maps the verified `claims` of a token from `issuer` to the caller.
pub fn principal(issuer: &IssuerConfig, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(AuthError::invalid("the token has no subject (sub)")),
    };
    let role = role(issuer, claims.get(&issuer.role_claim))?;
    if !issuer.roles.contains(&role) {
        return Err(AuthError::Forbidden(format!("issuer {} may not grant role {role}", issuer.label())));
    }
    let tenant = match claims.get(&issuer.tenant_claim) {
        Some(Value::String(tenant)) if !tenant.trim().is_empty() && tenant.len() <= MAX_TENANT_LEN => tenant.clone(),
        _ => return Err(AuthError::Forbidden(format!("the token has no valid tenant claim ({})", issuer.tenant_claim))),
    };
    let applications = if role == Role::Borrower { applications(issuer, claims.get(&issuer.applications_claim))? } else { Vec::new() };
    Ok(Principal { subject, role, tenant: Some(tenant), applications })
}

fn role(issuer: &IssuerConfig, claim: Option<&Value>) -> Result<Role, AuthError> {
    let unknown = || AuthError::Forbidden(format!("the token's {} claim names no role Brain knows (borrower, staff, ops, admin)", issuer.role_claim));
    match claim {
        None => issuer.default_role.ok_or_else(|| AuthError::Forbidden(format!("the token has no role claim ({})", issuer.role_claim))),
        Some(Value::String(name)) => Role::parse(name).ok_or_else(unknown),
        // Several roles (Entra ID app roles): the most privileged known one.
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).filter_map(Role::parse).max().ok_or_else(unknown),
        Some(_) => Err(unknown()),
    }
}

fn applications(issuer: &IssuerConfig, claim: Option<&Value>) -> Result<Vec<String>, AuthError> {
    let malformed = || AuthError::Forbidden(format!("the token's {} claim is not a list of application ids", issuer.applications_claim));
    match claim {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(ids)) if ids.len() <= MAX_APPLICATIONS => ids.iter().map(|id| id.as_str().map(str::to_string).ok_or_else(malformed)).collect(),
        Some(_) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::config::parse_issuers;

    fn issuer(extra: Value) -> IssuerConfig {
        let mut config = json!({ "issuer": "https://idp.example.com", "audience": "brain" });
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        parse_issuers(&json!([config]).to_string()).unwrap().remove(0)
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn code(result: Result<Principal, AuthError>) -> &'static str {
        result.expect_err("refused").code()
    }

    #[test]
    fn staff_of_a_tenant() {
        let p = principal(&issuer(json!({})), &claims(json!({ "sub": "u1", "role": "staff", "tenant": "t1", "applications": ["x"] }))).unwrap();
        assert_eq!(p, Principal { subject: "u1".into(), role: Role::Staff, tenant: Some("t1".into()), applications: vec![] });
        assert!(p.may_read_application("anything"));
        assert!(p.require_role(&[Role::Staff, Role::Admin]).is_ok());
        assert_eq!(p.require_role(&[Role::Admin]).unwrap_err().code(), "forbidden");
    }

    #[test]
    fn borrowers_read_only_the_applications_in_their_token() {
        let config = issuer(json!({ "roles": ["borrower"], "default_role": "borrower", "applications_claim": "apps" }));
        let p = principal(&config, &claims(json!({ "sub": "firebase-uid", "tenant": "t1", "apps": ["a1", "a2"] }))).unwrap();
        assert_eq!(p.role, Role::Borrower);
        assert!(p.may_read_application("a2"));
        assert!(!p.may_read_application("a3"));
        let none = principal(&config, &claims(json!({ "sub": "u", "tenant": "t1" }))).unwrap();
        assert!(none.applications.is_empty() && !none.may_read_application("a1"));
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "tenant": "t1", "apps": [1, 2] })))), "forbidden");
    }

    #[test]
    fn a_list_of_roles_counts_its_most_privileged_known_role() {
        let config = issuer(json!({ "role_claim": "roles" }));
        let p = principal(&config, &claims(json!({ "sub": "u", "tenant": "t1", "roles": ["Reader", "Staff", "ops"] }))).unwrap();
        assert_eq!(p.role, Role::Ops);
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "tenant": "t1", "roles": ["Reader"] })))), "forbidden");
    }

    #[test]
    fn an_issuer_grants_only_its_roles() {
        let firebase = issuer(json!({ "roles": ["borrower"] }));
        let error = principal(&firebase, &claims(json!({ "sub": "u", "role": "admin", "tenant": "t1" }))).unwrap_err();
        assert_eq!(error.code(), "forbidden");
        assert!(error.to_string().contains("may not grant role admin"), "{error}");
    }

    #[test]
    fn missing_or_odd_claims_are_refused() {
        let config = issuer(json!({}));
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "tenant": "t1" })))), "forbidden", "no role, no default");
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "role": "root", "tenant": "t1" })))), "forbidden");
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "role": 3, "tenant": "t1" })))), "forbidden");
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "role": "staff" })))), "forbidden", "no tenant");
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "role": "staff", "tenant": "" })))), "forbidden");
        assert_eq!(code(principal(&config, &claims(json!({ "sub": "u", "role": "staff", "tenant": ["t1"] })))), "forbidden");
        assert_eq!(code(principal(&config, &claims(json!({ "role": "staff", "tenant": "t1" })))), "invalid_token", "no subject");
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
        assert_eq!(Role::parse("superuser"), None);
        assert!(Role::Admin > Role::Ops && Role::Ops > Role::Staff && Role::Staff > Role::Borrower);
    }
}
