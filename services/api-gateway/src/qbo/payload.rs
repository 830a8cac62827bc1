//! The two payloads Intuit sends to a webhook, parsed and checked (anything else is
//! [`Malformed`], answered 400 `invalid_webhook` with the detail):
//! - legacy: `{"eventNotifications":[{"realmId":"…","dataChangeEvent":{"entities":[{"name":"Invoice",
//!   "id":"132","operation":"Update","lastUpdated":"…"}]}}]}`;
//! - CloudEvents: a JSON array of 1-100 `{"specversion":"1.0","id":"…","type":"qbo.invoice.updated.v1",
//!   "time":"…","intuitentityid":"132","intuitaccountid":"<realm id>","data":{}}` (a single event
//!   object is taken as an array of one).
//!
//! [`batches`] groups a delivery by realm: one record per realm is published.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use brain_runtime::events::QboChangedEntity;
use serde::Deserialize;
use serde_json::Value;

/// Most CloudEvents in one delivery (Intuit sends up to 100).
pub const MAX_CLOUD_EVENTS: usize = 100;
/// Longest realm id, entity id, name or event id accepted.
const MAX_ID_CHARS: usize = 256;
const MAX_REALM_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Legacy,
    CloudEvents,
}

impl Format {
    /// The record's `format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::CloudEvents => "cloudevents",
        }
    }
}

/// Why a body is not a webhook Brain accepts (the 400's detail).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(detail: impl Into<String>) -> Malformed {
    Malformed(detail.into())
}

/// A delivery, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Per notification: the realm and the entities it names.
    Legacy(Vec<(String, Vec<QboChangedEntity>)>),
    CloudEvents(Vec<CloudEvent>),
}

/// One CloudEvent, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub realm_id: String,
    /// Absent when the event names no entity (`intuitentityid`).
    pub entity: Option<QboChangedEntity>,
}

impl Delivery {
    pub fn format(&self) -> Format {
        match self {
            Self::Legacy(_) => Format::Legacy,
            Self::CloudEvents(_) => Format::CloudEvents,
        }
    }
}

