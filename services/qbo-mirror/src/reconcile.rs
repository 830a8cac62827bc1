//! Reconciliation: the mirror against QBO. For every active realm and entity, every active object
//! QBO holds (paged queries) is compared with the mirror's row on what the views use (sync token,
//! vendor or customer, doc number, due date, amounts; for accounts name, type, balance, active).
//! Drift is counted (`qbo_mirror_drift_total{entity,kind}`: `missing`, `differs`, `extra`) and
//! logged, and repaired:
//! - an object the mirror lacks or holds an older version of, and an active row QBO no longer
//!   has (a deletion the sync missed), go through the normal path ([`apply`]): a log row and a
//!   `create`/`update`/`delete` event each;
//! - a row that differs from QBO's copy of the **same** version is corrupt: in one transaction it
//!   is rewritten from QBO's copy and a `qbo.entity.changed.v1` event with operation `repair` says
//!   so;
//! - after any drift the realm's aggregates are rebuilt from its rows (in that transaction).
//!
//! A row the sync changed meanwhile (newer than the copy read) is left alone. Runs every
//! `RECONCILE_INTERVAL_MS` and on `qbo-mirror reconcile`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    apply,
    client::{Entity, PAGE},
    fields::{Account, Bill, Invoice},
    realms::Realm,
    sync::{KINDS, SyncError, Syncer},
};

/// What one realm's reconciliation found (and repaired).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub realm_id: String,
    pub compared: usize,
    pub missing: usize,
    pub differs: usize,
    pub extra: usize,
}

impl Drift {
    pub fn total(&self) -> usize {
        self.missing + self.differs + self.extra
    }
}

/// What the views depend on, comparable between QBO's copy and the mirror's row.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    sync_token: i64,
    party: Option<String>,
    doc_number: Option<String>,
    due_date: Option<NaiveDate>,
    total_cents: i64,
    balance_cents: i64,
}

fn of_qbo(e: &Entity) -> Fingerprint {
    match e.kind {
        "Bill" => {
            let b = Bill::from(&e.raw);
            Fingerprint { sync_token: e.sync_token, party: b.vendor_id, doc_number: b.doc_number, due_date: b.due_date, total_cents: b.total_cents, balance_cents: b.balance_cents }
        }
        "Invoice" => {
            let i = Invoice::from(&e.raw);
            Fingerprint { sync_token: e.sync_token, party: i.customer_id, doc_number: i.doc_number, due_date: i.due_date, total_cents: i.total_cents, balance_cents: i.balance_cents }
        }
        _ => {
            let a = Account::from(&e.raw);
            Fingerprint { sync_token: e.sync_token, party: a.name, doc_number: a.account_type, due_date: None, total_cents: i64::from(a.active), balance_cents: a.current_balance_cents }
        }
    }
}

type Row = (String, i64, DateTime<Utc>, Option<String>, Option<String>, Option<NaiveDate>, i64, i64);

async fn mirror_rows(pool: &PgPool, realm: &str, kind: &str) -> Result<HashMap<String, (DateTime<Utc>, Fingerprint)>, sqlx::Error> {
    let sql = match kind {
        "Bill" => "SELECT id, sync_token, last_updated, vendor_id, doc_number, due_date, total_cents, balance_cents FROM bills WHERE realm_id = $1 AND NOT deleted",
        "Invoice" => "SELECT id, sync_token, last_updated, customer_id, doc_number, due_date, total_cents, balance_cents FROM invoices WHERE realm_id = $1 AND NOT deleted",
        _ => "SELECT id, sync_token, last_updated, name, account_type, NULL::date, active::int4::int8, current_balance_cents FROM accounts WHERE realm_id = $1 AND NOT deleted",
    };
    let rows: Vec<Row> = sqlx::query_as(sql).bind(realm).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(id, sync_token, last_updated, party, doc_number, due_date, total_cents, balance_cents)| {
            (id, (last_updated, Fingerprint { sync_token, party, doc_number, due_date, total_cents, balance_cents }))
        })
        .collect())
}

