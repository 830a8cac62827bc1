//! Flow 7: qbo-mirror mirrors QBO companies (the simulator) into PostgreSQL: an initial sync of
//! every realm, interrupted by a SIGKILL, then changes made "inside QuickBooks" arriving by
//! webhook (10 % dropped, 10 % repeated, both formats) and by the periodic CDC, with a
//! PostgreSQL restart between two rounds. The mirror ends
//! equal to QBO, each change logged once, within the rate limits (no 429), and the advisor's views
//! on the gateway answer from it.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Value, json};
use system_tests::{
    postgres::PrivatePostgres,
    stack::{API_GATEWAY, QBO_MIRROR, Stack},
    wait_for,
};

const REALMS: usize = 8;
const DOCUMENTS: usize = 300;
const TENANT: &str = "t-qbo";
const WAIT: Duration = Duration::from_secs(180);

/// Active documents per (realm, entity) in QBO.
async fn qbo_counts(stack: &Stack, realm: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let r: Value = stack.http.get(format!("{}/control/realms/{realm}", stack.qbo.base_url())).send().await?.error_for_status()?.json().await?;
    let mut out = BTreeMap::new();
    for kind in ["Account", "Bill", "Invoice"] {
        out.insert(kind.to_string(), r["documents"][kind]["active"].as_i64().unwrap_or_default());
    }
    Ok(out)
}

