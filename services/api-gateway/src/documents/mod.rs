//! Flow 4 at the edge: `POST /api/v1/documents/ingest` (a borrower's upload, verified in Cloud
//! Storage, becomes a `DocumentUploaded`), `GET /api/v1/applications/{id}/tasks` (the tasks
//! projection-writer keeps, one per Ventures condition), `POST .../tasks/{taskId}/actions` (the
//! staff assign, ask for a document, reject one) and `GET /api/v1/inbox` (the staff's open work
//! with its SLA, everyone's or one staff member's).

pub mod actions;
pub mod inbox;
pub mod ingest;
pub mod tasks;

use std::time::Duration;

use brain_runtime::settings::{Env, SettingsError};
use cloud_storage::{StorageClient, StorageConfig};

/// `STORAGE_*`, `UPLOAD_BUCKETS`, `MAX_DOCUMENT_BYTES`, `DOCUMENT_CONTENT_TYPES`.
#[derive(Debug, Clone)]
pub struct DocumentSettings {
    pub storage: StorageConfig,
    /// The buckets the apps upload into; an object elsewhere is refused.
    pub buckets: Vec<String>,
    pub max_bytes: u64,
    /// The content types a document may have (what ShareFile and the reviewers take).
    pub content_types: Vec<String>,
}

impl DocumentSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let list = |name: &str, default: &str| -> Result<Vec<String>, SettingsError> {
            Ok(env.or(name, default.to_string())?.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
        };
        Ok(Self {
            storage: StorageConfig {
                base_url: env.or("STORAGE_BASE_URL", "https://storage.googleapis.com".to_string())?,
                token: env.optional_secret("STORAGE_TOKEN")?,
                timeout: env.millis_in("STORAGE_TIMEOUT", 3_000, 100..=30_000)?,
            },
            buckets: list("UPLOAD_BUCKETS", "brain-uploads")?,
            max_bytes: env.ranged("MAX_DOCUMENT_BYTES", 25 * 1024 * 1024, 1..=5 * 1024 * 1024 * 1024)?,
            content_types: list("DOCUMENT_CONTENT_TYPES", "application/pdf,image/jpeg,image/png,image/heic,image/tiff")?,
        })
    }
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            storage: StorageConfig { base_url: "http://127.0.0.1:9".into(), token: None, timeout: Duration::from_millis(500) },
            buckets: vec!["brain-uploads".into()],
            max_bytes: 25 * 1024 * 1024,
            content_types: vec!["application/pdf".into()],
        }
    }
}

/// What the ingest endpoint needs.
#[derive(Clone)]
pub struct DocumentState {
    pub settings: DocumentSettings,
    pub storage: StorageClient,
}

impl DocumentState {
    pub fn new(settings: &DocumentSettings) -> Result<Self, reqwest::Error> {
        Ok(Self { storage: StorageClient::new(settings.storage.clone())?, settings: settings.clone() })
    }
}
