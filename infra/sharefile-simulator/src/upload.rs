//! The Standard raw upload: `POST Items({folderId})/Upload2` opens an upload session and answers
//! an `UploadSpecification` whose `ChunkUri` (`/upload.aspx?uploadid=...`, served here, needing
//! no bearer token as ShareFile's pre-authorised URIs) takes the file's bytes in one POST.
//!
//! The `ChunkUri` answers HTTP 200 `OK` when the file is stored, and HTTP 200 `ERROR: ...` when it
//! is not (unknown upload id, a size other than `FileSize`, limits, an injected `uploadError`).
//! A session ends when its file is stored; after an `ERROR:` it stays open for a retry.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{SfError, UploadError},
    items::{Kind, Stored},
    middleware::Target,
    state::SharedState,
};

pub const UPLOAD_PATH: &str = "/upload.aspx";

#[derive(Debug, Clone)]
pub struct Session {
    folder_id: String,
    file_name: String,
    file_size: Option<u64>,
    overwrite: bool,
}

#[derive(Debug, Default)]
pub struct Uploads {
    sessions: HashMap<String, Session>,
}

/// The `Upload2` body (ShareFile's `UploadRequestParams`); fields not simulated are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadRequest {
    method: Option<String>,
    raw: Option<bool>,
    file_name: String,
    #[serde(alias = "FileLength")]
    file_size: Option<u64>,
    overwrite: Option<bool>,
}

fn join(folder_path: &str, name: &str) -> String {
    format!("{}/{name}", folder_path.trim_end_matches('/'))
}

/// `POST Items({folderId})/Upload2`.
pub fn upload2(
    state: &SharedState,
    headers: &HeaderMap,
    folder_id: &str,
    body: &[u8],
) -> Result<Json<Value>, SfError> {
    let request: UploadRequest = serde_json::from_slice(body)
        .map_err(|e| SfError::bad_request(format!("Invalid upload request: {e}")))?;
    if request
        .method
        .as_deref()
        .is_some_and(|m| !m.eq_ignore_ascii_case("standard"))
    {
        return Err(SfError::bad_request(
            "Only the Standard upload method is simulated",
        ));
    }
    if request.raw != Some(true) {
        return Err(SfError::bad_request(
            "Only Raw uploads are simulated (set \"Raw\": true)",
        ));
    }
    let overwrite = request.overwrite.unwrap_or(false);
    let limits = *state.limits();
    let (folder_id, duplicate) = {
        let store = state.store();
        let folder = store
            .get(folder_id)
            .filter(|f| f.is_folder())
            .ok_or_else(|| SfError::not_found(format!("Folder {folder_id} not found")))?;
        let existing = store.child_named(&folder.id, &request.file_name);
        let replacing = match existing.map(|e| &e.kind) {
            Some(Kind::File { content, .. }) if overwrite => content.len() as u64,
            _ => 0,
        };
        if let Some(size) = request.file_size {
            limits.admit(size, store.used_bytes(), replacing)?;
        }
        (folder.id.clone(), existing.is_some())
    };
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    state.uploads().sessions.insert(
        upload_id.clone(),
        Session {
            folder_id,
            file_name: request.file_name,
            file_size: request.file_size,
            overwrite,
        },
    );
    let base = state.public_url(headers);
    Ok(Json(json!({
        "odata.metadata": format!("{base}/sf/v3/$metadata#UploadSpecification/ShareFile.Api.Models.UploadSpecification@Element"),
        "odata.type": "ShareFile.Api.Models.UploadSpecification",
        "Method": "Standard",
        "PrepareUri": null,
        "ChunkUri": format!("{base}{UPLOAD_PATH}?uploadid={upload_id}"),
        "FinishUri": null,
        "ProgressData": "",
        "IsResume": false,
        "ResumeIndex": 0,
        "ResumeOffset": 0,
        "ResumeFileHash": "",
        "MaxNumberOfThreads": 1,
        "CanAcceptParamsInHeaders": false,
        "IsDuplicateFileName": duplicate,
    })))
}

/// `POST /upload.aspx?uploadid=...` with the raw bytes.
pub async fn chunk(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match store_chunk(&state, query.as_deref(), body) {
        Ok(path) => {
            let mut response = "OK".into_response();
            response.extensions_mut().insert(Target(path));
            response
        }
        Err(error) => error.into_response(),
    }
}

fn store_chunk(
    state: &SharedState,
    query: Option<&str>,
    body: Bytes,
) -> Result<String, UploadError> {
    let upload_id = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("uploadid"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // Taken out for the attempt, so two concurrent POSTs cannot both store; put back on failure.
    let session = state
        .uploads()
        .sessions
        .remove(&upload_id)
        .ok_or_else(|| UploadError(format!("Invalid or expired upload id {upload_id:?}")))?;
    let outcome = store_file(state, &session, body);
    match outcome {
        Ok((requested, stored)) => {
            state
                .ledger()
                .upload_stored(&requested, stored.renamed, stored.replaced);
            tracing::debug!(id = %stored.item.id, path = %stored.path, "file stored");
            Ok(stored.path)
        }
        Err(error) => {
            state.uploads().sessions.insert(upload_id, session);
            Err(error)
        }
    }
}

/// Stores the session's file: `(requested path, where it was stored)`.
fn store_file(
    state: &SharedState,
    session: &Session,
    body: Bytes,
) -> Result<(String, Stored), UploadError> {
    let size = body.len() as u64;
    if let Some(expected) = session.file_size.filter(|e| *e != size) {
        return Err(UploadError(format!(
            "File size mismatch: expected {expected} bytes, received {size}"
        )));
    }
    let limits = *state.limits();
    let mut store = state.store();
    let replacing = match store
        .child_named(&session.folder_id, &session.file_name)
        .map(|i| &i.kind)
    {
        Some(Kind::File { content, .. }) if session.overwrite => content.len() as u64,
        _ => 0,
    };
    limits
        .admit(size, store.used_bytes(), replacing)
        .map_err(|e| UploadError(e.message))?;
    let requested = join(&store.path_of(&session.folder_id), &session.file_name);
    let stored = store
        .store_file(
            &session.folder_id,
            &session.file_name,
            body.to_vec(),
            session.overwrite,
        )
        .map_err(|e| UploadError(e.to_string()))?;
    Ok((requested, stored))
}
