//! What the advisor's views share: who may look at whose portfolio, their query parameters, and
//! the read model's failures.
//!
//! Roles staff, ops and admin (a borrower: 403 `forbidden`). The advisor is the token's subject;
//! `?advisor=` names another advisor, which ops and admin may (a staff caller only when it is
//! itself). Every query is scoped to the token's tenant (nothing is scoped only when
//! authentication is disabled).

use axum::{
    body::Bytes,
    extract::{FromRequestParts, Query},
    http::{StatusCode, header::CONTENT_TYPE, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::{
    auth::{Principal, Role},
    error::ApiError,
};

/// Longest advisor id accepted in `?advisor=`.
const MAX_ADVISOR_CHARS: usize = 256;

/// Whose portfolio, within which tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Portfolio {
    pub advisor: String,
    /// `None` only when authentication is disabled.
    pub tenant: Option<String>,
}

fn forbidden(detail: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// 403 `forbidden` unless the caller is staff, ops or admin.
pub fn require_viewer(caller: &Principal) -> Result<(), ApiError> {
    if matches!(caller.role, Role::Staff | Role::Ops | Role::Admin) { Ok(()) } else { Err(forbidden("the advisor's views are for staff, ops and admin")) }
}

impl Portfolio {
    /// The portfolio `caller` asks for with `advisor` (`?advisor=`).
    pub fn of(caller: &Principal, advisor: Option<String>) -> Result<Self, ApiError> {
        require_viewer(caller)?;
        let advisor = match advisor {
            None => caller.subject.clone(),
            Some(a) if a == caller.subject => a,
            Some(_) if caller.role == Role::Staff => return Err(forbidden("staff see their own portfolio only; ops and admin may name another advisor")),
            Some(a) => a,
        };
        Ok(Self { advisor, tenant: caller.tenant.clone() })
    }
}

/// The query string, as `(name, value)` pairs: repeated or unknown names are 400 `invalid_query`,
/// so are strings that are not URL-encoded UTF-8.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| Self(pairs))
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string is not URL-encoded UTF-8"))
    }
}

impl Params {
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// Checks every name is one of `known` and none is repeated.
    pub fn only(self, known: &[&str]) -> Result<Self, ApiError> {
        for (i, (name, _)) in self.0.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::bad_request("invalid_query", format!("unknown parameter {name:?}; this route takes {}", known.join(", "))));
            }
            if self.0[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_request("invalid_query", format!("{name} is given twice")));
            }
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `?advisor=`: 1-256 characters without control characters.
    pub fn advisor(&self) -> Result<Option<String>, ApiError> {
        match self.get("advisor") {
            None => Ok(None),
            Some(a) if !a.trim().is_empty() && a.chars().count() <= MAX_ADVISOR_CHARS && !a.chars().any(char::is_control) => Ok(Some(a.to_string())),
            Some(_) => Err(ApiError::bad_request("invalid_query", "advisor is 1-256 characters")),
        }
    }

    /// `?limit=`: within `1..=max`, `default` when absent; else 400 `invalid_limit`.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=max).contains(l))
                .ok_or_else(|| ApiError::bad_request("invalid_limit", format!("limit is 1-{max}"))),
        }
    }

    /// `?since=`: RFC 3339 (a `+` sent unencoded, which arrives as a space, is taken as `+`).
    pub fn since(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(raw) = self.get("since") else { return Ok(None) };
        let parse = |s: &str| DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc));
        parse(raw)
            .or_else(|| parse(&raw.trim().replace(' ', "+")))
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("invalid_query", "since is an RFC 3339 time, e.g. 2025-01-31T08:00:00Z"))
    }
}

impl Portfolio {
    /// The cache key of `view` of this portfolio with `extra` (the view's parameters).
    pub fn key(&self, view: &str, today: NaiveDate, extra: &str) -> String {
        format!("{view}\n{:?}\n{:?}\n{today}\n{extra}", self.tenant, self.advisor)
    }
}

/// A view's answer, serialized once (it may be shared by many requests).
pub fn to_json(view: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(view).map(Bytes::from).map_err(|e| {
        tracing::error!(error = %e, "an advisor view did not serialize");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    })
}

/// 200 with a JSON body already serialized.
pub fn json_response(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Today, in UTC: what "due" and "overdue" are measured against.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A read-model failure: the views not there (qbo-mirror has not migrated) or PostgreSQL
/// unreachable are 503 `dependency_unavailable`.
pub fn read_failed(e: sqlx::Error) -> ApiError {
    match &e {
        // undefined_table, invalid_schema_name, undefined_column (an older mirror)
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P01" | "3F000" | "42703")) => {
            tracing::warn!(error = %e, "the QBO read model is not there (has qbo-mirror migrated?)");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "the QBO mirror's read model is not available yet; retry later")
        }
        _ => ApiError::database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Principal {
        Principal { subject: "adv-1".into(), role, tenant: Some("t1".into()), applications: vec![] }
    }

    fn code(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        format!("{:?}", result.expect_err("refused"))
    }

    #[test]
    fn the_portfolio_is_the_callers_unless_an_operator_names_another() {
        assert_eq!(Portfolio::of(&caller(Role::Staff), None).unwrap(), Portfolio { advisor: "adv-1".into(), tenant: Some("t1".into()) });
        assert_eq!(Portfolio::of(&caller(Role::Staff), Some("adv-1".into())).unwrap().advisor, "adv-1");
        assert!(code(Portfolio::of(&caller(Role::Staff), Some("adv-2".into()))).contains("forbidden"));
        assert!(code(Portfolio::of(&caller(Role::Borrower), None)).contains("forbidden"));
        for role in [Role::Ops, Role::Admin] {
            assert_eq!(Portfolio::of(&caller(role), Some("adv-2".into())).unwrap(), Portfolio { advisor: "adv-2".into(), tenant: Some("t1".into()) });
        }
    }

    #[test]
    fn parameters_are_checked() {
        let p = |pairs: &[(&str, &str)]| Params::from_pairs(pairs);
        assert!(code(p(&[("x", "1")]).only(&["limit"])).contains("invalid_query"));
        assert!(code(p(&[("limit", "1"), ("limit", "2")]).only(&["limit"])).contains("invalid_query"));
        assert_eq!(p(&[]).limit(100, 500).unwrap(), 100);
        assert_eq!(p(&[("limit", "500")]).limit(100, 500).unwrap(), 500);
        for bad in ["0", "501", "-1", "x", ""] {
            assert!(code(p(&[("limit", bad)]).limit(100, 500)).contains("invalid_limit"), "{bad}");
        }
        assert_eq!(p(&[("since", "2025-01-31T08:00:00+01:00")]).since().unwrap().map(|t| t.to_rfc3339()), Some("2025-01-31T07:00:00+00:00".into()));
        assert!(p(&[("since", "2025-01-31T08:00:00 01:00")]).since().unwrap().is_some(), "an unencoded +");
        assert!(code(p(&[("since", "yesterday")]).since()).contains("invalid_query"));
        assert_eq!(p(&[("advisor", "a@b")]).advisor().unwrap().as_deref(), Some("a@b"));
        assert!(code(p(&[("advisor", "")]).advisor()).contains("invalid_query"));
        assert!(code(p(&[("advisor", &"x".repeat(257))]).advisor()).contains("invalid_query"));
    }
}
