//! Turning one document change into a `DocumentChanged` event.

use std::collections::BTreeMap;

use brain_events::{DocumentChanged, firestore::is_brain_owned};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::{SERVICE, checkpoint::Known, values};

/// Namespace of change ids derived from (document path, update time).
const CHANGE_NAMESPACE: Uuid = Uuid::from_u128(0x51c4_0e7d_2a96_4f0b_9e38_d1a7_46b2_c85f);

/// A document's new state as the listener saw it.
pub struct Seen<'a> {
    /// Relative to the database root (`applications/app-1/tasks/t-9`).
    pub path: &'a str,
    /// The collection the target watches (`applications`, `tasks`, `messages`).
    pub collection: &'a str,
    pub update_time_ns: i64,
    /// `None`: the document is gone.
    pub fields: Option<&'a Map<String, Json>>,
}

/// The event for `seen` following `previous` (the last emitted state), or `None` when no field
/// changed (a write that left every field as it was).
pub fn change(seen: &Seen<'_>, previous: Option<&Known>, default_tenant: &str) -> Option<DocumentChanged> {
    let empty = Map::new();
    let previous_fields = previous.filter(|k| !k.deleted).map_or(&empty, |k| &k.fields);
    let fields = seen.fields.unwrap_or(&empty);
    let changes = values::diff(previous_fields, fields);
    let deleted = seen.fields.is_none();
    if changes.is_empty() && !deleted {
        return None;
    }
    let segments: Vec<&str> = seen.path.split('/').collect();
    let document_id = segments.last().copied().unwrap_or_default().to_string();
    let application_id = match segments.as_slice() {
        ["applications", id, ..] => id.to_string(),
        _ => string_field(fields, "applicationId").or_else(|| string_field(previous_fields, "applicationId")).unwrap_or_else(|| document_id.clone()),
    };
    let is_application = segments.len() == 2 && segments[0] == "applications";
    let kind = if deleted { "deleted" } else { "changed" };
    let event_id = Uuid::new_v5(&CHANGE_NAMESPACE, format!("{}@{kind}@{}", seen.path, seen.update_time_ns).as_bytes()).to_string();
    let mut old_values = BTreeMap::new();
    let mut new_values = BTreeMap::new();
    for (path, old, new) in &changes {
        if let Some(old) = old {
            old_values.insert(path.clone(), old.to_string());
        }
        if let Some(new) = new {
            new_values.insert(path.clone(), new.to_string());
        }
    }
    let changed_fields: Vec<String> = changes.into_iter().map(|(path, _, _)| path).collect();
    let protected_fields = if is_application { changed_fields.iter().filter(|p| is_brain_owned(p)).cloned().collect() } else { Vec::new() };
    Some(DocumentChanged {
        event_id: event_id.clone(),
        occurred_at: seen.update_time_ns.div_euclid(1_000_000),
        tenant_id: string_field(fields, "tenantId").or_else(|| string_field(previous_fields, "tenantId")).unwrap_or_else(|| default_tenant.to_string()),
        correlation_id: event_id,
        causation_id: None,
        producer: SERVICE.to_string(),
        collection: seen.collection.to_string(),
        document_path: seen.path.to_string(),
        document_id,
        application_id,
        update_time_ns: seen.update_time_ns,
        previous_update_time_ns: previous.map(|k| k.update_time_ns),
        deleted,
        changed_fields,
        old_values,
        new_values,
        protected_fields,
        actor: string_field(fields, "lastEditedBy"),
        ventures_loan_id: if is_application { string_field(fields, "venturesLoanId").or_else(|| string_field(previous_fields, "venturesLoanId")) } else { None },
    })
}

fn string_field(fields: &Map<String, Json>, name: &str) -> Option<String> {
    fields.get(name).and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_client_write_to_a_brain_owned_field_is_flagged() {
        let before = Known { update_time_ns: 10, deleted: false, fields: obj(json!({ "venturesStatus": "Open", "note": "a" })) };
        let after = obj(json!({ "venturesStatus": "Funded", "note": "b", "lastEditedBy": "user-7" }));
        let seen = Seen { path: "applications/app-1", collection: "applications", update_time_ns: 20, fields: Some(&after) };
        let event = change(&seen, Some(&before), "default").unwrap();
        assert_eq!(event.changed_fields, ["lastEditedBy", "note", "venturesStatus"]);
        assert_eq!(event.protected_fields, ["venturesStatus"]);
        assert_eq!(event.old_values["venturesStatus"], "\"Open\"");
        assert_eq!(event.new_values["venturesStatus"], "\"Funded\"");
        assert_eq!((event.application_id.as_str(), event.previous_update_time_ns, event.actor.as_deref()), ("app-1", Some(10), Some("user-7")));
        // The same change seen again (after a restart) has the same id.
        assert_eq!(change(&seen, Some(&before), "default").unwrap().event_id, event.event_id);
    }

    #[test]
    fn tasks_belong_to_their_application_and_are_never_protected() {
        let after = obj(json!({ "venturesStatus": "x", "state": "open" }));
        let seen = Seen { path: "applications/app-2/tasks/t-1", collection: "tasks", update_time_ns: 5, fields: Some(&after) };
        let event = change(&seen, None, "t").unwrap();
        assert_eq!((event.application_id.as_str(), event.document_id.as_str()), ("app-2", "t-1"));
        assert!(event.protected_fields.is_empty());
        assert_eq!(event.previous_update_time_ns, None);
    }

    #[test]
    fn unchanged_fields_make_no_event_but_a_deletion_does() {
        let fields = obj(json!({ "a": 1 }));
        let known = Known { update_time_ns: 1, deleted: false, fields: fields.clone() };
        let seen = Seen { path: "applications/x", collection: "applications", update_time_ns: 2, fields: Some(&fields) };
        assert!(change(&seen, Some(&known), "t").is_none());
        let gone = Seen { fields: None, ..seen };
        let event = change(&gone, Some(&known), "t").unwrap();
        assert!(event.deleted);
        assert_eq!(event.changed_fields, ["a"]);
    }
}
