//! OAuth 2 as ShareFile runs it: `POST /oauth/token`, form-encoded, with the client credentials
//! in the form and either `grant_type=password` (`username`, `password`) or
//! `grant_type=refresh_token`. The answer carries `access_token`, `refresh_token`,
//! `token_type`, `expires_in`, `subdomain`, `apicp` and `appcp`. Access tokens live
//! `access_token_ttl` (real time); a refresh returns the same refresh token unless
//! `rotate_refresh_tokens` is on (ShareFile's behaviour here is unverified).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rand::{Rng, distr::Alphanumeric};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::state::SharedState;

#[derive(Debug, Default)]
pub struct Tokens {
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Expired,
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Tokens {
    fn access_token(&mut self, ttl: Duration) -> String {
        let token = random_token(40);
        self.access.insert(token.clone(), Instant::now() + ttl);
        token
    }

    /// A new access and refresh token pair (the `password` grant).
    pub fn issue(&mut self, ttl: Duration) -> (String, String) {
        let refresh = random_token(40);
        self.refresh.insert(refresh.clone());
        (self.access_token(ttl), refresh)
    }

    /// A new access token for a live refresh token, and the refresh token to use next.
    pub fn refresh(
        &mut self,
        token: &str,
        ttl: Duration,
        rotate: bool,
    ) -> Option<(String, String)> {
        if !self.refresh.contains(token) {
            return None;
        }
        if rotate {
            self.refresh.remove(token);
            return Some(self.issue(ttl));
        }
        Some((self.access_token(ttl), token.to_owned()))
    }

    pub fn authorize(&self, token: &str) -> Result<(), Refused> {
        match self.access.get(token) {
            None => Err(Refused::Unknown),
            Some(expires) if Instant::now() >= *expires => Err(Refused::Expired),
            Some(_) => Ok(()),
        }
    }

    /// Every access token stops working now (refresh tokens still do).
    pub fn expire_access(&mut self) -> usize {
        let now = Instant::now();
        self.access.values_mut().for_each(|e| *e = now);
        self.access.len()
    }

    /// Every token stops working: the client must log in again.
    pub fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub async fn token(State(state): State<SharedState>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let config = &state.config;
    if field("client_id") != config.client_id
        || field("client_secret") != config.client_secret.expose_secret()
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client or wrong client secret",
        );
    }
    let ttl = config.access_token_ttl;
    let issued = match field("grant_type") {
        "password" => {
            if field("username") != config.username
                || field("password") != config.password.expose_secret()
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The username or password is incorrect",
                );
            }
            state.tokens().issue(ttl)
        }
        "refresh_token" => {
            let refreshed =
                state
                    .tokens()
                    .refresh(field("refresh_token"), ttl, config.rotate_refresh_tokens);
            match refreshed {
                Some(pair) => pair,
                None => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is invalid or revoked",
                    );
                }
            }
        }
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported"),
            );
        }
    };
    let (access_token, refresh_token) = issued;
    Json(json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": ttl.as_secs(),
        "subdomain": config.subdomain,
        "apicp": config.apicp,
        "appcp": config.appcp,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_keeps_or_rotates() {
        let mut tokens = Tokens::default();
        let ttl = Duration::from_secs(60);
        let (access, refresh) = tokens.issue(ttl);
        assert_eq!(tokens.authorize(&access), Ok(()));
        let (_, same) = tokens.refresh(&refresh, ttl, false).unwrap();
        assert_eq!(same, refresh);
        let (_, next) = tokens.refresh(&refresh, ttl, true).unwrap();
        assert!(tokens.refresh(&refresh, ttl, true).is_none());
        assert!(tokens.refresh(&next, ttl, false).is_some());
        tokens.expire_access();
        assert_eq!(tokens.authorize(&access), Err(Refused::Expired));
        assert_eq!(tokens.authorize("nope"), Err(Refused::Unknown));
    }
}
