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

use std::sync::Arc;

use brain_events::{ConditionChanged, DocumentStored, DocumentUploaded, TaskActionRequested};
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    flags::Gate,
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

/// A task as the read model holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct TaskRow {
    task_id: String,
    application_id: String,
    loan_id: String,
    condition_id: String,
    title: String,
    state: String,
    state_since: DateTime<Utc>,
    condition_status: Option<String>,
    condition_version: i64,
    condition_item_id: Option<String>,
    document_id: Option<Uuid>,
    document_name: Option<String>,
    document_state: Option<String>,
    document_item_id: Option<String>,
    document_at: Option<DateTime<Utc>>,
    rejection_reason: Option<String>,
    revision: i64,
    /// Whose work the task is (the per-staff inbox).
    assignee: Option<String>,
    /// A staff member asked the borrower for a document.
    upload_requested: bool,
    request_note: Option<String>,
    /// The Ventures document reference that was rejected: the task waits for another one.
    rejected_item_id: Option<String>,
}

/// What one event says about a task.
struct Fact {
    event_id: Uuid,
    tenant_id: String,
    application_id: String,
    task_id: String,
    loan_id: String,
    condition_id: String,
    correlation_id: String,
    causation_id: Option<String>,
    producer: String,
    occurred_at: i64,
    kind: Kind,
}

enum Kind {
    Condition { version: i64, name: String, status: String, item_id: Option<String> },
    Uploaded { document_id: Uuid, file_name: String },
    Stored { document_id: Uuid, item_id: String },
    /// A staff member's action (`gateway.task.action-requested.v1`).
    Action { action: Action, staff_id: String },
}

/// What a staff member did to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Assign { assignee: String },
    RequestUpload { note: Option<String> },
    Reject { reason: String },
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Self::Condition { .. } => "task.condition_changed",
            Self::Uploaded { .. } => "task.document_received",
            Self::Stored { .. } => "task.document_stored",
            Self::Action { action: Action::Assign { .. }, .. } => "task.assigned",
            Self::Action { action: Action::RequestUpload { .. }, .. } => "task.upload_requested",
            Self::Action { action: Action::Reject { .. }, .. } => "task.document_rejected",
        }
    }
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

/// The task after `fact`, or `None` when the fact is older than what the task holds.
fn evolve(current: Option<TaskRow>, fact: &Fact, at: DateTime<Utc>) -> Option<TaskRow> {
    if current.is_none() && matches!(fact.kind, Kind::Action { .. }) {
        tracing::warn!(task_id = %fact.task_id, "task action for a task not projected here; nothing to do");
        return None;
    }
    let mut row = current.clone().unwrap_or_else(|| TaskRow {
        task_id: fact.task_id.clone(),
        application_id: fact.application_id.clone(),
        loan_id: fact.loan_id.clone(),
        condition_id: fact.condition_id.clone(),
        title: String::new(),
        state: "open".into(),
        state_since: at,
        condition_status: None,
        condition_version: 0,
        condition_item_id: None,
        document_id: None,
        document_name: None,
        document_state: None,
        document_item_id: None,
        document_at: None,
        rejection_reason: None,
        revision: 0,
        assignee: None,
        upload_requested: false,
        request_note: None,
        rejected_item_id: None,
    });
    match &fact.kind {
        Kind::Condition { version, name, status, item_id } => {
            if *version <= row.condition_version {
                return None;
            }
            row.condition_version = *version;
            row.title = name.clone();
            row.condition_status = Some(status.clone());
            row.condition_item_id = item_id.clone();
        }
        Kind::Uploaded { document_id, file_name } => {
            if row.document_id == Some(*document_id) || row.document_at.is_some_and(|t| t > at) {
                return None;
            }
            row.document_id = Some(*document_id);
            row.document_name = Some(file_name.clone());
            row.document_state = Some("received".into());
            row.document_item_id = None;
            row.document_at = Some(at);
        }
        Kind::Stored { document_id, item_id } => {
            // A copy arriving after the staff rejected that document changes nothing either.
            if row.document_id != Some(*document_id) || matches!(row.document_state.as_deref(), Some("stored" | "rejected")) {
                return None;
            }
            row.document_state = Some("stored".into());
            row.document_item_id = Some(item_id.clone());
        }
        Kind::Action { action, staff_id } => {
            if !action_allowed(&row, action) {
                tracing::warn!(task_id = %row.task_id, state = %row.state, ?action, %staff_id, "task action refused: the task moved on");
                metrics::counter!(metric_name(SERVICE, "task_actions_refused_total")).increment(1);
                return None;
            }
            match action {
                Action::Assign { assignee } => row.assignee = Some(assignee.clone()),
                Action::RequestUpload { note } => {
                    row.upload_requested = true;
                    row.request_note.clone_from(note);
                }
                Action::Reject { reason } => {
                    row.rejected_item_id = row.condition_item_id.clone();
                    row.rejection_reason = Some(reason.clone());
                    row.document_state = Some("rejected".into());
                }
            }
        }
    }
    let state = state_of(&row);
    if state != row.state {
        row.state = state.to_string();
        row.state_since = at;
        if state == "pending_review" {
            // A document is under review: the request for one is answered.
            row.upload_requested = false;
            row.request_note = None;
        }
    }
    row.revision += 1;
    Some(row)
}

