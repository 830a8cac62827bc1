//! The mirror's rows: one `UNNEST` upsert per table for any number of entities (at most one copy
//! of each), tables in kind order (accounts, bills, invoices), rows in the order given.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::{
    client::Entity,
    fields::{Account, Bill, Invoice},
};

/// Upserts one entity's mirror row (reconciliation's repairs).
pub(crate) async fn upsert(tx: &mut Transaction<'_, Postgres>, realm: &str, e: &Entity) -> Result<(), sqlx::Error> {
    upsert_all(tx, realm, &[e]).await
}

/// Upserts the mirror rows of `entities`: their fields as read from the raw JSON (a deleted
/// entity's fields are empty), the raw JSON itself.
pub(super) async fn upsert_all(tx: &mut Transaction<'_, Postgres>, realm: &str, entities: &[&Entity]) -> Result<(), sqlx::Error> {
    let (mut accounts, mut bills, mut invoices) = (Vec::new(), Vec::new(), Vec::new());
    for &e in entities {
        match e.kind {
            "Bill" => bills.push(e),
            "Invoice" => invoices.push(e),
            _ => accounts.push(e),
        }
    }
    if !accounts.is_empty() {
        upsert_accounts(tx, realm, &accounts).await?;
    }
    if !bills.is_empty() {
        upsert_bills(tx, realm, &bills).await?;
    }
    if !invoices.is_empty() {
        upsert_invoices(tx, realm, &invoices).await?;
    }
    Ok(())
}

/// What every table has: id, sync token, last updated, deleted, raw.
struct Common<'a> {
    ids: Vec<&'a str>,
    tokens: Vec<i64>,
    times: Vec<DateTime<Utc>>,
    deleted: Vec<bool>,
    raws: Vec<&'a Value>,
}

