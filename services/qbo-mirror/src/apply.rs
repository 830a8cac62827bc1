//! Applying a page of QBO entities to the mirror: for every change, in **one** PostgreSQL
//! transaction, the mirror row, a transaction-log row (old and new values), the digest's
//! aggregates and an outbox event. Monotonic: a copy that is not newer (by `LastUpdatedTime`, then
//! `SyncToken`) than the mirrored one changes nothing, so a re-fetched page, an overlapping CDC
//! window or a redelivered webhook is harmless and the log has exactly one row per change.
//!
//! Set-wise: a page (up to 1,000 entities) takes a fixed number of statements, not a few per
//! entity. Only the newest copy of each entity in the page counts. Per table, one
//! `SELECT ... = ANY($2) ... FOR UPDATE` locks the mirrored rows of the page's ids; the decisions
//! (newer or not, `create`/`update`/`delete`) are made on them; the aggregates' changes (the old
//! row's contribution, computed from its raw JSON, goes; the new one's comes) are summed per key
//! and applied with one statement per aggregate; the mirror rows are upserted with one `UNNEST`
//! statement per table; the log rows with one (`ON CONFLICT DO NOTHING`: an entity whose log row
//! already exists is not a change and gets no event); the outbox rows with one. Locks are taken
//! in a fixed order: the mirrored rows by table, then id; the aggregates by key; the new rows by
//! table, then id.

mod rows;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub(crate) use rows::upsert;

use crate::{
    client::Entity,
    fields::{Bill, Invoice},
};

/// The namespace of entity-changed event ids (v5 of realm, entity, id, time, sync token).
pub(crate) const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_6f2e_4b7a_4f0e_9d1c_3a2b_1c0d_9e8f);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub changes: usize,
    pub unchanged: usize,
}

/// The mirrored state of one entity, as far as the aggregates and the log need it.
#[derive(Debug, Clone, PartialEq)]
struct Current {
    sync_token: i64,
    last_updated: DateTime<Utc>,
    deleted: bool,
    raw: Value,
}

/// One entity of the page that is newer than its mirrored copy.
struct Change<'a> {
    entity: &'a Entity,
    /// The mirrored copy, if any (deleted or not).
    current: Option<Current>,
    operation: &'static str,
}

impl Change<'_> {
    /// The old value: the mirrored copy unless it is deleted.
    fn old(&self) -> Option<&Value> {
        self.current.as_ref().filter(|c| !c.deleted).map(|c| &c.raw)
    }
}

/// Applies `entities` of `realm` (tenant `tenant`) in one transaction.
pub async fn apply(pool: &PgPool, tenant: &str, realm: &str, entities: &[Entity]) -> Result<Applied, sqlx::Error> {
    let newest = newest(entities);
    if newest.is_empty() {
        return Ok(Applied::default());
    }
    let mut tx = pool.begin().await?;
    // The mirrored rows of the page, locked table by table (the map is in (kind, id) order).
    let mut changes = Vec::new();
    let mut group: Vec<&Entity> = Vec::new();
    for entity in newest.values().copied() {
        if group.first().is_some_and(|g| g.kind != entity.kind) {
            let current = lock_current(&mut tx, realm, group[0].kind, &group).await?;
            changes.extend(decide(&group, current));
            group.clear();
        }
        group.push(entity);
    }
    let current = lock_current(&mut tx, realm, group[0].kind, &group).await?;
    changes.extend(decide(&group, current));
    if changes.is_empty() {
        tx.commit().await?;
        return Ok(Applied { changes: 0, unchanged: newest.len() });
    }

    let aggregates = Aggregates::of(&changes);
    aggregates.apply(&mut tx, realm).await?;
    let entities: Vec<&Entity> = changes.iter().map(|c| c.entity).collect();
    rows::upsert_all(&mut tx, realm, &entities).await?;
    let logged = log(&mut tx, realm, &changes).await?;
    outbox(&mut tx, tenant, realm, changes.iter().filter(|c| logged.contains(&(c.entity.kind, c.entity.id.as_str())))).await?;
    tx.commit().await?;
    Ok(Applied { changes: logged.len(), unchanged: newest.len() - logged.len() })
}

