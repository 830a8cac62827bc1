//! A client of the Google Cloud Storage JSON API, the part Brain needs where the mobile app's
//! uploads land: an object's metadata (`size`, `contentType`, `md5Hash`, `generation`) and its
//! bytes (`alt=media`, pinned to a generation so an overwrite never changes what is copied).
//! Used by the gateway (the ingest endpoint verifies an upload) and sharefile-sync (it copies
//! it). Against the real service the base URL is `https://storage.googleapis.com` and a bearer
//! token is required; the dev stack's simulator (`infra/storage-simulator`) takes none.
//!
//! Errors say whether a retry may help: 408, 429 and 5xx (but 501) and network failures are
//! transient; 401 and 403 are our own credentials failing (an outage of ours, not the object's);
//! 404 is a missing object.

use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What `GET /storage/v1/b/{bucket}/o/{object}` says about an object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub bucket: String,
    pub name: String,
    /// Bytes; the API sends it as a string.
    #[serde(deserialize_with = "string_u64")]
    pub size: u64,
    #[serde(default = "octet_stream")]
    pub content_type: String,
    /// Base64 of the MD5 digest; absent for composite objects.
    #[serde(default)]
    pub md5_hash: Option<String>,
    pub generation: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no object {bucket}/{object} in Cloud Storage")]
    NotFound { bucket: String, object: String },
    #[error("Cloud Storage asks us to slow down (HTTP {status})")]
    Throttled { status: u16, retry_after: Option<Duration> },
    #[error("Cloud Storage failed with HTTP {status}")]
    Unavailable { status: u16, retry_after: Option<Duration> },
    #[error("Cloud Storage refused our credentials (HTTP {status})")]
    Credentials { status: u16 },
    #[error("Cloud Storage refused the request: HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("could not reach Cloud Storage")]
    Network(#[source] reqwest::Error),
    #[error("unexpected answer from Cloud Storage")]
    Decode(#[source] serde_json::Error),
}

impl StorageError {
    /// A retry may succeed: throttling, outages, our credentials (fixed by an operator).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. } | Self::Network(_) | Self::Credentials { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable short code for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Throttled { .. } => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::Credentials { .. } => "credentials",
            Self::Rejected { .. } => "rejected",
            Self::Network(_) => "network",
            Self::Decode(_) => "decode",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `https://storage.googleapis.com` in production.
    pub base_url: String,
    /// A bearer token (an OAuth access token of the service account); none for the simulator.
    pub token: Option<SecretString>,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct StorageClient {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl StorageClient {
    pub fn new(config: StorageConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Self { http, base: config.base_url.trim_end_matches('/').to_string(), token: config.token })
    }

    /// The object's metadata.
    pub async fn metadata(&self, bucket: &str, object: &str) -> Result<ObjectMeta, StorageError> {
        let bytes = self.get(bucket, object, &[]).await?;
        serde_json::from_slice(&bytes).map_err(StorageError::Decode)
    }

    /// The object's bytes at `generation`.
    pub async fn download(&self, bucket: &str, object: &str, generation: &str) -> Result<Bytes, StorageError> {
        self.get(bucket, object, &[("alt", "media"), ("generation", generation)]).await
    }

    async fn get(&self, bucket: &str, object: &str, query: &[(&str, &str)]) -> Result<Bytes, StorageError> {
        let url = format!("{}/storage/v1/b/{}/o/{}", self.base, encode(bucket), encode(object));
        let mut request = self.http.get(url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(StorageError::Network)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(StorageError::Network)?;
        match status {
            200..=299 => Ok(body),
            404 => Err(StorageError::NotFound { bucket: bucket.to_string(), object: object.to_string() }),
            401 | 403 => Err(StorageError::Credentials { status }),
            408 | 429 => Err(StorageError::Throttled { status, retry_after }),
            500 | 502..=599 => Err(StorageError::Unavailable { status, retry_after }),
            _ => Err(StorageError::Rejected { status, message: message(&body) }),
        }
    }
}

/// The `error.message` of a JSON API error body, else the body's start.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// Percent-encodes a path segment: an object name's `/` is `%2F` in the JSON API.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn octet_stream() -> String {
    "application/octet-stream".to_string()
}

fn string_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Text(String),
        Number(u64),
    }
    match Size::deserialize(d)? {
        Size::Text(s) => s.parse().map_err(serde::de::Error::custom),
        Size::Number(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_one_path_segment() {
        assert_eq!(encode("uploads/app 1/tax.pdf"), "uploads%2Fapp%201%2Ftax.pdf");
    }

    #[test]
    fn metadata_reads_the_size_string() {
        let meta: ObjectMeta = serde_json::from_str(
            r#"{"kind":"storage#object","bucket":"b","name":"o","size":"1024","contentType":"application/pdf","md5Hash":"XrY7u+Ae7tCTyyK7j1rNww==","generation":"17"}"#,
        )
        .unwrap();
        assert_eq!((meta.size, meta.content_type.as_str(), meta.md5_hash.as_deref()), (1024, "application/pdf", Some("XrY7u+Ae7tCTyyK7j1rNww==")));
    }

    #[test]
    fn our_credentials_failing_is_an_outage_not_a_bad_object() {
        assert!(StorageError::Credentials { status: 403 }.is_transient());
        assert!(!StorageError::NotFound { bucket: "b".into(), object: "o".into() }.is_transient());
    }
}
