//! Authentication and authorisation: every route behind [`middleware`] needs
//! `Authorization: Bearer <JWT>` from a configured OIDC issuer (RS256 or ES256, verified against the
//! issuer's JWKS, cached). The verified caller, a [`Principal`], is put in the request's
//! extensions; handlers scope every query by its tenant.
//!
//! Rejections are stable codes (`docs/errors.md`): `unauthenticated`, `token_expired` and
//! `invalid_token` (401, with `WWW-Authenticate: Bearer`), `forbidden` (403) and
//! `issuer_unavailable` (503).

mod cache;
pub mod claims;
pub mod config;
pub mod jwks;
mod verify;

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header::AUTHORIZATION},
    middleware::Next,
    response::{IntoResponse, Response},
};
use brain_runtime::telemetry::metric_name;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use self::{
    claims::{Principal, Role},
    config::{AuthSettings, IssuerConfig},
};
use crate::{SERVICE, error::ApiError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("{reason}")]
    InvalidToken {
        reason: String,
        #[source]
        source: Option<jsonwebtoken::errors::Error>,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("the token's issuer cannot be reached to verify it; retry later")]
    IssuerUnavailable,
}

impl AuthError {
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidToken { reason: reason.into(), source: None }
    }

    fn invalid_because(reason: &str, source: jsonwebtoken::errors::Error) -> Self {
        Self::InvalidToken { reason: reason.into(), source: Some(source) }
    }

    /// The stable code of `docs/errors.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Expired => "token_expired",
            Self::InvalidToken { .. } => "invalid_token",
            Self::Forbidden(_) => "forbidden",
            Self::IssuerUnavailable => "issuer_unavailable",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        // RFC 6750: a bare challenge when no credentials came, `invalid_token` when they were bad.
        let (status, challenge) = match &e {
            AuthError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="brain""#)),
            AuthError::Expired | AuthError::InvalidToken { .. } => (StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="brain", error="invalid_token""#)),
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            AuthError::IssuerUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
        };
        let error = ApiError::new(status, e.code(), e.to_string());
        match challenge {
            Some(challenge) => error.with_header(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)),
            None => error,
        }
    }
}

enum Mode {
    /// `AUTH_DISABLED=true` (loopback only): every caller is [`Principal::unrestricted`].
    Disabled,
    Verify(verify::Verifier),
}

/// The gateway's authenticator; cheap to clone.
#[derive(Clone)]
pub struct Auth(Arc<Mode>);

impl Auth {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        if settings.disabled {
            return Ok(Self(Arc::new(Mode::Disabled)));
        }
        anyhow::ensure!(!settings.issuers.is_empty(), "no OIDC issuer configured (API_GATEWAY__OIDC_ISSUERS)");
        let http = reqwest::Client::builder().timeout(settings.jwks_timeout).user_agent(concat!("brain-api-gateway/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self(Arc::new(Mode::Verify(verify::Verifier::new(settings, &http)))))
    }

    pub fn is_disabled(&self) -> bool {
        matches!(*self.0, Mode::Disabled)
    }

    /// Loads every issuer's keys now and keeps them fresh until `shutdown`.
    /// The refresh tasks end with `shutdown`; the caller awaits them.
    pub fn keep_keys_fresh(&self, shutdown: &CancellationToken) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        if let Mode::Verify(verifier) = &*self.0 {
            for issuer in &verifier.issuers {
                tasks.spawn(issuer.keys.clone().refresh_forever(shutdown.clone()));
            }
        }
        tasks
    }

    /// The caller behind an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Principal, AuthError> {
        match &*self.0 {
            Mode::Disabled => Ok(Principal::unrestricted()),
            Mode::Verify(verifier) => verifier.verify(authorization).await,
        }
    }

    /// Each issuer's key cache, for `/health/deps`.
    pub fn status(&self) -> Value {
        match &*self.0 {
            Mode::Disabled => json!({ "disabled": true }),
            Mode::Verify(verifier) => Value::Object(verifier.issuers.iter().map(|i| (i.config.label(), json!(i.keys.status()))).collect()),
        }
    }
}

/// Authenticates the request, or answers with the rejection.
pub async fn middleware(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    match auth.authenticate(request.headers().get(AUTHORIZATION)).await {
        Ok(principal) => {
            let span = tracing::Span::current();
            span.record("role", principal.role.as_str());
            if let Some(tenant) = &principal.tenant {
                span.record("tenant", tenant.as_str());
            }
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => {
            metrics::counter!(metric_name(SERVICE, "auth_rejections_total"), "code" => e.code()).increment(1);
            tracing::debug!(code = e.code(), error = %e, source = ?std::error::Error::source(&e), "request rejected");
            ApiError::from(e).into_response()
        }
    }
}