/// The newest copy of each entity only, in (kind, id) order: ties keep the first copy.
fn newest(entities: &[Entity]) -> BTreeMap<(&str, &str), &Entity> {
    let mut newest: BTreeMap<(&str, &str), &Entity> = BTreeMap::new();
    for e in entities {
        let slot = newest.entry((e.kind, e.id.as_str())).or_insert(e);
        if (e.last_updated, e.sync_token) > (slot.last_updated, slot.sync_token) {
            *slot = e;
        }
    }
    newest
}

/// The mirrored rows of `group` (entities of `kind`), locked in id order.
async fn lock_current(tx: &mut Transaction<'_, Postgres>, realm: &str, kind: &str, group: &[&Entity]) -> Result<HashMap<String, Current>, sqlx::Error> {
    // `COLLATE "C"`: the byte order, as Rust sorts the ids (and the upserts insert them).
    let sql = match kind {
        "Bill" => "SELECT id, sync_token, last_updated, deleted, raw FROM bills WHERE realm_id = $1 AND id = ANY($2) ORDER BY id COLLATE \"C\" FOR UPDATE",
        "Invoice" => "SELECT id, sync_token, last_updated, deleted, raw FROM invoices WHERE realm_id = $1 AND id = ANY($2) ORDER BY id COLLATE \"C\" FOR UPDATE",
        _ => "SELECT id, sync_token, last_updated, deleted, raw FROM accounts WHERE realm_id = $1 AND id = ANY($2) ORDER BY id COLLATE \"C\" FOR UPDATE",
    };
    let ids: Vec<&str> = group.iter().map(|e| e.id.as_str()).collect();
    let rows: Vec<(String, i64, DateTime<Utc>, bool, Value)> = sqlx::query_as(sql).bind(realm).bind(&ids).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|(id, sync_token, last_updated, deleted, raw)| (id, Current { sync_token, last_updated, deleted, raw })).collect())
}

/// The entities of `group` that change the mirror, with their operation.
fn decide<'a>(group: &[&'a Entity], mut current: HashMap<String, Current>) -> Vec<Change<'a>> {
    let mut changes = Vec::new();
    for &e in group {
        let current = current.remove(&e.id);
        let newer = current.as_ref().is_none_or(|c| (e.last_updated, e.sync_token) > (c.last_updated, c.sync_token));
        if !newer || (e.deleted && current.as_ref().is_some_and(|c| c.deleted)) {
            continue;
        }
        let operation = match (&current, e.deleted) {
            (_, true) => "delete",
            (Some(c), false) if !c.deleted => "update",
            _ => "create",
        };
        changes.push(Change { entity: e, current, operation });
    }
    changes
}

pub(crate) fn table(kind: &str) -> &'static str {
    match kind {
        "Bill" => "bills",
        "Invoice" => "invoices",
        _ => "accounts",
    }
}

