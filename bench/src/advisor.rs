//! Figure (9): the advisor's views on the gateway (digest, hygiene tray, decision console) for an
//! advisor with `realms` client companies of `documents` documents each, at saturation with the
//! load client's 50 connections; beside a naive peer: the digest computed straight from the
//! mirror's rows (no aggregates, no partial indexes), 50 clients on 16 connections (the gateway's
//! pool), in the same run.
//!
//! The mirror is filled directly (SQL `generate_series`, aggregates built from the rows as
//! qbo-mirror's reconciliation does): this figure measures the read side, not the sync.

use std::{sync::Arc, time::Duration};

use brain_runtime::db;
use secrecy::SecretString;
use serde::Serialize;
use system_tests::stack::Stack;
use tokio::time::Instant;

use crate::gateway::{self, LoadRun, Target};

/// The advisor whose portfolio it is: the subject of the stack's staff token.
const ADVISOR: &str = "test-staff";
const TENANT: &str = "default";
/// The naive peer's connections: the gateway's pool size.
const PEER_CONNECTIONS: u32 = 16;

#[derive(Debug, Clone, Serialize)]
pub struct NaiveRun {
    pub queries: u64,
    pub queries_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdvisorFigures {
    pub realms: usize,
    pub documents_per_realm: usize,
    pub seed_seconds: f64,
    pub runs: Vec<LoadRun>,
    pub naive_digest: NaiveRun,
    /// The naive digest's P95 ÷ the gateway digest's P95.
    pub digest_p95_vs_naive: f64,
}

pub async fn measure(stack: &Stack, realms: usize, documents: usize, secs: Duration) -> anyhow::Result<AdvisorFigures> {
    let url = SecretString::from(stack.db.url(None));
    let pool = db::connect(&url, "qbo_mirror", &qbo_mirror::MIGRATOR, None, 8).await?;
    let started = Instant::now();
    seed(&pool, realms, documents).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let token = stack.token("staff", TENANT);
    let mut runs = Vec::new();
    for (name, path) in [("advisor-digest", "digest"), ("advisor-hygiene", "hygiene"), ("advisor-decisions", "decisions")] {
        let target = Target { name, url: format!("{}/api/v1/advisor/{path}", stack.gateway_url), token: Some(token.clone()) };
        runs.push(gateway::load(&target, None, secs).await?);
    }
    // The peer gets what the gateway has: 16 connections for the 50 clients, who queue for them
    // (the wait is in its latency, as it is in the gateway's).
    let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&stack.db.url(None))?.options([("search_path", "qbo_mirror")]);
    let peer = sqlx::postgres::PgPoolOptions::new().max_connections(PEER_CONNECTIONS).acquire_timeout(Duration::from_secs(600)).connect_with(options).await?;
    let naive_digest = naive(&peer, secs).await?;
    peer.close().await;
    pool.close().await;
    let digest_p95 = runs.first().map_or(f64::INFINITY, |r| r.p95_ms);
    Ok(AdvisorFigures { realms, documents_per_realm: documents, seed_seconds, digest_p95_vs_naive: naive_digest.p95_ms / digest_p95, runs, naive_digest })
}