async fn mirror_counts(pool: &sqlx::PgPool, realm: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for (kind, table) in [("Account", "accounts"), ("Bill", "bills"), ("Invoice", "invoices")] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM qbo_mirror.{table} WHERE realm_id = $1 AND NOT deleted")))
            .bind(realm)
            .fetch_one(pool)
            .await?;
        out.insert(kind.to_string(), n);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qbo_companies_are_mirrored_exactly_through_a_crash_and_lossy_webhooks() -> anyhow::Result<()> {
    crate::init_logs();
    let pg = PrivatePostgres::start().await?;
    let mut stack = Stack::start_on("qbo", &pg.url()).await?;
    let qbo = stack.qbo.base_url();
    let seeded: Value = stack
        .http
        .post(format!("{qbo}/control/seed"))
        .json(&json!({ "realms": REALMS, "documentsPerRealm": DOCUMENTS, "seed": 7, "deletedPercent": 0 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let realms: Vec<(String, String, String)> = seeded["realms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["realmId"].as_str().unwrap_or_default().into(), r["companyName"].as_str().unwrap_or_default().into(), r["refreshToken"].as_str().unwrap_or_default().into()))
        .collect();
    assert_eq!(realms.len(), REALMS);
    stack.http.put(format!("{qbo}/control/webhooks")).json(&json!({ "format": "mixed", "dropPercent": 10, "duplicatePercent": 10, "seed": 3 })).send().await?.error_for_status()?;

    // The advisor connects each company (the OAuth consent's refresh token).
    for (realm, company, token) in &realms {
        stack.qbo_mirror_cli(&["connect", "--realm", realm, "--tenant", TENANT, "--advisor", "test-staff", "--company", company, "--refresh-token", token]).await?;
    }
    // The gateway (webhooks, the advisor's views) once qbo-mirror's migration made its role.
    stack.start_services(&[API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;
    let logged = |pool: sqlx::PgPool| async move { anyhow::Ok(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM qbo_mirror.transaction_log").fetch_one(&pool).await?) };

    // The initial sync, killed part-way.
    stack.service(QBO_MIRROR).start().await?;
    wait_for("the initial sync to be under way", WAIT, || async { Ok((logged(pool.clone()).await? > 0).then_some(())) }).await?;
    stack.service(QBO_MIRROR).kill().await?;
    let at_kill = logged(pool.clone()).await?;
    stack.service(QBO_MIRROR).start().await?;
    for (realm, _, _) in &realms {
        let want = qbo_counts(&stack, realm).await?;
        wait_for(&format!("realm {realm} mirrored"), WAIT, || async { Ok((mirror_counts(&pool, realm).await? == want).then_some(())) }).await?;
    }
    let initial = logged(pool.clone()).await?;
    println!("qbo: initial sync of {REALMS} realms × {DOCUMENTS} documents: {initial} log rows (killed at {at_kill})");
    let documents: i64 = {
        let mut n = 0;
        for (realm, _, _) in &realms {
            n += qbo_counts(&stack, realm).await?.values().sum::<i64>();
        }
        n
    };
    assert_eq!(initial, documents, "one log row per mirrored document, the crash notwithstanding");
    assert!(at_kill < documents, "the kill landed mid-sync ({at_kill} of {documents} rows)");

    // Changes inside QuickBooks, in rounds; they reach the mirror by webhook or by CDC.
    let mut changes = Vec::new();
    for round in 0..3 {
        let made: Value = stack
            .http
            .post(format!("{qbo}/control/changes"))
            .json(&json!({ "creates": 2, "updates": 4, "deletes": 1, "seed": 100 + round }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        changes.extend(made["changes"].as_array().cloned().unwrap_or_default());
        if round == 1 {
            // PostgreSQL goes away under the mirror and comes back.
            pg.restart().await?;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The newest version of each changed entity.
    let mut newest: BTreeMap<(String, String, String), (i64, String)> = BTreeMap::new();
    for c in &changes {
        let key = (c["realmId"].as_str().unwrap_or_default().to_string(), c["entity"].as_str().unwrap_or_default().to_string(), c["id"].as_str().unwrap_or_default().to_string());
        let version = (c["syncToken"].as_str().and_then(|t| t.parse().ok()).or_else(|| c["syncToken"].as_i64()).unwrap_or_default(), c["operation"].as_str().unwrap_or_default().to_string());
        let slot = newest.entry(key).or_insert(version.clone());
        if version.0 >= slot.0 {
            *slot = version;
        }
    }
    for ((realm, entity, id), (sync_token, operation)) in &newest {
        let table = match entity.as_str() {
            "Bill" => "bills",
            "Invoice" => "invoices",
            _ => continue,
        };
        wait_for(&format!("{realm} {entity} {id} at sync token {sync_token}"), WAIT, || async {
            let row: Option<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT sync_token, deleted FROM qbo_mirror.{table} WHERE realm_id = $1 AND id = $2")))
                .bind(realm)
                .bind(id)
                .fetch_optional(&pool)
                .await?;
            let done = match row {
                Some((_, true)) => operation.eq_ignore_ascii_case("delete"),
                Some((t, false)) => t >= *sync_token && !operation.eq_ignore_ascii_case("delete"),
                None => false,
            };
            Ok(done.then_some(()))
        })
        .await?;
    }
    for (realm, _, _) in &realms {
        assert_eq!(mirror_counts(&pool, realm).await?, qbo_counts(&stack, realm).await?, "realm {realm} equals QBO");
    }
    // Every change logged once: no version twice (the constraint) and nothing left in the outbox.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM qbo_mirror.transaction_log GROUP BY realm_id, entity, entity_id, sync_token HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(duplicates, 0);
    wait_for("the outbox to drain", WAIT, || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM qbo_mirror.outbox").fetch_one(&pool).await?;
        Ok((left == 0).then_some(()))
    })
    .await?;
    let lag: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM recorded_at - last_updated)::float8 FROM qbo_mirror.transaction_log WHERE id > (SELECT max(id) FROM qbo_mirror.transaction_log) - $1 ORDER BY 1",
    )
    .bind(newest.len() as i64)
    .fetch_all(&pool)
    .await?;
    let p95 = lag.get(lag.len().saturating_sub(1) * 95 / 100).copied().unwrap_or_default();
    // The advisor's views, from the mirror.
    let staff = stack.token("staff", TENANT);
    let view = |path: &'static str| {
        let (http, url, staff) = (stack.http.clone(), format!("{}/api/v1/advisor/{path}", stack.gateway_url), staff.clone());
        async move { anyhow::Ok(http.get(url).bearer_auth(staff).send().await?.error_for_status()?.json::<Value>().await?) }
    };
    let digest = view("digest").await?;
    let clients = digest["clients"].as_array().cloned().unwrap_or_default();
    assert_eq!(clients.len(), REALMS, "one digest row per company: {digest}");
    assert!(clients.iter().all(|c| c["cashCents"].as_i64().is_some() && c["changesSince"].as_i64().is_some_and(|n| n > 0)), "{digest}");
    let hygiene = view("hygiene").await?;
    assert!(hygiene["bills"].as_array().is_some_and(|b| !b.is_empty() && b.iter().all(|b| b["issues"].as_array().is_some_and(|i| !i.is_empty()))), "{hygiene}");
    let decisions = view("decisions").await?;
    let due: Vec<&str> = decisions["bills"].as_array().into_iter().flatten().filter_map(|b| b["dueDate"].as_str()).collect();
    assert!(!due.is_empty() && due.windows(2).all(|w| w[0] <= w[1]), "decisions by due date: {decisions}");
    let borrower = stack.http.get(format!("{}/api/v1/advisor/digest", stack.gateway_url)).bearer_auth(stack.token("borrower", TENANT)).send().await?;
    assert_eq!(borrower.status(), 403, "the advisor's views are not a borrower's");
    println!("qbo: digest of {} companies; {} bills in the hygiene tray; {} ready for a decision", clients.len(), hygiene["bills"].as_array().map_or(0, Vec::len), due.len());

    // Reconciliation: a corrupted row, a lost one and a stray one are found and repaired.
    let realm = realms[0].0.clone();
    let (bill, balance): (String, i64) =
        sqlx::query_as("SELECT id, balance_cents FROM qbo_mirror.bills WHERE realm_id = $1 AND NOT deleted AND balance_cents > 0 ORDER BY id LIMIT 1").bind(&realm).fetch_one(&pool).await?;
    let open_before: i64 = sqlx::query_scalar("SELECT sum(balance_cents)::int8 FROM qbo_mirror.open_by_due WHERE realm_id = $1 AND entity = 'Bill'").bind(&realm).fetch_one(&pool).await?;
    sqlx::query("UPDATE qbo_mirror.bills SET balance_cents = balance_cents + 12345 WHERE realm_id = $1 AND id = $2").bind(&realm).bind(&bill).execute(&pool).await?;
    let invoice: String = sqlx::query_scalar("SELECT id FROM qbo_mirror.invoices WHERE realm_id = $1 AND NOT deleted ORDER BY id LIMIT 1").bind(&realm).fetch_one(&pool).await?;
    sqlx::query("DELETE FROM qbo_mirror.invoices WHERE realm_id = $1 AND id = $2").bind(&realm).bind(&invoice).execute(&pool).await?;
    sqlx::query("INSERT INTO qbo_mirror.bills (realm_id, id, sync_token, last_updated, raw, balance_cents, due_date) VALUES ($1, 'stray-1', 0, now() - interval '1 hour', '{}', 999, current_date)")
        .bind(&realm)
        .execute(&pool)
        .await?;
    let out = stack.qbo_mirror_cli(&["reconcile", "--realm", &realm, "--json"]).await?;
    let drift: Value = serde_json::from_str(out.lines().next().unwrap_or_default())?;
    println!("qbo: reconciliation of {realm}: {drift}");
    assert_eq!((drift["missing"].as_i64(), drift["differs"].as_i64(), drift["extra"].as_i64()), (Some(1), Some(1), Some(1)), "{drift}");
    let repaired: i64 = sqlx::query_scalar("SELECT balance_cents FROM qbo_mirror.bills WHERE realm_id = $1 AND id = $2").bind(&realm).bind(&bill).fetch_one(&pool).await?;
    assert_eq!(repaired, balance, "the corrupted balance is QBO's again");
    let back: bool = sqlx::query_scalar("SELECT NOT deleted FROM qbo_mirror.invoices WHERE realm_id = $1 AND id = $2").bind(&realm).bind(&invoice).fetch_one(&pool).await?;
    assert!(back, "the lost invoice is mirrored again");
    let stray: bool = sqlx::query_scalar("SELECT deleted FROM qbo_mirror.bills WHERE realm_id = $1 AND id = 'stray-1'").bind(&realm).fetch_one(&pool).await?;
    assert!(stray, "the stray bill is marked deleted");
    let open_after: i64 = sqlx::query_scalar("SELECT sum(balance_cents)::int8 FROM qbo_mirror.open_by_due WHERE realm_id = $1 AND entity = 'Bill'").bind(&realm).fetch_one(&pool).await?;
    assert_eq!(open_after, open_before, "the aggregates match the rows again");
    let again: Value = serde_json::from_str(stack.qbo_mirror_cli(&["reconcile", "--realm", &realm, "--json"]).await?.lines().next().unwrap_or_default())?;
    assert_eq!((again["missing"].as_i64(), again["differs"].as_i64(), again["extra"].as_i64()), (Some(0), Some(0), Some(0)), "nothing left to repair: {again}");

    // A company whose consent is revoked pauses alone, visibly; the others keep syncing.
    let revoked = realms[1].0.clone();
    stack.http.post(format!("{qbo}/control/realms/{revoked}/revoke")).send().await?.error_for_status()?;
    stack.http.post(format!("{qbo}/control/changes")).json(&json!({ "updates": 1, "seed": 900 })).send().await?.error_for_status()?;
    let health = wait_for("health/sync to show the revoked company", WAIT, || async {
        let h: Value = stack.http.get(format!("{}/api/v1/health/sync", stack.gateway_url)).send().await?.json().await?;
        let qbo = h["integrations"].as_array().into_iter().flatten().find(|i| i["name"] == "qbo").cloned();
        Ok(qbo.filter(|q| q["realms"]["revoked"] == json!([revoked.clone()]) && q["realms"]["active"] == (REALMS - 1) as i64))
    })
    .await?;
    println!("qbo: health/sync with a revoked company: {}", health["realms"]);
    let other = realms[2].0.clone();
    let synced_after = chrono::Utc::now();
    wait_for("the other companies to keep syncing", WAIT, || async {
        let at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar("SELECT last_synced_at FROM qbo_mirror.realms WHERE realm_id = $1").bind(&other).fetch_one(&pool).await?;
        Ok(at.filter(|t| *t > synced_after).map(|_| ()))
    })
    .await?;

    let stats: Value = stack.http.get(format!("{qbo}/control/stats")).send().await?.json().await?;
    let throttled: i64 = stats["realms"].as_object().into_iter().flatten().map(|(_, r)| r["throttled"].as_i64().unwrap_or_default()).sum();
    let deliveries: Value = stack.http.get(format!("{qbo}/control/webhooks")).send().await?.json().await?;
    assert!(deliveries["counts"]["delivered"].as_i64().is_some_and(|n| n > 0), "webhooks reached the gateway: {deliveries}");
    println!("qbo: {} changes, newest versions of {} entities mirrored; change → mirror P95 {p95:.2} s; 429s {throttled}; webhooks {}", changes.len(), newest.len(), deliveries["counts"]);
    assert_eq!(throttled, 0, "within the rate limits");
    stack.stop_all().await?;
    Ok(())
}
