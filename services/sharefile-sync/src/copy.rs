//! Flow 4's copy: a `DocumentUploaded` → the object's bytes from Cloud Storage (pinned to the
//! verified generation, MD5 checked) → the application's ShareFile folder (found by path or
//! created) → uploaded once → `DocumentStored`.
//!
//! Exactly once in ShareFile, with no idempotency key there: the ledger (`documents`) says a
//! document is stored, and a redelivered event only republishes `DocumentStored` (same event
//! id). An attempt that died between the upload and the ledger is repaired by looking the file
//! up by its name, which is unique per document (`<document id prefix>-<file name>`), before
//! uploading: a copy with the right MD5 is taken as stored. After every upload the stored item's
//! `Hash` must equal the object's MD5, else the attempt failed.

use std::sync::Arc;

use brain_events::{DocumentStored, DocumentUploaded, topics};
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    flags::Gate,
    producer::EventProducer,
};
use cloud_storage::{StorageClient, StorageError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    folders::Folders,
    md5,
    sharefile::{Item, ShareFileClient, ShareFileError},
};

pub const PRODUCER: &str = "sharefile-sync";
/// Namespace of `DocumentStored` ids, derived from the document id.
const STORED_NAMESPACE: Uuid = Uuid::from_u128(0x51f0_3c2e_8d47_4a9b_b6e1_7c05_92ad_e418);

pub struct CopyHandler {
    pub storage: StorageClient,
    pub sharefile: Arc<ShareFileClient>,
    pub folders: Folders,
    pub producer: EventProducer,
    pub pool: PgPool,
    /// The `sharefile` capability flags.
    pub gate: Gate,
}

/// Where a document went.
struct Stored {
    item: Item,
    folder_id: String,
    path: String,
    how: &'static str,
}

impl Handler for CopyHandler {
    type Event = DocumentUploaded;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &DocumentUploaded) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the ShareFile breaker is open, the partition waits here.
    async fn admit(&self, _source: &Source<'_>) {
        self.sharefile.breaker().ready().await;
    }

    async fn handle(&self, _source: Source<'_>, e: DocumentUploaded) -> Outcome {
        tracing::Span::current().record("correlation_id", e.correlation_id.as_str());
        let document_id = Uuid::parse_str(&e.document_id).map_err(|_| HandlerError::permanent("validation", format!("document id {:?} is not a UUID", e.document_id)))?;
        if e.application_id.is_empty() || e.file_name.is_empty() || e.storage.md5.is_empty() {
            return Err(HandlerError::permanent("validation", "a document needs an application, a file name and an MD5"));
        }
        if let Some(stored) = self.ledger_stored(document_id).await? {
            self.publish(&e, &stored).await?;
            return Ok(Applied::Duplicate);
        }
        self.begin(document_id, &e).await?;
        let result = self.copy(&e).await;
        let stored = match result {
            Ok(stored) => stored,
            Err(error) => {
                self.note_failure(document_id, &error).await;
                return Err(error);
            }
        };
        self.finish(document_id, &e, &stored).await?;
        let row = StoredRow { item_id: stored.item.id.clone(), folder_id: stored.folder_id.clone(), path: stored.path.clone(), name: stored.item.name.clone(), size: e.storage.size, md5_hex: md5::hex_of_base64(&e.storage.md5).unwrap_or_default() };
        self.publish(&e, &row).await?;
        tracing::info!(document_id = %document_id, application_id = %e.application_id, item_id = %stored.item.id, how = stored.how, "document stored in ShareFile");
        Ok(Applied::Processed)
    }
}

/// The ledger's record of a stored document.
struct StoredRow {
    item_id: String,
    folder_id: String,
    path: String,
    name: String,
    size: i64,
    md5_hex: String,
}

