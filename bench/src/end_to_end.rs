//! Figure (4)'s end-to-end latency: a status change in the Ventures simulator timed to its
//! Firestore document, through ventures-sync's sweep and projection-writer.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::json;
use system_tests::workload::{self, Driver, Expected};

use projection_writer::firestore::{self as fs, Projections};

use crate::pipeline::Latency;

/// ventures-sync's sweep interval as the harness sets it (`tests/src/stack.rs`).
pub const HARNESS_SWEEP_INTERVAL_MS: u64 = 200;

#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub changes: usize,
    pub loans: usize,
    pub changes_per_sec: f64,
    pub sweep_interval_ms: u64,
    pub latency: Latency,
}

/// Makes `changes_per_sec` status changes for `duration` over `loans` loans in the simulator and
/// times each one to its Firestore document.
pub async fn end_to_end(
    sim_url: &str,
    projections: &Projections,
    loans: usize,
    changes_per_sec: f64,
    duration: Duration,
    drain: Duration,
) -> anyhow::Result<EndToEnd> {
    let prefix = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let mut expected = Expected::default();
    let mut driver = Driver::new(sim_url, 11);
    driver.create_loans(&prefix, loans, &mut expected).await?;
    let apps: Vec<(String, String)> = expected
        .loans
        .iter()
        .map(|(app, (loan, _, _))| (app.clone(), loan.clone()))
        .collect();
    let total = (changes_per_sec * duration.as_secs_f64()).round().max(1.0) as usize;

    // (application, version) → when the change was requested.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, i64, Instant)>(total);
    let http = driver.http.clone();
    let sim = sim_url.to_string();
    let changer = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for i in 0..total {
            let (app, loan) = &apps[i % apps.len()];
            let status = workload::STATUSES[(i / apps.len() + 1) % workload::STATUSES.len()];
            let at = Instant::now();
            let response = http
                .post(format!("{sim}/control/loans/{loan}/status"))
                .json(&json!({ "status": status }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "status change → {}",
                response.status()
            );
            let version = response.json::<serde_json::Value>().await?["version"]
                .as_i64()
                .unwrap_or_default();
            tx.send((app.clone(), version, at)).await?;
            tokio::time::sleep_until(
                started + Duration::from_secs_f64((i + 1) as f64 / changes_per_sec),
            )
            .await;
        }
        anyhow::Ok(())
    });

    let deadline = Instant::now() + duration + drain;
    let mut pending: BTreeMap<String, Vec<(i64, Instant)>> = BTreeMap::new();
    let (mut lags, mut received) = (Vec::with_capacity(total), 0);
    while lags.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} changes reached Firestore in time",
            lags.len()
        );
        while let Ok((app, version, at)) = rx.try_recv() {
            pending.entry(app).or_default().push((version, at));
            received += 1;
        }
        let ids: Vec<String> = pending.keys().cloned().collect();
        let mut documents = HashMap::new();
        for chunk in ids.chunks(100) {
            documents.extend(projections.get("applications", chunk).await?);
        }
        let now = Instant::now();
        for (app, doc) in documents {
            let Some(shown) = doc.get("venturesVersion").and_then(fs::as_i64) else {
                continue;
            };
            if let Some(changes) = pending.get_mut(&app) {
                changes.retain(|(version, at)| {
                    let done = *version <= shown;
                    if done {
                        lags.push((now - *at).as_secs_f64());
                    }
                    !done
                });
            }
        }
        pending.retain(|_, changes| !changes.is_empty());
        if received < total || !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    changer.await??;
    Ok(EndToEnd {
        changes: total,
        loans,
        changes_per_sec,
        sweep_interval_ms: HARNESS_SWEEP_INTERVAL_MS,
        latency: Latency::of(lags),
    })
}
