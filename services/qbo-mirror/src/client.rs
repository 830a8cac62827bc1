//! The QuickBooks Online Accounting API v3 as qbo-mirror uses it: the OAuth refresh (rotating
//! refresh tokens), `query` with 1-based paging and `cdc`, with `minorversion=75`.
//!
//! Failures are classified for the sync: 401 (the access token expired) renews it once; 429 and
//! 5xx, network failures and timeouts are transient (429: wait 60 s, QBO sends no `Retry-After`);
//! `invalid_grant` means the realm's refresh token is revoked (the realm pauses); a `Fault` inside
//! a 200 is an error like any other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

pub const MINOR_VERSION: &str = "75";
/// What QBO gives per query page and per CDC response at most.
pub const PAGE: usize = 1000;

#[derive(Debug, Error)]
pub enum QboError {
    #[error("QBO throttled the realm (429 ThrottleExceeded)")]
    Throttled,
    #[error("QBO is unavailable: HTTP {status}: {detail}")]
    Unavailable { status: u16, detail: String },
    #[error("QBO could not be reached")]
    Network(#[source] reqwest::Error),
    #[error("the realm's refresh token is no longer valid (invalid_grant): reconnect the realm")]
    Revoked,
    #[error("QBO refused the access token (401) after a renewal")]
    Unauthorized,
    #[error("QBO answered with a Fault ({kind}): {detail}")]
    Fault { kind: String, detail: String },
    #[error("QBO's answer did not parse")]
    Parse(#[source] serde_json::Error),
}

impl QboError {
    /// Worth trying again later (the realm is not at fault).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable { .. } | Self::Network(_))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::Network(_) => "network",
            Self::Revoked => "revoked",
            Self::Unauthorized => "unauthorized",
            Self::Fault { .. } => "fault",
            Self::Parse(_) => "parse",
        }
    }
}

/// The app's OAuth client and where QBO is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://quickbooks.api.intuit.com` (the client appends `/v3/company/...`).
    pub api_base: String,
    /// `https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub timeout: Duration,
}

/// A fresh token pair: the refresh token has rotated and must be stored before anything else.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: i64,
}

/// One entity as QBO sends it: what the mirror needs, plus the whole object.
#[derive(Debug, Clone)]
pub struct Entity {
    /// `Bill`, `Invoice` or `Account`.
    pub kind: &'static str,
    pub id: String,
    pub sync_token: i64,
    pub last_updated: DateTime<Utc>,
    pub deleted: bool,
    pub raw: Value,
}

#[derive(Clone)]
pub struct QboClient {
    http: reqwest::Client,
    config: ClientConfig,
}

impl QboClient {
    pub fn new(config: ClientConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(config.timeout).user_agent(concat!("brain-qbo-mirror/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self { http, config })
    }

    /// Trades `refresh_token` for a new pair (the old refresh token is dead from now on).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, QboError> {
        let form = form_urlencoded::Serializer::new(String::new()).append_pair("grant_type", "refresh_token").append_pair("refresh_token", refresh_token).finish();
        let response = self
            .http
            .post(&self.config.token_url)
            .basic_auth(&self.config.client_id, Some(self.config.client_secret.expose_secret()))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(QboError::Network)?;
        let status = response.status();
        let body = response.text().await.map_err(QboError::Network)?;
        if status == StatusCode::BAD_REQUEST && body.contains("invalid_grant") {
            return Err(QboError::Revoked);
        }
        if !status.is_success() {
            return Err(classify(status, &body));
        }
        serde_json::from_str(&body).map_err(QboError::Parse)
    }

    /// `select * from <kind> [where MetaData.LastUpdatedTime > since] ORDERBY ... STARTPOSITION
    /// start MAXRESULTS 1000`.
    pub async fn query(&self, realm: &str, access: &str, kind: &'static str, since: Option<DateTime<Utc>>, start: usize) -> Result<Vec<Entity>, QboError> {
        let filter = since.map(|t| format!(" where MetaData.LastUpdatedTime > '{}'", t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))).unwrap_or_default();
        let query = format!("select * from {kind}{filter} ORDERBY MetaData.LastUpdatedTime STARTPOSITION {start} MAXRESULTS {PAGE}");
        let body = self.get(realm, access, "query", &[("query", &query)]).await?;
        let list = body.get("QueryResponse").and_then(|r| r.get(kind)).and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(list.into_iter().filter_map(|raw| entity(kind, raw)).collect())
    }