impl<'a> Common<'a> {
    fn of(entities: &[&'a Entity]) -> Self {
        Self {
            ids: entities.iter().map(|e| e.id.as_str()).collect(),
            tokens: entities.iter().map(|e| e.sync_token).collect(),
            times: entities.iter().map(|e| e.last_updated).collect(),
            deleted: entities.iter().map(|e| e.deleted).collect(),
            raws: entities.iter().map(|e| &e.raw).collect(),
        }
    }
}

async fn upsert_bills(tx: &mut Transaction<'_, Postgres>, realm: &str, entities: &[&Entity]) -> Result<(), sqlx::Error> {
    let common = Common::of(entities);
    let n = entities.len();
    let mut columns = BillColumns::with_capacity(n);
    for e in entities {
        let b = if e.deleted { Bill::default() } else { Bill::from(&e.raw) };
        columns.vendor_ids.push(b.vendor_id);
        columns.vendor_names.push(b.vendor_name);
        columns.doc_numbers.push(b.doc_number);
        columns.txn_dates.push(b.txn_date);
        columns.due_dates.push(b.due_date);
        columns.totals.push(b.total_cents);
        columns.balances.push(b.balance_cents);
        columns.account_ids.push(text_array(&b.account_ids));
        columns.account_names.push(text_array(&b.account_names));
        columns.issues.push(text_array(if e.deleted { &[] } else { &b.issues }));
    }
    // The text[] columns travel as array literals (`{"a","b"}`): UNNEST cannot take a ragged
    // two-dimensional array.
    sqlx::query(
        "INSERT INTO bills (realm_id, id, sync_token, last_updated, deleted, vendor_id, vendor_name, doc_number, txn_date, due_date,
             total_cents, balance_cents, account_ids, account_names, issues, raw)
         SELECT $1, u.id, u.sync_token, u.last_updated, u.deleted, u.vendor_id, u.vendor_name, u.doc_number, u.txn_date, u.due_date,
             u.total_cents, u.balance_cents, u.account_ids::text[], u.account_names::text[], u.issues::text[], u.raw
         FROM UNNEST($2::text[], $3::int8[], $4::timestamptz[], $5::bool[], $6::text[], $7::text[], $8::text[], $9::date[], $10::date[],
             $11::int8[], $12::int8[], $13::text[], $14::text[], $15::text[], $16::jsonb[])
             AS u (id, sync_token, last_updated, deleted, vendor_id, vendor_name, doc_number, txn_date, due_date,
                 total_cents, balance_cents, account_ids, account_names, issues, raw)
         ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
             deleted = EXCLUDED.deleted, vendor_id = EXCLUDED.vendor_id, vendor_name = EXCLUDED.vendor_name, doc_number = EXCLUDED.doc_number,
             txn_date = EXCLUDED.txn_date, due_date = EXCLUDED.due_date, total_cents = EXCLUDED.total_cents,
             balance_cents = EXCLUDED.balance_cents, account_ids = EXCLUDED.account_ids, account_names = EXCLUDED.account_names,
             issues = EXCLUDED.issues, raw = EXCLUDED.raw",
    )
    .bind(realm)
    .bind(&common.ids)
    .bind(&common.tokens)
    .bind(&common.times)
    .bind(&common.deleted)
    .bind(&columns.vendor_ids)
    .bind(&columns.vendor_names)
    .bind(&columns.doc_numbers)
    .bind(&columns.txn_dates)
    .bind(&columns.due_dates)
    .bind(&columns.totals)
    .bind(&columns.balances)
    .bind(&columns.account_ids)
    .bind(&columns.account_names)
    .bind(&columns.issues)
    .bind(&common.raws)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct BillColumns {
    vendor_ids: Vec<Option<String>>,
    vendor_names: Vec<Option<String>>,
    doc_numbers: Vec<Option<String>>,
    txn_dates: Vec<Option<NaiveDate>>,
    due_dates: Vec<Option<NaiveDate>>,
    totals: Vec<i64>,
    balances: Vec<i64>,
    account_ids: Vec<String>,
    account_names: Vec<String>,
    issues: Vec<String>,
}

impl BillColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            vendor_ids: Vec::with_capacity(n),
            vendor_names: Vec::with_capacity(n),
            doc_numbers: Vec::with_capacity(n),
            txn_dates: Vec::with_capacity(n),
            due_dates: Vec::with_capacity(n),
            totals: Vec::with_capacity(n),
            balances: Vec::with_capacity(n),
            account_ids: Vec::with_capacity(n),
            account_names: Vec::with_capacity(n),
            issues: Vec::with_capacity(n),
        }
    }
}

