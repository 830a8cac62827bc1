//! `POST /api/v1/documents/ingest`: the mobile app uploaded a document for a task into Cloud
//! Storage; the gateway verifies it there and queues its copy into ShareFile.
//!
//! Checked in order, and refused before anything is copied: the caller (a borrower for one of
//! their applications, or staff, ops, admin of the tenant), the body, the task (of that
//! application, still taking uploads), then the stored object's metadata: it exists, is not
//! empty, is at most `MAX_DOCUMENT_BYTES`, has an allowed content type and an MD5, and matches
//! the `size` and `md5Hash` the app saw, when it sends them. Then one `DocumentUploaded` goes to
//! `gateway.document.uploaded.v1` (its id derived from the object's bucket, name and generation,
//! so ingesting the same upload twice queues the same document) and the answer is 202.

use axum::{Extension, Json, extract::State, http::StatusCode};
use brain_runtime::events::{DocumentUploaded, StoredObject, topics};
use cloud_storage::StorageError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState, SERVICE,
    applications::valid_id,
    auth::{Principal, Role},
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi,
};

/// Namespace of document ids, derived from the stored object.
const DOCUMENT_NAMESPACE: Uuid = Uuid::from_u128(0x3a9d_6e12_c0f4_4b7e_9a85_d21c_6f03_b7e9);
/// Longest file name accepted.
const MAX_FILE_NAME_CHARS: usize = 200;

/// An upload to ingest: where the app put it, and what it is for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "applicationId": "app-17", "taskId": "C-3", "bucket": "brain-uploads", "object": "app-17/C-3/statement.pdf", "fileName": "Bank statement March.pdf" }))]
pub struct Ingest {
    #[schema(example = "app-17")]
    pub application_id: String,
    /// The task (one per Ventures condition) the document answers.
    pub task_id: String,
    /// One of `API_GATEWAY__UPLOAD_BUCKETS`.
    pub bucket: String,
    /// The object's name in the bucket (at most 1,024 bytes).
    pub object: String,
    /// The document's name for people (in ShareFile): 1-200 characters, no control characters.
    pub file_name: String,
    /// The size the app uploaded, if it wants it checked.
    #[serde(default)]
    pub size: Option<u64>,
    /// Base64 MD5 of what the app uploaded, if it wants it checked.
    #[serde(default)]
    pub md5_hash: Option<String>,
}

/// The answer to an accepted upload (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ingested {
    pub document_id: Uuid,
    pub application_id: String,
    pub task_id: String,
    /// Always `received` here; the task's `document.state` becomes `stored` once it is in
    /// ShareFile, and the task `pending_review` once Ventures has it.
    #[schema(example = "received")]
    pub state: &'static str,
    pub size: u64,
    pub content_type: String,
}