/// Whether the task's state lets `action` happen (the gateway checked it too, earlier).
fn action_allowed(row: &TaskRow, action: &Action) -> bool {
    match action {
        Action::Assign { .. } => row.state != "completed",
        Action::RequestUpload { .. } => matches!(row.state.as_str(), "open" | "awaiting_upload"),
        Action::Reject { .. } => row.state == "pending_review",
    }
}

/// The task's state from what Ventures, the upload and the staff say: `completed` once Ventures
/// satisfied (or waived) the condition; `pending_review` while Ventures holds a document that
/// was not rejected; `awaiting_upload` when the staff asked for one or rejected the last; else
/// `open`.
fn state_of(row: &TaskRow) -> &'static str {
    match row.condition_status.as_deref() {
        Some("Satisfied" | "Waived") => "completed",
        Some("Received") if row.condition_item_id.is_some() && row.condition_item_id != row.rejected_item_id => "pending_review",
        _ if row.upload_requested || row.rejected_item_id.is_some() => "awaiting_upload",
        _ => "open",
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "completed" => "completed",
        "pending_review" => "pending_review",
        "awaiting_upload" => "awaiting_upload",
        _ => "open",
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

fn parse_id(field: &str, id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::permanent("validation", format!("{field} {id:?} is not a UUID")))
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

            fn gate(&self) -> Option<&Gate> {
                self.projector.projections.gate()
            }

            fn tenant(&self, event: &$event) -> Option<String> {
                Some(event.tenant_id.clone())
            }

            /// While the Firestore breaker is open, the partition waits here.
            async fn admit(&self, _source: &Source<'_>) {
                self.projector.projections.ready().await;
            }

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

/// The three events as facts about a task.
trait IntoFact {
    fn into_fact(self) -> Result<Fact, HandlerError>;
}

fn fact_of(e: impl IntoFact) -> Result<Fact, HandlerError> {
    e.into_fact()
}

impl IntoFact for ConditionChanged {
    fn into_fact(self) -> Result<Fact, HandlerError> {
        let c = self.condition;
        Ok(Fact {
            event_id: parse_id("event_id", &self.event_id)?,
            tenant_id: self.tenant_id,
            application_id: self.application_id,
            task_id: c.condition_id.clone(),
            loan_id: c.loan_id,
            condition_id: c.condition_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            producer: self.producer,
            occurred_at: self.occurred_at,
            kind: Kind::Condition { version: self.version, name: c.name, status: c.status, item_id: c.document_item_id },
        })
    }
}

impl IntoFact for DocumentUploaded {
    fn into_fact(self) -> Result<Fact, HandlerError> {
        Ok(Fact {
            event_id: parse_id("event_id", &self.event_id)?,
            tenant_id: self.tenant_id,
            application_id: self.application_id,
            task_id: self.task_id,
            loan_id: self.loan_id,
            condition_id: self.condition_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            producer: self.producer,
            occurred_at: self.occurred_at,
            kind: Kind::Uploaded { document_id: parse_id("document_id", &self.document_id)?, file_name: self.file_name },
        })
    }
}

impl IntoFact for DocumentStored {
    fn into_fact(self) -> Result<Fact, HandlerError> {
        Ok(Fact {
            event_id: parse_id("event_id", &self.event_id)?,
            tenant_id: self.tenant_id,
            application_id: self.application_id,
            task_id: self.task_id,
            loan_id: self.loan_id,
            condition_id: self.condition_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            producer: self.producer,
            occurred_at: self.occurred_at,
            kind: Kind::Stored { document_id: parse_id("document_id", &self.document_id)?, item_id: self.item_id },
        })
    }
}

impl IntoFact for TaskActionRequested {
    fn into_fact(self) -> Result<Fact, HandlerError> {
        let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let action = match self.action.as_str() {
            "assign" => Action::Assign { assignee: text(self.assignee).ok_or_else(|| HandlerError::permanent("validation", "assign without an assignee"))? },
            "request_upload" => Action::RequestUpload { note: text(self.reason) },
            "reject" => Action::Reject { reason: text(self.reason).ok_or_else(|| HandlerError::permanent("validation", "reject without a reason"))? },
            other => return Err(HandlerError::permanent("validation", format!("unknown task action {other:?}"))),
        };
        Ok(Fact {
            event_id: parse_id("event_id", &self.event_id)?,
            tenant_id: self.tenant_id,
            application_id: self.application_id,
            // The task exists (the gateway found it): loan and condition are kept from its row.
            loan_id: String::new(),
            condition_id: self.task_id.clone(),
            task_id: self.task_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            producer: self.producer,
            occurred_at: self.occurred_at,
            kind: Kind::Action { action, staff_id: self.staff_id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(kind: Kind) -> Fact {
        Fact {
            event_id: Uuid::new_v4(),
            tenant_id: "t".into(),
            application_id: "app-1".into(),
            task_id: "C-1".into(),
            loan_id: "L-1".into(),
            condition_id: "C-1".into(),
            correlation_id: "c".into(),
            causation_id: None,
            producer: "p".into(),
            occurred_at: 0,
            kind,
        }
    }

    fn condition(version: i64, status: &str, item: Option<&str>) -> Kind {
        Kind::Condition { version, name: "Bank statements".into(), status: status.into(), item_id: item.map(str::to_string) }
    }

    #[test]
    fn a_task_completes_only_when_ventures_satisfies_its_condition() {
        let now = Utc::now();
        let doc = Uuid::new_v4();
        let open = evolve(None, &fact(condition(1, "Open", None)), now).unwrap();
        assert_eq!((open.state.as_str(), open.revision), ("open", 1));
        let received = evolve(Some(open), &fact(Kind::Uploaded { document_id: doc, file_name: "a.pdf".into() }), now).unwrap();
        assert_eq!((received.state.as_str(), received.document_state.as_deref()), ("open", Some("received")));
        let stored = evolve(Some(received), &fact(Kind::Stored { document_id: doc, item_id: "fi-1".into() }), now).unwrap();
        assert_eq!((stored.state.as_str(), stored.document_state.as_deref()), ("open", Some("stored")));
        let review = evolve(Some(stored), &fact(condition(2, "Received", Some("fi-1"))), now).unwrap();
        assert_eq!(review.state, "pending_review");
        assert!(evolve(Some(review.clone()), &fact(condition(2, "Received", Some("fi-1"))), now).is_none(), "an old version changes nothing");
        let done = evolve(Some(review), &fact(condition(3, "Satisfied", Some("fi-1"))), now).unwrap();
        assert_eq!((done.state.as_str(), done.revision), ("completed", 5));
    }

    #[test]
    fn staff_can_ask_for_a_document_reject_one_and_the_next_goes_under_review() {
        let now = Utc::now();
        let action = |a: Action| Kind::Action { action: a, staff_id: "ann".into() };
        assert!(evolve(None, &fact(action(Action::Assign { assignee: "ann".into() })), now).is_none(), "no task, no action");
        let open = evolve(None, &fact(condition(1, "Open", None)), now).unwrap();
        let assigned = evolve(Some(open), &fact(action(Action::Assign { assignee: "ann".into() })), now).unwrap();
        assert_eq!((assigned.state.as_str(), assigned.assignee.as_deref()), ("open", Some("ann")));
        assert!(evolve(Some(assigned.clone()), &fact(action(Action::Reject { reason: "blurry".into() })), now).is_none(), "nothing to reject yet");
        let asked = evolve(Some(assigned), &fact(action(Action::RequestUpload { note: Some("March please".into()) })), now).unwrap();
        assert_eq!((asked.state.as_str(), asked.request_note.as_deref()), ("awaiting_upload", Some("March please")));
        let review = evolve(Some(asked), &fact(condition(2, "Received", Some("fi-1"))), now).unwrap();
        assert_eq!(review.state, "pending_review");
        let rejected = evolve(Some(review), &fact(action(Action::Reject { reason: "blurry".into() })), now).unwrap();
        assert_eq!((rejected.state.as_str(), rejected.document_state.as_deref(), rejected.rejection_reason.as_deref()), ("awaiting_upload", Some("rejected"), Some("blurry")));
        let same = evolve(Some(rejected), &fact(condition(3, "Received", Some("fi-1"))), now).unwrap();
        assert_eq!(same.state, "awaiting_upload", "the rejected document again changes nothing");
        let next = evolve(Some(same), &fact(condition(4, "Received", Some("fi-2"))), now).unwrap();
        assert_eq!(next.state, "pending_review", "another document goes under review");
        let done = evolve(Some(next), &fact(condition(5, "Satisfied", Some("fi-2"))), now).unwrap();
        assert_eq!(done.state, "completed");
        assert!(evolve(Some(done), &fact(action(Action::Assign { assignee: "bob".into() })), now).is_none(), "completed work is not reassigned");
    }

    #[test]
    fn events_may_arrive_in_any_order() {
        let now = Utc::now();
        let doc = Uuid::new_v4();
        let received = evolve(None, &fact(Kind::Uploaded { document_id: doc, file_name: "a.pdf".into() }), now).unwrap();
        assert_eq!(received.state, "open");
        let review = evolve(Some(received), &fact(condition(2, "Received", Some("fi-1"))), now).unwrap();
        assert_eq!(review.state, "pending_review");
        assert_eq!(review.title, "Bank statements");
        assert!(evolve(Some(review), &fact(Kind::Stored { document_id: Uuid::new_v4(), item_id: "x".into() }), now).is_none(), "another document's copy");
    }
}
