//! App-only tokens as Entra ID issues them: `POST /{tenant}/oauth2/v2.0/token` with
//! `grant_type=client_credentials`, the client id and secret (form fields or HTTP Basic) and
//! `scope=https://graph.microsoft.com/.default`. The access token is a JWT-shaped string (its
//! payload carries `aud`, `tid`, `appid`, `exp`; its signature is random) valid for
//! `access_token_ttl`; `/v1.0` requires it as a bearer (401 `InvalidAuthenticationToken`).

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{error::GraphError, state::SharedState, time};

const GRAPH_SCOPES: [&str; 2] = [
    "https://graph.microsoft.com/.default",
    "00000003-0000-0000-c000-000000000000/.default",
];

#[derive(Debug, Default)]
pub struct Tokens {
    access: HashMap<String, DateTime<Utc>>,
}

impl Tokens {
    pub fn issue(&mut self, tenant_id: &str, client_id: &str, ttl: TimeDelta) -> String {
        let now = Utc::now();
        let expires = now + ttl;
        if self.access.len() > 100_000 {
            self.access.retain(|_, at| *at > now);
        }
        let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"RS256"}"#);
        let claims = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{tenant_id}/"),
            "tid": tenant_id,
            "appid": client_id,
            "roles": ["Calendars.ReadWrite", "Subscription.ReadWrite.All"],
            "iat": now.timestamp(),
            "exp": expires.timestamp(),
            "uti": uuid::Uuid::new_v4().simple().to_string(),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signature = URL_SAFE_NO_PAD.encode(rand::rng().random::<[u8; 32]>());
        let token = format!("{header}.{payload}.{signature}");
        self.access.insert(token.clone(), expires);
        token
    }

    /// Checks a bearer token (`None`: no `Authorization` header).
    pub fn authorize(&self, token: Option<&str>) -> Result<(), GraphError> {
        let token = token.filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(GraphError::unauthenticated("Access token is empty."));
        };
        match self.access.get(token) {
            None => Err(GraphError::unauthenticated(
                "Access token validation failure. Invalid audience.",
            )),
            Some(expires) if *expires <= Utc::now() => Err(GraphError::unauthenticated(
                "Lifetime validation failed, the token is expired.",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Every access token stops working (as after a secret rotation or a consent revoke).
    pub fn revoke_all(&mut self) -> usize {
        let n = self.access.len();
        self.access.clear();
        n
    }
}

/// An Entra ID error body: `{"error","error_description","error_codes","timestamp",...}`.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace}"),
        "error_codes": [code],
        "timestamp": time::format_instant(Utc::now()),
        "trace_id": trace,
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = &state.config;
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !tenant.eq_ignore_ascii_case(&config.tenant_id) {
        let message = format!("Tenant '{tenant}' not found.");
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &message);
    }
    let missing = |name: &str| {
        let message = format!("The request body must contain the following parameter: '{name}'.");
        aad_error(StatusCode::BAD_REQUEST, "invalid_request", 900144, &message)
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            let message = format!("The provided value for 'grant_type' ({other}) is not valid.");
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &message,
            );
        }
        None => return missing("grant_type"),
    }
    let (client_id, secret) = match basic_credentials(&headers) {
        Some(pair) => pair,
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            (None, _) => return missing("client_id"),
            (Some(_), None) => return missing("client_assertion' or 'client_secret"),
        },
    };
    if client_id != config.client_id {
        let message = format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
        );
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &message,
        );
    }
    if secret != config.client_secret.expose_secret() {
        let message = format!("Invalid client secret provided for app '{client_id}'.");
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &message,
        );
    }
    let Some(scope) = form.get("scope") else {
        return missing("scope");
    };
    if !GRAPH_SCOPES.contains(&scope.trim()) {
        let message = format!(
            "The provided value for scope {scope} is not valid. Client credential flows must \
             have a scope value with /.default suffixed to the resource identifier."
        );
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, &message);
    }
    let ttl = TimeDelta::from_std(config.access_token_ttl).unwrap_or(TimeDelta::MAX);
    let access_token = state
        .tokens()
        .issue(&config.tenant_id, &config.client_id, ttl);
    let expires_in = config.access_token_ttl.as_secs();
    Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let mut tokens = Tokens::default();
        let live = tokens.issue("t", "c", TimeDelta::hours(1));
        let dead = tokens.issue("t", "c", TimeDelta::seconds(-1));
        assert!(tokens.authorize(Some(&live)).is_ok());
        let expired = tokens.authorize(Some(&dead)).unwrap_err();
        assert!(expired.message.contains("expired"), "{expired}");
        assert_eq!(
            tokens.authorize(None).unwrap_err().code,
            "InvalidAuthenticationToken"
        );
        assert_eq!(tokens.revoke_all(), 2);
        assert!(tokens.authorize(Some(&live)).is_err());
    }
}
