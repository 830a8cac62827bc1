//! Reconciliation of the Firestore projections with the read model: every
//! `RECONCILE_INTERVAL_MS` (10 min; 0 = off) every application of the read model is read back from
//! Firestore in batches and compared on its version and status. A document missing, or holding
//! another version or status, is drift (`projection_writer_drift_total{kind}`: `missing`,
//! `differs`): the guard's check ([`crate::guard`]) restores Brain's values from the read model
//! and reports a `ProtectedFieldViolation` (the drift event). A document ahead of the read model is
//! a projection in flight, left for the next round; tenants whose `firestore` capability is held
//! are skipped (their projections wait on purpose).

use std::{sync::Arc, time::Duration};

use brain_runtime::{retry::sleep_or_cancel, telemetry::metric_name};
use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    firestore::{self, Projections},
    guard::{Check, ProtectedFieldGuard},
    handler::{COLLECTION, VERSION_FIELD},
};

const PAGE: i64 = 300;

/// What one round found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub compared: usize,
    pub missing: usize,
    pub differs: usize,
    pub repaired: usize,
}

pub async fn run(guard: Arc<ProtectedFieldGuard>, pool: PgPool, projections: Projections, every: Duration, stop: CancellationToken) {
    if every.is_zero() {
        return;
    }
    while sleep_or_cancel(every, &stop).await {
        match round(&guard, &pool, &projections, &stop).await {
            Ok(r) if r.missing + r.differs > 0 => tracing::warn!(compared = r.compared, missing = r.missing, differs = r.differs, repaired = r.repaired, "projections drifted from the read model; repaired"),
            Ok(r) => tracing::debug!(compared = r.compared, "projections match the read model"),
            Err(e) => tracing::warn!(error = %e, "reconciliation round failed; next round later"),
        }
    }
}

type Row = (String, String, i64, String, String);

pub async fn round(guard: &ProtectedFieldGuard, pool: &PgPool, projections: &Projections, stop: &CancellationToken) -> anyhow::Result<Round> {
    let mut result = Round::default();
    let mut after = String::new();
    loop {
        if stop.is_cancelled() {
            break;
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT application_id, tenant_id, version, ventures_status, correlation_id FROM applications WHERE application_id > $1 ORDER BY application_id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0.clone();
        projections.ready().await;
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let docs = projections.get(COLLECTION, &ids).await?;
        for (id, tenant, version, status, correlation) in &rows {
            if projections.gate().is_some_and(|g| g.flags.holds(g.integration, tenant)) {
                continue;
            }
            result.compared += 1;
            let doc = docs.get(id);
            let kind = match doc {
                None => "missing",
                Some(fields) => {
                    let shown_version = fields.get(VERSION_FIELD).and_then(firestore::as_i64);
                    let shown_status = fields.get("venturesStatus").and_then(firestore::as_str);
                    if shown_version.is_some_and(|v| v > *version) {
                        continue; // in flight
                    }
                    if shown_version == Some(*version) && shown_status == Some(status.as_str()) {
                        continue;
                    }
                    "differs"
                }
            };
            metrics::counter!(metric_name(SERVICE, "drift_total"), "kind" => kind).increment(1);
            if kind == "missing" {
                result.missing += 1;
            } else {
                result.differs += 1;
            }
            let cause = format!("reconcile:{id}:{}", Utc::now().timestamp_millis());
            let check = Check { application_id: id, tenant_id: tenant, correlation_id: correlation, cause: &cause, attempt: u32::MAX, create_missing: true };
            match guard.check(check).await {
                Ok(restored) if !restored.is_empty() => result.repaired += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(application_id = %id, error = %e, "could not repair the projection; next round"),
            }
        }
    }
    Ok(result)
}