/// The changes to the digest's aggregates, summed per key (every key touched, even when its
/// changes cancel out), in key order.
#[derive(Debug, Default, PartialEq)]
struct Aggregates {
    /// (entity, due date) → (balance cents, documents).
    open_by_due: BTreeMap<(&'static str, NaiveDate), (i64, i32)>,
    /// (vendor id, doc number) → bills.
    bill_doc_numbers: BTreeMap<(String, String), i32>,
}

impl Aggregates {
    fn of(changes: &[Change<'_>]) -> Self {
        let mut out = Self::default();
        for c in changes {
            // The old contribution to the aggregates goes, the new one comes.
            if let Some(old) = c.old() {
                out.contribute(c.entity.kind, old, -1);
            }
            if !c.entity.deleted {
                out.contribute(c.entity.kind, &c.entity.raw, 1);
            }
        }
        out
    }

    /// Adds (`sign` 1) or removes (-1) what one bill or invoice adds to the open amounts per due
    /// date and to the duplicate doc numbers.
    fn contribute(&mut self, kind: &str, raw: &Value, sign: i32) {
        let (kind, due, balance, doc) = match kind {
            "Bill" => {
                let b = Bill::from(raw);
                ("Bill", b.due_date, b.balance_cents, b.vendor_id.zip(b.doc_number))
            }
            "Invoice" => {
                let i = Invoice::from(raw);
                ("Invoice", i.due_date, i.balance_cents, None)
            }
            _ => return,
        };
        if let Some(due) = due.filter(|_| balance > 0) {
            let slot = self.open_by_due.entry((kind, due)).or_default();
            slot.0 += i64::from(sign) * balance;
            slot.1 += sign;
        }
        if let Some(key) = doc {
            *self.bill_doc_numbers.entry(key).or_default() += sign;
        }
    }

    async fn apply(&self, tx: &mut Transaction<'_, Postgres>, realm: &str) -> Result<(), sqlx::Error> {
        if !self.open_by_due.is_empty() {
            let (keys, sums): (Vec<_>, Vec<_>) = self.open_by_due.iter().unzip();
            let (entities, dues): (Vec<&str>, Vec<NaiveDate>) = keys.into_iter().copied().unzip();
            let (cents, documents): (Vec<i64>, Vec<i32>) = sums.into_iter().copied().unzip();
            sqlx::query(
                "INSERT INTO open_by_due (realm_id, entity, due_date, balance_cents, documents)
                 SELECT $1, u.entity, u.due_date, u.balance_cents, u.documents
                 FROM UNNEST($2::text[], $3::date[], $4::int8[], $5::int4[]) AS u (entity, due_date, balance_cents, documents)
                 ON CONFLICT (realm_id, entity, due_date) DO UPDATE SET balance_cents = open_by_due.balance_cents + EXCLUDED.balance_cents,
                     documents = open_by_due.documents + EXCLUDED.documents",
            )
            .bind(realm)
            .bind(entities)
            .bind(dues)
            .bind(cents)
            .bind(documents)
            .execute(&mut **tx)
            .await?;
        }
        if !self.bill_doc_numbers.is_empty() {
            let (keys, bills): (Vec<_>, Vec<i32>) = self.bill_doc_numbers.iter().map(|(k, n)| (k, *n)).unzip();
            let (vendors, docs): (Vec<&str>, Vec<&str>) = keys.into_iter().map(|(v, d)| (v.as_str(), d.as_str())).unzip();
            sqlx::query(
                "INSERT INTO bill_doc_numbers (realm_id, vendor_id, doc_number, bills)
                 SELECT $1, u.vendor_id, u.doc_number, u.bills FROM UNNEST($2::text[], $3::text[], $4::int4[]) AS u (vendor_id, doc_number, bills)
                 ON CONFLICT (realm_id, vendor_id, doc_number) DO UPDATE SET bills = bill_doc_numbers.bills + EXCLUDED.bills",
            )
            .bind(realm)
            .bind(vendors)
            .bind(docs)
            .bind(bills)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// One log row per change (old and new values); the (kind, id) of those inserted: a row already
/// there (the same version) makes its entity no change.
async fn log<'a>(tx: &mut Transaction<'_, Postgres>, realm: &str, changes: &[Change<'a>]) -> Result<HashSet<(&'a str, &'a str)>, sqlx::Error> {
    let n = changes.len();
    let (mut kinds, mut ids, mut tokens, mut times, mut operations, mut olds, mut news) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for c in changes {
        let e = c.entity;
        kinds.push(e.kind);
        ids.push(e.id.as_str());
        tokens.push(e.sync_token);
        times.push(e.last_updated);
        operations.push(c.operation);
        olds.push(c.old());
        news.push((!e.deleted).then_some(&e.raw));
    }
    let inserted: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO transaction_log (realm_id, entity, entity_id, sync_token, last_updated, operation, old, new)
         SELECT $1, u.entity, u.entity_id, u.sync_token, u.last_updated, u.operation, u.old, u.new
         FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::text[], $7::jsonb[], $8::jsonb[])
             AS u (entity, entity_id, sync_token, last_updated, operation, old, new)
         ON CONFLICT DO NOTHING
         RETURNING entity, entity_id",
    )
    .bind(realm)
    .bind(&kinds)
    .bind(&ids)
    .bind(&tokens)
    .bind(&times)
    .bind(&operations)
    .bind(&olds)
    .bind(&news)
    .fetch_all(&mut **tx)
    .await?;
    let inserted: HashSet<(String, String)> = inserted.into_iter().collect();
    // Borrowed from the page rather than the answer.
    Ok(changes
        .iter()
        .map(|c| (c.entity.kind, c.entity.id.as_str()))
        .filter(|(kind, id)| inserted.contains(&(kind.to_string(), id.to_string())))
        .collect())
}

/// The entity-changed event of a change.
fn event(tenant: &str, realm: &str, c: &Change<'_>) -> Value {
    let e = c.entity;
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, format!("{realm}:{}:{}:{}:{}", e.kind, e.id, e.last_updated.timestamp_millis(), e.sync_token).as_bytes());
    json!({
        "event_id": event_id.to_string(),
        "occurred_at": e.last_updated.timestamp_millis(),
        "tenant_id": tenant,
        "realm_id": realm,
        "entity": e.kind,
        "entity_id": e.id,
        "operation": c.operation,
        "sync_token": e.sync_token,
        "correlation_id": event_id.to_string(),
        "producer": crate::SERVICE,
    })
}

/// One outbox row per logged change, in the page's order.
async fn outbox<'a>(tx: &mut Transaction<'_, Postgres>, tenant: &str, realm: &str, logged: impl Iterator<Item = &'a Change<'a>>) -> Result<(), sqlx::Error> {
    let (keys, events): (Vec<String>, Vec<Value>) = logged.map(|c| (format!("{realm}:{}:{}", c.entity.kind, c.entity.id), event(tenant, realm, c))).unzip();
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO outbox (key, event) SELECT * FROM UNNEST($1::text[], $2::jsonb[])").bind(keys).bind(events).execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn entity(kind: &'static str, id: &str, sync_token: i64, second: u32, deleted: bool, raw: Value) -> Entity {
        Entity { kind, id: id.into(), sync_token, last_updated: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(), deleted, raw }
    }

