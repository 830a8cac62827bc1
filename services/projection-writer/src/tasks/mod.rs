//! Flow 4's tasks: one per Ventures condition (task id = condition id), in the `tasks` read model
//! and in Firestore at `applications/{id}/tasks/{taskId}`, from three topics:
//!
//! - `ventures.condition.changed.v1`: the condition's state, monotonic by its Ventures version (an
//!   older version changes nothing);
//! - `gateway.document.uploaded.v1`: the borrower's latest upload (`document.state` = `received`);
//! - `sharefile.document.stored.v1`: that upload is in ShareFile (`stored`).
//!
//! The task's state follows from them: `completed` once Ventures has satisfied (or waived) the
//! condition, `pending_review` while it holds a received document, else `open` (`awaiting_upload`
//! when the staff asked for a new document). Only Ventures completes a task: an upload never
//! does. Entering a state schedules its SLA timer and leaving it cancels the timer, in the same
//! transaction (`sla`). Each event is applied in one PostgreSQL transaction with its processed-event record and
//! an `event_log` entry, under the task's lock; Firestore is written before the commit, so a crash
//! redelivers and rewrites it.


mod facts;
mod state;

pub use state::Action;
use facts::fact_of;
use state::{Fact, TaskRow, evolve, state_label};

use std::sync::Arc;

use brain_events::{ConditionChanged, DocumentStored, DocumentUploaded, TaskActionRequested};
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    telemetry::metric_name,
};
use chrono::DateTime;
use serde_json::json;
use sqlx::PgPool;

use crate::{
    SERVICE,
    firestore::{self, FirestoreValue, Projections},
    handler::{COLLECTION, check_application_id, firestore_error},
    inbox,
    sla::{self, SlaConfig},
};

/// The columns of `TaskRow`, for `concat!` (sqlx takes static SQL only).
macro_rules! columns {
    () => {
        "task_id, application_id, loan_id, condition_id, title, state, state_since, condition_status, condition_version, condition_item_id,
         document_id, document_name, document_state, document_item_id, document_at, rejection_reason, revision,
         assignee, upload_requested, request_note, rejected_item_id"
    };
}

pub struct TaskProjector {
    pub pool: PgPool,
    pub projections: Projections,
    pub firestore_deadline: std::time::Duration,
    /// How long a task may stay in each state (`sla`).
    pub sla: SlaConfig,
}

