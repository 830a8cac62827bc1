//! Status-change commands (flow 2) → the `status_commands` read model, the `statusCommand` field
//! of `applications/{id}` and two `event_log` entries per command (requested, then resolved).
//!
//! The request (from the gateway) and the outcome (from ventures-sync) travel on two topics, so
//! either may arrive first: the row takes the fields of both, and its state only moves from
//! `pending` to `applied` or `rejected`. Each event is applied in one PostgreSQL transaction
//! with its processed-event record, under the application's lock; Firestore's `statusCommand`
//! (written before the commit, so a crash redelivers and rewrites it) shows the application's
//! most recent command only, so an old command's late outcome never hides a newer request.
//! The loan's new status itself arrives as a `LoanStatusChanged` (handler.rs).

use std::sync::Arc;

use brain_events::{CommandOutcome, StatusChangeRequested, StatusChangeResolved};
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    SERVICE,
    firestore::{self, FirestoreValue, Projections},
    handler::{COLLECTION, check_application_id, firestore_error},
    seen::SeenCache,
};

/// The Firestore field of `applications/{id}` that shows the latest command.
pub const COMMAND_FIELD: &str = "statusCommand";

/// What projection-writer needs to project commands; shared by both handlers.
pub struct CommandProjector {
    pub pool: PgPool,
    pub projections: Projections,
    pub firestore_deadline: std::time::Duration,
    /// The loan handler's cache: a `statusCommand` write changes the document's update time.
    pub seen: Arc<SeenCache>,
}

/// The handler of `gateway.application.status-change-requested.v1`.
pub struct RequestedHandler {
    pub projector: Arc<CommandProjector>,
    pub consumer: String,
}

/// The handler of `ventures.application.status-change-resolved.v1`.
pub struct ResolvedHandler {
    pub projector: Arc<CommandProjector>,
    pub consumer: String,
}

impl Handler for RequestedHandler {
    type Event = StatusChangeRequested;

    crate::firestore::firestore_gated!(projector.projections, StatusChangeRequested);

    async fn handle(&self, _source: Source<'_>, e: StatusChangeRequested) -> Outcome {
        let fact = Fact {
            event_id: parse_id("event_id", &e.event_id)?,
            command_id: parse_id("event_id", &e.event_id)?,
            tenant_id: e.tenant_id,
            application_id: e.application_id,
            loan_id: e.loan_id,
            to_status: e.to_status,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            producer: e.producer,
            occurred_at: e.occurred_at,
            kind: Kind::Requested {
                from_status: e.from_status,
                app_version: e.app_version,
                force: e.force,
                reason: e.reason,
                actor_subject: e.actor_subject,
                actor_role: e.actor_role,
            },
        };
        self.projector.apply(&self.consumer, fact).await
    }
}

impl Handler for ResolvedHandler {
    type Event = StatusChangeResolved;

    crate::firestore::firestore_gated!(projector.projections, StatusChangeResolved);

    async fn handle(&self, _source: Source<'_>, e: StatusChangeResolved) -> Outcome {
        let fact = Fact {
            event_id: parse_id("event_id", &e.event_id)?,
            command_id: parse_id("command_id", &e.command_id)?,
            tenant_id: e.tenant_id,
            application_id: e.application_id,
            loan_id: e.loan_id,
            to_status: e.to_status,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            producer: e.producer,
            occurred_at: e.occurred_at,
            kind: Kind::Resolved {
                state: match e.outcome {
                    CommandOutcome::Applied => "applied",
                    CommandOutcome::Rejected => "rejected",
                },
                version: e.version,
                reason_code: e.reason_code,
                reason: e.reason,
            },
        };
        self.projector.apply(&self.consumer, fact).await
    }
}

/// What one event says about a command.
struct Fact {
    event_id: Uuid,
    command_id: Uuid,
    tenant_id: String,
    application_id: String,
    loan_id: String,
    to_status: String,
    correlation_id: String,
    causation_id: Option<String>,
    producer: String,
    occurred_at: i64,
    kind: Kind,
}

