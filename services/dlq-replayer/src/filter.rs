//! Which dead letters an operator means: by topic, time range, key, tenant, error class and kind,
//! ids, and fields of the decoded original event (`loan.status=Funded`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::read::Item;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Dead-letter topics (catalogue names, e.g. `deadletter.projection-writer.v1`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Dead-lettered at or after (the scan starts at the offsets for this time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `permanent` or `transient_exhausted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Dead-letter ids; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// `path=value` on the decoded original event (dotted path; the value compared as text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMatch {
    pub path: String,
    pub value: String,
}

impl FieldMatch {
    /// `loan.status=Funded`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (path, value) = raw.split_once('=').ok_or_else(|| format!("{raw:?}: expected path=value"))?;
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("{raw:?}: the path is dotted field names, e.g. loan.status"));
        }
        Ok(Self { path: path.to_string(), value: value.trim().to_string() })
    }

    fn matches(&self, event: &Value) -> bool {
        let found = self.path.split('.').try_fold(event, |v, k| v.get(k));
        match found {
            Some(Value::String(s)) => *s == self.value,
            Some(Value::Null) | None => self.value == "null" && found.is_some(),
            Some(other) => serde_json::to_string(other).ok().as_deref() == Some(self.value.as_str()),
        }
    }
}

impl Filter {
    pub fn matches(&self, item: &Item) -> bool {
        let e = &item.envelope;
        let at = DateTime::from_timestamp_millis(e.dead_lettered_at);
        let key = e.key.as_deref().map(String::from_utf8_lossy);
        (self.ids.is_empty() || self.ids.contains(&e.dead_letter_id))
            && self.since.is_none_or(|since| at.is_some_and(|at| at >= since))
            && self.until.is_none_or(|until| at.is_some_and(|at| at < until))
            && self.key.as_ref().is_none_or(|k| key.as_deref() == Some(k.as_str()))
            && self.tenant.as_ref().is_none_or(|t| item.tenant().as_deref() == Some(t.as_str()))
            && self.class.as_ref().is_none_or(|c| *c == e.error_class)
            && self.kind.as_ref().is_none_or(|k| *k == e.error_kind)
            && self.fields.iter().all(|f| item.event.as_ref().is_some_and(|event| f.matches(event)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_matches_look_into_the_decoded_event() {
        let event = json!({ "loan": { "status": "Funded", "version": 3 }, "causation_id": null });
        assert!(FieldMatch::parse("loan.status=Funded").unwrap().matches(&event));
        assert!(FieldMatch::parse("loan.version=3").unwrap().matches(&event));
        assert!(!FieldMatch::parse("loan.status=Open").unwrap().matches(&event));
        assert!(FieldMatch::parse("causation_id=null").unwrap().matches(&event));
        assert!(!FieldMatch::parse("missing=null").unwrap().matches(&event));
        assert!(FieldMatch::parse("nope").is_err());
        assert!(FieldMatch::parse("a..b=1").is_err());
    }
}