/// What one realm's record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct RealmBatch {
    pub realm_id: String,
    pub entities: Vec<QboChangedEntity>,
    /// The CloudEvent ids, sorted and distinct (empty for the legacy format).
    pub event_ids: Vec<String>,
}

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<Delivery, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    match value {
        Value::Array(events) => cloud_events(events),
        Value::Object(object) if object.contains_key("eventNotifications") => legacy(Value::Object(object)),
        Value::Object(object) if object.contains_key("specversion") => cloud_events(vec![Value::Object(object)]),
        _ => Err(malformed("neither a legacy notification ({\"eventNotifications\": [...]}) nor an array of CloudEvents")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyBody {
    event_notifications: Vec<LegacyNotification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyNotification {
    realm_id: Value,
    #[serde(default)]
    data_change_event: Option<LegacyChanges>,
}

#[derive(Deserialize)]
struct LegacyChanges {
    #[serde(default)]
    entities: Vec<LegacyEntity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyEntity {
    name: String,
    id: Value,
    operation: String,
    #[serde(default)]
    last_updated: Option<String>,
}

fn legacy(value: Value) -> Result<Delivery, Malformed> {
    let body: LegacyBody = serde_json::from_value(value).map_err(|e| malformed(format!("not a legacy notification: {e}")))?;
    if body.event_notifications.is_empty() {
        return Err(malformed("eventNotifications is empty"));
    }
    let mut notifications = Vec::with_capacity(body.event_notifications.len());
    for (i, n) in body.event_notifications.into_iter().enumerate() {
        let at = |what: &str| format!("eventNotifications[{i}]: {what}");
        let realm = realm_id(&n.realm_id).ok_or_else(|| malformed(at("realmId is not a realm id (1-64 letters, digits, '-', '_', '.')")))?;
        let mut entities = Vec::new();
        for (j, e) in n.data_change_event.map(|c| c.entities).unwrap_or_default().into_iter().enumerate() {
            let at = |what: &str| at(&format!("entities[{j}]: {what}"));
            let id = id_text(&e.id).ok_or_else(|| malformed(at("id is not an id")))?;
            if !short(&e.name) || !short(&e.operation) {
                return Err(malformed(at("name and operation are 1-256 characters")));
            }
            entities.push(QboChangedEntity { name: e.name, id, operation: e.operation, last_updated: e.last_updated.filter(|t| short(t)) });
        }
        notifications.push((realm, entities));
    }
    Ok(Delivery::Legacy(notifications))
}

#[derive(Deserialize)]
struct RawCloudEvent {
    specversion: Value,
    id: Value,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    intuitentityid: Option<Value>,
    intuitaccountid: Value,
}

fn cloud_events(events: Vec<Value>) -> Result<Delivery, Malformed> {
    if events.is_empty() {
        return Err(malformed("the array of CloudEvents is empty"));
    }
    if events.len() > MAX_CLOUD_EVENTS {
        return Err(malformed(format!("{} CloudEvents; at most {MAX_CLOUD_EVENTS} per delivery", events.len())));
    }
    let mut checked = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let at = |what: &str| malformed(format!("event {i}: {what}"));
        if !event.is_object() {
            return Err(at("not an object"));
        }
        let raw: RawCloudEvent = serde_json::from_value(event).map_err(|e| at(&e.to_string()))?;
        if raw.specversion != "1.0" {
            return Err(at("specversion is not \"1.0\""));
        }
        let id = raw.id.as_str().filter(|id| short(id)).ok_or_else(|| at("id is not a string of 1-256 characters"))?.to_string();
        let realm_id = realm_id(&raw.intuitaccountid).ok_or_else(|| at("intuitaccountid is not a realm id (1-64 letters, digits, '-', '_', '.')"))?;
        let (name, operation) = entity_and_verb(&raw.kind).ok_or_else(|| at("type is not qbo.<entity>.<verb>[.v<N>]"))?;
        let entity = match raw.intuitentityid.as_ref().filter(|v| !v.is_null()) {
            None => None,
            Some(value) => {
                let id = id_text(value).ok_or_else(|| at("intuitentityid is not an id"))?;
                Some(QboChangedEntity { name, id, operation, last_updated: raw.time.filter(|t| short(t)) })
            }
        };
        checked.push(CloudEvent { id, realm_id, entity });
    }
    Ok(Delivery::CloudEvents(checked))
}

/// `qbo.invoice.updated.v1` → (`Invoice`, `Update`): QBO's entity name and the legacy
/// operation's word where there is one (the verb as it is otherwise).
fn entity_and_verb(kind: &str) -> Option<(String, String)> {
    let mut parts = kind.split('.');
    let (Some("qbo"), Some(entity), Some(verb)) = (parts.next(), parts.next(), parts.next()) else { return None };
    let rest: Vec<&str> = parts.collect();
    let versioned = match rest.as_slice() {
        [] => true,
        [v] => v.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    };
    let word = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !versioned || !word(entity) || !word(verb) {
        return None;
    }
    let operation = match verb.to_ascii_lowercase().as_str() {
        "created" => "Create".to_string(),
        "updated" => "Update".to_string(),
        "deleted" => "Delete".to_string(),
        "merged" => "Merge".to_string(),
        "voided" => "Void".to_string(),
        "emailed" => "Emailed".to_string(),
        _ => verb.to_string(),
    };
    Some((entity_name(entity), operation))
}

/// QBO's name of an entity from its lower-case form in a CloudEvent type.
fn entity_name(lower: &str) -> String {
    const NAMES: [&str; 30] = [
        "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency", "Customer", "Department", "Deposit",
        "Employee", "Estimate", "Invoice", "Item", "JournalCode", "JournalEntry", "Payment", "PaymentMethod", "Preferences", "Purchase",
        "PurchaseOrder", "RefundReceipt", "SalesReceipt", "TaxAgency", "Term", "TimeActivity", "Transfer", "Vendor", "VendorCredit", "CompanyInfo",
    ];
    if let Some(name) = NAMES.iter().find(|n| n.eq_ignore_ascii_case(lower)) {
        return name.to_string();
    }
    let mut chars = lower.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn short(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_ID_CHARS && !s.chars().any(char::is_control)
}

/// An id given as a string or a number.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if short(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// A realm id (a string of digits in practice; a number is taken too): the record's key.
fn realm_id(value: &Value) -> Option<String> {
    let id = id_text(value)?;
    let ok = id.len() <= MAX_REALM_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(id)
}

/// Groups `delivery` by realm (ordered by realm id), leaving out CloudEvents for which `seen`
/// holds and repeats within the delivery. A realm whose CloudEvents were all seen has no batch.
pub fn batches(delivery: &Delivery, seen: impl Fn(&str) -> bool) -> Vec<RealmBatch> {
    let mut realms: BTreeMap<&str, (Vec<QboChangedEntity>, BTreeSet<String>)> = BTreeMap::new();
    match delivery {
        Delivery::Legacy(notifications) => {
            for (realm, entities) in notifications {
                realms.entry(realm).or_default().0.extend(entities.iter().cloned());
            }
        }
        Delivery::CloudEvents(events) => {
            let mut taken = HashSet::new();
            for event in events {
                if seen(&event.id) || !taken.insert(event.id.as_str()) {
                    continue;
                }
                let (entities, ids) = realms.entry(&event.realm_id).or_default();
                entities.extend(event.entity.iter().cloned());
                ids.insert(event.id.clone());
            }
        }
    }
    realms.into_iter().map(|(realm, (entities, ids))| RealmBatch { realm_id: realm.to_string(), entities, event_ids: ids.into_iter().collect() }).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entity(name: &str, id: &str, operation: &str, last_updated: Option<&str>) -> QboChangedEntity {
        QboChangedEntity { name: name.into(), id: id.into(), operation: operation.into(), last_updated: last_updated.map(str::to_string) }
    }

    fn cloud_event(id: &str, realm: &str, kind: &str, entity: &str) -> Value {
        json!({ "specversion": "1.0", "id": id, "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=", "type": kind,
                "datacontenttype": "application/json", "time": "2025-09-10T21:31:25.179Z", "intuitentityid": entity,
                "intuitaccountid": realm, "data": {} })
    }

    #[test]
    fn legacy_notifications_are_grouped_by_realm() {
        let body = json!({ "eventNotifications": [
            { "realmId": "310", "dataChangeEvent": { "entities": [
                { "name": "Invoice", "id": "132", "operation": "Update", "lastUpdated": "2025-09-10T21:31:25.000Z" },
                { "name": "Bill", "id": "7", "operation": "Create", "lastUpdated": "2025-09-10T21:31:26.000Z" } ] } },
            { "realmId": "200", "dataChangeEvent": { "entities": [ { "name": "Bill", "id": "9", "operation": "Delete" } ] } },
            { "realmId": "310", "dataChangeEvent": { "entities": [ { "name": "Account", "id": 35, "operation": "Update" } ] } },
        ] });
        let delivery = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(delivery.format(), Format::Legacy);
        let batches = batches(&delivery, |_| true);
        assert_eq!(batches.len(), 2, "the legacy format is never deduplicated");
        assert_eq!(batches[0], RealmBatch { realm_id: "200".into(), entities: vec![entity("Bill", "9", "Delete", None)], event_ids: vec![] });
        assert_eq!(batches[1].realm_id, "310");
        assert_eq!(
            batches[1].entities,
            [
                entity("Invoice", "132", "Update", Some("2025-09-10T21:31:25.000Z")),
                entity("Bill", "7", "Create", Some("2025-09-10T21:31:26.000Z")),
                entity("Account", "35", "Update", None),
            ]
        );
    }

    #[test]
    fn cloud_events_are_grouped_by_realm_and_deduplicated() {
        let body = json!([
            cloud_event("e1", "310", "qbo.invoice.updated.v1", "132"),
            cloud_event("e2", "200", "qbo.bill.created.v1", "7"),
            cloud_event("e3", "310", "qbo.billpayment.deleted.v1", "8"),
            cloud_event("e1", "310", "qbo.invoice.updated.v1", "132"),
        ]);
        let delivery = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(delivery.format(), Format::CloudEvents);
        let all = batches(&delivery, |_| false);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], RealmBatch { realm_id: "200".into(), entities: vec![entity("Bill", "7", "Create", Some("2025-09-10T21:31:25.179Z"))], event_ids: vec!["e2".into()] });
        assert_eq!(all[1].event_ids, ["e1", "e3"], "a repeat within the delivery counts once");
        assert_eq!(all[1].entities.iter().map(|e| (e.name.as_str(), e.operation.as_str())).collect::<Vec<_>>(), [("Invoice", "Update"), ("BillPayment", "Delete")]);

        let fresh = batches(&delivery, |id| id != "e3");
        assert_eq!(fresh.len(), 1, "realm 200's only event was seen");
        assert_eq!((fresh[0].realm_id.as_str(), fresh[0].event_ids.as_slice()), ("310", ["e3".to_string()].as_slice()));
        assert!(batches(&delivery, |_| true).is_empty());
    }

    #[test]
    fn a_single_cloud_event_object_and_unknown_types_are_taken() {
        let delivery = parse(cloud_event("e9", "42", "qbo.vendorcredit.voided", "5").to_string().as_bytes()).unwrap();
        let Delivery::CloudEvents(events) = &delivery else { panic!("{delivery:?}") };
        assert_eq!(events[0].entity.as_ref().map(|e| (e.name.as_str(), e.operation.as_str())), Some(("VendorCredit", "Void")));
        let odd = parse(json!([cloud_event("e1", "42", "qbo.widget.frobbed.v2", "5")]).to_string().as_bytes()).unwrap();
        let Delivery::CloudEvents(events) = &odd else { panic!("{odd:?}") };
        assert_eq!(events[0].entity.as_ref().map(|e| (e.name.as_str(), e.operation.as_str())), Some(("Widget", "frobbed")));
        let mut no_entity = cloud_event("e2", "42", "qbo.invoice.updated.v1", "5");
        no_entity.as_object_mut().unwrap().remove("intuitentityid");
        let delivery = parse(json!([no_entity]).to_string().as_bytes()).unwrap();
        assert_eq!(batches(&delivery, |_| false), [RealmBatch { realm_id: "42".into(), entities: vec![], event_ids: vec!["e2".into()] }]);
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let too_many: Vec<Value> = (0..=MAX_CLOUD_EVENTS).map(|i| cloud_event(&format!("e{i}"), "1", "qbo.bill.updated.v1", "1")).collect();
        let mut no_realm = cloud_event("e1", "1", "qbo.bill.updated.v1", "1");
        no_realm.as_object_mut().unwrap().remove("intuitaccountid");
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not JSON"),
            ("{}".into(), "neither"),
            ("42".into(), "neither"),
            ("[]".into(), "empty"),
            (json!(too_many).to_string(), "at most 100"),
            (json!([1]).to_string(), "event 0: not an object"),
            (json!([no_realm]).to_string(), "intuitaccountid"),
            (json!([cloud_event("e1", "", "qbo.bill.updated.v1", "1")]).to_string(), "intuitaccountid"),
            (json!([cloud_event("e1", "1 2", "qbo.bill.updated.v1", "1")]).to_string(), "intuitaccountid"),
            (json!([cloud_event("", "1", "qbo.bill.updated.v1", "1")]).to_string(), "id is not"),
            (json!([cloud_event("e1", "1", "com.example.thing", "1")]).to_string(), "type is not"),
            (json!([cloud_event("e1", "1", "qbo.bill", "1")]).to_string(), "type is not"),
            (json!([{ "specversion": "0.3", "id": "e1", "type": "qbo.bill.updated.v1", "intuitaccountid": "1" }]).to_string(), "specversion"),
            (json!({ "eventNotifications": [] }).to_string(), "empty"),
            (json!({ "eventNotifications": [{ "dataChangeEvent": { "entities": [] } }] }).to_string(), "realmId"),
            (json!({ "eventNotifications": [{ "realmId": null }] }).to_string(), "realmId"),
            (json!({ "eventNotifications": [{ "realmId": "1", "dataChangeEvent": { "entities": [{ "name": "Bill", "operation": "Update" }] } }] }).to_string(), "id"),
            (json!({ "eventNotifications": [{ "realmId": "1", "dataChangeEvent": { "entities": [{ "name": "", "id": "1", "operation": "Update" }] } }] }).to_string(), "name and operation"),
            (json!({ "eventNotifications": "x" }).to_string(), "not a legacy notification"),
        ];
        for (body, expected) in cases {
            let error = parse(body.as_bytes()).expect_err(&body);
            assert!(error.0.contains(expected), "{body}: {error}");
        }
    }
}