/// Reconciles one realm; repairs what drifted.
pub async fn realm(syncer: &Syncer, realm: &Realm) -> Result<Drift, SyncError> {
    let started = Utc::now();
    let mut drift = Drift { realm_id: realm.realm_id.clone(), ..Drift::default() };
    let mut normal: Vec<Entity> = Vec::new();
    let mut corrupt: Vec<Entity> = Vec::new();
    for kind in KINDS {
        let mut qbo: Vec<Entity> = Vec::new();
        let mut start = 1;
        loop {
            let page = syncer.query_page(realm, kind, start).await?;
            let full = page.len() >= PAGE;
            qbo.extend(page);
            if !full {
                break;
            }
            start += PAGE;
        }
        let mut mirror = mirror_rows(&syncer.pool, &realm.realm_id, kind).await?;
        drift.compared += qbo.len();
        for e in qbo {
            match mirror.remove(&e.id) {
                None => {
                    count(kind, "missing");
                    drift.missing += 1;
                    normal.push(e);
                }
                Some((_, fingerprint)) if fingerprint != of_qbo(&e) => {
                    count(kind, "differs");
                    drift.differs += 1;
                    if fingerprint.sync_token == e.sync_token { corrupt.push(e) } else { normal.push(e) }
                }
                Some(_) => {}
            }
        }
        for (id, (last_updated, _)) in mirror {
            // Mirrored after the copy was read: the sync's, not drift.
            if last_updated < started {
                count(kind, "extra");
                drift.extra += 1;
                normal.push(Entity { kind, id, sync_token: i64::MAX, last_updated: started, deleted: true, raw: json!({}) });
            }
        }
    }
    if drift.total() > 0 {
        tracing::warn!(realm = %realm.realm_id, missing = drift.missing, differs = drift.differs, extra = drift.extra, corrupt = corrupt.len(), "mirror drifted from QBO; repairing");
        apply::apply(&syncer.pool, &realm.tenant_id, &realm.realm_id, &normal).await?;
        // Rows rewritten here and any the drift touched: the aggregates are rebuilt from the rows.
        repair(&syncer.pool, realm, &corrupt).await?;
    }
    Ok(drift)
}

fn count(kind: &'static str, what: &'static str) {
    metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "drift_total"), "entity" => kind, "kind" => what).increment(1);
}

async fn repair(pool: &PgPool, realm: &Realm, repairs: &[Entity]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for e in repairs {
        let current: Option<(i64, DateTime<Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT sync_token, last_updated FROM {} WHERE realm_id = $1 AND id = $2 FOR UPDATE", apply::table(e.kind))))
            .bind(&realm.realm_id)
            .bind(&e.id)
            .fetch_optional(&mut *tx)
            .await?;
        if current.is_some_and(|(token, at)| (at, token) > (e.last_updated, e.sync_token)) {
            continue;
        }
        apply::upsert(&mut tx, &realm.realm_id, e).await?;
        event(&mut tx, realm, e.kind, &e.id, e.sync_token).await?;
    }
    rebuild_aggregates(&mut tx, &realm.realm_id).await?;
    tx.commit().await
}

/// The realm's open amounts per due date and duplicate doc numbers, from its rows.
async fn rebuild_aggregates(tx: &mut Transaction<'_, Postgres>, realm: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM open_by_due WHERE realm_id = $1").bind(realm).execute(&mut **tx).await?;
    sqlx::query(
        "INSERT INTO open_by_due (realm_id, entity, due_date, balance_cents, documents)
         SELECT realm_id, 'Bill', due_date, sum(balance_cents), count(*) FROM bills WHERE realm_id = $1 AND balance_cents > 0 AND NOT deleted AND due_date IS NOT NULL GROUP BY realm_id, due_date
         UNION ALL
         SELECT realm_id, 'Invoice', due_date, sum(balance_cents), count(*) FROM invoices WHERE realm_id = $1 AND balance_cents > 0 AND NOT deleted AND due_date IS NOT NULL GROUP BY realm_id, due_date",
    )
    .bind(realm)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM bill_doc_numbers WHERE realm_id = $1").bind(realm).execute(&mut **tx).await?;
    sqlx::query(
        "INSERT INTO bill_doc_numbers (realm_id, vendor_id, doc_number, bills)
         SELECT realm_id, vendor_id, doc_number, count(*) FROM bills WHERE realm_id = $1 AND NOT deleted AND vendor_id IS NOT NULL AND doc_number IS NOT NULL
         GROUP BY realm_id, vendor_id, doc_number",
    )
    .bind(realm)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn event(tx: &mut Transaction<'_, Postgres>, realm: &Realm, kind: &str, id: &str, sync_token: i64) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let event_id = Uuid::new_v5(&apply::EVENT_NAMESPACE, format!("repair:{}:{kind}:{id}:{}", realm.realm_id, now.timestamp_millis()).as_bytes());
    let event = json!({
        "event_id": event_id.to_string(), "occurred_at": now.timestamp_millis(), "tenant_id": realm.tenant_id, "realm_id": realm.realm_id,
        "entity": kind, "entity_id": id, "operation": "repair", "sync_token": sync_token, "correlation_id": event_id.to_string(), "producer": crate::SERVICE,
    });
    sqlx::query("INSERT INTO outbox (key, event) VALUES ($1, $2)").bind(format!("{}:{kind}:{id}", realm.realm_id)).bind(event).execute(&mut **tx).await?;
    Ok(())
}
