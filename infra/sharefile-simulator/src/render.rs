//! Items as the API shows them: ShareFile's field names, with `odata.metadata`, `odata.type` and
//! `url` pointing back at the simulator.

use serde_json::{Value, json};

use crate::items::{Item, Kind, Store};

/// `Folder` or `File`.
fn model(item: &Item) -> &'static str {
    if item.is_folder() { "Folder" } else { "File" }
}

fn item_url(base: &str, id: &str) -> String {
    format!("{base}/sf/v3/Items({id})")
}

/// One item's fields (no `odata.metadata`), as inside `Children` or a feed's `value`.
pub fn item_fields(store: &Store, item: &Item, base: &str) -> Value {
    let mut value = json!({
        "odata.type": format!("ShareFile.Api.Models.{}", model(item)),
        "Id": item.id,
        "Name": item.name,
        "FileName": item.name,
        "CreationDate": item.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "FileSizeBytes": store.size_of(&item.id),
        "url": item_url(base, &item.id),
    });
    if let Some(parent) = &item.parent {
        value["Parent"] = json!({"Id": parent, "url": item_url(base, parent)});
    }
    match &item.kind {
        Kind::Folder { description } => {
            value["Description"] = json!(description);
            value["FileCount"] = json!(
                store
                    .children(&item.id)
                    .iter()
                    .filter(|c| !c.is_folder())
                    .count()
            );
        }
        Kind::File { hash, .. } => {
            value["Hash"] = json!(hash);
        }
    }
    value
}

/// The answer to `GET Items(id)` (with `Children` when expanded).
pub fn item(store: &Store, item: &Item, base: &str, expand_children: bool) -> Value {
    let mut value = json!({
        "odata.metadata": format!("{base}/sf/v3/$metadata#Items/ShareFile.Api.Models.{}@Element", model(item)),
    });
    let fields = item_fields(store, item, base);
    if let (Value::Object(target), Value::Object(fields)) = (&mut value, fields) {
        target.extend(fields);
    }
    if expand_children && item.is_folder() {
        value["Children"] = children(store, &item.id, base);
    }
    value
}

fn children(store: &Store, id: &str, base: &str) -> Value {
    Value::Array(
        store
            .children(id)
            .into_iter()
            .map(|c| item_fields(store, c, base))
            .collect(),
    )
}

/// The answer to `GET Items(id)/Children`: an OData feed.
pub fn feed(store: &Store, id: &str, base: &str) -> Value {
    json!({
        "odata.metadata": format!("{base}/sf/v3/$metadata#Items"),
        "odata.count": store.children(id).len(),
        "value": children(store, id, base),
    })
}

/// The whole tree for `/control/items`: `{id, name, path, type, size, hash?, children?}`.
pub fn tree(store: &Store, id: &str) -> Value {
    let Some(item) = store.get(id) else {
        return Value::Null;
    };
    let mut value = json!({
        "id": item.id,
        "name": item.name,
        "path": store.path_of(&item.id),
        "type": model(item).to_lowercase(),
        "size": store.size_of(&item.id),
        "creationDate": item.created,
    });
    match &item.kind {
        Kind::Folder { .. } => {
            value["children"] = Value::Array(
                store
                    .children(&item.id)
                    .iter()
                    .map(|c| tree(store, &c.id))
                    .collect(),
            );
        }
        Kind::File { hash, .. } => value["hash"] = json!(hash),
    }
    value
}

/// A file for `/control`: `{id, name, path, size, hash, parentId, creationDate}`.
pub fn file_summary(store: &Store, item: &Item) -> Value {
    let hash = match &item.kind {
        Kind::File { hash, .. } => Some(hash.as_str()),
        Kind::Folder { .. } => None,
    };
    json!({
        "id": item.id,
        "name": item.name,
        "path": store.path_of(&item.id),
        "size": store.size_of(&item.id),
        "hash": hash,
        "parentId": item.parent,
        "creationDate": item.created,
    })
}