enum Kind {
    Requested { from_status: String, app_version: i64, force: bool, reason: Option<String>, actor_subject: String, actor_role: String },
    Resolved { state: &'static str, version: Option<i64>, reason_code: Option<String>, reason: Option<String> },
}

/// The command as it stands after an event.
#[derive(Debug, sqlx::FromRow)]
struct CommandRow {
    command_id: Uuid,
    to_status: String,
    from_status: Option<String>,
    app_version: Option<i64>,
    force: Option<bool>,
    reason: Option<String>,
    actor_subject: Option<String>,
    actor_role: Option<String>,
    state: String,
    reason_code: Option<String>,
    rejection: Option<String>,
    applied_version: Option<i64>,
    requested_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    correlation_id: String,
}

/// The columns of `CommandRow`, for `concat!` (sqlx takes static SQL only).
macro_rules! returning {
    () => {
        " RETURNING command_id, to_status, from_status, app_version, force, reason, actor_subject, actor_role, state,
            reason_code, rejection, applied_version, requested_at, resolved_at, correlation_id"
    };
}

impl CommandProjector {
    async fn apply(&self, consumer: &str, fact: Fact) -> Outcome {
        check_application_id(&fact.application_id)?;
        let occurred_at = DateTime::from_timestamp_millis(fact.occurred_at).ok_or_else(|| HandlerError::permanent("validation", "occurred_at out of range"))?;
        tracing::Span::current().record("correlation_id", fact.correlation_id.as_str());

        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        if !db::record_processed(&mut tx, consumer, fact.event_id).await.map_err(db::classify)? {
            return Ok(Applied::Duplicate);
        }
        db::lock_entity(&mut tx, &format!("application:{}", fact.application_id)).await.map_err(db::classify)?;
        let row = upsert(&mut tx, &fact, occurred_at).await.map_err(db::classify)?;
        let (event_type, version) = match fact.kind {
            Kind::Requested { .. } => ("status_command.requested", 1),
            Kind::Resolved { .. } => ("status_command.resolved", 2),
        };
        sqlx::query(
            "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at, correlation_id, causation_id, producer, change)
             VALUES ($1, $2, $3, 'status_command', $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(fact.event_id)
        .bind(event_type)
        .bind(&fact.tenant_id)
        .bind(fact.command_id.to_string())
        .bind(version)
        .bind(occurred_at)
        .bind(&fact.correlation_id)
        .bind(&fact.causation_id)
        .bind(&fact.producer)
        .bind(audit_change(&fact.application_id, &row))
        .execute(&mut *tx)
        .await
        .map_err(db::classify)?;

        let latest: Option<Uuid> = sqlx::query_scalar(
            "SELECT command_id FROM status_commands WHERE application_id = $1
             ORDER BY COALESCE(requested_at, resolved_at) DESC, command_id DESC LIMIT 1",
        )
        .bind(&fact.application_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::classify)?;
        if latest == Some(row.command_id) {
            let write = self.projections.merge_write(COLLECTION, &fact.application_id, vec![(COMMAND_FIELD, firestore_value(&row))], None);
            let committed = self.projections.commit(vec![write], self.firestore_deadline).await;
            self.seen.forget(&[fact.application_id.as_str()]);
            committed.map_err(firestore_error)?;
        }
        tx.commit().await.map_err(db::classify)?;
        let delay = (Utc::now().timestamp_millis() - fact.occurred_at).max(0) as f64 / 1000.0;
        metrics::histogram!(metric_name(SERVICE, "source_to_projection_seconds"), "entity" => "status_command").record(delay);
        Ok(Applied::Processed)
    }
}

async fn upsert(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, fact: &Fact, occurred_at: DateTime<Utc>) -> Result<CommandRow, sqlx::Error> {
    match &fact.kind {
        Kind::Requested { from_status, app_version, force, reason, actor_subject, actor_role } => {
            sqlx::query_as(concat!(
                "INSERT INTO status_commands (command_id, tenant_id, application_id, loan_id, to_status, from_status, app_version, force,
                     reason, actor_subject, actor_role, state, requested_at, correlation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13)
                 ON CONFLICT (command_id) DO UPDATE SET from_status = EXCLUDED.from_status, app_version = EXCLUDED.app_version,
                     force = EXCLUDED.force, reason = EXCLUDED.reason, actor_subject = EXCLUDED.actor_subject,
                     actor_role = EXCLUDED.actor_role, requested_at = EXCLUDED.requested_at, updated_at = now()",
                returning!()
            ))
            .bind(fact.command_id)
            .bind(&fact.tenant_id)
            .bind(&fact.application_id)
            .bind(&fact.loan_id)
            .bind(&fact.to_status)
            .bind(from_status)
            .bind(app_version)
            .bind(force)
            .bind(reason)
            .bind(actor_subject)
            .bind(actor_role)
            .bind(occurred_at)
            .bind(&fact.correlation_id)
            .fetch_one(&mut **tx)
            .await
        }
        Kind::Resolved { state, version, reason_code, reason } => {
            sqlx::query_as(concat!(
                "INSERT INTO status_commands (command_id, tenant_id, application_id, loan_id, to_status, state, reason_code, rejection,
                     applied_version, resolved_at, correlation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (command_id) DO UPDATE SET state = EXCLUDED.state, reason_code = EXCLUDED.reason_code,
                     rejection = EXCLUDED.rejection, applied_version = EXCLUDED.applied_version,
                     resolved_at = EXCLUDED.resolved_at, updated_at = now()",
                returning!()
            ))
            .bind(fact.command_id)
            .bind(&fact.tenant_id)
            .bind(&fact.application_id)
            .bind(&fact.loan_id)
            .bind(&fact.to_status)
            .bind(state)
            .bind(reason_code)
            .bind(reason)
            .bind(version)
            .bind(occurred_at)
            .bind(&fact.correlation_id)
            .fetch_one(&mut **tx)
            .await
        }
    }
}

/// The audit entry: who asked what, from which status to which, why, and how it ended. Ids,
/// statuses and the user's reason only.
fn audit_change(application_id: &str, row: &CommandRow) -> serde_json::Value {
    json!({
        "applicationId": application_id,
        "field": "venturesStatus",
        "from": row.from_status,
        "to": row.to_status,
        "state": row.state,
        "appVersion": row.app_version,
        "force": row.force,
        "reason": row.reason,
        "actor": { "subject": row.actor_subject, "role": row.actor_role },
        "appliedVersion": row.applied_version,
        "reasonCode": row.reason_code,
        "rejection": row.rejection,
    })
}

/// `statusCommand` as it should be for `application_id` (its latest command; null without one),
/// with the latest command's id and state.
pub(crate) async fn latest_command(pool: &PgPool, application_id: &str) -> Result<(FirestoreValue, Option<(String, String)>), sqlx::Error> {
    let row: Option<CommandRow> = sqlx::query_as(
        "SELECT command_id, to_status, from_status, app_version, force, reason, actor_subject, actor_role, state,
            reason_code, rejection, applied_version, requested_at, resolved_at, correlation_id
         FROM status_commands WHERE application_id = $1 ORDER BY COALESCE(requested_at, resolved_at) DESC, command_id DESC LIMIT 1",
    )
    .bind(application_id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => (firestore_value(&row), Some((row.command_id.to_string(), row.state.clone()))),
        None => (firestore::null(), None),
    })
}

/// `statusCommand` of `applications/{id}`, as the apps read it.
fn firestore_value(row: &CommandRow) -> FirestoreValue {
    let text = |s: &Option<String>| firestore::optional(s.as_deref().map(firestore::string));
    let time = |t: &Option<DateTime<Utc>>| firestore::optional(t.map(|t| firestore::timestamp_millis(t.timestamp_millis())));
    firestore::map(vec![
        ("commandId", firestore::string(row.command_id.to_string())),
        ("state", firestore::string(&row.state)),
        ("toStatus", firestore::string(&row.to_status)),
        ("fromStatus", text(&row.from_status)),
        ("reasonCode", text(&row.reason_code)),
        ("rejection", text(&row.rejection)),
        ("appliedVersion", firestore::optional(row.applied_version.map(firestore::integer))),
        ("requestedByRole", text(&row.actor_role)),
        ("requestedAt", time(&row.requested_at)),
        ("resolvedAt", time(&row.resolved_at)),
        ("correlationId", firestore::string(&row.correlation_id)),
    ])
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::permanent("validation", format!("{field} {id:?} is not a UUID")))
}
