//! Figure (10): qbo-mirror's initial sync (issue 11: "100 realms × ~5,000 documents: initial sync
//! completes, within the rate limits, without a 429"). The stack's QBO simulator is seeded with
//! `realms` companies of `documents` documents each, every company is connected with
//! `qbo-mirror connect` (the operator's CLI), then the real service starts (production settings:
//! 8 realms at a time, 400 requests a minute per realm) and the figure is the time from its start
//! until every realm's first sync is done and the mirror holds exactly the simulator's active
//! documents, per realm and entity. Beside it, the QBO requests made and the 429s answered
//! (`/control/stats`), and a reference of the same run: the simulator's own paged queries, one
//! realm's pages fetched by the bench with qbo-mirror's client, one request at a time (as
//! qbo-mirror asks a realm), before the service starts.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use brain_runtime::db;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use qbo_mirror::client::{ClientConfig, PAGE, QboClient};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Value, json};
use system_tests::stack::{QBO_MIRROR, Stack};

use crate::footprint;

const TENANT: &str = "bench-qbo";
const ADVISOR: &str = "bench-qbo-advisor";
/// The simulator's seed: the same companies in every run.
const SEED: u64 = 11;
/// Rounds of the reference fetch; the median is reported.
const FETCH_ROUNDS: usize = 3;
/// `qbo-mirror connect` processes at a time.
const CONNECTING: usize = 4;

/// The reference: one realm's every page (`query`, 1,000 objects a page) fetched and parsed by
/// the bench with qbo-mirror's own client, one request at a time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FetchRun {
    pub documents: u64,
    pub requests: u64,
    pub seconds: f64,
    pub documents_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QboSyncFigures {
    pub realms: usize,
    pub documents_per_realm: usize,
    /// Active documents (accounts, bills, invoices) in the simulator over every realm: what the
    /// mirror holds at the end.
    pub documents: u64,
    pub seed_seconds: f64,
    /// Connecting every realm with the CLI (not timed in the figure).
    pub connect_seconds: f64,
    /// qbo-mirror's spawn → the last realm's first sync done, with the mirror equal to QBO.
    pub sync_seconds: f64,
    /// Of which qbo-mirror's spawn → `/ready` (migrations included).
    pub startup_seconds: f64,
    pub documents_per_sec: f64,
    /// `/v3` and `/oauth2` requests the simulator answered during the sync.
    pub qbo_requests: u64,
    pub token_refreshes: u64,
    /// 429 answers during the sync (the target: none).
    pub throttled: u64,
    /// `transaction_log` rows of these realms after the sync (one per document).
    pub log_rows: u64,
    /// CPU seconds during the sync: qbo-mirror, PostgreSQL (every `postgres` process), and the
    /// bench process, which serves the simulator.
    pub mirror_cpu_seconds: f64,
    pub database_cpu_seconds: f64,
    pub simulator_cpu_seconds: f64,
    pub fetch: FetchRun,
    /// The mirror's documents/s ÷ the reference fetch's.
    pub mirror_vs_fetch: f64,
}

