//! The ShareFile REST API v3: OAuth (password grant, tokens renewed on 401), folders by path,
//! a folder's children, folder creation and the two-step upload (`Upload2`, then the bytes to the
//! `ChunkUri` it returns).
//!
//! ShareFile has no idempotency key, so callers look up by name before creating. Errors say
//! whether a retry may help: 429 (`Throttled`), 408 and 5xx (but 501), network failures and a
//! chunk upload answered `200 ERROR: ...` are transient; our own credentials refused is an
//! outage of ours; `NotFound`, `Conflict`, `FileTooLarge` and `QuotaExceeded` are answers.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use brain_runtime::breaker::Breaker;

/// A ShareFile item (folder or file), the fields Brain reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub file_size_bytes: Option<u64>,
    /// MD5 of a file's bytes, hex.
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub children: Option<Vec<Item>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareFileError {
    #[error("ShareFile asks us to slow down (HTTP {status})")]
    Throttled { status: u16, retry_after: Option<Duration> },
    #[error("ShareFile failed with HTTP {status}")]
    Unavailable { status: u16, retry_after: Option<Duration> },
    #[error("could not reach ShareFile")]
    Network(#[source] reqwest::Error),
    #[error("ShareFile refused our credentials (HTTP {status})")]
    Credentials { status: u16 },
    #[error("ShareFile answered the upload with an error: {0}")]
    UploadFailed(String),
    #[error("ShareFile refused the request: HTTP {status} {reason}: {message}")]
    Rejected { status: u16, reason: String, message: String },
    #[error("unexpected answer from ShareFile")]
    Decode(#[source] serde_json::Error),
}

impl ShareFileError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. } | Self::Network(_) | Self::UploadFailed(_))
    }

    /// The `reason` of a refusal (`NotFound`, `Conflict`, `FileTooLarge`, ...).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable short code for metrics and dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "sharefile_throttled",
            Self::Unavailable { .. } => "sharefile_unavailable",
            Self::Network(_) => "sharefile_network",
            Self::Credentials { .. } => "sharefile_credentials",
            Self::UploadFailed(_) => "sharefile_upload_error",
            Self::Rejected { .. } => "sharefile_rejected",
            Self::Decode(_) => "sharefile_decode",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShareFileConfig {
    /// `https://{subdomain}.sf-api.com/sf/v3`.
    pub api_base: String,
    /// `https://{subdomain}.sharefile.com/oauth/token`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
    pub timeout: Duration,
}

pub struct ShareFileClient {
    config: ShareFileConfig,
    http: reqwest::Client,
    token: Mutex<Option<SecretString>>,
    breaker: Breaker,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadSpecification {
    chunk_uri: String,
}

impl ShareFileClient {
    pub fn new(config: ShareFileConfig, breaker: Breaker) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Self { config, http, token: Mutex::new(None), breaker })
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The folder at `path` (`/Clients/Acme`), or `None`.
    pub async fn by_path(&self, path: &str) -> Result<Option<Item>, ShareFileError> {
        not_found_is_none(self.call(Method::GET, "Items/ByPath", &[("path", path)], None).await)
    }

    /// The folder with its children.
    pub async fn folder(&self, id: &str) -> Result<Item, ShareFileError> {
        self.call(Method::GET, &format!("Items({id})"), &[("$expand", "Children")], None).await
    }

    /// Creates folder `name` in `parent`.
    pub async fn create_folder(&self, parent: &str, name: &str, description: &str) -> Result<Item, ShareFileError> {
        self.call(Method::POST, &format!("Items({parent})/Folder"), &[], Some(json!({ "Name": name, "Description": description }))).await
    }

    /// Uploads `bytes` as `file_name` into `folder`: `Upload2` for a `ChunkUri`, then the bytes
    /// to it. A `200` whose body starts with `ERROR:` is a failure.
    #[tracing::instrument(name = "sharefile.upload", skip_all, fields(otel.kind = "client", file_name, bytes = bytes.len()))]
    pub async fn upload(&self, folder: &str, file_name: &str, bytes: Bytes) -> Result<(), ShareFileError> {
        let spec: UploadSpecification = self
            .call(
                Method::POST,
                &format!("Items({folder})/Upload2"),
                &[],
                Some(json!({ "Method": "Standard", "Raw": true, "FileName": file_name, "FileSize": bytes.len(), "Overwrite": false })),
            )
            .await?;
        let response = self.http.post(&spec.chunk_uri).header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(bytes).send().await;
        let response = self.observe(response.map_err(ShareFileError::Network))?;
        let status = response.status();
        let body = response.bytes().await.map_err(ShareFileError::Network)?;
        if !status.is_success() {
            return self.observe(Err(error_of(status, None, &body)));
        }
        let text = String::from_utf8_lossy(&body);
        if text.trim_start().starts_with("ERROR:") {
            return Err(ShareFileError::UploadFailed(text.trim().chars().take(200).collect()));
        }
        Ok(())
    }

