//! `/subjects/...`: register, look up, list and delete versions of a subject.

use axum::{
    body::Bytes,
    extract::{Path, State},
};
use serde_json::json;

use super::{ApiResult, Params, flag, ok, parse_schema_body, raw};
use crate::{
    error::ApiError,
    store::{Store, VersionRef, VersionRow},
};

/// `GET /subjects` (`deleted`, `subjectPrefix` honoured).
pub(super) async fn list(State(store): State<Store>, params: Params) -> ApiResult {
    // Confluent's "all subjects" prefix.
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .filter(|prefix| *prefix != ":*:")
        .unwrap_or("");
    ok(&store.subjects(flag(&params, "deleted"), prefix).await?)
}

/// `POST /subjects/{subject}/versions` → `{"id": N}` (`normalize` accepted and ignored).
pub(super) async fn register(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    let registered = store.register(&subject, &schema).await?;
    if let Some(version) = registered.new_version {
        tracing::info!(
            subject,
            version,
            id = registered.id,
            "schema version registered"
        );
    }
    ok(&json!({ "id": registered.id }))
}

/// `POST /subjects/{subject}`: which version of the subject holds this schema.
pub(super) async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult {
    let rows = store.versions(&subject, flag(&params, "deleted")).await?;
    if rows.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    let schema = parse_schema_body(&body)?;
    let found = rows
        .into_iter()
        .rev()
        .find(|row| row.normalized == schema.normalized)
        .ok_or_else(|| ApiError::SchemaNotFound("Schema not found".to_owned()))?;
    ok(&version_body(&subject, found))
}

/// `GET /subjects/{subject}/versions` → `[1, 2, ...]`.
pub(super) async fn versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    params: Params,
) -> ApiResult {
    let rows = store.versions(&subject, flag(&params, "deleted")).await?;
    if rows.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    let numbers: Vec<i32> = rows.iter().map(|row| row.version).collect();
    ok(&numbers)
}

pub(super) async fn version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let row = resolve(&store, &subject, &version, &params).await?;
    ok(&version_body(&subject, row))
}

pub(super) async fn raw_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    raw(resolve(&store, &subject, &version, &params).await?.schema)
}

/// The version `version` (a number, `latest` or `-1`) of `subject`; `?deleted=true` includes
/// soft-deleted versions.
async fn resolve(store: &Store, subject: &str, version: &str, params: &Params) -> Result<VersionRow, ApiError> {
    let version = VersionRef::parse(version)?;
    store.resolve(subject, version, flag(params, "deleted")).await
}

/// References are not supported, so nothing refers to anything.
pub(super) async fn referenced_by(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    store.resolve(&subject, version, false).await?;
    ok(&[] as &[i32])
}

/// `DELETE /subjects/{subject}`: soft delete, or with `permanent=true` hard delete of a
/// subject that was soft-deleted first (Confluent's two steps).
pub(super) async fn delete(
    State(store): State<Store>,
    Path(subject): Path<String>,
    params: Params,
) -> ApiResult {
    let permanent = flag(&params, "permanent");
    let deleted = if permanent {
        store.hard_delete_subject(&subject).await?
    } else {
        store.soft_delete_subject(&subject).await?
    };
    tracing::info!(subject, permanent, versions = ?deleted, "subject deleted");
    ok(&deleted)
}

pub(super) async fn delete_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    let permanent = flag(&params, "permanent");
    let deleted = store.delete_version(&subject, version, permanent).await?;
    tracing::info!(
        subject,
        version = deleted,
        permanent,
        "subject version deleted"
    );
    ok(&deleted)
}

/// `{"subject", "id", "version", "schema"}`; `schemaType` is omitted for AVRO, as Confluent does.
fn version_body(subject: &str, row: VersionRow) -> serde_json::Value {
    json!({
        "subject": subject,
        "id": row.schema_id,
        "version": row.version,
        "schema": row.schema,
    })
}
