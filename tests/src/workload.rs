//! Drives loan changes through the Ventures simulator's control API and checks, independently of
//! the services' own counters, what reached Firestore, the read model and `event_log`.

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt, stream};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sqlx::PgPool;

use projection_writer::firestore::{self as fs, Projections};

pub const STATUSES: [&str; 7] = ["Prospect", "Open", "Approved", "Funded", "Denied", "Withdrawn", "Incomplete"];

/// What the source says each application must end as.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// application id → (loan id, final version, final status)
    pub loans: BTreeMap<String, (String, i64, String)>,
    pub changes: usize,
}

impl Expected {
    fn record(&mut self, loan: &Value) {
        let app = loan["externalId"].as_str().unwrap_or_default().to_string();
        let version = loan["version"].as_i64().unwrap_or_default();
        let entry = self.loans.entry(app).or_insert_with(|| (String::new(), 0, String::new()));
        if version > entry.1 {
            *entry = (loan["loanId"].as_str().unwrap_or_default().to_string(), version, loan["status"].as_str().unwrap_or_default().to_string());
        }
    }

    /// Every (application, version) the source produced.
    pub fn versions(&self) -> usize {
        self.loans.values().map(|(_, v, _)| *v as usize).sum()
    }
}

pub struct Driver {
    pub sim_url: String,
    pub http: reqwest::Client,
    pub rng: StdRng,
    pub concurrency: usize,
}

impl Driver {
    pub fn new(sim_url: &str, seed: u64) -> Self {
        Self { sim_url: sim_url.to_string(), http: reqwest::Client::new(), rng: StdRng::seed_from_u64(seed), concurrency: 8 }
    }

    async fn post(http: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
        let response = http.post(&url).json(&body).send().await?;
        anyhow::ensure!(response.status().is_success(), "POST {url} → {}", response.status());
        Ok(response.json().await?)
    }

    /// Creates `count` loans whose application ids are `{prefix}-{i}`.
    pub async fn create_loans(&mut self, prefix: &str, count: usize, expected: &mut Expected) -> anyhow::Result<()> {
        let bodies: Vec<_> = (0..count)
            .map(|i| {
                json!({
                    "loanType": (["504", "7A", "Commercial"][i % 3]),
                    "status": "Prospect",
                    "borrower": { "entityId": format!("B-{i}"), "name": format!("Borrower {i}") },
                    "amounts": { "requested": 50_000.0 + i as f64 * 1_000.0 },
                    "externalId": format!("{prefix}-{i}"),
                })
            })
            .collect();
        let url = format!("{}/control/loans", self.sim_url);
        let results: Vec<_> = stream::iter(bodies)
            .map(|b| Self::post(&self.http, url.clone(), b))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for loan in results {
            expected.record(&loan?);
        }
        Ok(())
    }

    /// Makes `count` status changes on random loans, at most `rate` per second when given.
    pub async fn change_statuses(&mut self, count: usize, rate: Option<f64>, expected: &mut Expected) -> anyhow::Result<()> {
        let loans: Vec<String> = expected.loans.values().map(|(id, _, _)| id.clone()).collect();
        anyhow::ensure!(!loans.is_empty(), "create loans first");
        let started = tokio::time::Instant::now();
        let batch = self.concurrency.max(1);
        let mut done = 0;
        while done < count {
            let n = batch.min(count - done);
            let calls: Vec<_> = (0..n)
                .map(|_| {
                    let loan = &loans[self.rng.random_range(0..loans.len())];
                    let status = STATUSES[self.rng.random_range(0..STATUSES.len())];
                    Self::post(&self.http, format!("{}/control/loans/{loan}/status", self.sim_url), json!({ "status": status }))
                })
                .collect();
            for loan in futures::future::join_all(calls).await {
                expected.record(&loan?);
            }
            done += n;
            expected.changes += n;
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(done as f64 / rate);
                tokio::time::sleep_until(due).await;
            }
        }
        Ok(())
    }
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub applications: usize,
    pub source_versions: usize,
    pub event_log_rows: usize,
    /// Source versions with no `event_log` row (exact mode) or applications short of their final version.
    pub lost: usize,
    /// `event_log` rows beyond one per (application, version).
    pub duplicates: usize,
    /// Places where an application's `event_log` versions go backwards.
    pub inversions: usize,
    pub read_model_mismatches: usize,
    pub firestore_mismatches: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.inversions == 0 && self.read_model_mismatches == 0 && self.firestore_mismatches == 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "applications={} source_versions={} event_log_rows={} lost={} duplicates={} inversions={} read_model_mismatches={} firestore_mismatches={}",
            self.applications, self.source_versions, self.event_log_rows, self.lost, self.duplicates, self.inversions, self.read_model_mismatches, self.firestore_mismatches
        )
    }
}