    /// CDC of `kinds` changed since `since` (at most 30 days back; at most 1,000 objects).
    /// Returns the objects and QBO's `time` (when the answer was made).
    pub async fn cdc(&self, realm: &str, access: &str, kinds: &[&'static str], since: DateTime<Utc>) -> Result<(Vec<Entity>, Option<DateTime<Utc>>), QboError> {
        let changed_since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let entities = kinds.join(",");
        let body = self.get(realm, access, "cdc", &[("entities", &entities), ("changedSince", &changed_since)]).await?;
        let time = body.get("time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
        let mut out = Vec::new();
        for response in body.get("CDCResponse").and_then(Value::as_array).into_iter().flatten() {
            for part in response.get("QueryResponse").and_then(Value::as_array).into_iter().flatten() {
                for kind in kinds {
                    for raw in part.get(*kind).and_then(Value::as_array).into_iter().flatten() {
                        out.extend(entity(kind, raw.clone()));
                    }
                }
            }
        }
        Ok((out, time))
    }

    async fn get(&self, realm: &str, access: &str, path: &str, query: &[(&str, &str)]) -> Result<Value, QboError> {
        let url = format!("{}/v3/company/{realm}/{path}", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .bearer_auth(access)
            .header("Accept", "application/json")
            .query(query)
            .query(&[("minorversion", MINOR_VERSION)])
            .send()
            .await
            .map_err(QboError::Network)?;
        let status = response.status();
        let body = response.text().await.map_err(QboError::Network)?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(QboError::Unauthorized);
        }
        if !status.is_success() {
            return Err(classify(status, &body));
        }
        let value: Value = serde_json::from_str(&body).map_err(QboError::Parse)?;
        // A 200 may still carry a Fault.
        if let Some(fault) = value.get("Fault") {
            return Err(fault_error(fault));
        }
        Ok(value)
    }
}

fn classify(status: StatusCode, body: &str) -> QboError {
    if status == StatusCode::TOO_MANY_REQUESTS || body.contains("ThrottleExceeded") {
        return QboError::Throttled;
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return QboError::Unavailable { status: status.as_u16(), detail: body.chars().take(200).collect() };
    }
    match serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("Fault").cloned()) {
        Some(fault) => fault_error(&fault),
        None => QboError::Fault { kind: format!("HTTP {}", status.as_u16()), detail: body.chars().take(200).collect() },
    }
}

fn fault_error(fault: &Value) -> QboError {
    let kind = fault.get("type").and_then(Value::as_str).unwrap_or("Fault").to_string();
    let first = fault.get("Error").and_then(Value::as_array).and_then(|e| e.first());
    let detail = first.map(|e| format!("{} {}", e.get("Message").and_then(Value::as_str).unwrap_or_default(), e.get("Detail").and_then(Value::as_str).unwrap_or_default())).unwrap_or_default();
    if detail.contains("ThrottleExceeded") {
        return QboError::Throttled;
    }
    QboError::Fault { kind, detail }
}

fn entity(kind: &'static str, raw: Value) -> Option<Entity> {
    let id = raw.get("Id")?.as_str()?.to_string();
    let last_updated = raw.pointer("/MetaData/LastUpdatedTime").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok())?.with_timezone(&Utc);
    let deleted = raw.get("status").and_then(Value::as_str) == Some("Deleted");
    let sync_token = raw.get("SyncToken").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or(if deleted { i64::MAX } else { 0 });
    Some(Entity { kind, id, sync_token, last_updated, deleted, raw })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entities_and_deletions_parse() {
        let bill = entity("Bill", json!({"Id": "7", "SyncToken": "3", "MetaData": {"LastUpdatedTime": "2026-01-02T03:04:05-08:00"}})).unwrap();
        assert_eq!((bill.id.as_str(), bill.sync_token, bill.deleted), ("7", 3, false));
        let gone = entity("Bill", json!({"Id": "63", "status": "Deleted", "MetaData": {"LastUpdatedTime": "2026-01-02T03:04:05Z"}})).unwrap();
        assert!(gone.deleted);
        assert!(entity("Bill", json!({"Id": "1"})).is_none(), "no LastUpdatedTime, no entity");
    }

    #[test]
    fn faults_are_classified() {
        let throttle = json!({"Fault":{"Error":[{"Message":"message=ThrottleExceeded; errorCode=003001; statusCode=429","Detail":"The request limit was reached.","code":"3001"}],"type":"SERVICE"}});
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, &throttle.to_string()), QboError::Throttled));
        assert!(matches!(fault_error(&throttle["Fault"]), QboError::Throttled), "a throttle Fault in a 200 too");
        assert!(classify(StatusCode::SERVICE_UNAVAILABLE, "").is_transient());
        let validation = json!({"Fault":{"Error":[{"Message":"Stale Object Error","code":"5010"}],"type":"ValidationFault"}});
        assert!(matches!(classify(StatusCode::BAD_REQUEST, &validation.to_string()), QboError::Fault { .. }));
    }
}