/// Seeds, connects, syncs and checks; `timeout` bounds the sync. The companies stay in the
/// simulator for figure (11), which resets it.
pub async fn measure(stack: &mut Stack, realms: usize, documents: usize, timeout: Duration) -> anyhow::Result<QboSyncFigures> {
    let url = SecretString::from(stack.db.url(None));
    let pool = db::connect(&url, "qbo_mirror", &qbo_mirror::MIGRATOR, None, 4).await?;
    // Figure (9)'s mirror (its companies never sync) goes: the sync starts on empty tables.
    sqlx::query("TRUNCATE realms, bills, invoices, accounts, open_by_due, bill_doc_numbers, outbox").execute(&pool).await?;
    let qbo = stack.qbo.base_url();

    let seeding = Instant::now();
    let seeded: Value = stack
        .http
        .post(format!("{qbo}/control/seed"))
        .json(&json!({ "realms": realms, "documentsPerRealm": documents, "seed": SEED }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let mut companies: Vec<(String, String, String)> = seeded["realms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let field = |name: &str| r[name].as_str().unwrap_or_default().to_string();
            (field("realmId"), field("companyName"), field("refreshToken"))
        })
        .collect();
    anyhow::ensure!(companies.len() == realms, "the simulator seeded {} realms of {realms}", companies.len());
    let ids: Vec<String> = companies.iter().map(|(id, _, _)| id.clone()).collect();
    let mut want = BTreeMap::new();
    for id in &ids {
        let realm: Value = stack.http.get(format!("{qbo}/control/realms/{id}")).send().await?.error_for_status()?.json().await?;
        for kind in qbo_mirror::sync::KINDS {
            want.insert((id.clone(), kind.to_string()), realm["documents"][kind]["active"].as_i64().unwrap_or_default());
        }
    }
    let total: i64 = want.values().sum();

    // The reference, on a quiet machine; the realm's rotated refresh token is the one connected.
    let (fetch, rotated) = fetch_reference(stack, &companies[0].0, &companies[0].2).await?;
    companies[0].2 = rotated;

    let connecting = Instant::now();
    let stack_ref: &Stack = stack;
    futures::stream::iter(companies.iter())
        .map(|(realm, company, token)| async move {
            let args = ["connect", "--realm", realm, "--tenant", TENANT, "--advisor", ADVISOR, "--company", company, "--refresh-token", token];
            stack_ref.qbo_mirror_cli(&args).await
        })
        .buffer_unordered(CONNECTING)
        .try_collect::<Vec<_>>()
        .await?;
    let connect_seconds = connecting.elapsed().as_secs_f64();

    // Production's interval: a realm synced once is left alone while the others finish.
    stack.service(QBO_MIRROR).set_env("QBO_MIRROR__SYNC_INTERVAL_MS", "900000");
    let before = Stats::read(stack).await?;
    let database_cpu = footprint::postgres_cpu_seconds();
    let simulator_cpu = footprint::cpu_seconds(std::process::id(), false).unwrap_or(0.0);
    let started_at: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&pool).await?;
    let started = Instant::now();
    let (pid, startup_seconds) = footprint::start_timed(stack, QBO_MIRROR).await?;
    let mut first_check = true;
    let done_at = loop {
        let (synced, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as("SELECT count(last_synced_at), max(last_synced_at) FROM realms WHERE realm_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&pool)
            .await?;
        if synced as usize == realms {
            if mirror_counts(&pool, &ids).await? == want {
                // Each realm's last page was committed before its sync was recorded as done.
                let at = if first_check { last } else { None };
                match at {
                    Some(at) => break at,
                    None => break sqlx::query_scalar::<_, DateTime<Utc>>("SELECT clock_timestamp()").fetch_one(&pool).await?,
                }
            }
            first_check = false;
        }
        anyhow::ensure!(started.elapsed() < timeout, "qbo-mirror's initial sync: {synced} of {realms} realms done after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mirror_cpu_seconds = footprint::cpu_seconds(pid, false).unwrap_or(0.0);
    let database_cpu_seconds = (footprint::postgres_cpu_seconds() - database_cpu).max(0.0);
    let simulator_cpu_seconds = footprint::cpu_seconds(std::process::id(), false).unwrap_or(0.0) - simulator_cpu;
    let after = Stats::read(stack).await?;
    stack.service(QBO_MIRROR).kill().await?;
    let sync_seconds = (done_at - started_at).as_seconds_f64();
    let log_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transaction_log WHERE realm_id = ANY($1)").bind(&ids).fetch_one(&pool).await?;
    anyhow::ensure!(log_rows == total, "{log_rows} transaction_log rows for {total} documents: one per document expected");
    pool.close().await;
    let documents_per_sec = total as f64 / sync_seconds;
    Ok(QboSyncFigures {
        realms,
        documents_per_realm: documents,
        documents: total as u64,
        seed_seconds,
        connect_seconds,
        sync_seconds,
        startup_seconds,
        documents_per_sec,
        qbo_requests: after.requests - before.requests,
        token_refreshes: after.token_refreshes - before.token_refreshes,
        throttled: after.throttled - before.throttled,
        log_rows: log_rows as u64,
        mirror_cpu_seconds,
        database_cpu_seconds,
        simulator_cpu_seconds,
        mirror_vs_fetch: documents_per_sec / fetch.documents_per_sec,
        fetch,
    })
}

/// The simulator's counters over every realm.
struct Stats {
    requests: u64,
    throttled: u64,
    token_refreshes: u64,
}

impl Stats {
    async fn read(stack: &Stack) -> anyhow::Result<Self> {
        let stats: Value = stack.http.get(format!("{}/control/stats", stack.qbo.base_url())).send().await?.error_for_status()?.json().await?;
        let total = &stats["requests"];
        let n = |name: &str| total[name].as_u64().unwrap_or_default();
        Ok(Self { requests: n("requests"), throttled: n("throttled"), token_refreshes: n("tokenRefreshes") })
    }
}

/// Active mirrored documents per (realm, entity).
async fn mirror_counts(pool: &sqlx::PgPool, ids: &[String]) -> anyhow::Result<BTreeMap<(String, String), i64>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT realm_id, 'Account', count(*) FROM accounts WHERE realm_id = ANY($1) AND NOT deleted GROUP BY realm_id
         UNION ALL SELECT realm_id, 'Bill', count(*) FROM bills WHERE realm_id = ANY($1) AND NOT deleted GROUP BY realm_id
         UNION ALL SELECT realm_id, 'Invoice', count(*) FROM invoices WHERE realm_id = ANY($1) AND NOT deleted GROUP BY realm_id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<(String, String), i64> = ids.iter().flat_map(|id| qbo_mirror::sync::KINDS.map(|k| ((id.clone(), k.to_string()), 0))).collect();
    out.extend(rows.into_iter().map(|(realm, kind, n)| ((realm, kind), n)));
    Ok(out)
}

/// One realm's pages, `FETCH_ROUNDS` times; the median round, and the realm's new refresh token.
async fn fetch_reference(stack: &Stack, realm: &str, refresh_token: &str) -> anyhow::Result<(FetchRun, String)> {
    let base = stack.qbo.base_url();
    let client = QboClient::new(ClientConfig {
        api_base: base.clone(),
        token_url: format!("{base}/oauth2/v1/tokens/bearer"),
        client_id: stack.qbo_credentials.client_id.clone(),
        client_secret: SecretString::from(stack.qbo_credentials.client_secret.clone()),
        timeout: Duration::from_secs(120),
    })?;
    let tokens = client.refresh(refresh_token).await?;
    let mut runs = Vec::new();
    for _ in 0..FETCH_ROUNDS {
        let began = Instant::now();
        let (mut documents, mut requests) = (0u64, 0u64);
        for kind in qbo_mirror::sync::KINDS {
            let mut start = 1;
            loop {
                let page = client.query(realm, &tokens.access_token, kind, None, start).await?;
                requests += 1;
                documents += page.len() as u64;
                if page.len() < PAGE {
                    break;
                }
                start += PAGE;
            }
        }
        let seconds = began.elapsed().as_secs_f64();
        runs.push(FetchRun { documents, requests, seconds, documents_per_sec: documents as f64 / seconds });
    }
    runs.sort_by(|a, b| a.documents_per_sec.total_cmp(&b.documents_per_sec));
    Ok((runs[runs.len() / 2], tokens.refresh_token))
}

#[cfg(test)]
mod tests {
    /// Figure (10) alone, for before/after measurements (`docs/benchmarks.md`): needs what the
    /// system tests need (`DATABASE_URL`, `FIRESTORE_EMULATOR_HOST`, `BRAIN_TEST_KAFKA_*`) and the
    /// service binaries; sizes from `BENCH_QBO_REALMS` and `BENCH_QBO_DOCUMENTS` (10 × 500).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, run by hand"]
    async fn qbo_mirror_initial_sync_alone() -> anyhow::Result<()> {
        let size = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let (realms, documents) = (size("BENCH_QBO_REALMS", 10), size("BENCH_QBO_DOCUMENTS", 500));
        let mut stack = system_tests::stack::Stack::start("bench-qbo").await?;
        let figures = super::measure(&mut stack, realms, documents, std::time::Duration::from_secs(3_600)).await;
        stack.stop_all().await?;
        let name = stack.db.name.clone();
        drop(stack);
        crate::drop_database(&name).await?;
        let f = figures?;
        println!("{}", serde_json::to_string_pretty(&f)?);
        println!(
            "(10) {} realms × {} documents: {} documents in {:.1} s = {:.0} documents/s · {} QBO requests · {} 429s · fetch {:.0} documents/s · mirror ÷ fetch {:.3}",
            f.realms, f.documents_per_realm, f.documents, f.sync_seconds, f.documents_per_sec, f.qbo_requests, f.throttled, f.fetch.documents_per_sec, f.mirror_vs_fetch
        );
        Ok(())
    }
}
