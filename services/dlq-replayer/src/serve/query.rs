//! Query strings and bodies of the API: `?topic=a&topic=b&field=loan.status=Funded&limit=50`
//! (lists are repeated parameters), the tenant scope header, and JSON bodies, each refused with a
//! 400 and a stable code when it does not fit.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use dlq_api::{FilterSpec, MAX_LIMIT, SCOPE_HEADER};
use serde::de::DeserializeOwned;

use super::error::ServiceError;
use crate::filter::Filter;

/// The filter and limit of a list or count request.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    pub spec: FilterSpec,
    pub limit: Option<usize>,
}

fn invalid(detail: impl Into<String>) -> ServiceError {
    ServiceError::bad_request("invalid_filter", detail)
}

/// Parses `raw`; `limit` only where `with_limit`. Empty values count as absent; unknown or
/// repeated single parameters are refused.
pub fn parse(raw: Option<&str>, with_limit: bool) -> Result<ListQuery, ServiceError> {
    let mut query = ListQuery::default();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let single = |slot: &mut Option<String>| match slot {
            Some(_) => Err(invalid(format!("{name} is given twice"))),
            None => {
                *slot = Some(value.to_string());
                Ok(())
            }
        };
        let spec = &mut query.spec;
        match name.as_ref() {
            "topic" => spec.topics.push(value.into()),
            "id" => spec.ids.push(value.into()),
            "field" => spec.fields.push(value.into()),
            "since" => single(&mut spec.since)?,
            "until" => single(&mut spec.until)?,
            "key" => single(&mut spec.key)?,
            "tenant" => single(&mut spec.tenant)?,
            "class" => single(&mut spec.class)?,
            "kind" => single(&mut spec.kind)?,
            "limit" if with_limit => {
                let limit = value.parse::<usize>().ok().filter(|l| (1..=MAX_LIMIT).contains(l));
                query.limit = Some(limit.ok_or_else(|| ServiceError::bad_request("invalid_limit", format!("limit is 1-{MAX_LIMIT}")))?);
            }
            other => return Err(invalid(format!("unknown parameter {other:?}"))),
        }
    }
    Ok(query)
}

/// The tenant a caller is limited to, from [`SCOPE_HEADER`] (set by the gateway).
#[derive(Debug, Clone, Default)]
pub struct TenantScope(pub Option<String>);

impl TenantScope {
    /// `spec` limited to the scope's tenant: a filter naming another tenant is refused.
    pub fn filter(&self, mut spec: FilterSpec) -> Result<Filter, ServiceError> {
        if let Some(tenant) = &self.0 {
            if spec.tenant.as_ref().is_some_and(|t| t != tenant) {
                return Err(ServiceError::Forbidden(format!("you may see tenant {tenant}'s dead letters only")));
            }
            spec.tenant = Some(tenant.clone());
        }
        Filter::from_spec(&spec).map_err(invalid)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantScope {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(SCOPE_HEADER) {
            None => Ok(Self(None)),
            Some(value) => value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Self(Some(t.to_string())))
                .ok_or_else(|| ServiceError::bad_request("invalid_scope", format!("{SCOPE_HEADER} is a tenant id"))),
        }
    }
}

/// A JSON body of type `T` (which should `deny_unknown_fields`); 400 `invalid_body` otherwise.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| ServiceError::bad_request("invalid_body", format!("the body could not be read: {e}")))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| ServiceError::bad_request("invalid_body", format!("the body is not valid for this endpoint: {e}")))
    }
}

/// A non-empty text of at most `max` characters without control characters (but line feeds).
pub fn text(code: &'static str, name: &str, value: &str, max: usize) -> Result<String, ServiceError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ServiceError::bad_request(code, format!("{name} is 1-{max} characters without control characters")));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_repeat_and_the_rest_is_checked() {
        let q = parse(Some("topic=deadletter.a.v1&topic=deadletter.b.v1&field=loan.status%3DFunded&kind=http_5xx&limit=5&key="), true).unwrap();
        assert_eq!(q.spec.topics, vec!["deadletter.a.v1", "deadletter.b.v1"]);
        assert_eq!(q.spec.fields, vec!["loan.status=Funded"]);
        assert_eq!((q.spec.kind.as_deref(), q.spec.key, q.limit), (Some("http_5xx"), None, Some(5)));
        assert!(parse(Some("limit=5"), false).is_err(), "counts take no limit");
        assert!(parse(Some("limit=0"), true).is_err());
        assert!(parse(Some("kind=a&kind=b"), true).is_err());
        assert!(parse(Some("nope=1"), true).is_err());
        assert_eq!(parse(None, true).unwrap(), ListQuery::default());
    }

    #[test]
    fn a_scope_limits_the_filter_to_its_tenant() {
        let scope = TenantScope(Some("acme".into()));
        assert_eq!(scope.filter(FilterSpec::default()).unwrap().tenant.as_deref(), Some("acme"));
        assert!(matches!(scope.filter(FilterSpec { tenant: Some("other".into()), ..FilterSpec::default() }), Err(ServiceError::Forbidden(_))));
        assert!(TenantScope(None).filter(FilterSpec::default()).unwrap().tenant.is_none());
    }
}
