//! A caching client for any Confluent-compatible schema registry.
//!
//! Schema ids are immutable, so a schema fetched by id is cached for the life of the process; so is
//! the id under which a (subject, schema) pair was registered. Only misses reach the network.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use apache_avro::Schema;
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("schema id {0} is not known to the registry")]
    UnknownSchema(u32),
    #[error("registry refused the request: HTTP {status}, error code {code}: {message}")]
    Rejected { status: u16, code: i64, message: String },
    #[error("registry unreachable or failing: {0}")]
    Unavailable(String),
    #[error("registry returned a schema that does not parse: {0}")]
    InvalidSchema(#[source] apache_avro::Error),
}

impl RegistryError {
    /// Whether asking again later may succeed. Our own credentials being refused (401, 403) is
    /// the registry being unavailable to us, not a fault of the record: it is transient too.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Rejected { status: 401 | 403 | 408 | 429, .. })
            || matches!(self, Self::Rejected { status, .. } if *status >= 500)
    }
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    by_id: Arc<Mutex<HashMap<u32, Arc<Schema>>>>,
    by_subject: Arc<Mutex<HashMap<(String, String), u32>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials (https://key:secret@host); never print it whole.
        let host = reqwest::Url::parse(&self.base).ok().and_then(|u| u.host_str().map(str::to_owned));
        f.debug_struct("RegistryClient").field("host", &host).finish()
    }
}

impl RegistryClient {
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            by_id: Arc::default(),
            by_subject: Arc::default(),
        })
    }

    /// Registers `schema_json` under `subject` (a no-op returning the existing id when it is
    /// already registered) and returns its global id.
    pub async fn register(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        self.subject_id(subject, schema_json, format!("{}/subjects/{}/versions", self.base, subject)).await
    }

    /// Looks up the id of a schema already registered under `subject`, for deployments where
    /// producers may not register schemas themselves.
    pub async fn lookup(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        self.subject_id(subject, schema_json, format!("{}/subjects/{}", self.base, subject)).await
    }

    async fn subject_id(&self, subject: &str, schema_json: &str, url: String) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema_json.to_string());
        if let Some(id) = self.by_subject.lock().expect("cache lock").get(&key) {
            return Ok(*id);
        }
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema_json }))
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        let IdResponse { id } = Self::parse(response).await?;
        self.by_subject.lock().expect("cache lock").insert(key, id);
        Ok(id)
    }

    /// The schema registered under `id`.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self.by_id.lock().expect("cache lock").get(&id) {
            return Ok(schema.clone());
        }
        let response = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.base))
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        let parsed: Result<SchemaResponse, _> = Self::parse(response).await;
        let text = match parsed {
            Ok(r) => r.schema,
            Err(RegistryError::Rejected { status: 404, .. }) => return Err(RegistryError::UnknownSchema(id)),
            Err(e) => return Err(e),
        };
        let schema = Arc::new(Schema::parse_str(&text).map_err(RegistryError::InvalidSchema)?);
        self.by_id.lock().expect("cache lock").insert(id, schema.clone());
        Ok(schema)
    }

    async fn parse<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, RegistryError> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Unavailable(format!("unexpected registry response: {e}")));
        }
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(RegistryError::Unavailable(format!("HTTP {status}")));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error_code, b.message),
            Err(_) => (i64::from(status.as_u16()), String::from_utf8_lossy(&bytes).into_owned()),
        };
        Err(RegistryError::Rejected { status: status.as_u16(), code, message })
    }
}

#[cfg(test)]
mod tests {
    use super::RegistryError;

    #[test]
    fn refused_credentials_and_server_errors_are_transient() {
        let rejected = |status| RegistryError::Rejected { status, code: 0, message: String::new() };
        for status in [401, 403, 429, 500, 503] {
            assert!(rejected(status).is_transient(), "{status}");
        }
        assert!(!rejected(422).is_transient());
        assert!(!RegistryError::UnknownSchema(7).is_transient());
    }
}
