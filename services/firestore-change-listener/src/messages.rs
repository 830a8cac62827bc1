//! Flow 6: a change of `applications/{id}/messages/{messageId}` that an app made (created, a
//! receipt, deleted) as a `MessageChanged` with the message's app-written fields. Brain's own
//! writes to the message (delivery, role flags, Teams relay) emit nothing here, so
//! projection-writer's answers do not come back to it.

use brain_events::{DocumentChanged, MessageChanged, MessageState, messages::is_brain_owned};
use serde_json::{Map, Value as Json};

/// The message event that goes with `change` (the document event of the same write), if the
/// document is a message and an app-written field moved.
pub fn message(change: &DocumentChanged, fields: Option<&Map<String, Json>>) -> Option<MessageChanged> {
    let segments: Vec<&str> = change.document_path.split('/').collect();
    let ["applications", application_id, "messages", message_id] = segments.as_slice() else {
        return None;
    };
    let created = change.previous_update_time_ns.is_none();
    if !created && !change.deleted && change.changed_fields.iter().all(|f| is_brain_owned(f)) {
        return None;
    }
    let text = |name: &str| fields.and_then(|f| f.get(name)).and_then(Json::as_str).map(str::to_string);
    let receipt = |role: &str| fields.and_then(|f| f.get("receipts")).and_then(|r| r.get(role)).and_then(Json::as_str).map(str::to_string);
    let message = fields.filter(|_| !change.deleted).map(|f| MessageState {
        text: text("text"),
        sender_role: text("senderRole"),
        author_id: text("authorId"),
        relay_to_teams: f.get("relayToTeams").and_then(Json::as_bool).unwrap_or(false),
        borrower_receipt: receipt("borrower"),
        staff_receipt: receipt("staff"),
    });
    Some(MessageChanged {
        event_id: change.event_id.clone(),
        occurred_at: change.occurred_at,
        tenant_id: change.tenant_id.clone(),
        correlation_id: change.correlation_id.clone(),
        causation_id: None,
        producer: change.producer.clone(),
        application_id: (*application_id).to_string(),
        message_id: (*message_id).to_string(),
        document_path: change.document_path.clone(),
        version: change.update_time_ns,
        created,
        deleted: change.deleted,
        message,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        checkpoint::Known,
        events::{Seen, change},
    };

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn app_writes_emit_message_events_and_brain_writes_do_not() {
        let posted = obj(json!({ "text": "hello", "senderRole": "borrower", "authorId": "b-1" }));
        let path = "applications/app-1/messages/m-1";
        let seen = Seen { path, collection: "messages", update_time_ns: 10, fields: Some(&posted) };
        let first = change(&seen, None, "t").unwrap();
        let event = message(&first, Some(&posted)).unwrap();
        assert!(event.created && !event.deleted);
        assert_eq!((event.application_id.as_str(), event.message_id.as_str(), event.version), ("app-1", "m-1", 10));
        assert_eq!(event.message.as_ref().unwrap().sender_role.as_deref(), Some("borrower"));

        let known = Known { update_time_ns: 10, deleted: false, fields: posted.clone() };
        let mut stamped = posted.clone();
        stamped.insert("delivery".into(), json!({ "status": "sent" }));
        stamped.insert("fromBorrower".into(), json!(true));
        let brain = change(&Seen { update_time_ns: 11, fields: Some(&stamped), ..seen }, Some(&known), "t").unwrap();
        assert!(message(&brain, Some(&stamped)).is_none(), "Brain's own write");

        let known = Known { update_time_ns: 11, deleted: false, fields: stamped.clone() };
        let mut read = stamped.clone();
        read.insert("receipts".into(), json!({ "staff": "read" }));
        let receipt = change(&Seen { update_time_ns: 12, fields: Some(&read), ..seen }, Some(&known), "t").unwrap();
        let event = message(&receipt, Some(&read)).unwrap();
        assert!(!event.created);
        assert_eq!(event.message.unwrap().staff_receipt.as_deref(), Some("read"));

        let task = Seen { path: "applications/app-1/tasks/t-1", collection: "tasks", update_time_ns: 1, fields: Some(&posted) };
        assert!(message(&change(&task, None, "t").unwrap(), Some(&posted)).is_none());
    }
}