impl CopyHandler {
    async fn copy(&self, e: &DocumentUploaded) -> Result<Stored, HandlerError> {
        let want_md5 = md5::hex_of_base64(&e.storage.md5).ok_or_else(|| HandlerError::permanent("validation", "the upload's MD5 is not base64 of 16 bytes"))?;
        let bytes = self.storage.download(&e.storage.bucket, &e.storage.object, &e.storage.generation).await.map_err(storage_error)?;
        let got_md5 = md5::hex(&bytes);
        if got_md5 != want_md5 || bytes.len() as i64 != e.storage.size {
            return Err(HandlerError::permanent(
                "checksum_mismatch",
                format!("the object read from Cloud Storage ({} bytes, MD5 {got_md5}) is not the one verified at ingest ({} bytes, MD5 {want_md5})", bytes.len(), e.storage.size),
            ));
        }
        let (folder_id, path) = self.folders.of_application(&e.tenant_id, &e.application_id).await?;
        let name = stored_name(&e.document_id, &e.file_name);
        if let Some(item) = self.find(&folder_id, &name).await? {
            return match item.hash.as_deref() {
                Some(hash) if hash.eq_ignore_ascii_case(&want_md5) => Ok(Stored { item, folder_id, path, how: "found" }),
                other => Err(HandlerError::permanent(
                    "stored_copy_differs",
                    format!("{path}/{name} exists in ShareFile with MD5 {} instead of {want_md5}; an operator must remove it before a replay", other.unwrap_or("unknown")),
                )),
            };
        }
        self.sharefile.upload(&folder_id, &name, bytes).await.map_err(sharefile_error(&self.sharefile))?;
        let item = self.find(&folder_id, &name).await?.ok_or_else(|| HandlerError::transient("sharefile_upload_missing", format!("{path}/{name} is not in ShareFile after its upload")))?;
        if !item.hash.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(&want_md5)) {
            return Err(HandlerError::permanent("stored_copy_differs", format!("{path}/{name} was stored with MD5 {:?}, not {want_md5}", item.hash)));
        }
        Ok(Stored { item, folder_id, path, how: "uploaded" })
    }

    /// The file `name` in the folder, if any.
    async fn find(&self, folder_id: &str, name: &str) -> Result<Option<Item>, HandlerError> {
        let folder = self.sharefile.folder(folder_id).await.map_err(sharefile_error(&self.sharefile))?;
        Ok(folder.children.unwrap_or_default().into_iter().find(|c| c.name == name || c.file_name.as_deref() == Some(name)))
    }

    async fn ledger_stored(&self, document_id: Uuid) -> Result<Option<StoredRow>, HandlerError> {
        let row: Option<(String, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT item_id, folder_id, folder_path, stored_name, size, md5_hex FROM documents WHERE document_id = $1 AND state = 'stored'",
        )
        .bind(document_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db::classify)?;
        Ok(row.map(|(item_id, folder_id, path, name, size, md5_hex)| StoredRow { item_id, folder_id, path, name, size, md5_hex }))
    }

    async fn begin(&self, document_id: Uuid, e: &DocumentUploaded) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO documents (document_id, tenant_id, application_id, task_id, file_name, state) VALUES ($1, $2, $3, $4, $5, 'copying')
             ON CONFLICT (document_id) DO UPDATE SET attempts = documents.attempts + 1",
        )
        .bind(document_id)
        .bind(&e.tenant_id)
        .bind(&e.application_id)
        .bind(&e.task_id)
        .bind(&e.file_name)
        .execute(&self.pool)
        .await
        .map_err(db::classify)?;
        Ok(())
    }

    async fn finish(&self, document_id: Uuid, e: &DocumentUploaded, stored: &Stored) -> Result<(), HandlerError> {
        sqlx::query(
            "UPDATE documents SET state = 'stored', item_id = $2, folder_id = $3, folder_path = $4, stored_name = $5, md5_hex = $6, size = $7,
                 how = $8, last_error = NULL, stored_at = now() WHERE document_id = $1",
        )
        .bind(document_id)
        .bind(&stored.item.id)
        .bind(&stored.folder_id)
        .bind(&stored.path)
        .bind(&stored.item.name)
        .bind(md5::hex_of_base64(&e.storage.md5).unwrap_or_default())
        .bind(e.storage.size)
        .bind(stored.how)
        .execute(&self.pool)
        .await
        .map_err(db::classify)?;
        Ok(())
    }

    /// Best effort: the reason shows in the gateway's view of the document.
    async fn note_failure(&self, document_id: Uuid, error: &HandlerError) {
        let noted = sqlx::query("UPDATE documents SET last_error = $2 WHERE document_id = $1").bind(document_id).bind(format!("{}: {}", error.kind, error.message)).execute(&self.pool).await;
        if let Err(e) = noted {
            tracing::warn!(document_id = %document_id, error = %e, "could not note the copy's failure");
        }
    }

    async fn publish(&self, e: &DocumentUploaded, row: &StoredRow) -> Result<(), HandlerError> {
        let event_id = Uuid::new_v5(&STORED_NAMESPACE, e.document_id.as_bytes()).to_string();
        let event = DocumentStored {
            event_id,
            occurred_at: chrono::Utc::now().timestamp_millis(),
            tenant_id: e.tenant_id.clone(),
            correlation_id: e.correlation_id.clone(),
            causation_id: Some(e.event_id.clone()),
            producer: PRODUCER.to_string(),
            application_id: e.application_id.clone(),
            task_id: e.task_id.clone(),
            condition_id: e.condition_id.clone(),
            loan_id: e.loan_id.clone(),
            document_id: e.document_id.clone(),
            item_id: row.item_id.clone(),
            folder_id: row.folder_id.clone(),
            path: row.path.clone(),
            file_name: row.name.clone(),
            size: row.size,
            md5_hex: row.md5_hex.clone(),
        };
        self.producer.send(topics::DOCUMENT_STORED, &e.application_id, &event).await.map_err(|err| {
            if err.is_transient() { HandlerError::unavailable("kafka", err.to_string()) } else { HandlerError::permanent("encode", err.to_string()) }
        })
    }
}

