//! Applying a page of QBO entities to the mirror: for every change, in **one** PostgreSQL
//! transaction, the mirror row, a transaction-log row (old and new values), the digest's
//! aggregates and an outbox event. Monotonic: a copy that is not newer (by `LastUpdatedTime`, then
//! `SyncToken`) than the mirrored one changes nothing, so a re-fetched page, an overlapping CDC
//! window or a redelivered webhook is harmless and the log has exactly one row per change.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    client::Entity,
    fields::{Account, Bill, Invoice},
};

/// The namespace of entity-changed event ids (v5 of realm, entity, id, time, sync token).
pub(crate) const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_6f2e_4b7a_4f0e_9d1c_3a2b_1c0d_9e8f);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub changes: usize,
    pub unchanged: usize,
}

/// The mirrored state of one entity, as far as the aggregates need it.
struct Current {
    sync_token: i64,
    last_updated: DateTime<Utc>,
    deleted: bool,
    raw: Value,
}

/// Applies `entities` of `realm` (tenant `tenant`) in one transaction.
pub async fn apply(pool: &PgPool, tenant: &str, realm: &str, entities: &[Entity]) -> Result<Applied, sqlx::Error> {
    // The newest copy of each entity only, in key order (rows locked in a stable order).
    let mut newest: BTreeMap<(&str, &str), &Entity> = BTreeMap::new();
    for e in entities {
        let slot = newest.entry((e.kind, e.id.as_str())).or_insert(e);
        if (e.last_updated, e.sync_token) > (slot.last_updated, slot.sync_token) {
            *slot = e;
        }
    }
    let mut tx = pool.begin().await?;
    let mut applied = Applied::default();
    for entity in newest.into_values() {
        if apply_one(&mut tx, tenant, realm, entity).await? {
            applied.changes += 1;
        } else {
            applied.unchanged += 1;
        }
    }
    tx.commit().await?;
    Ok(applied)
}

async fn apply_one(tx: &mut Transaction<'_, Postgres>, tenant: &str, realm: &str, e: &Entity) -> Result<bool, sqlx::Error> {
    let table = table(e.kind);
    let current: Option<(i64, DateTime<Utc>, bool, Value)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT sync_token, last_updated, deleted, raw FROM {table} WHERE realm_id = $1 AND id = $2 FOR UPDATE")))
            .bind(realm)
            .bind(&e.id)
            .fetch_optional(&mut **tx)
            .await?;
    let current = current.map(|(sync_token, last_updated, deleted, raw)| Current { sync_token, last_updated, deleted, raw });
    let newer = current.as_ref().is_none_or(|c| (e.last_updated, e.sync_token) > (c.last_updated, c.sync_token));
    if !newer || (e.deleted && current.as_ref().is_some_and(|c| c.deleted)) {
        return Ok(false);
    }
    let operation = match (&current, e.deleted) {
        (_, true) => "delete",
        (Some(c), false) if !c.deleted => "update",
        _ => "create",
    };
    // The old contribution to the aggregates goes, the new one comes.
    if let Some(c) = current.as_ref().filter(|c| !c.deleted) {
        contribute(tx, realm, e.kind, &c.raw, -1).await?;
    }
    if !e.deleted {
        contribute(tx, realm, e.kind, &e.raw, 1).await?;
    }
    upsert(tx, realm, e).await?;
    let inserted = sqlx::query(
        "INSERT INTO transaction_log (realm_id, entity, entity_id, sync_token, last_updated, operation, old, new)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(realm)
    .bind(e.kind)
    .bind(&e.id)
    .bind(e.sync_token)
    .bind(e.last_updated)
    .bind(operation)
    .bind(current.as_ref().filter(|c| !c.deleted).map(|c| &c.raw))
    .bind((!e.deleted).then_some(&e.raw))
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, format!("{realm}:{}:{}:{}:{}", e.kind, e.id, e.last_updated.timestamp_millis(), e.sync_token).as_bytes());
    let event = json!({
        "event_id": event_id.to_string(),
        "occurred_at": e.last_updated.timestamp_millis(),
        "tenant_id": tenant,
        "realm_id": realm,
        "entity": e.kind,
        "entity_id": e.id,
        "operation": operation,
        "sync_token": e.sync_token,
        "correlation_id": event_id.to_string(),
        "producer": crate::SERVICE,
    });
    sqlx::query("INSERT INTO outbox (key, event) VALUES ($1, $2)").bind(format!("{realm}:{}:{}", e.kind, e.id)).bind(event).execute(&mut **tx).await?;
    Ok(true)
}

pub(crate) fn table(kind: &str) -> &'static str {
    match kind {
        "Bill" => "bills",
        "Invoice" => "invoices",
        _ => "accounts",
    }
}

