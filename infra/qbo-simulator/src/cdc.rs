//! Change data capture: `GET .../cdc?entities=Bill,Invoice&changedSince=<ISO-8601>`.
//!
//! As documented by Intuit: objects changed at or after `changedSince` (at most `cdc_lookback`,
//! 30 days, back; older is a ValidationFault), grouped by entity type in the order asked, each
//! group in `LastUpdatedTime` order with deleted objects after the active ones, and at most
//! `cdc_max_objects` (1,000) objects in all: a full response may be truncated, later groups
//! first. Deleted objects are `{"status":"Deleted","domain":"QBO","Id","MetaData":{"LastUpdatedTime"}}`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use crate::{clock::SimClock, error::Fault, model::EntityKind, realm::Realm};

#[derive(Debug, Clone, PartialEq)]
pub struct CdcRequest {
    pub entities: Vec<EntityKind>,
    pub changed_since: DateTime<Utc>,
}

fn missing(param: &str) -> Fault {
    Fault::validation(
        "2020",
        "Required param missing, need to supply the required value for the API",
        format!("Required parameter {param} is missing in the request"),
    )
}

/// Parses and checks the two parameters against the simulated now.
pub fn parse(
    entities: Option<&str>,
    changed_since: Option<&str>,
    clock: &SimClock,
    lookback: Duration,
) -> Result<CdcRequest, Fault> {
    let entities = entities
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| missing("entities"))?;
    let mut kinds = Vec::new();
    for name in entities.split(',') {
        let kind = EntityKind::parse(name).ok_or_else(|| {
            Fault::validation(
                "4001",
                "Invalid query",
                format!("QueryValidationError: unsupported entity in entities: {name}"),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let text = changed_since
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| missing("changedSince"))?;
    let since = clock.parse(text).ok_or_else(|| {
        Fault::validation(
            "2040",
            "Invalid date/time",
            format!("changedSince is not an ISO-8601 date/time: {text}"),
        )
    })?;
    let oldest = clock.now() - TimeDelta::from_std(lookback).unwrap_or(TimeDelta::days(30));
    if since < oldest {
        return Err(Fault::validation(
            "4001",
            "Invalid query",
            format!(
                "QueryValidationError: changedSince {text} is more than {} days ago; \
                 CDC can only look back {} days",
                lookback.as_secs() / 86_400,
                lookback.as_secs() / 86_400
            ),
        ));
    }
    Ok(CdcRequest {
        entities: kinds,
        changed_since: since,
    })
}

/// The `QueryResponse` array of the single `CDCResponse` element.
pub fn execute(request: &CdcRequest, realm: &Realm, clock: &SimClock, cap: usize) -> Value {
    let mut left = cap;
    let groups: Vec<Value> = request
        .entities
        .iter()
        .map(|&kind| {
            let mut changed: Vec<_> = realm
                .table(kind)
                .records
                .values()
                .filter(|r| r.updated >= request.changed_since)
                .collect();
            changed.sort_by_key(|r| (r.deleted, r.updated, r.id));
            let objects: Vec<Value> = changed
                .iter()
                .take(left)
                .map(|r| r.to_json(clock))
                .collect();
            left -= objects.len();
            if objects.is_empty() {
                return json!({});
            }
            let mut group = Map::new();
            group.insert("startPosition".into(), json!(1));
            group.insert("maxResults".into(), json!(objects.len()));
            group.insert("totalCount".into(), json!(objects.len()));
            group.insert(kind.name().into(), Value::Array(objects));
            Value::Object(group)
        })
        .collect();
    json!([{"QueryResponse": groups}])
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::model::{Entity, Party};

    fn vendor() -> Entity {
        Entity::Vendor(Party {
            display_name: "v".into(),
            active: true,
            balance: 0.0,
            extra: Map::new(),
        })
    }

    #[test]
    fn lookback_and_parameters_are_checked() {
        let clock = SimClock::wall();
        let month = Duration::from_secs(30 * 86_400);
        let recent = clock.format(clock.now() - TimeDelta::days(29));
        let old = clock.format(clock.now() - TimeDelta::days(31));
        assert!(
            parse(Some("Bill,invoice,Bill"), Some(&recent), &clock, month)
                .is_ok_and(|r| r.entities.len() == 2)
        );
        assert_eq!(
            parse(Some("Bill"), Some(&old), &clock, month)
                .unwrap_err()
                .error
                .code,
            "4001"
        );
        assert_eq!(
            parse(None, Some(&recent), &clock, month)
                .unwrap_err()
                .error
                .code,
            "2020"
        );
        assert_eq!(
            parse(Some("Bill"), Some("soon"), &clock, month)
                .unwrap_err()
                .error
                .code,
            "2040"
        );
    }

    #[test]
    fn deleted_follow_active_and_the_cap_holds() {
        let clock = SimClock::wall();
        let mut realm = Realm::new("1", "Co");
        let now = clock.now_millis();
        for _ in 0..5 {
            realm.create(vendor(), now);
        }
        let request = CdcRequest {
            entities: vec![EntityKind::Vendor, EntityKind::Bill],
            changed_since: now,
        };
        let all = execute(&request, &realm, &clock, 1000);
        assert_eq!(
            all[0]["QueryResponse"][0]["Vendor"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(all[0]["QueryResponse"][1], json!({}));
        let capped = execute(&request, &realm, &clock, 3);
        assert_eq!(capped[0]["QueryResponse"][0]["maxResults"], 3);
    }
}
