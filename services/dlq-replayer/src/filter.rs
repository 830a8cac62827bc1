//! Which dead letters an operator means: by topic, time range, key, tenant, error class and kind,
//! ids, and fields of the decoded original event (`loan.status=Funded`).

use chrono::{DateTime, Duration, Utc};
use dlq_api::FilterSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::read::Item;

/// Longest key, tenant, class or kind a filter takes.
const MAX_TEXT: usize = 256;

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

/// RFC 3339, or `<n>s|m|h|d` ago. Never before the epoch (Kafka's timestamps start there).
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        t.with_timezone(&Utc)
    } else {
        let expected = || format!("{raw:?}: expected RFC 3339 or a duration like 15m, 2h, 7d");
        let unit = raw.chars().last().ok_or_else(expected)?;
        let n: i64 = raw[..raw.len() - unit.len_utf8()].parse().ok().filter(|n| *n >= 0).ok_or_else(expected)?;
        let ago = match unit {
            's' => Duration::try_seconds(n),
            'm' => Duration::try_minutes(n),
            'h' => Duration::try_hours(n),
            'd' => Duration::try_days(n),
            _ => return Err(format!("{raw:?}: the unit is s, m, h or d")),
        };
        ago.and_then(|ago| Utc::now().checked_sub_signed(ago)).ok_or_else(|| format!("{raw:?}: too far back"))?
    };
    Ok(at.max(DateTime::UNIX_EPOCH))
}

impl Filter {
    /// The filter an API caller described, checked: topics are dead-letter topics, ids are
    /// UUIDs, times parse, texts are of reasonable length.
    pub fn from_spec(spec: &FilterSpec) -> Result<Self, String> {
        let topic_ok = |t: &String| {
            t.strip_prefix("deadletter.").is_some_and(|rest| !rest.is_empty() && rest.len() <= 200 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        };
        if let Some(bad) = spec.topics.iter().find(|t| !topic_ok(t)) {
            return Err(format!("topic {bad:?} is not a dead-letter topic (deadletter.<consumer group>.v1)"));
        }
        if let Some(bad) = spec.ids.iter().find(|id| uuid::Uuid::parse_str(id).is_err()) {
            return Err(format!("id {bad:?} is not a dead-letter id (a UUID)"));
        }
        if spec.topics.len() > 50 || spec.ids.len() > dlq_api::MAX_IDS || spec.fields.len() > 20 {
            return Err(format!("at most 50 topics, {} ids and 20 fields", dlq_api::MAX_IDS));
        }
        for (name, value) in [("key", &spec.key), ("tenant", &spec.tenant), ("class", &spec.class), ("kind", &spec.kind)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT) {
                return Err(format!("{name} is at most {MAX_TEXT} characters"));
            }
        }
        let time = |raw: &Option<String>| raw.as_deref().filter(|r| !r.trim().is_empty()).map(parse_time).transpose();
        Ok(Self {
            topics: spec.topics.clone(),
            since: time(&spec.since)?,
            until: time(&spec.until)?,
            key: spec.key.clone(),
            tenant: spec.tenant.clone(),
            class: spec.class.clone(),
            kind: spec.kind.clone(),
            ids: spec.ids.clone(),
            fields: spec.fields.iter().map(|f| if f.len() > 512 { Err(format!("{f:?}: at most 512 characters")) } else { FieldMatch::parse(f) }).collect::<Result<_, _>>()?,
        })
    }

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

    #[test]
    fn times_are_rfc_3339_or_a_duration_ago_and_never_panic() {
        let t = parse_time("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let ago = Utc::now() - parse_time("2h").unwrap();
        assert!((ago.num_minutes() - 120).abs() <= 1);
        assert_eq!(parse_time("1960-01-01T00:00:00Z").unwrap(), DateTime::UNIX_EPOCH, "clamped to the epoch");
        for bad in ["", "h", "-5m", "5x", "5é", "é", "99999999999999999d", "1.5h"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn specs_are_checked() {
        let spec = |f: fn(&mut FilterSpec)| {
            let mut s = FilterSpec::default();
            f(&mut s);
            Filter::from_spec(&s)
        };
        assert_eq!(spec(|_| {}).unwrap(), Filter::default());
        assert!(spec(|s| s.topics = vec!["deadletter.ventures-sync.commands.v1".into()]).is_ok());
        assert!(spec(|s| s.topics = vec!["ventures.loan.status-changed.v1".into()]).is_err());
        assert!(spec(|s| s.topics = vec!["deadletter.".into()]).is_err());
        assert!(spec(|s| s.ids = vec!["not-a-uuid".into()]).is_err());
        assert!(spec(|s| s.fields = vec!["loan.status".into()]).is_err());
        assert!(spec(|s| s.since = Some("yesterday".into())).is_err());
        assert!(spec(|s| s.since = Some(" ".into())).unwrap().since.is_none());
        assert!(spec(|s| s.tenant = Some("t".repeat(257))).is_err());
    }
}
