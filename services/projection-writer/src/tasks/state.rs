//! A task's state and how each fact moves it (pure: no I/O), with the rules of `state_of`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use brain_runtime::telemetry::metric_name;

use crate::SERVICE;

/// A task as the read model holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct TaskRow {
    pub(super) task_id: String,
    pub(super) application_id: String,
    pub(super) loan_id: String,
    pub(super) condition_id: String,
    pub(super) title: String,
    pub(super) state: String,
    pub(super) state_since: DateTime<Utc>,
    pub(super) condition_status: Option<String>,
    pub(super) condition_version: i64,
    pub(super) condition_item_id: Option<String>,
    pub(super) document_id: Option<Uuid>,
    pub(super) document_name: Option<String>,
    pub(super) document_state: Option<String>,
    pub(super) document_item_id: Option<String>,
    pub(super) document_at: Option<DateTime<Utc>>,
    pub(super) rejection_reason: Option<String>,
    pub(super) revision: i64,
    /// Whose work the task is (the per-staff inbox).
    pub(super) assignee: Option<String>,
    /// A staff member asked the borrower for a document.
    pub(super) upload_requested: bool,
    pub(super) request_note: Option<String>,
    /// The Ventures document reference that was rejected: the task waits for another one.
    pub(super) rejected_item_id: Option<String>,
}

/// What one event says about a task.
pub(super) struct Fact {
    pub(super) event_id: Uuid,
    pub(super) tenant_id: String,
    pub(super) application_id: String,
    pub(super) task_id: String,
    pub(super) loan_id: String,
    pub(super) condition_id: String,
    pub(super) correlation_id: String,
    pub(super) causation_id: Option<String>,
    pub(super) producer: String,
    pub(super) occurred_at: i64,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
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
    pub(super) fn name(&self) -> &'static str {
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

/// The task after `fact`, or `None` when the fact is older than what the task holds.
pub(super) fn evolve(current: Option<TaskRow>, fact: &Fact, at: DateTime<Utc>) -> Option<TaskRow> {
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
pub(super) fn action_allowed(row: &TaskRow, action: &Action) -> bool {
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
pub(super) fn state_of(row: &TaskRow) -> &'static str {
    match row.condition_status.as_deref() {
        Some("Satisfied" | "Waived") => "completed",
        Some("Received") if row.condition_item_id.is_some() && row.condition_item_id != row.rejected_item_id => "pending_review",
        _ if row.upload_requested || row.rejected_item_id.is_some() => "awaiting_upload",
        _ => "open",
    }
}

pub(super) fn state_label(state: &str) -> &'static str {
    match state {
        "completed" => "completed",
        "pending_review" => "pending_review",
        "awaiting_upload" => "awaiting_upload",
        _ => "open",
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