impl TaskProjector {
    async fn apply(&self, consumer: &str, fact: Fact) -> Outcome {
        check_application_id(&fact.application_id)?;
        if fact.task_id.is_empty() || fact.task_id.contains('/') || fact.task_id.len() > 256 {
            return Err(HandlerError::permanent("validation", format!("task id {:?} cannot name a Firestore document", fact.task_id)));
        }
        let occurred_at = DateTime::from_timestamp_millis(fact.occurred_at).ok_or_else(|| HandlerError::permanent("validation", "occurred_at out of range"))?;
        tracing::Span::current().record("correlation_id", fact.correlation_id.as_str());

        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        if !db::record_processed(&mut tx, consumer, fact.event_id).await.map_err(db::classify)? {
            return Ok(Applied::Duplicate);
        }
        db::lock_entity(&mut tx, &format!("task:{}:{}", fact.tenant_id, fact.task_id)).await.map_err(db::classify)?;
        let current: Option<TaskRow> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM tasks WHERE tenant_id = $1 AND task_id = $2"))
            .bind(&fact.tenant_id)
            .bind(&fact.task_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db::classify)?;
        let Some(next) = evolve(current.clone(), &fact, occurred_at) else {
            tx.commit().await.map_err(db::classify)?;
            return Ok(Applied::Stale);
        };
        save(&mut tx, &fact, &next).await.map_err(db::classify)?;
        let moved = current.as_ref().is_none_or(|c| c.state != next.state);
        if moved {
            sla::on_transition(&mut tx, &self.sla, &fact.tenant_id, &next.application_id, &next.task_id, &next.state, next.state_since).await.map_err(db::classify)?;
        }
        sqlx::query(
            "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at, correlation_id, causation_id, producer, change)
             VALUES ($1, $2, $3, 'task', $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(fact.event_id)
        .bind(fact.kind.name())
        .bind(&fact.tenant_id)
        .bind(format!("{}:{}", fact.tenant_id, fact.task_id))
        .bind(next.revision)
        .bind(occurred_at)
        .bind(&fact.correlation_id)
        .bind(&fact.causation_id)
        .bind(&fact.producer)
        .bind(json!({ "applicationId": next.application_id, "from": current.as_ref().map(|c| c.state.clone()), "to": next.state, "conditionStatus": next.condition_status, "documentState": next.document_state }))
        .execute(&mut *tx)
        .await
        .map_err(db::classify)?;
        let collection = format!("{COLLECTION}/{}/tasks", next.application_id);
        let mut fields = fields(&next);
        if moved {
            // A new state: its own SLA, and no breach yet.
            let due = self.sla.of(&next.state).map(|d| next.state_since + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
            fields.push(("slaDueAt", firestore::optional(due.map(|t| firestore::timestamp_millis(t.timestamp_millis())))));
            fields.push(("slaBreachedAt", firestore::null()));
        }
        let mut writes = vec![self.projections.merge_write(&collection, &next.task_id, fields, None)];
        let previous = current.as_ref().and_then(|c| c.assignee.as_deref());
        let open = next.state != "completed";
        if let Some(old) = previous.filter(|old| !open || next.assignee.as_deref() != Some(*old)) {
            writes.push(inbox::remove(&self.projections, old, &next.task_id));
        }
        if let Some(staff) = next.assignee.as_deref().filter(|_| open) {
            let (due_at, breached_at) = inbox::timer(&mut tx, &fact.tenant_id, &next.task_id, &next.state).await.map_err(db::classify)?;
            let entry = inbox::Entry {
                task_id: &next.task_id,
                application_id: &next.application_id,
                title: &next.title,
                state: &next.state,
                state_since: next.state_since,
                document_name: next.document_name.as_deref(),
                due_at,
                breached_at,
            };
            writes.push(inbox::upsert(&self.projections, staff, &entry));
        }
        self.projections.commit(writes, self.firestore_deadline).await.map_err(firestore_error)?;
        tx.commit().await.map_err(db::classify)?;
        if moved {
            metrics::counter!(metric_name(SERVICE, "task_transitions_total"), "to" => state_label(&next.state)).increment(1);
            tracing::info!(task_id = %next.task_id, application_id = %next.application_id, from = current.as_ref().map_or("none", |c| c.state.as_str()), to = %next.state, "task moved");
        }
        Ok(Applied::Processed)
    }
}



async fn save(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, fact: &Fact, row: &TaskRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tasks (tenant_id, task_id, application_id, loan_id, condition_id, title, state, state_since, condition_status, condition_version,
             condition_item_id, document_id, document_name, document_state, document_item_id, document_at, rejection_reason, revision, correlation_id,
             assignee, upload_requested, request_note, rejected_item_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
         ON CONFLICT (tenant_id, task_id) DO UPDATE SET title = EXCLUDED.title, state = EXCLUDED.state, state_since = EXCLUDED.state_since,
             condition_status = EXCLUDED.condition_status, condition_version = EXCLUDED.condition_version, condition_item_id = EXCLUDED.condition_item_id,
             document_id = EXCLUDED.document_id, document_name = EXCLUDED.document_name, document_state = EXCLUDED.document_state,
             document_item_id = EXCLUDED.document_item_id, document_at = EXCLUDED.document_at, rejection_reason = EXCLUDED.rejection_reason,
             revision = EXCLUDED.revision, correlation_id = EXCLUDED.correlation_id, assignee = EXCLUDED.assignee,
             upload_requested = EXCLUDED.upload_requested, request_note = EXCLUDED.request_note, rejected_item_id = EXCLUDED.rejected_item_id, updated_at = now()",
    )
    .bind(&fact.tenant_id)
    .bind(&row.task_id)
    .bind(&row.application_id)
    .bind(&row.loan_id)
    .bind(&row.condition_id)
    .bind(&row.title)
    .bind(&row.state)
    .bind(row.state_since)
    .bind(&row.condition_status)
    .bind(row.condition_version)
    .bind(&row.condition_item_id)
    .bind(row.document_id)
    .bind(&row.document_name)
    .bind(&row.document_state)
    .bind(&row.document_item_id)
    .bind(row.document_at)
    .bind(&row.rejection_reason)
    .bind(row.revision)
    .bind(&fact.correlation_id)
    .bind(&row.assignee)
    .bind(row.upload_requested)
    .bind(&row.request_note)
    .bind(&row.rejected_item_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `applications/{id}/tasks/{taskId}` as the apps read it (Brain-owned: every field).
fn fields(row: &TaskRow) -> Vec<(&'static str, FirestoreValue)> {
    let text = |s: &Option<String>| firestore::optional(s.as_deref().map(firestore::string));
    let document = row.document_id.map(|id| {
        firestore::map(vec![
            ("documentId", firestore::string(id.to_string())),
            ("fileName", text(&row.document_name)),
            ("state", text(&row.document_state)),
            ("receivedAt", firestore::optional(row.document_at.map(|t| firestore::timestamp_millis(t.timestamp_millis())))),
        ])
    });
    vec![
        ("taskId", firestore::string(&row.task_id)),
        ("applicationId", firestore::string(&row.application_id)),
        ("conditionId", firestore::string(&row.condition_id)),
        ("title", firestore::string(&row.title)),
        ("state", firestore::string(&row.state)),
        ("stateSince", firestore::timestamp_millis(row.state_since.timestamp_millis())),
        ("conditionStatus", text(&row.condition_status)),
        ("document", firestore::optional(document)),
        ("rejectionReason", text(&row.rejection_reason)),
        ("requestNote", text(&row.request_note)),
        ("assignee", text(&row.assignee)),
        ("revision", firestore::integer(row.revision)),
        ("updatedBy", firestore::string("brain")),
    ]
}

macro_rules! task_handler {
    ($name:ident, $event:ty, $doc:literal) => {
        #[doc = $doc]
        pub struct $name {
            pub projector: Arc<TaskProjector>,
            pub consumer: String,
        }

        impl Handler for $name {
            type Event = $event;

            crate::firestore::firestore_gated!(projector.projections, $event);

            async fn handle(&self, _source: Source<'_>, e: $event) -> Outcome {
                let fact = fact_of(e)?;
                self.projector.apply(&self.consumer, fact).await
            }
        }
    };
}

task_handler!(ConditionHandler, ConditionChanged, "The handler of `ventures.condition.changed.v1`.");
task_handler!(UploadedHandler, DocumentUploaded, "The handler of `gateway.document.uploaded.v1`.");
task_handler!(StoredHandler, DocumentStored, "The handler of `sharefile.document.stored.v1`.");
task_handler!(ActionHandler, TaskActionRequested, "The handler of `gateway.task.action-requested.v1`.");

