//! Firestore documents as JSON (what the checkpoint stores and change events carry), and the diff
//! of two versions of a document as dotted field paths.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use firestore::gcloud_sdk::google::firestore::v1::{Value, value::ValueType};
use serde_json::{Map, Value as Json, json};

/// A Firestore value as JSON: integers stay numbers (Brain keeps them within ±2^53), timestamps
/// become RFC 3339 strings, bytes base64, references their path, geo points `{lat, lng}`.
pub fn to_json(value: &Value) -> Json {
    match &value.value_type {
        None | Some(ValueType::NullValue(_)) => Json::Null,
        Some(ValueType::BooleanValue(b)) => json!(b),
        Some(ValueType::IntegerValue(i)) => json!(i),
        Some(ValueType::DoubleValue(d)) => json!(d),
        Some(ValueType::TimestampValue(t)) => chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map_or(Json::Null, |t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        Some(ValueType::StringValue(s)) => json!(s),
        Some(ValueType::BytesValue(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(ValueType::ReferenceValue(r)) => json!(r),
        Some(ValueType::GeoPointValue(g)) => json!({ "lat": g.latitude, "lng": g.longitude }),
        Some(ValueType::ArrayValue(a)) => Json::Array(a.values.iter().map(to_json).collect()),
        Some(ValueType::MapValue(m)) => Json::Object(fields_to_json(&m.fields)),
        #[allow(unreachable_patterns)]
        Some(_) => Json::Null,
    }
}

/// A document's fields as a JSON object (keys sorted).
pub fn fields_to_json(fields: &HashMap<String, Value>) -> Map<String, Json> {
    let sorted: BTreeMap<&String, &Value> = fields.iter().collect();
    sorted.into_iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// The dotted paths whose values differ between `old` and `new`, with the old and new value of
/// each (`None`: absent). Objects (Firestore maps) are compared key by key, down to their leaves
/// (a map that appears or disappears reports each of its fields; an empty one reports itself);
/// everything else, arrays included, as a whole.
pub fn diff(old: &Map<String, Json>, new: &Map<String, Json>) -> Vec<(String, Option<Json>, Option<Json>)> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn diff_into(prefix: &str, old: &Map<String, Json>, new: &Map<String, Json>, out: &mut Vec<(String, Option<Json>, Option<Json>)>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let empty = Map::new();
        match (old.get(key), new.get(key)) {
            (Some(Json::Object(a)), Some(Json::Object(b))) => diff_into(&path, a, b, out),
            (None, Some(Json::Object(b))) if !b.is_empty() => diff_into(&path, &empty, b, out),
            (Some(Json::Object(a)), None) if !a.is_empty() => diff_into(&path, a, &empty, out),
            (a, b) if a != b => out.push((path, a.cloned(), b.cloned())),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn diffs_name_the_changed_paths_with_both_values() {
        let old = obj(json!({ "a": 1, "draft": { "name": "x", "amount": 5 }, "gone": true, "same": [1, 2] }));
        let new = obj(json!({ "a": 2, "draft": { "name": "y", "amount": 5 }, "added": "z", "same": [1, 2] }));
        let changes = diff(&old, &new);
        let paths: Vec<&str> = changes.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, ["a", "added", "draft.name", "gone"]);
        assert_eq!(changes[0], ("a".into(), Some(json!(1)), Some(json!(2))));
        assert_eq!(changes[1].1, None);
        assert_eq!(changes[3].2, None);
        assert!(diff(&old, &old).is_empty());
        let added = diff(&obj(json!({})), &obj(json!({ "draft": { "name": "x" }, "tags": {} })));
        assert_eq!(added, vec![("draft.name".into(), None, Some(json!("x"))), ("tags".into(), None, Some(json!({})))]);
    }

    #[test]
    fn firestore_values_become_plain_json() {
        let int = Value { value_type: Some(ValueType::IntegerValue(7)) };
        let text = Value { value_type: Some(ValueType::StringValue("s".into())) };
        let time = Value { value_type: Some(ValueType::TimestampValue(firestore::gcloud_sdk::prost_types::Timestamp { seconds: 0, nanos: 5_000_000 })) };
        let map = Value {
            value_type: Some(ValueType::MapValue(firestore::gcloud_sdk::google::firestore::v1::MapValue {
                fields: HashMap::from([("i".to_string(), int.clone()), ("t".to_string(), text.clone())]),
            })),
        };
        assert_eq!(to_json(&int), json!(7));
        assert_eq!(to_json(&time), json!("1970-01-01T00:00:00.005Z"));
        assert_eq!(to_json(&map), json!({ "i": 7, "t": "s" }));
        assert_eq!(to_json(&Value { value_type: None }), Json::Null);
    }
}