/// Ingest an uploaded document
///
/// The app uploaded a document for a task into Cloud Storage; the gateway verifies the stored
/// object (size, content type, MD5) and queues its copy into the application's ShareFile folder.
/// A document of the wrong type or size is refused before anything is copied. Ingesting the same
/// stored object again answers the same document id and copies nothing twice.
#[utoipa::path(
    post,
    path = "/api/v1/documents/ingest",
    operation_id = "ingestDocument",
    tag = openapi::TAG_DOCUMENTS,
    request_body(content = Ingest, content_type = "application/json", description = "At most 64 KiB; unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued: the document is on its way to ShareFile", body = Ingested),
        (status = 400, description = "`invalid_body`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = "`forbidden`: a token that grants nothing here", body = ErrorBody),
        (status = 404, description = "`task_not_found`: no such task of that application for this caller", body = ErrorBody),
        (status = 409, description = "`task_not_accepting_uploads`: the task is under review or completed", body = ErrorBody),
        (status = 413, description = "`document_too_large` (the stored object is over `MAX_DOCUMENT_BYTES`) or `body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_document_type` (the stored object's content type is not allowed) or `unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_application_id`, `invalid_task_id`, `bucket_not_allowed`, `invalid_object`, `invalid_file_name`, `object_not_found`, `empty_document`, `checksum_missing` or `checksum_mismatch`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`storage_unavailable` (Cloud Storage cannot be reached or refuses our credentials), `broker_unavailable`, `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn post(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(ingest): JsonBody<Ingest>) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let unprocessable = |code, detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
    let settings = &state.documents.settings;
    if !valid_id(&ingest.application_id) {
        return Err(unprocessable("invalid_application_id", "applicationId is 1-128 letters, digits, -, _ and .".into()));
    }
    if !valid_id(&ingest.task_id) {
        return Err(unprocessable("invalid_task_id", "taskId is 1-128 letters, digits, -, _ and .".into()));
    }
    if !settings.buckets.contains(&ingest.bucket) {
        return Err(unprocessable("bucket_not_allowed", format!("uploads are taken from {}", settings.buckets.join(", "))));
    }
    if ingest.object.is_empty() || ingest.object.len() > 1024 || ingest.object.chars().any(char::is_control) {
        return Err(unprocessable("invalid_object", "object is a Cloud Storage object name: 1-1,024 bytes, no control characters".into()));
    }
    let file_name = ingest.file_name.trim().to_string();
    if file_name.is_empty() || file_name.chars().count() > MAX_FILE_NAME_CHARS || file_name.chars().any(char::is_control) {
        return Err(unprocessable("invalid_file_name", format!("fileName is 1-{MAX_FILE_NAME_CHARS} characters, no control characters")));
    }
    let not_found = || ApiError::not_found("task_not_found", format!("no task {} of application {}", ingest.task_id, ingest.application_id));
    if caller.role == Role::Borrower && !caller.may_read_application(&ingest.application_id) {
        return Err(not_found());
    }
    let task: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, state, loan_id, condition_id FROM read_api.tasks WHERE task_id = $1 AND application_id = $2 AND ($3::text IS NULL OR tenant_id = $3)",
    )
    .bind(&ingest.task_id)
    .bind(&ingest.application_id)
    .bind(caller.tenant.as_deref())
    .fetch_optional(&state.pool)
    .await
    .map_err(ApiError::database)?;
    let (tenant_id, task_state, loan_id, condition_id) = task.ok_or_else(not_found)?;
    if !matches!(task_state.as_str(), "open" | "awaiting_upload") {
        return Err(ApiError::new(StatusCode::CONFLICT, "task_not_accepting_uploads", format!("the task is {task_state}: it takes no upload")));
    }

    let meta = state.documents.storage.metadata(&ingest.bucket, &ingest.object).await.map_err(|e| match e {
        StorageError::NotFound { .. } => unprocessable("object_not_found", format!("no object {} in bucket {}", ingest.object, ingest.bucket)),
        other => {
            tracing::warn!(kind = other.kind(), error = %other, "Cloud Storage could not describe an upload");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "Cloud Storage cannot be reached; retry")
        }
    })?;
    if meta.size == 0 {
        return Err(unprocessable("empty_document", "the stored object is empty".into()));
    }
    if meta.size > settings.max_bytes {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "document_too_large", format!("the document is {} bytes; at most {} are taken", meta.size, settings.max_bytes)));
    }
    let content_type = meta.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !settings.content_types.contains(&content_type) {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_document_type", format!("{content_type} is not taken; send one of {}", settings.content_types.join(", "))));
    }
    let md5 = meta.md5_hash.clone().filter(|m| !m.is_empty()).ok_or_else(|| unprocessable("checksum_missing", "the stored object has no MD5 (a composite upload); upload it in one piece".into()))?;
    if ingest.size.is_some_and(|s| s != meta.size) || ingest.md5_hash.as_deref().is_some_and(|m| m.trim() != md5) {
        return Err(unprocessable("checksum_mismatch", format!("the stored object ({} bytes, MD5 {md5}) is not what the app uploaded", meta.size)));
    }

    let document_id = Uuid::new_v5(&DOCUMENT_NAMESPACE, format!("{tenant_id}\n{}\n{}\n{}", meta.bucket, meta.name, meta.generation).as_bytes());
    let event = DocumentUploaded {
        event_id: document_id.to_string(),
        occurred_at: chrono::Utc::now().timestamp_millis(),
        tenant_id: tenant_id.clone(),
        correlation_id: document_id.to_string(),
        causation_id: None,
        producer: SERVICE.to_string(),
        application_id: ingest.application_id.clone(),
        task_id: ingest.task_id.clone(),
        condition_id,
        loan_id,
        document_id: document_id.to_string(),
        file_name,
        uploaded_by: caller.subject.clone(),
        storage: StoredObject { bucket: meta.bucket, object: meta.name, generation: meta.generation, size: meta.size as i64, content_type: content_type.clone(), md5 },
    };
    state.producer.send(topics::DOCUMENT_UPLOADED, &ingest.application_id, &event).await.map_err(|e| {
        tracing::warn!(error = %e, "the uploaded document could not be queued");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the document could not be queued; retry")
    })?;
    tracing::info!(%document_id, application_id = %ingest.application_id, task_id = %ingest.task_id, size = meta.size, "document ingested");
    Ok((StatusCode::ACCEPTED, Json(Ingested { document_id, application_id: ingest.application_id, task_id: ingest.task_id, state: "received", size: meta.size, content_type })))
}