    fn current(sync_token: i64, second: u32, deleted: bool, raw: Value) -> Current {
        Current { sync_token, last_updated: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(), deleted, raw }
    }

    fn bill(due: &str, balance: f64, vendor: &str, doc: &str) -> Value {
        json!({"DueDate": due, "Balance": balance, "TotalAmt": balance, "VendorRef": {"value": vendor}, "DocNumber": doc})
    }

    #[test]
    fn the_newest_copy_of_each_entity_counts_in_kind_and_id_order() {
        let page = [
            entity("Bill", "2", 1, 5, false, json!({"copy": "a"})),
            entity("Bill", "2", 2, 5, false, json!({"copy": "b"})),
            entity("Bill", "2", 9, 4, false, json!({"copy": "older time"})),
            entity("Account", "9", 1, 1, false, json!({})),
            entity("Bill", "10", 1, 1, false, json!({"copy": "first"})),
            entity("Bill", "10", 1, 1, false, json!({"copy": "tie"})),
        ];
        let newest = newest(&page);
        assert_eq!(newest.keys().copied().collect::<Vec<_>>(), [("Account", "9"), ("Bill", "10"), ("Bill", "2")]);
        assert_eq!(newest[&("Bill", "2")].raw["copy"], "b");
        assert_eq!(newest[&("Bill", "10")].raw["copy"], "first", "a tie keeps the first copy");
    }

