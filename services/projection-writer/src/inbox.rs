//! The per-staff inbox in Firestore: `staff/{staffId}/inbox/{taskId}`, one document per open task
//! assigned to that staff member, with its state and SLA (due, breached), so the console lists a
//! staff member's work sorted by due time with one query. Written in the same `Commit` as the
//! task (`tasks`) or its breach (`sla`); removed when the task is completed or reassigned. The
//! read model's `read_api.staff_inbox` (with `assignee`) is the gateway's view of the same.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use crate::firestore::{self, FirestoreWrite as Write, Projections};

/// A task as its inbox entry shows it.
pub struct Entry<'a> {
    pub task_id: &'a str,
    pub application_id: &'a str,
    pub title: &'a str,
    pub state: &'a str,
    pub state_since: DateTime<Utc>,
    pub document_name: Option<&'a str>,
    /// The current state's SLA timer: when it is due, and when it fired.
    pub due_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
}

pub fn collection(staff_id: &str) -> String {
    format!("staff/{staff_id}/inbox")
}

/// The entry of `staff_id`'s inbox, written whole.
pub fn upsert(projections: &Projections, staff_id: &str, e: &Entry<'_>) -> Write {
    let time = |t: Option<DateTime<Utc>>| firestore::optional(t.map(|t| firestore::timestamp_millis(t.timestamp_millis())));
    let fields = vec![
        ("taskId", firestore::string(e.task_id)),
        ("applicationId", firestore::string(e.application_id)),
        ("title", firestore::string(e.title)),
        ("state", firestore::string(e.state)),
        ("stateSince", firestore::timestamp_millis(e.state_since.timestamp_millis())),
        ("documentName", firestore::optional(e.document_name.map(firestore::string))),
        ("slaDueAt", time(e.due_at)),
        ("slaBreachedAt", time(e.breached_at)),
        ("updatedBy", firestore::string("brain")),
    ];
    projections.merge_write(&collection(staff_id), e.task_id, fields, None)
}

pub fn remove(projections: &Projections, staff_id: &str, task_id: &str) -> Write {
    projections.delete_write(&collection(staff_id), task_id)
}

/// The SLA timer of the task's current state: due and fired times.
pub async fn timer(tx: &mut Transaction<'_, Postgres>, tenant_id: &str, task_id: &str, state: &str) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), sqlx::Error> {
    let row: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT due_at, fired_at FROM task_timers WHERE tenant_id = $1 AND task_id = $2 AND state = $3 AND cancelled_at IS NULL ORDER BY created_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(task_id)
    .bind(state)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map_or((None, None), |(due, fired)| (Some(due), fired)))
}
