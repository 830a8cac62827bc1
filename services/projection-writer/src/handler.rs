//! `LoanStatusChanged` → `applications/{id}` in Firestore, the console read model and one
//! `event_log` row, exactly once per (application, version).
//!
//! Order of work, all under a per-application advisory lock held by the transaction:
//! 1. skip if this event id was processed, or if its version is not newer than the read model's;
//! 2. write the Brain-owned Firestore fields (idempotent: the same event writes the same values);
//! 3. upsert the read model, append to `event_log`, record the event as processed; commit.
//!
//! A crash between 2 and 3 redelivers the event, which rewrites the same Firestore fields and then
//! commits; the lock keeps two instances from interleaving on one application during a rebalance.

use brain_events::LoanStatusChanged;
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Source},
    db,
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    SERVICE,
    firestore::{self, Projections},
};

pub const COLLECTION: &str = "applications";

pub struct LoanStatusHandler {
    pub pool: PgPool,
    pub projections: Projections,
    pub consumer: String,
}

impl Handler for LoanStatusHandler {
    type Event = LoanStatusChanged;

    async fn handle(&self, _source: Source<'_>, event: LoanStatusChanged) -> Result<Applied, HandlerError> {
        tracing::Span::current().record("correlation_id", event.correlation_id.as_str());
        let event_id = validate(&event)?;
        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        db::lock_entity(&mut tx, &format!("application:{}", event.application_id)).await.map_err(db::classify)?;
        if db::was_processed(&mut tx, &self.consumer, event_id).await.map_err(db::classify)? {
            return Ok(Applied::Duplicate);
        }
        let applied: Option<(i64, String)> =
            sqlx::query_as("SELECT version, ventures_status FROM applications WHERE application_id = $1")
                .bind(&event.application_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db::classify)?;
        if !db::is_newer(applied.as_ref().map(|(v, _)| *v), event.version) {
            db::record_processed(&mut tx, &self.consumer, event_id).await.map_err(db::classify)?;
            tx.commit().await.map_err(db::classify)?;
            return Ok(Applied::Stale);
        }

        self.projections
            .merge_fields(COLLECTION, &event.application_id, firestore_fields(&event))
            .await
            .map_err(|status| {
                let message = format!("Firestore commit failed: {status}");
                if firestore::is_transient(&status) {
                    HandlerError::unavailable("firestore", message)
                } else {
                    HandlerError::permanent("firestore_rejected", message)
                }
            })?;

        upsert_read_model(&mut tx, &event, event_id).await.map_err(db::classify)?;
        let previous_status = applied.map(|(_, s)| s);
        append_event_log(&mut tx, &event, event_id, previous_status).await.map_err(db::classify)?;
        db::record_processed(&mut tx, &self.consumer, event_id).await.map_err(db::classify)?;
        tx.commit().await.map_err(db::classify)?;

        let lag = (Utc::now().timestamp_millis() - event.occurred_at).max(0) as f64 / 1000.0;
        metrics::histogram!(metric_name(SERVICE, "source_to_projection_seconds"), "entity" => "application").record(lag);
        Ok(Applied::Processed)
    }
}

/// Permanent errors for events no retry can fix; they go to the dead-letter topic.
fn validate(event: &LoanStatusChanged) -> Result<Uuid, HandlerError> {
    let id = &event.application_id;
    if id.is_empty() || id.len() > 1500 || id.contains('/') || id == "." || id == ".." || (id.starts_with("__") && id.ends_with("__")) {
        return Err(HandlerError::permanent("validation", format!("application id {id:?} is not a valid Firestore document id")));
    }
    if event.version < 1 {
        return Err(HandlerError::permanent("validation", format!("version {} is not positive", event.version)));
    }
    if event.loan.status.is_empty() {
        return Err(HandlerError::permanent("validation", "empty loan status"));
    }
    if DateTime::from_timestamp_millis(event.occurred_at).is_none() {
        return Err(HandlerError::permanent("validation", "occurred_at out of range"));
    }
    Uuid::parse_str(&event.event_id).map_err(|e| HandlerError::permanent("validation", format!("event_id is not a UUID: {e}")))
}

/// The Brain-owned fields of `applications/{id}`.
pub fn firestore_fields(event: &LoanStatusChanged) -> Vec<(&'static str, firestore::FirestoreValue)> {
    vec![
        ("venturesStatus", firestore::string(&event.loan.status)),
        ("venturesStatusChangedAt", firestore::timestamp_millis(event.loan.status_changed_at)),
        ("venturesLoanId", firestore::string(&event.loan.loan_id)),
        ("venturesVersion", firestore::integer(event.version)),
        ("lastVenturesSyncAt", firestore::timestamp_millis(Utc::now().timestamp_millis())),
        ("updatedBy", firestore::string(format!("brain:{SERVICE}"))),
        ("correlationId", firestore::string(&event.correlation_id)),
    ]
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

async fn upsert_read_model(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, e: &LoanStatusChanged, event_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO applications (application_id, tenant_id, loan_id, loan_number, loan_type, ventures_status,
             status_changed_at, amount_requested_cents, amount_approved_cents, version, source_updated_at,
             source_occurred_at, projected_at, last_event_id, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), $13, $14)
         ON CONFLICT (application_id) DO UPDATE SET tenant_id = $2, loan_id = $3, loan_number = $4, loan_type = $5,
             ventures_status = $6, status_changed_at = $7, amount_requested_cents = $8, amount_approved_cents = $9,
             version = $10, source_updated_at = $11, source_occurred_at = $12, projected_at = now(),
             last_event_id = $13, correlation_id = $14
         WHERE applications.version < $10",
    )
    .bind(&e.application_id)
    .bind(&e.tenant_id)
    .bind(&e.loan.loan_id)
    .bind(&e.loan.loan_number)
    .bind(&e.loan.loan_type)
    .bind(&e.loan.status)
    .bind(ts(e.loan.status_changed_at))
    .bind(e.loan.amount_requested_cents)
    .bind(e.loan.amount_approved_cents)
    .bind(e.version)
    .bind(ts(e.loan.updated_at))
    .bind(ts(e.occurred_at))
    .bind(event_id)
    .bind(&e.correlation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn append_event_log(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    e: &LoanStatusChanged,
    event_id: Uuid,
    previous_status: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at,
             correlation_id, causation_id, producer, change)
         VALUES ($1, 'loan.status_changed', $2, 'application', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event_id)
    .bind(&e.tenant_id)
    .bind(&e.application_id)
    .bind(e.version)
    .bind(ts(e.occurred_at))
    .bind(&e.correlation_id)
    .bind(&e.causation_id)
    .bind(&e.producer)
    .bind(json!({ "field": "venturesStatus", "from": previous_status, "to": e.loan.status }))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
