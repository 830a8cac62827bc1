//! `/compatibility/...`: dry-run compatibility checks.

use axum::{
    body::Bytes,
    extract::{Path, State},
};
use serde_json::json;

use super::{ApiResult, Params, flag, ok, parse_schema_body};
use crate::{
    compat::{self, Level},
    store::{Store, VersionRef, VersionRow},
};

/// Against one version (or `latest`), in the direction(s) of the subject's level.
pub(super) async fn against_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    let row = store.resolve(&subject, version, false).await?;
    let schema = parse_schema_body(&body)?;
    let level = store.effective_level(&subject).await?;
    let result = compat::check(level, &schema.schema, &[row.parse()?]);
    answer(result, flag(&params, "verbose"))
}

/// Against every live version, exactly as a registration would check; no versions → compatible.
pub(super) async fn against_all(
    State(store): State<Store>,
    Path(subject): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult {
    let rows = store.versions(&subject, false).await?;
    let schema = parse_schema_body(&body)?;
    let level = store.effective_level(&subject).await?;
    let result = if level == Level::None {
        Ok(())
    } else {
        compat::check(
            level,
            &schema.schema,
            &rows
                .iter()
                .map(VersionRow::parse)
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    answer(result, flag(&params, "verbose"))
}

fn answer(result: Result<(), Vec<String>>, verbose: bool) -> ApiResult {
    let compatible = result.is_ok();
    if verbose {
        let messages = result.err().unwrap_or_default();
        ok(&json!({ "is_compatible": compatible, "messages": messages }))
    } else {
        ok(&json!({ "is_compatible": compatible }))
    }
}