async fn upsert_invoices(tx: &mut Transaction<'_, Postgres>, realm: &str, entities: &[&Entity]) -> Result<(), sqlx::Error> {
    let common = Common::of(entities);
    let invoices: Vec<Invoice> = entities.iter().map(|e| if e.deleted { Invoice::default() } else { Invoice::from(&e.raw) }).collect();
    let customer_ids: Vec<Option<&str>> = invoices.iter().map(|i| i.customer_id.as_deref()).collect();
    let customer_names: Vec<Option<&str>> = invoices.iter().map(|i| i.customer_name.as_deref()).collect();
    let doc_numbers: Vec<Option<&str>> = invoices.iter().map(|i| i.doc_number.as_deref()).collect();
    let txn_dates: Vec<Option<NaiveDate>> = invoices.iter().map(|i| i.txn_date).collect();
    let due_dates: Vec<Option<NaiveDate>> = invoices.iter().map(|i| i.due_date).collect();
    let totals: Vec<i64> = invoices.iter().map(|i| i.total_cents).collect();
    let balances: Vec<i64> = invoices.iter().map(|i| i.balance_cents).collect();
    sqlx::query(
        "INSERT INTO invoices (realm_id, id, sync_token, last_updated, deleted, customer_id, customer_name, doc_number, txn_date, due_date,
             total_cents, balance_cents, raw)
         SELECT $1, u.id, u.sync_token, u.last_updated, u.deleted, u.customer_id, u.customer_name, u.doc_number, u.txn_date, u.due_date,
             u.total_cents, u.balance_cents, u.raw
         FROM UNNEST($2::text[], $3::int8[], $4::timestamptz[], $5::bool[], $6::text[], $7::text[], $8::text[], $9::date[], $10::date[],
             $11::int8[], $12::int8[], $13::jsonb[])
             AS u (id, sync_token, last_updated, deleted, customer_id, customer_name, doc_number, txn_date, due_date, total_cents, balance_cents, raw)
         ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
             deleted = EXCLUDED.deleted, customer_id = EXCLUDED.customer_id, customer_name = EXCLUDED.customer_name,
             doc_number = EXCLUDED.doc_number, txn_date = EXCLUDED.txn_date, due_date = EXCLUDED.due_date,
             total_cents = EXCLUDED.total_cents, balance_cents = EXCLUDED.balance_cents, raw = EXCLUDED.raw",
    )
    .bind(realm)
    .bind(&common.ids)
    .bind(&common.tokens)
    .bind(&common.times)
    .bind(&common.deleted)
    .bind(&customer_ids)
    .bind(&customer_names)
    .bind(&doc_numbers)
    .bind(&txn_dates)
    .bind(&due_dates)
    .bind(&totals)
    .bind(&balances)
    .bind(&common.raws)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_accounts(tx: &mut Transaction<'_, Postgres>, realm: &str, entities: &[&Entity]) -> Result<(), sqlx::Error> {
    let common = Common::of(entities);
    let accounts: Vec<Account> = entities.iter().map(|e| if e.deleted { Account::default() } else { Account::from(&e.raw) }).collect();
    let names: Vec<Option<&str>> = accounts.iter().map(|a| a.name.as_deref()).collect();
    let types: Vec<Option<&str>> = accounts.iter().map(|a| a.account_type.as_deref()).collect();
    let balances: Vec<i64> = accounts.iter().map(|a| a.current_balance_cents).collect();
    let active: Vec<bool> = accounts.iter().zip(entities).map(|(a, e)| a.active && !e.deleted).collect();
    sqlx::query(
        "INSERT INTO accounts (realm_id, id, sync_token, last_updated, deleted, name, account_type, current_balance_cents, active, raw)
         SELECT $1, u.id, u.sync_token, u.last_updated, u.deleted, u.name, u.account_type, u.current_balance_cents, u.active, u.raw
         FROM UNNEST($2::text[], $3::int8[], $4::timestamptz[], $5::bool[], $6::text[], $7::text[], $8::int8[], $9::bool[], $10::jsonb[])
             AS u (id, sync_token, last_updated, deleted, name, account_type, current_balance_cents, active, raw)
         ON CONFLICT (realm_id, id) DO UPDATE SET sync_token = EXCLUDED.sync_token, last_updated = EXCLUDED.last_updated,
             deleted = EXCLUDED.deleted, name = EXCLUDED.name, account_type = EXCLUDED.account_type,
             current_balance_cents = EXCLUDED.current_balance_cents, active = EXCLUDED.active, raw = EXCLUDED.raw",
    )
    .bind(realm)
    .bind(&common.ids)
    .bind(&common.tokens)
    .bind(&common.times)
    .bind(&common.deleted)
    .bind(&names)
    .bind(&types)
    .bind(&balances)
    .bind(&active)
    .bind(&common.raws)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A PostgreSQL array literal of `items`, every element quoted (`"` and `\` escaped), so any text
/// (commas, braces, spaces, `NULL`) reads back as itself.
fn text_array(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    out.push('{');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::text_array;

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(text_array(&[]), "{}");
        let items = ["7", "Meals, \"fancy\"", "back\\slash", "{braces}", " NULL "].map(String::from);
        assert_eq!(text_array(&items), r#"{"7","Meals, \"fancy\"","back\\slash","{braces}"," NULL "}"#);
    }
}