/// Whether the read model shows every application at its final version.
pub async fn read_model_converged(pool: &PgPool, expected: &Expected) -> anyhow::Result<bool> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT application_id, version FROM projection_writer.applications").fetch_all(pool).await?;
    let applied: BTreeMap<_, _> = rows.into_iter().collect();
    Ok(expected.loans.iter().all(|(app, (_, version, _))| applied.get(app) == Some(version)))
}

/// Waits until the read model shows every application at its final version.
pub async fn wait_converged(pool: &PgPool, expected: &Expected, timeout: Duration) -> anyhow::Result<()> {
    crate::wait_for("the read model to converge", timeout, || async { Ok(read_model_converged(pool, expected).await?.then_some(())) }).await
}

/// Checks every invariant. With `exact`, every source version must have its `event_log` row
/// (no coalescing allowed, e.g. no resync happened).
pub async fn check(pool: &PgPool, projections: &Projections, expected: &Expected, exact: bool) -> anyhow::Result<Report> {
    let mut report = Report { applications: expected.loans.len(), source_versions: expected.versions(), ..Report::default() };
    let ids: Vec<String> = expected.loans.keys().cloned().collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT entity_id, version FROM projection_writer.event_log
         WHERE entity_type = 'application' AND entity_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    report.event_log_rows = rows.len();
    let mut per_app: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (app, version) in rows {
        per_app.entry(app).or_default().push(version);
    }
    for (app, (_, final_version, _)) in &expected.loans {
        let versions = per_app.remove(app).unwrap_or_default();
        report.inversions += versions.windows(2).filter(|w| w[1] <= w[0]).count();
        let mut distinct = versions.clone();
        distinct.sort_unstable();
        distinct.dedup();
        report.duplicates += versions.len() - distinct.len();
        if exact {
            report.lost += (1..=*final_version).filter(|v| distinct.binary_search(v).is_err()).count();
        } else if distinct.last() != Some(final_version) {
            report.lost += 1;
        }
    }

    let read_model: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT application_id, version, ventures_status FROM projection_writer.applications").fetch_all(pool).await?;
    let read_model: BTreeMap<_, _> = read_model.into_iter().map(|(a, v, s)| (a, (v, s))).collect();
    let mut documents = BTreeMap::new();
    for chunk in ids.chunks(100) {
        documents.extend(projections.get("applications", chunk).await?);
    }
    for (app, (_, version, status)) in &expected.loans {
        if read_model.get(app) != Some(&(*version, status.clone())) {
            report.read_model_mismatches += 1;
        }
        let doc = documents.get(app);
        let doc_version = doc.and_then(|d| d.get("venturesVersion")).and_then(fs::as_i64);
        let doc_status = doc.and_then(|d| d.get("venturesStatus")).and_then(fs::as_str);
        if doc_version != Some(*version) || doc_status != Some(status.as_str()) {
            report.firestore_mismatches += 1;
        }
    }
    Ok(report)
}

/// Source-change → projection-committed delay of every applied change of the applications whose
/// ids start with `prefix`, in seconds, sorted.
pub async fn projection_lags(pool: &PgPool, prefix: &str) -> anyhow::Result<Vec<f64>> {
    let mut lags: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (recorded_at - occurred_at))::float8 FROM projection_writer.event_log
         WHERE entity_id LIKE $1 || '%'",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

/// The `p`-th percentile (0-100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
