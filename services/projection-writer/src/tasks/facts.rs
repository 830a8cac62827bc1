//! The four events as facts about a task.

use brain_events::{ConditionChanged, DocumentStored, DocumentUploaded, TaskActionRequested};
use brain_runtime::consumer::HandlerError;
use uuid::Uuid;

use super::state::{Action, Fact, Kind};

pub(super) fn parse_id(field: &str, id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::permanent("validation", format!("{field} {id:?} is not a UUID")))
}


/// The three events as facts about a task.
pub(super) trait IntoFact {
    fn into_fact(self) -> Result<Fact, HandlerError>;
}

pub(super) fn fact_of(e: impl IntoFact) -> Result<Fact, HandlerError> {
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

