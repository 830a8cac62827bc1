//! The simulated ShareFile API: `/oauth/token`, `/sf/v3/Items...` and the `ChunkUri`.
//!
//! `/sf/v3` paths are OData-style (`Items(fo123)/Folder`), so they are parsed here rather than by
//! the router: `Items`, `Items(id)`, `Items(id)/Children`, `Items(id)/Folder`,
//! `Items(id)/Upload2`, `Items(id)/Download`, `Items/ByPath?path=...`. Segment names are
//! case-insensitive; `$expand=Children` is honoured, other OData options are ignored.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, Method, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{any, post},
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::SfError,
    items::{Kind, StoreError},
    middleware::{Target, authenticate, inject_faults, observe},
    oauth, render,
    state::SharedState,
    upload::{self, UPLOAD_PATH},
};

pub fn router(state: SharedState) -> Router<SharedState> {
    let api = Router::new()
        .route("/sf/v3/{*rest}", any(dispatch))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route(UPLOAD_PATH, post(upload::chunk))
        .merge(api)
        .route_layer(from_fn_with_state(state.clone(), inject_faults))
        .layer(from_fn_with_state(state, observe))
}

#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    /// `Items` (the home folder) or `Items(id)`, with an optional sub-resource.
    Item(String, Option<Sub>),
    ByPath,
}

#[derive(Debug, PartialEq, Eq)]
enum Sub {
    Children,
    Folder,
    Upload2,
    Download,
}

fn parse(rest: &str) -> Option<Endpoint> {
    let mut segments = rest.trim_matches('/').split('/');
    let first = segments.next()?;
    let second = segments.next();
    if segments.next().is_some() {
        return None;
    }
    let prefix = first.get(..5).filter(|p| p.eq_ignore_ascii_case("items"))?;
    let id = match &first[prefix.len()..] {
        "" => "home",
        args => args
            .strip_prefix('(')?
            .strip_suffix(')')?
            .trim_matches('\''),
    };
    let is = |s: &str, name: &str| s.eq_ignore_ascii_case(name);
    let sub = match second {
        None => None,
        Some(s) if is(s, "ByPath") && id == "home" && first.len() == 5 => {
            return Some(Endpoint::ByPath);
        }
        Some(s) if is(s, "Children") => Some(Sub::Children),
        Some(s) if is(s, "Folder") => Some(Sub::Folder),
        Some(s) if is(s, "Upload2") => Some(Sub::Upload2),
        Some(s) if is(s, "Download") => Some(Sub::Download),
        Some(_) => return None,
    };
    Some(Endpoint::Item(id.to_owned(), sub))
}