    #[test]
    fn only_newer_copies_change_the_mirror_with_their_operation() {
        let page = [
            entity("Bill", "new", 0, 1, false, json!({})),
            entity("Bill", "newer", 3, 2, false, json!({})),
            entity("Bill", "same", 3, 2, false, json!({})),
            entity("Bill", "older", 3, 1, false, json!({})),
            entity("Bill", "higher-token", 4, 2, false, json!({})),
            entity("Bill", "deleted-again", i64::MAX, 9, true, json!({})),
            entity("Bill", "deleted", i64::MAX, 9, true, json!({})),
            entity("Bill", "deleted-unknown", i64::MAX, 9, true, json!({})),
            entity("Bill", "back", 5, 9, false, json!({})),
        ];
        let group: Vec<&Entity> = page.iter().collect();
        let mirrored: HashMap<String, Current> = [
            ("newer", current(2, 1, false, json!({"v": 2}))),
            ("same", current(3, 2, false, json!({}))),
            ("older", current(3, 2, false, json!({}))),
            ("higher-token", current(3, 2, false, json!({}))),
            ("deleted-again", current(i64::MAX, 8, true, json!({}))),
            ("deleted", current(2, 1, false, json!({"v": "live"}))),
            ("back", current(i64::MAX, 8, true, json!({"status": "Deleted"}))),
        ]
        .into_iter()
        .map(|(id, c)| (id.to_string(), c))
        .collect();
        let changes = decide(&group, mirrored);
        let got: Vec<(&str, &str, Option<&Value>)> = changes.iter().map(|c| (c.entity.id.as_str(), c.operation, c.old())).collect();
        assert_eq!(
            got,
            [
                ("new", "create", None),
                ("newer", "update", Some(&json!({"v": 2}))),
                ("higher-token", "update", Some(&json!({}))),
                ("deleted", "delete", Some(&json!({"v": "live"}))),
                ("deleted-unknown", "delete", None),
                ("back", "create", None),
            ]
        );
    }

    #[test]
    fn aggregate_changes_are_summed_per_key_and_keep_keys_that_cancel_out() {
        let page = [
            // Moved from one due date to another, same doc number: both dates touched, the doc
            // number's count unchanged but touched.
            entity("Bill", "1", 2, 2, false, bill("2026-02-01", 10.0, "v1", "D-1")),
            // New, open, the same due date as the first one's new one.
            entity("Bill", "2", 0, 2, false, bill("2026-02-01", 5.5, "v1", "D-1")),
            // Deleted: its old contribution goes.
            entity("Bill", "3", i64::MAX, 2, true, json!({})),
            // Paid: no open amount any more, the doc number stays.
            entity("Invoice", "4", 2, 2, false, json!({"DueDate": "2026-03-01", "Balance": 0})),
            // Not newer: nothing.
            entity("Bill", "5", 1, 1, false, bill("2026-09-09", 99.0, "v9", "D-9")),
        ];
        let group: Vec<&Entity> = page.iter().collect();
        let mirrored: HashMap<String, Current> = [
            ("1", current(1, 1, false, bill("2026-01-15", 10.0, "v1", "D-1"))),
            ("3", current(1, 1, false, bill("2026-02-01", 1.0, "v2", "D-2"))),
            ("4", current(1, 1, false, json!({"DueDate": "2026-03-01", "Balance": 7.0}))),
            ("5", current(1, 1, false, bill("2026-09-09", 99.0, "v9", "D-9"))),
        ]
        .into_iter()
        .map(|(id, c)| (id.to_string(), c))
        .collect();
        let aggregates = Aggregates::of(&decide(&group, mirrored));
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            aggregates.open_by_due.into_iter().collect::<Vec<_>>(),
            [
                (("Bill", date("2026-01-15")), (-1000, -1)),
                (("Bill", date("2026-02-01")), (1000 + 550 - 100, 2 - 1)),
                (("Invoice", date("2026-03-01")), (-700, -1)),
            ]
        );
        assert_eq!(
            aggregates.bill_doc_numbers.into_iter().collect::<Vec<_>>(),
            [(("v1".to_string(), "D-1".to_string()), 1), (("v2".to_string(), "D-2".to_string()), -1)]
        );
    }
}
