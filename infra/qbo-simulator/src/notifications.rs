//! Webhook payloads, in both formats Intuit sends, and their `intuit-signature`.
//!
//! Legacy: `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities":[{"name","id",
//! "operation","lastUpdated"}]}}]}`, one notification per realm in the delivery, `lastUpdated` as
//! `2015-10-05T14:42:19-0700`. CloudEvents: a JSON array of `{"specversion":"1.0","id","source",
//! "type":"qbo.bill.updated.v1","datacontenttype","time","intuitentityid","intuitaccountid",
//! "data":{}}`. The signature is base64(HMAC-SHA256(verifier token, raw body)).

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{clock::SimClock, realm::Change};

/// The format one delivery is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Legacy,
    CloudEvents,
}

/// `base64(HMAC-SHA256(verifier_token, body))`, the `intuit-signature` header.
pub fn sign(verifier_token: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, verifier_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, body).as_ref())
}

/// Checks a signature as a receiver must (constant time).
pub fn verify(verifier_token: &str, body: &[u8], signature: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, verifier_token.as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

fn legacy_operation(change: &Change) -> &'static str {
    match change.operation {
        crate::realm::Operation::Create => "Create",
        crate::realm::Operation::Update => "Update",
        crate::realm::Operation::Delete => "Delete",
    }
}

/// The legacy body: changes grouped by realm in order of first appearance.
pub fn legacy(changes: &[Change], clock: &SimClock) -> Value {
    let mut realms: Vec<(&str, Vec<Value>)> = Vec::new();
    for change in changes {
        let entity = json!({
            "name": change.entity.name(),
            "id": change.id,
            "operation": legacy_operation(change),
            "lastUpdated": clock.format_legacy(change.at),
        });
        match realms.iter_mut().find(|(r, _)| *r == change.realm_id) {
            Some((_, entities)) => entities.push(entity),
            None => realms.push((&change.realm_id, vec![entity])),
        }
    }
    let notifications: Vec<Value> = realms
        .into_iter()
        .map(|(realm_id, entities)| {
            json!({"realmId": realm_id, "dataChangeEvent": {"entities": entities}})
        })
        .collect();
    json!({"eventNotifications": notifications})
}

/// The CloudEvents array; `ids[i]` is the event id of `changes[i]`.
pub fn cloud_events(changes: &[Change], ids: &[String], clock: &SimClock) -> Value {
    let events: Vec<Value> = changes
        .iter()
        .zip(ids)
        .map(|(change, id)| {
            json!({
                "specversion": "1.0",
                "id": id,
                "source": "intuit.qbo.simulator",
                "type": format!(
                    "qbo.{}.{}.v1",
                    change.entity.name().to_ascii_lowercase(),
                    change.operation.past_tense()
                ),
                "datacontenttype": "application/json",
                "time": clock.format_precise(change.at),
                "intuitentityid": change.id,
                "intuitaccountid": change.realm_id,
                "data": {},
            })
        })
        .collect();
    Value::Array(events)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{model::EntityKind, realm::Operation};

    fn change(realm: &str, id: &str, operation: Operation) -> Change {
        Change {
            realm_id: realm.into(),
            entity: EntityKind::Invoice,
            id: id.into(),
            operation,
            at: Utc.with_ymd_and_hms(2015, 10, 5, 21, 42, 19).unwrap(),
            sync_token: "1".into(),
        }
    }

    #[test]
    fn legacy_groups_by_realm() {
        let changes = [
            change("1", "132", Operation::Update),
            change("2", "7", Operation::Create),
            change("1", "133", Operation::Delete),
        ];
        let body = legacy(&changes, &SimClock::wall());
        let n = &body["eventNotifications"];
        assert_eq!(n.as_array().unwrap().len(), 2);
        assert_eq!(n[0]["realmId"], "1");
        let e = &n[0]["dataChangeEvent"]["entities"];
        assert_eq!(
            e[0],
            json!({"name": "Invoice", "id": "132", "operation": "Update", "lastUpdated": "2015-10-05T14:42:19-0700"})
        );
        assert_eq!(e[1]["operation"], "Delete");
    }

    #[test]
    fn cloud_events_carry_type_and_account() {
        let body = cloud_events(
            &[change("9", "132", Operation::Update)],
            &["e1".into()],
            &SimClock::wall(),
        );
        assert_eq!(body[0]["type"], "qbo.invoice.updated.v1");
        assert_eq!(body[0]["intuitaccountid"], "9");
        assert_eq!(body[0]["intuitentityid"], "132");
        assert_eq!(body[0]["id"], "e1");
    }

    #[test]
    fn signature_is_base64_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        assert!(verify("Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify("Jefe", b"what do ya want for nothing!", &sig));
    }
}
