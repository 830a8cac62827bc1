//! The QBO query language, as much of it as a sync client uses:
//!
//! ```text
//! SELECT * | COUNT(*) | Field[, Field...] FROM Entity
//!   [WHERE Field op literal [AND ...]]        op: = != < > <= >= IN (...) LIKE '%x%'
//!   [ORDERBY Field [ASC|DESC][, ...]] [STARTPOSITION n] [MAXRESULTS n]
//! ```
//!
//! Keywords and entity names are case-insensitive; `STARTPOSITION` is 1-based (default 1, below 1
//! is a parse error); `MAXRESULTS` defaults to 100 and is capped at 1000, as in QBO. Deleted
//! entities are never returned. Without `ORDERBY`, results are in `Id` order.

mod parse;

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub use self::parse::parse;
use crate::{
    clock::SimClock,
    model::{EntityKind, Record},
    realm::Realm,
};

pub const DEFAULT_MAX_RESULTS: usize = 100;
pub const MAX_RESULTS_CAP: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub values: Vec<Literal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub entity: EntityKind,
    pub count: bool,
    /// `None` for `*`.
    pub fields: Option<Vec<String>>,
    pub conditions: Vec<Condition>,
    pub order: Vec<(String, bool)>,
    pub start_position: usize,
    pub max_results: usize,
}

/// A record's value for a field, for filtering and sorting.
enum Key {
    Time(DateTime<Utc>),
    Number(f64),
    Json(Value),
}

fn key(record: &Record, field: &str, body: &mut Option<Map<String, Value>>) -> Key {
    if field.eq_ignore_ascii_case("Id") {
        return Key::Number(record.id as f64);
    }
    if field.eq_ignore_ascii_case("MetaData.LastUpdatedTime") {
        return Key::Time(record.updated);
    }
    if field.eq_ignore_ascii_case("MetaData.CreateTime") {
        return Key::Time(record.created);
    }
    if field.eq_ignore_ascii_case("SyncToken") {
        return Key::Number(record.sync_token as f64);
    }
    let body = body.get_or_insert_with(|| record.body.to_map());
    let mut value = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field.split('.').next().unwrap_or(field)))
        .map(|(_, v)| v);
    for part in field.split('.').skip(1) {
        value = value.and_then(|v| v.as_object()).and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(part))
                .map(|(_, v)| v)
        });
    }
    Key::Json(value.cloned().unwrap_or(Value::Null))
}

fn compare(key: &Key, literal: &Literal, clock: &SimClock) -> Option<Ordering> {
    match (key, literal) {
        (Key::Time(t), Literal::Text(s)) => clock.parse(s).map(|l| t.cmp(&l)),
        (Key::Number(n), Literal::Number(l)) => n.partial_cmp(l),
        (Key::Number(n), Literal::Text(s)) => s.parse::<f64>().ok().and_then(|l| n.partial_cmp(&l)),
        (Key::Json(Value::Number(n)), Literal::Number(l)) => n.as_f64()?.partial_cmp(l),
        (Key::Json(Value::Number(n)), Literal::Text(s)) => {
            n.as_f64()?.partial_cmp(&s.parse().ok()?)
        }
        (Key::Json(Value::String(v)), Literal::Text(s)) => Some(v.as_str().cmp(s.as_str())),
        (Key::Json(Value::Bool(v)), Literal::Bool(b)) => Some(v.cmp(b)),
        (Key::Json(Value::Bool(v)), Literal::Text(s)) => {
            Some(v.to_string().as_str().cmp(s.as_str()))
        }
        _ => None,
    }
}

fn like(key: &Key, pattern: &str) -> bool {
    let Key::Json(Value::String(value)) = key else {
        return false;
    };
    let (value, pattern) = (value.to_lowercase(), pattern.to_lowercase());
    match (pattern.strip_prefix('%'), pattern.strip_suffix('%')) {
        (Some(rest), _) if rest.ends_with('%') => value.contains(&rest[..rest.len() - 1]),
        (Some(rest), _) => value.ends_with(rest),
        (None, Some(rest)) => value.starts_with(rest),
        (None, None) => value == pattern,
    }
}

fn matches(
    record: &Record,
    cond: &Condition,
    clock: &SimClock,
    body: &mut Option<Map<String, Value>>,
) -> bool {
    let key = key(record, &cond.field, body);
    let ord = |l: &Literal| compare(&key, l, clock);
    match cond.op {
        Op::Eq => ord(&cond.values[0]) == Some(Ordering::Equal),
        Op::Ne => ord(&cond.values[0]).is_some_and(|o| o != Ordering::Equal),
        Op::Lt => ord(&cond.values[0]) == Some(Ordering::Less),
        Op::Gt => ord(&cond.values[0]) == Some(Ordering::Greater),
        Op::Le => ord(&cond.values[0]).is_some_and(|o| o != Ordering::Greater),
        Op::Ge => ord(&cond.values[0]).is_some_and(|o| o != Ordering::Less),
        Op::In => cond.values.iter().any(|l| ord(l) == Some(Ordering::Equal)),
        Op::Like => matches!(&cond.values[0], Literal::Text(p) if like(&key, p)),
    }
}

fn order_keys(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Time(a), Key::Time(b)) => a.cmp(b),
        (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
        (Key::Json(Value::Number(a)), Key::Json(Value::Number(b))) => a
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b.as_f64().unwrap_or(0.0)),
        (Key::Json(Value::String(a)), Key::Json(Value::String(b))) => a.cmp(b),
        (Key::Json(Value::Null), Key::Json(Value::Null)) => Ordering::Equal,
        (Key::Json(Value::Null), _) => Ordering::Less,
        (_, Key::Json(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Runs a query against one realm: the `QueryResponse` object.
pub fn execute(query: &Query, realm: &Realm, clock: &SimClock) -> Value {
    let mut hits: Vec<(&Record, Vec<Key>)> = Vec::new();
    for record in realm.active(query.entity) {
        let mut body = None;
        if query
            .conditions
            .iter()
            .all(|c| matches(record, c, clock, &mut body))
        {
            let keys = query
                .order
                .iter()
                .map(|(f, _)| key(record, f, &mut body))
                .collect();
            hits.push((record, keys));
        }
    }
    if query.count {
        return json!({"totalCount": hits.len()});
    }
    if !query.order.is_empty() {
        hits.sort_by(|(ra, a), (rb, b)| {
            query
                .order
                .iter()
                .zip(a.iter().zip(b))
                .map(|((_, desc), (a, b))| {
                    let o = order_keys(a, b);
                    if *desc { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| ra.id.cmp(&rb.id))
        });
    }
    let page: Vec<Value> = hits
        .iter()
        .skip(query.start_position - 1)
        .take(query.max_results)
        .map(|(record, _)| project(record.to_json(clock), query.fields.as_deref()))
        .collect();
    if page.is_empty() {
        return json!({});
    }
    let mut response = Map::new();
    response.insert("startPosition".into(), json!(query.start_position));
    response.insert("maxResults".into(), json!(page.len()));
    response.insert(query.entity.name().into(), Value::Array(page));
    Value::Object(response)
}

/// `SELECT a, b`: only those top-level fields (and `Id`), flagged `sparse`.
fn project(value: Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &value) else {
        return value;
    };
    let mut out: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| {
            *k == "Id"
                || *k == "domain"
                || fields.iter().any(|f| {
                    f.split('.')
                        .next()
                        .is_some_and(|f| f.eq_ignore_ascii_case(k))
                })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("sparse".into(), Value::Bool(true));
    Value::Object(out)
}