    #[tracing::instrument(name = "sharefile.request", skip_all, fields(otel.kind = "client", http.request.method = %method, url.path = path))]
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Result<T, ShareFileError> {
        for renewed in [false, true] {
            let token = self.token(renewed).await?;
            let url = format!("{}/{path}", self.config.api_base.trim_end_matches('/'));
            let mut request = self.http.request(method.clone(), url).bearer_auth(token.expose_secret()).query(query);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = self.observe(request.send().await.map_err(ShareFileError::Network))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !renewed {
                continue;
            }
            let retry_after = retry_after(&response);
            let bytes = response.bytes().await.map_err(ShareFileError::Network)?;
            if status.is_success() {
                return serde_json::from_slice(&bytes).map_err(ShareFileError::Decode);
            }
            return self.observe(Err(error_of(status, retry_after, &bytes)));
        }
        Err(ShareFileError::Credentials { status: 401 })
    }

    /// Feeds the breaker: ShareFile down (5xx, network) is a failure, any real answer a success.
    fn observe<T>(&self, result: Result<T, ShareFileError>) -> Result<T, ShareFileError> {
        match &result {
            Err(ShareFileError::Unavailable { .. } | ShareFileError::Network(_)) => {
                self.breaker.failure();
            }
            Err(ShareFileError::Throttled { .. }) => {}
            _ => self.breaker.success(),
        }
        result
    }

    async fn token(&self, renew: bool) -> Result<SecretString, ShareFileError> {
        let mut slot = self.token.lock().await;
        if let (Some(token), false) = (slot.as_ref(), renew) {
            return Ok(token.clone());
        }
        let c = &self.config;
        let form = [
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose_secret()),
            ("username", c.username.as_str()),
            ("password", c.password.expose_secret()),
        ];
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = self.http.post(&c.token_url).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        let response = self.observe(request.send().await.map_err(ShareFileError::Network))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let bytes = response.bytes().await.map_err(ShareFileError::Network)?;
        if !status.is_success() {
            return Err(match error_of(status, retry_after, &bytes) {
                ShareFileError::Rejected { status: 400..=403, .. } => ShareFileError::Credentials { status: status.as_u16() },
                other => other,
            });
        }
        let TokenResponse { access_token } = serde_json::from_slice(&bytes).map_err(ShareFileError::Decode)?;
        let token = SecretString::from(access_token);
        *slot = Some(token.clone());
        Ok(token)
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// The error of a non-2xx answer, from its status and ShareFile's error body
/// (`{"code","message":{"lang","value"},"reason"}`).
fn error_of(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> ShareFileError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = parsed["reason"].as_str().or(parsed["code"].as_str()).unwrap_or_default().to_string();
    let message = parsed["message"]["value"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    match status.as_u16() {
        429 => ShareFileError::Throttled { status: 429, retry_after },
        _ if reason == "Throttled" => ShareFileError::Throttled { status: status.as_u16(), retry_after },
        401 | 403 => ShareFileError::Credentials { status: status.as_u16() },
        408 | 500 | 502..=599 => ShareFileError::Unavailable { status: status.as_u16(), retry_after },
        s => ShareFileError::Rejected { status: s, reason, message },
    }
}

fn not_found_is_none<T>(result: Result<T, ShareFileError>) -> Result<Option<T>, ShareFileError> {
    match result {
        Ok(item) => Ok(Some(item)),
        Err(ShareFileError::Rejected { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_status_and_reason() {
        let body = |reason: &str| format!(r#"{{"code":"{reason}","message":{{"lang":"en-US","value":"m"}},"reason":"{reason}"}}"#);
        assert!(error_of(StatusCode::TOO_MANY_REQUESTS, None, b"").is_transient());
        assert!(error_of(StatusCode::BAD_REQUEST, None, body("Throttled").as_bytes()).is_transient());
        assert!(error_of(StatusCode::SERVICE_UNAVAILABLE, None, b"").is_transient());
        let conflict = error_of(StatusCode::CONFLICT, None, body("Conflict").as_bytes());
        assert_eq!((conflict.is_transient(), conflict.reason()), (false, Some("Conflict")));
        assert_eq!(error_of(StatusCode::PAYLOAD_TOO_LARGE, None, body("FileTooLarge").as_bytes()).reason(), Some("FileTooLarge"));
        assert!(matches!(error_of(StatusCode::FORBIDDEN, None, b""), ShareFileError::Credentials { status: 403 }));
    }

    #[test]
    fn items_read_pascal_case() {
        let item: Item = serde_json::from_str(r#"{"Id":"fi1","Name":"a.pdf","FileName":"a.pdf","FileSizeBytes":3,"Hash":"900150983cd24fb0d6963f7d28e17f72","Parent":{"Id":"fo1"}}"#).unwrap();
        assert_eq!((item.id.as_str(), item.file_size_bytes, item.hash.as_deref()), ("fi1", Some(3), Some("900150983cd24fb0d6963f7d28e17f72")));
    }
}