fn params(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn no_such_resource() -> SfError {
    SfError::not_found("No such resource")
}

async fn dispatch(
    State(state): State<SharedState>,
    Path(rest): Path<String>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SfError> {
    let endpoint = parse(&rest).ok_or_else(no_such_resource)?;
    let query = params(raw.as_deref());
    let expand = query.get("$expand").is_some_and(|e| {
        e.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("Children"))
    });
    let base = state.public_url(&headers);
    match (method, endpoint) {
        (Method::GET, Endpoint::ByPath) => {
            let path = query
                .get("path")
                .ok_or_else(|| SfError::bad_request("The path parameter is required"))?;
            let store = state.store();
            let item = store
                .by_path(path)
                .ok_or_else(|| SfError::not_found(format!("Item not found: {path}")))?;
            Ok(Json(render::item(&store, item, &base, expand)).into_response())
        }
        (Method::GET, Endpoint::Item(id, None)) => {
            let store = state.store();
            let item = store.get(&id).ok_or_else(|| item_not_found(&id))?;
            Ok(Json(render::item(&store, item, &base, expand)).into_response())
        }
        (Method::GET, Endpoint::Item(id, Some(Sub::Children))) => {
            let store = state.store();
            let item = store.get(&id).ok_or_else(|| item_not_found(&id))?;
            Ok(Json(render::feed(&store, &item.id, &base)).into_response())
        }
        (Method::GET, Endpoint::Item(id, Some(Sub::Download))) => download(&state, &id),
        (Method::POST, Endpoint::Item(id, Some(Sub::Folder))) => {
            create_folder(&state, &id, &query, &body, &base)
        }
        (Method::POST, Endpoint::Item(id, Some(Sub::Upload2))) => {
            upload::upload2(&state, &headers, &id, &body).map(IntoResponse::into_response)
        }
        _ => Err(no_such_resource()),
    }
}

fn item_not_found(id: &str) -> SfError {
    SfError::not_found(format!("Item {id} not found"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NewFolder {
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST Items(parentId)/Folder`: 200 with the new folder; a taken name is 409 `Conflict`,
/// unless `?overwrite=true`, which answers the existing folder unchanged.
fn create_folder(
    state: &SharedState,
    parent: &str,
    query: &HashMap<String, String>,
    body: &[u8],
    base: &str,
) -> Result<Response, SfError> {
    let folder: NewFolder = serde_json::from_slice(body)
        .map_err(|e| SfError::bad_request(format!("Invalid folder: {e}")))?;
    let overwrite = query
        .get("overwrite")
        .is_some_and(|o| o.eq_ignore_ascii_case("true"));
    let mut store = state.store();
    let created = match store.create_folder(parent, &folder.name, &folder.description) {
        Ok(created) => created,
        Err(StoreError::Exists(name)) if overwrite => {
            let parent = store.get(parent).map(|p| p.id.clone()).unwrap_or_default();
            let existing = store.child_named(&parent, &name).filter(|e| e.is_folder());
            let existing =
                existing.ok_or_else(|| SfError::conflict(StoreError::Exists(name).to_string()))?;
            return Ok(Json(render::item(&store, existing, base, false)).into_response());
        }
        Err(e @ StoreError::Exists(_)) => return Err(SfError::conflict(e.to_string())),
        Err(e @ (StoreError::NotFound(_) | StoreError::NotAFolder(_))) => {
            return Err(SfError::not_found(e.to_string()));
        }
        Err(e @ StoreError::InvalidName(_)) => return Err(SfError::bad_request(e.to_string())),
    };
    let path = store.path_of(&created.id);
    let value: Value = render::item(&store, &created, base, false);
    drop(store);
    state.ledger().folder_created(&path);
    let mut response = Json(value).into_response();
    response.extensions_mut().insert(Target(path));
    Ok(response)
}

/// `GET Items(id)/Download`: the bytes directly (ShareFile redirects to a download host).
fn download(state: &SharedState, id: &str) -> Result<Response, SfError> {
    let store = state.store();
    let item = store.get(id).ok_or_else(|| item_not_found(id))?;
    let Kind::File { content, .. } = &item.kind else {
        return Err(SfError::bad_request("Folder downloads are not simulated"));
    };
    let mut response = content.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let disposition = format!("attachment; filename=\"{}\"", item.name.replace('"', ""));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_odata_paths() {
        let item = |id: &str, sub| Some(Endpoint::Item(id.into(), sub));
        assert_eq!(parse("Items"), item("home", None));
        assert_eq!(parse("Items(fo1)"), item("fo1", None));
        assert_eq!(parse("items('fo1')/folder"), item("fo1", Some(Sub::Folder)));
        assert_eq!(parse("Items(fo1)/Upload2"), item("fo1", Some(Sub::Upload2)));
        assert_eq!(parse("Items/ByPath"), Some(Endpoint::ByPath));
        assert_eq!(parse("Items(fo1)/ByPath"), None);
        assert_eq!(parse("Items(fo1)/Nope"), None);
        assert_eq!(parse("Shares(x)"), None);
        assert_eq!(parse("Items(fo1)/Folder/x"), None);
    }
}