/// The file's name in ShareFile: unique per document, readable by people.
pub fn stored_name(document_id: &str, file_name: &str) -> String {
    let clean: String = file_name.chars().map(|c| if matches!(c, '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control() { '_' } else { c }).collect();
    let prefix: String = document_id.chars().filter(|c| c.is_ascii_hexdigit()).take(8).collect();
    format!("{prefix}-{}", clean.trim())
}

fn storage_error(e: StorageError) -> HandlerError {
    match &e {
        StorageError::NotFound { .. } => HandlerError::permanent("object_not_found", e.to_string()),
        StorageError::Credentials { .. } => HandlerError::unavailable("storage_credentials", e.to_string()),
        StorageError::Throttled { .. } => HandlerError::unavailable("storage_throttled", e.to_string()).with_retry_after(e.retry_after()),
        _ if e.is_transient() => HandlerError::transient("storage_unavailable", e.to_string()).with_retry_after(e.retry_after()),
        _ => HandlerError::permanent("storage_rejected", e.to_string()),
    }
}

/// ShareFile's errors as the runtime's classes: throttling and an open breaker hold the partition
/// instead of spending tries; our credentials refused is our outage; a refusal (`FileTooLarge`,
/// `QuotaExceeded`, ...) is the document's dead letter.
pub fn sharefile_error(client: &ShareFileClient) -> impl Fn(ShareFileError) -> HandlerError + '_ {
    move |e| match &e {
        ShareFileError::Credentials { .. } => HandlerError::unavailable("sharefile_credentials", e.to_string()),
        // ShareFile asking the whole client to slow down says nothing about the document: it
        // waits (honouring Retry-After) instead of spending its attempts.
        ShareFileError::Throttled { .. } => HandlerError::unavailable("sharefile_throttled", e.to_string()).with_retry_after(e.retry_after()),
        _ if e.is_transient() && client.breaker().is_open() => HandlerError::unavailable("sharefile_breaker_open", e.to_string()),
        _ if e.is_transient() => HandlerError::transient(e.kind(), e.to_string()).with_retry_after(e.retry_after()),
        ShareFileError::Rejected { reason, .. } if reason == "FileTooLarge" => HandlerError::permanent("sharefile_file_too_large", e.to_string()),
        ShareFileError::Rejected { reason, .. } if reason == "QuotaExceeded" => HandlerError::permanent("sharefile_quota_exceeded", e.to_string()),
        _ => HandlerError::permanent(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_unique_per_document_and_safe() {
        assert_eq!(stored_name("5f0c2a9e-1111-2222-3333-444455556666", "tax return: 2025?.pdf"), "5f0c2a9e-tax return_ 2025_.pdf");
        assert_ne!(stored_name("aaaaaaaa-0", "a.pdf"), stored_name("bbbbbbbb-0", "a.pdf"));
    }
}
