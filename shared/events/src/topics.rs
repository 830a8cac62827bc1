//! The topic catalogue (see `docs/events.md`). Names follow `<owner>.<entity>.<fact>.v<N>`.

use std::fmt;

/// Full state of a Ventures loan after a change. Key: application id. Owner: ventures-sync.
pub const LOAN_STATUS_CHANGED: &str = "ventures.loan.status-changed.v1";

/// A console user's status-change command (flow 2). Key: application id. Owner: api-gateway.
pub const STATUS_CHANGE_REQUESTED: &str = "gateway.application.status-change-requested.v1";

/// What Ventures made of a status-change command. Key: application id. Owner: ventures-sync.
pub const STATUS_CHANGE_RESOLVED: &str = "ventures.application.status-change-resolved.v1";

/// One change of a watched Firestore document. Key: application id. Owner: firestore-change-listener.
pub const DOCUMENT_CHANGED: &str = "firestore.document.changed.v1";

/// A client wrote Brain-owned fields; Brain's values were restored. Key: application id.
/// Owner: projection-writer.
pub const PROTECTED_FIELD_VIOLATION: &str = "projection.application.protected-field-violation.v1";

/// A change qbo-mirror applied to its mirror of a QBO company. Key: `<realm>:<entity>:<id>`.
/// Owner: qbo-mirror.
pub const QBO_ENTITY_CHANGED: &str = "qbo.entity.changed.v1";

/// A verified QBO webhook naming changes of one realm. Key: realm id. Owner: api-gateway.
pub const QBO_WEBHOOK_RECEIVED: &str = "gateway.qbo.webhook-received.v1";

/// Full state of a Ventures loan condition after a change (a task follows each condition).
/// Key: application id. Owner: ventures-sync.
pub const CONDITION_CHANGED: &str = "ventures.condition.changed.v1";

/// A borrower's upload for a task, verified in Cloud Storage. Key: application id. Owner:
/// api-gateway.
pub const DOCUMENT_UPLOADED: &str = "gateway.document.uploaded.v1";

/// A document is in the application's ShareFile folder with the right MD5. Key: application id.
/// Owner: sharefile-sync.
pub const DOCUMENT_STORED: &str = "sharefile.document.stored.v1";

/// A task stayed in a state longer than its SLA. Key: application id. Owner: projection-writer.
pub const TASK_SLA_BREACHED: &str = "projection.task.sla-breached.v1";

/// A command about a meeting with a staff member: book, cancel or resend (flow 5). Key: staff id.
/// Owner: api-gateway.
pub const BOOKING_REQUESTED: &str = "gateway.calendar.booking-requested.v1";

/// A verified Microsoft Graph change notification about a staff member's calendar. Key: the
/// staff member's user id. Owner: api-gateway.
pub const GRAPH_NOTIFICATION_RECEIVED: &str = "gateway.graph.notification-received.v1";

/// Full state of a meeting after graph-calendar handled a command about it. Key: meeting id.
/// Owner: graph-calendar.
pub const MEETING_CHANGED: &str = "graph.meeting.changed.v1";

/// A staff member's action on a task: assign, request_upload, reject. Key: application id.
/// Owner: api-gateway.
pub const TASK_ACTION_REQUESTED: &str = "gateway.task.action-requested.v1";

/// A message of an application's conversation as an app wrote it (created, a receipt, deleted).
/// Key: application id. Owner: firestore-change-listener.
pub const MESSAGE_CHANGED: &str = "firestore.message.changed.v1";

/// What graph-calendar made of a staff message flagged for the Teams channel. Key: application
/// id. Owner: graph-calendar.
pub const MESSAGE_RELAYED: &str = "graph.message.relayed.v1";

/// Capability flags and panic mode (compacted: the latest record per key is the state). Key:
/// `flag:<integration>:<tenant or *>` or `panic:<integration>`. Owner: the operators (dlq-replayer)
/// and, for panic mode, every service.
pub const CAPABILITY_FLAGS: &str = "ops.capability.flag-changed.v1";

/// The dead-letter topic of one consumer group. Key: the original key.
pub fn dead_letter(consumer_group: &str) -> String {
    format!("deadletter.{consumer_group}.v1")
}

/// A prefix put in front of every topic and consumer-group name of one deployment, so that
/// several deployments (or test runs) can share one Kafka cluster without seeing each other.
/// Empty by default: the names in the catalogue are used as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(String);

#[derive(Debug, thiserror::Error)]
#[error("namespace {0:?} must be at most 64 of the characters a-z, A-Z, 0-9, '.', '_' and '-'")]
pub struct InvalidNamespace(String);

impl Namespace {
    /// `prefix` as given, with a `.` added unless it already ends in a separator.
    pub fn new(prefix: &str) -> Result<Self, InvalidNamespace> {
        let valid = prefix.len() <= 64 && prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(InvalidNamespace(prefix.to_string()));
        }
        if prefix.is_empty() || prefix.ends_with(['.', '_', '-']) {
            Ok(Self(prefix.to_string()))
        } else {
            Ok(Self(format!("{prefix}.")))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The real name of catalogue topic `base`.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.0)
    }

    /// The real name of consumer group `base`.
    pub fn group(&self, base: &str) -> String {
        format!("{}{base}", self.0)
    }

    /// The real name of the dead-letter topic of consumer group `group_base`.
    pub fn dead_letter(&self, group_base: &str) -> String {
        self.topic(&dead_letter(group_base))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_prefix_names_and_reject_garbage() {
        let ns = Namespace::new("t42").unwrap();
        assert_eq!(ns.topic(LOAN_STATUS_CHANGED), "t42.ventures.loan.status-changed.v1");
        assert_eq!(ns.dead_letter("projection-writer"), "t42.deadletter.projection-writer.v1");
        assert_eq!(Namespace::new("dev-").unwrap().group("g"), "dev-g");
        assert_eq!(Namespace::default().topic("x"), "x");
        assert!(Namespace::new("a b").is_err());
        assert!(Namespace::new(&"x".repeat(65)).is_err());
    }
}