/// Adds (`sign` 1) or removes (-1) what one bill or invoice adds to the open amounts per due date
/// and to the duplicate doc numbers.
async fn contribute(tx: &mut Transaction<'_, Postgres>, realm: &str, kind: &str, raw: &Value, sign: i64) -> Result<(), sqlx::Error> {
    let (due, balance, doc) = match kind {
        "Bill" => {
            let b = Bill::from(raw);
            (b.due_date, b.balance_cents, b.vendor_id.zip(b.doc_number))
        }
        "Invoice" => {
            let i = Invoice::from(raw);
            (i.due_date, i.balance_cents, None)
        }
        _ => return Ok(()),
    };
    if let Some(due) = due.filter(|_| balance > 0) {
        add_open(tx, realm, kind, due, sign * balance, sign).await?;
    }
    if let Some((vendor, doc)) = doc {
        sqlx::query(
            "INSERT INTO bill_doc_numbers (realm_id, vendor_id, doc_number, bills) VALUES ($1, $2, $3, $4)
             ON CONFLICT (realm_id, vendor_id, doc_number) DO UPDATE SET bills = bill_doc_numbers.bills + EXCLUDED.bills",
        )
        .bind(realm)
        .bind(vendor)
        .bind(doc)
        .bind(sign as i32)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn add_open(tx: &mut Transaction<'_, Postgres>, realm: &str, kind: &str, due: NaiveDate, cents: i64, documents: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO open_by_due (realm_id, entity, due_date, balance_cents, documents) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (realm_id, entity, due_date) DO UPDATE SET balance_cents = open_by_due.balance_cents + EXCLUDED.balance_cents,
             documents = open_by_due.documents + EXCLUDED.documents",
    )
    .bind(realm)
    .bind(kind)
    .bind(due)
    .bind(cents)
    .bind(documents as i32)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn upsert(tx: &mut Transaction<'_, Postgres>, realm: &str, e: &Entity) -> Result<(), sqlx::Error> {
    match e.kind {
        "Bill" => {
            let b = if e.deleted { Bill::default() } else { Bill::from(&e.raw) };
            sqlx::query(
                "INSERT INTO bills (realm_id, id, sync_token, last_updated, deleted, vendor_id, vendor_name, doc_number, txn_date, due_date,
                     total_cents, balance_cents, account_ids, account_names, issues, raw)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
                     deleted = EXCLUDED.deleted, vendor_id = EXCLUDED.vendor_id, vendor_name = EXCLUDED.vendor_name, doc_number = EXCLUDED.doc_number,
                     txn_date = EXCLUDED.txn_date, due_date = EXCLUDED.due_date, total_cents = EXCLUDED.total_cents,
                     balance_cents = EXCLUDED.balance_cents, account_ids = EXCLUDED.account_ids, account_names = EXCLUDED.account_names,
                     issues = EXCLUDED.issues, raw = EXCLUDED.raw",
            )
            .bind(realm)
            .bind(&e.id)
            .bind(e.sync_token)
            .bind(e.last_updated)
            .bind(e.deleted)
            .bind(b.vendor_id)
            .bind(b.vendor_name)
            .bind(b.doc_number)
            .bind(b.txn_date)
            .bind(b.due_date)
            .bind(b.total_cents)
            .bind(b.balance_cents)
            .bind(b.account_ids)
            .bind(b.account_names)
            .bind(if e.deleted { Vec::new() } else { b.issues })
            .bind(&e.raw)
            .execute(&mut **tx)
            .await?;
        }
        "Invoice" => {
            let i = if e.deleted { Invoice::default() } else { Invoice::from(&e.raw) };
            sqlx::query(
                "INSERT INTO invoices (realm_id, id, sync_token, last_updated, deleted, customer_id, customer_name, doc_number, txn_date, due_date,
                     total_cents, balance_cents, raw)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
                     deleted = EXCLUDED.deleted, customer_id = EXCLUDED.customer_id, customer_name = EXCLUDED.customer_name,
                     doc_number = EXCLUDED.doc_number, txn_date = EXCLUDED.txn_date, due_date = EXCLUDED.due_date,
                     total_cents = EXCLUDED.total_cents, balance_cents = EXCLUDED.balance_cents, raw = EXCLUDED.raw",
            )
            .bind(realm)
            .bind(&e.id)
            .bind(e.sync_token)
            .bind(e.last_updated)
            .bind(e.deleted)
            .bind(i.customer_id)
            .bind(i.customer_name)
            .bind(i.doc_number)
            .bind(i.txn_date)
            .bind(i.due_date)
            .bind(i.total_cents)
            .bind(i.balance_cents)
            .bind(&e.raw)
            .execute(&mut **tx)
            .await?;
        }
        _ => {
            let a = if e.deleted { Account::default() } else { Account::from(&e.raw) };
            sqlx::query(
                "INSERT INTO accounts (realm_id, id, sync_token, last_updated, deleted, name, account_type, current_balance_cents, active, raw)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
                     deleted = EXCLUDED.deleted, name = EXCLUDED.name, account_type = EXCLUDED.account_type,
                     current_balance_cents = EXCLUDED.current_balance_cents, active = EXCLUDED.active, raw = EXCLUDED.raw",
            )
            .bind(realm)
            .bind(&e.id)
            .bind(e.sync_token)
            .bind(e.last_updated)
            .bind(e.deleted)
            .bind(a.name)
            .bind(a.account_type)
            .bind(a.current_balance_cents)
            .bind(a.active && !e.deleted)
            .bind(&e.raw)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}
