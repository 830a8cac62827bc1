//! The Ventures API (v4): token auth, loans, conditions and the change feed.
//!
//! Every call has a timeout. 401 renews the token once and retries; 408, 429 and 5xx (but 501)
//! and network failures are transient (429 and 503 carry `Retry-After`); 410 `CURSOR_EXPIRED`
//! means the stored cursor fell out of the feed's retention; other 4xx are permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;
use thiserror::Error;
use brain_runtime::breaker::Breaker;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Borrower {
    pub entity_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    pub requested: f64,
    pub approved: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Loan {
    pub loan_id: String,
    pub loan_number: String,
    pub loan_type: String,
    pub status: String,
    pub status_changed_at: DateTime<Utc>,
    pub borrower: Borrower,
    pub amounts: Amounts,
    #[serde(default)]
    pub external_id: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// Where a condition's document is kept (`documentRef`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRef {
    pub system: String,
    pub item_id: String,
}

/// A loan condition (`GET /loans/{loanId}/conditions`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub condition_id: String,
    pub loan_id: String,
    pub name: String,
    /// Open, Received, Satisfied or Waived.
    pub status: String,
    #[serde(default)]
    pub document_ref: Option<DocumentRef>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct ConditionsPage {
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub seq: i64,
    pub entity_type: String,
    pub entity_id: String,
    pub loan_id: String,
    pub change_type: String,
    pub changed_at: DateTime<Utc>,
    /// The entity as of this change (our contract's snapshot); absent → fetch the current state.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    pub next_cursor: String,
    pub has_more: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoansPage {
    pub loans: Vec<Loan>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub feed_cursor: String,
}

#[derive(Debug, Error)]
pub enum VenturesError {
    #[error("the change-feed cursor has expired")]
    CursorExpired,
    #[error("rate limited by Ventures")]
    RateLimited { retry_after: Option<Duration> },
    #[error("Ventures failed with HTTP {status}")]
    Unavailable { status: u16, retry_after: Option<Duration> },
    #[error("could not reach Ventures: {0}")]
    Network(String),
    #[error("Ventures refused the request: HTTP {status} {code}: {message}")]
    Rejected { status: u16, code: String, message: String },
    #[error("unexpected response from Ventures: {0}")]
    Decode(String),
}

impl VenturesError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Network(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable short code for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CursorExpired => "cursor_expired",
            Self::RateLimited { .. } => "http_429",
            Self::Unavailable { .. } => "http_5xx",
            Self::Network(_) => "network",
            Self::Rejected { .. } => "http_4xx",
            Self::Decode(_) => "decode",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub client: String,
    pub username: String,
    pub password: SecretString,
}

/// A request body and the headers that go with it.
struct Body<'a> {
    json: &'a serde_json::Value,
    idempotency_key: Option<&'a str>,
    if_match: Option<i64>,
}

pub struct VenturesClient {
    /// Every call's outcome feeds it: 5xx and network failures open it, any answer closes it.
    breaker: Breaker,
    base: String,
    http: reqwest::Client,
    credentials: Credentials,
    token: Mutex<Option<SecretString>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl VenturesClient {
    pub fn new(base_url: &str, credentials: Credentials, timeout: Duration, breaker: Breaker) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Self { breaker, base: format!("{}/api/v4", base_url.trim_end_matches('/')), http, credentials, token: Mutex::new(None) })
    }

    /// The Ventures circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Feeds the breaker: Ventures down (5xx, network) is a failure, any real answer a success;
    /// 429 is neither (Ventures is up and asks us to slow down).
    fn observe<T>(&self, result: &Result<T, VenturesError>) {
        match result {
            Err(VenturesError::Unavailable { .. } | VenturesError::Network(_)) => {
                self.breaker.failure();
            }
            Err(VenturesError::RateLimited { .. }) => {}
            _ => self.breaker.success(),
        }
    }

    pub async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangesPage, VenturesError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.get("/changes", &query).await
    }

    pub async fn loans(&self, cursor: Option<&str>, limit: u32) -> Result<LoansPage, VenturesError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.get("/loans", &query).await
    }

    pub async fn loan(&self, loan_id: &str) -> Result<Loan, VenturesError> {
        self.get(&format!("/loans/{}", urlencode(loan_id)), &[]).await
    }

    /// `PUT /loans/{loanId}/status` at `expected_version`, under `idempotency_key`: a repeat with
    /// the same key and body gets the first outcome back without a second change.
    pub async fn set_status(&self, loan_id: &str, status: &str, expected_version: i64, idempotency_key: &str) -> Result<Loan, VenturesError> {
        let body = json!({ "status": status, "expectedVersion": expected_version });
        let path = format!("/loans/{}/status", urlencode(loan_id));
        self.call(Method::PUT, &path, &[], Some(Body { json: &body, idempotency_key: Some(idempotency_key), if_match: None })).await
    }

    /// `PATCH /loans/{loanId}/draft` with `fields` (null clears one), under `idempotency_key`.
    pub async fn update_draft(&self, loan_id: &str, fields: &serde_json::Map<String, serde_json::Value>, idempotency_key: &str) -> Result<serde_json::Value, VenturesError> {
        let body = json!({ "fields": fields });
        let path = format!("/loans/{}/draft", urlencode(loan_id));
        self.call(Method::PATCH, &path, &[], Some(Body { json: &body, idempotency_key: Some(idempotency_key), if_match: None })).await
    }

    /// The loan's conditions.
    pub async fn conditions(&self, loan_id: &str) -> Result<Vec<Condition>, VenturesError> {
        let page: ConditionsPage = self.get(&format!("/loans/{}/conditions", urlencode(loan_id)), &[]).await?;
        Ok(page.conditions)
    }

    /// `PATCH /loans/{loanId}/conditions/{conditionId}` with `If-Match: <version>`: a condition
    /// changed since it was read is 409 (read it again and decide again).
    pub async fn update_condition(&self, loan_id: &str, condition_id: &str, version: i64, patch: &serde_json::Value) -> Result<Condition, VenturesError> {
        let path = format!("/loans/{}/conditions/{}", urlencode(loan_id), urlencode(condition_id));
        self.call(Method::PATCH, &path, &[], Some(Body { json: patch, idempotency_key: None, if_match: Some(version) })).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, VenturesError> {
        self.call(Method::GET, path, query, None).await
    }

    /// One call, as a client span of the trace (`ventures.request`).
    #[tracing::instrument(name = "ventures.request", skip_all, fields(otel.kind = "client", http.request.method = %method, url.path = path))]
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body<'_>>,
    ) -> Result<T, VenturesError> {
        for renewed in [false, true] {
            let token = self.token(renewed).await;
            if token.is_err() {
                self.observe(&token);
            }
            let token = token?;
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token.expose_secret()).query(query);
            if let Some(body) = &body {
                request = request.json(body.json);
                if let Some(key) = body.idempotency_key {
                    request = request.header("Idempotency-Key", key);
                }
                if let Some(version) = body.if_match {
                    request = request.header(reqwest::header::IF_MATCH, format!("\"{version}\""));
                }
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    self.breaker.failure();
                    return Err(VenturesError::Network(e.to_string()));
                }
            };
            if response.status() == StatusCode::UNAUTHORIZED && !renewed {
                continue;
            }
            let result = parse(response).await;
            self.observe(&result);
            return result;
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn token(&self, renew: bool) -> Result<SecretString, VenturesError> {
        let mut slot = self.token.lock().await;
        if let (Some(token), false) = (slot.as_ref(), renew) {
            return Ok(token.clone());
        }
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .json(&json!({
                "client": self.credentials.client,
                "username": self.credentials.username,
                "password": self.credentials.password.expose_secret(),
            }))
            .send()
            .await
            .map_err(|e| VenturesError::Network(e.to_string()))?;
        let TokenResponse { token } = parse(response).await?;
        let token = SecretString::from(token);
        *slot = Some(token.clone());
        Ok(token)
    }
}

async fn parse<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, VenturesError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.map_err(|e| VenturesError::Network(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| VenturesError::Decode(e.to_string()));
    }
    let body = serde_json::from_slice::<ErrorEnvelope>(&bytes).ok().map(|e| e.error);
    match status.as_u16() {
        410 => Err(VenturesError::CursorExpired),
        429 => Err(VenturesError::RateLimited { retry_after }),
        408 | 500 | 502..=599 => Err(VenturesError::Unavailable { status: status.as_u16(), retry_after }),
        s => {
            let (code, message) = body.map_or_else(|| ("UNKNOWN".into(), String::from_utf8_lossy(&bytes).into_owned()), |b| (b.code, b.message));
            Err(VenturesError::Rejected { status: s, code, message })
        }
    }
}

fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
