//! OAuth 2 as Intuit runs it: `POST /oauth2/v1/tokens/bearer` with HTTP Basic client credentials
//! and `grant_type=refresh_token`. Every use of a refresh token rotates it: the answer carries a
//! new one and the old one is dead (`400 {"error":"invalid_grant"}`), so a client must persist
//! the newest. Access tokens are bound to one realm and expire after `access_token_ttl` of
//! simulated time. `/control` can mint a refresh token for a realm (a reconnect) or revoke them.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, distr::Alphanumeric};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{error::Fault, middleware::RealmTag, state::SharedState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Current,
    Rotated,
    Revoked,
}

#[derive(Debug)]
struct RefreshToken {
    realm_id: String,
    expires_at: DateTime<Utc>,
    state: RefreshState,
}

#[derive(Debug)]
struct AccessToken {
    realm_id: String,
    expires_at: DateTime<Utc>,
}

/// Why a refresh was refused (all `invalid_grant` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    Unknown,
    Reused,
    Revoked,
    Expired,
}

#[derive(Debug, Default)]
pub struct Tokens {
    refresh: HashMap<String, RefreshToken>,
    access: HashMap<String, AccessToken>,
    current: HashMap<String, String>,
}

pub struct Issued {
    pub realm_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

fn random_token(prefix: &str, len: usize) -> String {
    let body: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{body}")
}

impl Tokens {
    /// A fresh refresh token for `realm_id`; the realm's previous one stops working.
    pub fn connect(&mut self, realm_id: &str, expires_at: DateTime<Utc>) -> String {
        let token = random_token("AB11", 46);
        if let Some(old) = self.current.insert(realm_id.to_owned(), token.clone())
            && let Some(entry) = self.refresh.get_mut(&old)
            && entry.state == RefreshState::Current
        {
            entry.state = RefreshState::Revoked;
        }
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                realm_id: realm_id.to_owned(),
                expires_at,
                state: RefreshState::Current,
            },
        );
        token
    }

    /// The realm's current refresh token, if it is connected.
    pub fn current(&self, realm_id: &str) -> Option<&str> {
        self.current.get(realm_id).map(String::as_str)
    }

    /// Revokes the realm's refresh token and every access token issued for it.
    pub fn revoke(&mut self, realm_id: &str) -> bool {
        self.access.retain(|_, a| a.realm_id != realm_id);
        let Some(token) = self.current.remove(realm_id) else {
            return false;
        };
        if let Some(entry) = self.refresh.get_mut(&token) {
            entry.state = RefreshState::Revoked;
        }
        true
    }

    /// The realm a refresh token belongs to, whatever its state (for the ledger).
    pub fn realm_of_refresh(&self, token: &str) -> Option<&str> {
        self.refresh.get(token).map(|t| t.realm_id.as_str())
    }

    pub fn refresh(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        access_ttl: TimeDelta,
        refresh_ttl: TimeDelta,
    ) -> Result<Issued, GrantError> {
        let entry = self.refresh.get_mut(token).ok_or(GrantError::Unknown)?;
        match entry.state {
            RefreshState::Rotated => return Err(GrantError::Reused),
            RefreshState::Revoked => return Err(GrantError::Revoked),
            RefreshState::Current if entry.expires_at <= now => return Err(GrantError::Expired),
            RefreshState::Current => entry.state = RefreshState::Rotated,
        }
        let realm_id = entry.realm_id.clone();
        let refresh_token = self.connect(&realm_id, now + refresh_ttl);
        let access_token = random_token("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2", 120);
        if self.access.len() > 100_000 {
            self.access.retain(|_, a| a.expires_at > now);
        }
        self.access.insert(
            access_token.clone(),
            AccessToken {
                realm_id: realm_id.clone(),
                expires_at: now + access_ttl,
            },
        );
        Ok(Issued {
            realm_id,
            access_token,
            refresh_token,
        })
    }

    /// Checks a bearer token for a request to `realm_id`: 401 unless valid, 403 for another realm.
    pub fn authorize(&self, token: &str, realm_id: &str, now: DateTime<Utc>) -> Result<(), Fault> {
        let access = self
            .access
            .get(token)
            .ok_or_else(|| Fault::unauthenticated("Token invalid or revoked"))?;
        if access.expires_at <= now {
            return Err(Fault::unauthenticated("Token expired"));
        }
        if access.realm_id != realm_id {
            return Err(Fault::unauthorized_realm());
        }
        Ok(())
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}

fn client_authenticated(state: &SharedState, headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    else {
        return false;
    };
    let Some(decoded) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let config = &state.config;
    decoded.split_once(':').is_some_and(|(id, secret)| {
        id == config.client_id && secret == config.client_secret.expose_secret()
    })
}

/// `POST /oauth2/v1/tokens/bearer`.
pub async fn token(State(state): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    if !client_authenticated(&state, &headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
    let Some(refresh_token) = form.get("refresh_token").filter(|t| !t.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let config = &state.config;
    let ttl = |d| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let (access_ttl, refresh_ttl) = (ttl(config.access_token_ttl), ttl(config.refresh_token_ttl));
    let mut tokens = state.tokens();
    let realm = tokens
        .realm_of_refresh(refresh_token)
        .map(|r| RealmTag(r.to_owned()));
    let result = tokens.refresh(refresh_token, state.clock.now(), access_ttl, refresh_ttl);
    drop(tokens);
    let mut response = match result {
        Ok(issued) => {
            tracing::debug!(realm_id = %issued.realm_id, "refresh token rotated");
            Json(json!({
                "token_type": "bearer",
                "access_token": issued.access_token,
                "expires_in": config.access_token_ttl.as_secs(),
                "refresh_token": issued.refresh_token,
                "x_refresh_token_expires_in": config.refresh_token_ttl.as_secs(),
            }))
            .into_response()
        }
        Err(reason) => {
            tracing::debug!(?reason, "refresh refused");
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant")
        }
    };
    if let Some(realm) = realm {
        response.extensions_mut().insert(realm);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_rotate_and_die_on_reuse() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let (hour, days) = (TimeDelta::hours(1), TimeDelta::days(100));
        let first = tokens.connect("r1", now + days);
        let issued = tokens.refresh(&first, now, hour, days).ok().unwrap();
        assert_ne!(issued.refresh_token, first);
        assert_eq!(
            tokens.refresh(&first, now, hour, days).err(),
            Some(GrantError::Reused)
        );
        assert!(tokens.authorize(&issued.access_token, "r1", now).is_ok());
        assert_eq!(
            tokens
                .authorize(&issued.access_token, "r2", now)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            tokens
                .authorize(&issued.access_token, "r1", now + hour)
                .unwrap_err()
                .status,
            401
        );
        assert!(tokens.revoke("r1"));
        assert_eq!(
            tokens.refresh(&issued.refresh_token, now, hour, days).err(),
            Some(GrantError::Revoked)
        );
        assert_eq!(
            tokens
                .authorize(&issued.access_token, "r1", now)
                .unwrap_err()
                .status,
            401
        );
    }
}
