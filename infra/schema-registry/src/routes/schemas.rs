//! `/schemas/...`: lookups by global id.

use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiResult, Params, flag, ok, raw};
use crate::{error::ApiError, store::Store};

pub(super) async fn types() -> ApiResult {
    ok(&["AVRO"])
}

/// `GET /schemas/ids/{id}` (`subject` is accepted and ignored, `fetchMaxId` honoured).
pub(super) async fn by_id(
    State(store): State<Store>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    let schema = schema(&store, id).await?;
    let mut body = json!({ "schema": schema });
    if flag(&params, "fetchMaxId") {
        body["maxId"] = Value::from(store.max_id().await?);
    }
    ok(&body)
}

pub(super) async fn raw_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    raw(schema(&store, id).await?)
}

/// `[{"subject": ..., "version": ...}]` for every live version using the id.
pub(super) async fn versions(
    State(store): State<Store>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    schema(&store, id).await?;
    let usages = store.usages(id, flag(&params, "deleted")).await?;
    let body: Vec<Value> = usages
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    ok(&body)
}

pub(super) async fn subjects(
    State(store): State<Store>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    schema(&store, id).await?;
    let mut subjects: Vec<String> = store
        .usages(id, flag(&params, "deleted"))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    ok(&subjects)
}

fn parse_id(text: &str) -> Result<i32, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::SchemaNotFound(format!("Schema {text} not found")))
}

async fn schema(store: &Store, id: i32) -> Result<String, ApiError> {
    store
        .schema_by_id(id)
        .await?
        .ok_or_else(|| ApiError::SchemaNotFound(format!("Schema {id} not found")))
}
