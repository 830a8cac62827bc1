//! `/config`: global and per-subject compatibility levels.

use axum::{
    body::Bytes,
    extract::{Path, State},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, Params, flag, json_body, ok};
use crate::{compat::Level, error::ApiError, store::Store};

/// `{"compatibility": "FULL"}`; `compatibilityLevel` is accepted too.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn parse_level(body: &Bytes) -> Result<Level, ApiError> {
    let request: ConfigRequest = json_body(body)?;
    request
        .compatibility
        .or(request.compatibility_level)
        .ok_or(ApiError::InvalidCompatibility)?
        .parse()
        .map_err(|_| ApiError::InvalidCompatibility)
}

pub(super) async fn get_global(State(store): State<Store>) -> ApiResult {
    let level = store.global_level().await?;
    ok(&json!({ "compatibilityLevel": level.as_str() }))
}

pub(super) async fn put_global(State(store): State<Store>, body: Bytes) -> ApiResult {
    let level = parse_level(&body)?;
    store.set_global_level(level).await?;
    tracing::info!(%level, "global compatibility level set");
    ok(&json!({ "compatibility": level.as_str() }))
}

/// The subject's own level; 40408 unless `defaultToGlobal=true`.
pub(super) async fn get_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    params: Params,
) -> ApiResult {
    let level = match store.subject_level(&subject).await? {
        Some(level) => level,
        None if flag(&params, "defaultToGlobal") => store.global_level().await?,
        None => return Err(ApiError::NoSubjectConfig(subject)),
    };
    ok(&json!({ "compatibilityLevel": level.as_str() }))
}

/// Allowed before the subject has any version, as in Confluent.
pub(super) async fn put_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&body)?;
    store.set_subject_level(&subject, level).await?;
    tracing::info!(subject, %level, "subject compatibility level set");
    ok(&json!({ "compatibility": level.as_str() }))
}

/// Returns the removed level; 40401 if the subject had none (Confluent's answer).
pub(super) async fn delete_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
) -> ApiResult {
    let level = store
        .delete_subject_level(&subject)
        .await?
        .ok_or_else(|| ApiError::SubjectNotFound(subject.clone()))?;
    tracing::info!(subject, %level, "subject compatibility level removed");
    ok(&json!({ "compatibilityLevel": level.as_str() }))
}