/// `realms` companies of the advisor: 60 % bills (a third paid, 5 % with issues, some doc numbers
/// twice), 38 % invoices, 2 % accounts (two of them bank accounts), due dates from 30 days ago to 90
/// days ahead, and 20 recent changes each.
async fn seed(pool: &sqlx::PgPool, realms: usize, documents: usize) -> anyhow::Result<()> {
    let bills = (documents * 60 / 100).max(1) as i32;
    let invoices = (documents * 38 / 100).max(1) as i32;
    let accounts = (documents / 50).max(2) as i32;
    let realms = realms as i32;
    let statements = [
        "TRUNCATE realms, bills, invoices, accounts, open_by_due, bill_doc_numbers, outbox",
        "INSERT INTO realms (realm_id, tenant_id, advisor_id, company_name, refresh_token, next_sync_at)
         SELECT 'bench-' || r, $2, $3, 'Company ' || lpad(r::text, 3, '0'), '\\x00', now() + interval '1 year' FROM generate_series(1, $1) r",
        "INSERT INTO bills (realm_id, id, sync_token, last_updated, vendor_id, vendor_name, doc_number, txn_date, due_date, total_cents, balance_cents, account_ids, account_names, issues, raw)
         SELECT 'bench-' || r, b::text, 1, now() - interval '2 days', 'v' || (b % 50), 'Vendor ' || (b % 50), 'D-' || (b % ($2 - 20)), current_date - 40,
                current_date + ((b * 7919) % 120 - 30), 1000 + (b * 37) % 100000,
                CASE WHEN b % 3 = 0 THEN 0 ELSE 1000 + (b * 37) % 100000 END, '{7}', '{Expenses}',
                CASE WHEN b % 20 = 0 THEN '{missing_account}'::text[] ELSE '{}'::text[] END, '{}'::jsonb
         FROM generate_series(1, $1) r, generate_series(1, $2) b",
        "INSERT INTO invoices (realm_id, id, sync_token, last_updated, customer_id, customer_name, doc_number, due_date, total_cents, balance_cents, raw)
         SELECT 'bench-' || r, i::text, 1, now() - interval '2 days', 'c' || (i % 40), 'Customer ' || (i % 40), 'I-' || i,
                current_date + ((i * 104729) % 120 - 30), 2000 + (i * 53) % 90000, CASE WHEN i % 4 = 0 THEN 0 ELSE 2000 + (i * 53) % 90000 END, '{}'::jsonb
         FROM generate_series(1, $1) r, generate_series(1, $2) i",
        "INSERT INTO accounts (realm_id, id, sync_token, last_updated, name, account_type, current_balance_cents, active, raw)
         SELECT 'bench-' || r, a::text, 1, now() - interval '2 days', 'Account ' || a, CASE WHEN a <= 2 THEN 'Bank' ELSE 'Expense' END,
                500000 + (a * r * 31) % 1000000, true, '{}'::jsonb
         FROM generate_series(1, $1) r, generate_series(1, $2) a",
        "INSERT INTO open_by_due (realm_id, entity, due_date, balance_cents, documents)
         SELECT realm_id, 'Bill', due_date, sum(balance_cents), count(*) FROM bills WHERE balance_cents > 0 AND NOT deleted AND due_date IS NOT NULL GROUP BY realm_id, due_date
         UNION ALL
         SELECT realm_id, 'Invoice', due_date, sum(balance_cents), count(*) FROM invoices WHERE balance_cents > 0 AND NOT deleted AND due_date IS NOT NULL GROUP BY realm_id, due_date",
        "INSERT INTO bill_doc_numbers (realm_id, vendor_id, doc_number, bills)
         SELECT realm_id, vendor_id, doc_number, count(*) FROM bills WHERE NOT deleted AND vendor_id IS NOT NULL AND doc_number IS NOT NULL GROUP BY 1, 2, 3",
        "INSERT INTO transaction_log (realm_id, entity, entity_id, sync_token, last_updated, operation, new)
         SELECT 'bench-' || r, 'Bill', c::text, 100 + c, now() - interval '1 minute', 'update', '{}'::jsonb FROM generate_series(1, $1) r, generate_series(1, 20) c",
        "ANALYZE",
    ];
    // Each statement's parameters, in order.
    enum P {
        Int(i32),
        Text(&'static str),
    }
    let params: [&[P]; 9] = [
        &[],
        &[P::Int(realms), P::Text(TENANT), P::Text(ADVISOR)],
        &[P::Int(realms), P::Int(bills)],
        &[P::Int(realms), P::Int(invoices)],
        &[P::Int(realms), P::Int(accounts)],
        &[],
        &[],
        &[P::Int(realms)],
        &[],
    ];
    for (sql, params) in statements.into_iter().zip(params) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in params {
            query = match p {
                P::Int(n) => query.bind(*n),
                P::Text(t) => query.bind(*t),
            };
        }
        query.execute(pool).await?;
    }
    Ok(())
}

/// The digest as a straightforward query would compute it: sums over the advisor's bills and
/// invoices as they are.
const NAIVE_DIGEST: &str = "SELECT r.realm_id,
    (SELECT coalesce(sum(current_balance_cents), 0) FROM accounts a WHERE a.realm_id = r.realm_id AND a.account_type = 'Bank' AND a.active AND NOT a.deleted)::int8,
    (SELECT coalesce(sum(balance_cents), 0) FROM bills b WHERE b.realm_id = r.realm_id AND NOT b.deleted AND b.balance_cents > 0 AND b.due_date BETWEEN current_date AND current_date + 7)::int8,
    (SELECT coalesce(sum(balance_cents), 0) FROM bills b WHERE b.realm_id = r.realm_id AND NOT b.deleted AND b.balance_cents > 0 AND b.due_date BETWEEN current_date AND current_date + 30)::int8,
    (SELECT coalesce(sum(balance_cents), 0) FROM invoices i WHERE i.realm_id = r.realm_id AND NOT i.deleted AND i.balance_cents > 0 AND i.due_date < current_date)::int8
  FROM realms r WHERE r.tenant_id = $1 AND r.advisor_id = $2 ORDER BY r.company_name";

async fn naive(pool: &sqlx::PgPool, secs: Duration) -> anyhow::Result<NaiveRun> {
    let deadline = Instant::now() + secs;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..gateway::CONNECTIONS {
        let (pool, latencies) = (pool.clone(), latencies.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let began = Instant::now();
                let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(NAIVE_DIGEST).bind(TENANT).bind(ADVISOR).fetch_all(&pool).await?;
                anyhow::ensure!(!rows.is_empty(), "the naive digest found no company");
                latencies.lock().expect("lock").push(began.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let mut all = std::mem::take(&mut *latencies.lock().expect("lock"));
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all.get(((all.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or_default();
    Ok(NaiveRun { queries: all.len() as u64, queries_per_sec: all.len() as f64 / secs.as_secs_f64(), p50_ms: at(0.5), p95_ms: at(0.95), p99_ms: at(0.99) })
}
