//! Flow 6: the conversation of an application, `applications/{id}/messages/{messageId}`.
//!
//! The apps write messages (and the recipient's receipts); firestore-change-listener emits
//! `firestore.message.changed.v1` for each such write; this module projects Brain's answer back
//! into the message: `delivery` (`sent` once accepted, then `delivered` and `read` as the
//! recipient's receipts arrive, never backwards; or `rejected` with a code and reason), the role
//! flags `fromBorrower` / `fromStaff` / `fromSystem`, and `teamsRelay` from graph-calendar's
//! `graph.message.relayed.v1`. The read model `messages` holds the same, one row per message,
//! monotonic by the document's update time. Each event is applied in one PostgreSQL transaction
//! with its processed-event record (and an `event_log` entry when the delivery status moved),
//! under the message's lock; Firestore is written before the commit, with an `exists`
//! precondition so a deleted message is never recreated.

use std::sync::Arc;

use brain_events::{
    MessageChanged, MessageRelayed,
    messages::{self, Delivery, Role},
};
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
};

pub struct MessageProjector {
    pub pool: PgPool,
    pub projections: Projections,
    pub firestore_deadline: std::time::Duration,
}

/// A message as the read model holds it.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
struct MessageRow {
    sender_role: Option<String>,
    author_id: Option<String>,
    status: Option<String>,
    rejection_code: Option<String>,
    rejection_reason: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    relay_requested: bool,
    relay_status: Option<String>,
    relay_message_id: Option<String>,
    relay_web_url: Option<String>,
    relay_reason: Option<String>,
    version: i64,
    revision: i64,
}

/// Which message an event is about.
struct Key<'a> {
    tenant_id: &'a str,
    application_id: &'a str,
    message_id: &'a str,
}

fn check_key(key: &Key<'_>) -> Result<(), HandlerError> {
    check_application_id(key.application_id)?;
    if key.message_id.is_empty() || key.message_id.contains('/') || key.message_id.len() > 256 {
        return Err(HandlerError::permanent("validation", format!("message id {:?} cannot name a Firestore document", key.message_id)));
    }
    Ok(())
}

/// The message after an app's write at `at`.
fn evolve(current: &MessageRow, e: &MessageChanged, at: DateTime<Utc>) -> MessageRow {
    let mut row = current.clone();
    row.version = e.version;
    row.revision += 1;
    let Some(message) = e.message.as_ref().filter(|_| !e.deleted) else {
        row.status = Some("deleted".into());
        return row;
    };
    row.sender_role.clone_from(&message.sender_role);
    row.author_id.clone_from(&message.author_id);
    match messages::check(message) {
        Ok(accepted) => {
            let before = row.status.as_deref().and_then(Delivery::parse).unwrap_or(Delivery::Sent);
            let now = before.max(accepted.receipt.unwrap_or(Delivery::Sent));
            row.status = Some(now.as_str().into());
            row.rejection_code = None;
            row.rejection_reason = None;
            row.sent_at = row.sent_at.or(Some(at));
            if now >= Delivery::Delivered {
                row.delivered_at = row.delivered_at.or(Some(at));
            }
            if now >= Delivery::Read {
                row.read_at = row.read_at.or(Some(at));
            }
            row.relay_requested = accepted.relay;
            if accepted.relay && row.relay_status.is_none() {
                row.relay_status = Some("pending".into());
            }
        }
        Err(rejection) => {
            row.status = Some("rejected".into());
            row.rejection_code = Some(rejection.code.into());
            row.rejection_reason = Some(rejection.reason);
        }
    }
    row
}

/// Brain's fields of the message document.
fn fields(row: &MessageRow) -> Vec<(&'static str, FirestoreValue)> {
    let time = |t: Option<DateTime<Utc>>| firestore::optional(t.map(|t| firestore::timestamp_millis(t.timestamp_millis())));
    let text = |s: &Option<String>| firestore::optional(s.as_deref().map(firestore::string));
    let role = row.sender_role.as_deref().and_then(Role::parse);
    let mut out = Vec::new();
    if let Some(status) = &row.status {
        out.push((
            "delivery",
            firestore::map(vec![
                ("status", firestore::string(status)),
                ("sentAt", time(row.sent_at)),
                ("deliveredAt", time(row.delivered_at)),
                ("readAt", time(row.read_at)),
                ("code", text(&row.rejection_code)),
                ("reason", text(&row.rejection_reason)),
            ]),
        ));
        out.push(("fromBorrower", firestore::boolean(role == Some(Role::Borrower))));
        out.push(("fromStaff", firestore::boolean(role == Some(Role::Staff))));
        out.push(("fromSystem", firestore::boolean(role == Some(Role::System))));
    }
    if let Some(status) = &row.relay_status {
        out.push((
            "teamsRelay",
            firestore::map(vec![
                ("status", firestore::string(status)),
                ("messageId", text(&row.relay_message_id)),
                ("webUrl", text(&row.relay_web_url)),
                ("reason", text(&row.relay_reason)),
            ]),
        ));
    }
    out.push(("updatedBy", firestore::string("brain")));
    out
}

/// Whether the apps would see a difference between the two rows.
fn projected_differs(a: &MessageRow, b: &MessageRow) -> bool {
    let view = |r: &MessageRow| {
        (
            r.status.clone(),
            r.sender_role.clone(),
            r.rejection_code.clone(),
            r.sent_at,
            r.delivered_at,
            r.read_at,
            r.relay_status.clone(),
            r.relay_message_id.clone(),
            r.relay_reason.clone(),
        )
    };
    view(a) != view(b)
}

impl MessageProjector {
    async fn apply<F>(&self, consumer: &str, event_id: &str, key: Key<'_>, correlation_id: &str, occurred_at: i64, change: F) -> Outcome
    where
        F: FnOnce(&MessageRow, DateTime<Utc>) -> Option<MessageRow>,
    {
        check_key(&key)?;
        let event_id = Uuid::parse_str(event_id).map_err(|_| HandlerError::permanent("validation", format!("event_id {event_id:?} is not a UUID")))?;
        let at = DateTime::from_timestamp_millis(occurred_at).ok_or_else(|| HandlerError::permanent("validation", "occurred_at out of range"))?;
        tracing::Span::current().record("correlation_id", correlation_id);

        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        if !db::record_processed(&mut tx, consumer, event_id).await.map_err(db::classify)? {
            return Ok(Applied::Duplicate);
        }
        db::lock_entity(&mut tx, &format!("message:{}:{}:{}", key.tenant_id, key.application_id, key.message_id)).await.map_err(db::classify)?;
        let current: Option<MessageRow> = sqlx::query_as(
            "SELECT sender_role, author_id, status, rejection_code, rejection_reason, sent_at, delivered_at, read_at, relay_requested,
                    relay_status, relay_message_id, relay_web_url, relay_reason, version, revision
             FROM messages WHERE tenant_id = $1 AND application_id = $2 AND message_id = $3",
        )
        .bind(key.tenant_id)
        .bind(key.application_id)
        .bind(key.message_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::classify)?;
        let current = current.unwrap_or_default();
        let Some(next) = change(&current, at) else {
            tx.commit().await.map_err(db::classify)?;
            return Ok(Applied::Stale);
        };
        save(&mut tx, &key, &next, correlation_id).await.map_err(db::classify)?;
        if next.status != current.status || next.relay_status != current.relay_status {
            sqlx::query(
                "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at, correlation_id, causation_id, producer, change)
                 VALUES ($1, $2, $3, 'message', $4, $5, $6, $7, NULL, $8, $9)",
            )
            .bind(event_id)
            .bind(if next.status == current.status { "message.relay" } else { "message.delivery" })
            .bind(key.tenant_id)
            .bind(format!("{}:{}:{}", key.tenant_id, key.application_id, key.message_id))
            .bind(next.revision)
            .bind(at)
            .bind(correlation_id)
            .bind(SERVICE)
            // No text: the audit log is PHI-safe.
            .bind(json!({ "applicationId": key.application_id, "from": current.status, "to": next.status, "senderRole": next.sender_role,
                          "code": next.rejection_code, "relay": next.relay_status }))
            .execute(&mut *tx)
            .await
            .map_err(db::classify)?;
        }
        if next.status.as_deref() != Some("deleted") && projected_differs(&current, &next) {
            let collection = format!("{COLLECTION}/{}/messages", key.application_id);
            let write = self.projections.merge_write_existing(&collection, key.message_id, fields(&next));
            match self.projections.commit(vec![write], self.firestore_deadline).await {
                Ok(_) => {}
                // Deleted by its app meanwhile: its deletion event follows; nothing to show.
                Err(status) if firestore::is_not_found(&status) => {
                    tracing::info!(message_id = key.message_id, application_id = key.application_id, "message gone before its projection");
                }
                Err(status) => return Err(firestore_error(status)),
            }
        }
        tx.commit().await.map_err(db::classify)?;
        if next.status != current.status {
            let to = match next.status.as_deref() {
                Some("sent") => "sent",
                Some("delivered") => "delivered",
                Some("read") => "read",
                Some("rejected") => "rejected",
                _ => "deleted",
            };
            metrics::counter!(metric_name(SERVICE, "message_transitions_total"), "to" => to).increment(1);
        }
        Ok(Applied::Processed)
    }
}

async fn save(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, key: &Key<'_>, row: &MessageRow, correlation_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (tenant_id, application_id, message_id, sender_role, author_id, status, rejection_code, rejection_reason, sent_at,
             delivered_at, read_at, relay_requested, relay_status, relay_message_id, relay_web_url, relay_reason, version, revision, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ON CONFLICT (tenant_id, application_id, message_id) DO UPDATE SET sender_role = EXCLUDED.sender_role, author_id = EXCLUDED.author_id,
             status = EXCLUDED.status, rejection_code = EXCLUDED.rejection_code, rejection_reason = EXCLUDED.rejection_reason,
             sent_at = EXCLUDED.sent_at, delivered_at = EXCLUDED.delivered_at, read_at = EXCLUDED.read_at,
             relay_requested = EXCLUDED.relay_requested, relay_status = EXCLUDED.relay_status, relay_message_id = EXCLUDED.relay_message_id,
             relay_web_url = EXCLUDED.relay_web_url, relay_reason = EXCLUDED.relay_reason, version = EXCLUDED.version,
             revision = EXCLUDED.revision, correlation_id = EXCLUDED.correlation_id, updated_at = now()",
    )
    .bind(key.tenant_id)
    .bind(key.application_id)
    .bind(key.message_id)
    .bind(&row.sender_role)
    .bind(&row.author_id)
    .bind(&row.status)
    .bind(&row.rejection_code)
    .bind(&row.rejection_reason)
    .bind(row.sent_at)
    .bind(row.delivered_at)
    .bind(row.read_at)
    .bind(row.relay_requested)
    .bind(&row.relay_status)
    .bind(&row.relay_message_id)
    .bind(&row.relay_web_url)
    .bind(&row.relay_reason)
    .bind(row.version)
    .bind(row.revision)
    .bind(correlation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The outcome of a relay, once final, stays.
fn relayed(current: &MessageRow, e: &MessageRelayed) -> Option<MessageRow> {
    if current.relay_status.as_deref().is_some_and(|s| s != "pending") {
        return None;
    }
    let mut row = current.clone();
    row.relay_status = Some(match e.outcome.as_str() {
        "relayed" => "relayed",
        "failed" => "failed",
        _ => "skipped",
    }
    .into());
    row.relay_message_id.clone_from(&e.teams_message_id);
    row.relay_web_url.clone_from(&e.web_url);
    row.relay_reason.clone_from(&e.reason);
    row.revision += 1;
    Some(row)
}

/// The handler of `firestore.message.changed.v1`.
pub struct MessageHandler {
    pub projector: Arc<MessageProjector>,
    pub consumer: String,
}

/// The handler of `graph.message.relayed.v1`.
pub struct RelayedHandler {
    pub projector: Arc<MessageProjector>,
    pub consumer: String,
}

impl Handler for MessageHandler {
    type Event = MessageChanged;

    crate::firestore::firestore_gated!(projector.projections, MessageChanged);

    async fn handle(&self, _source: Source<'_>, e: MessageChanged) -> Outcome {
        let key = Key { tenant_id: &e.tenant_id, application_id: &e.application_id, message_id: &e.message_id };
        self.projector
            .apply(&self.consumer, &e.event_id, key, &e.correlation_id, e.occurred_at, |current, at| (e.version > current.version).then(|| evolve(current, &e, at)))
            .await
    }
}

impl Handler for RelayedHandler {
    type Event = MessageRelayed;

    crate::firestore::firestore_gated!(projector.projections, MessageRelayed);

    async fn handle(&self, _source: Source<'_>, e: MessageRelayed) -> Outcome {
        let key = Key { tenant_id: &e.tenant_id, application_id: &e.application_id, message_id: &e.message_id };
        self.projector.apply(&self.consumer, &e.event_id, key, &e.correlation_id, e.occurred_at, |current, _| relayed(current, &e)).await
    }
}

#[cfg(test)]
mod tests {
    use brain_events::MessageState;

    use super::*;

    fn event(version: i64, role: &str, borrower_receipt: Option<&str>, staff_receipt: Option<&str>) -> MessageChanged {
        MessageChanged {
            event_id: Uuid::new_v4().to_string(),
            occurred_at: 0,
            tenant_id: "t".into(),
            correlation_id: "c".into(),
            causation_id: None,
            producer: "p".into(),
            application_id: "app-1".into(),
            message_id: "m-1".into(),
            document_path: "applications/app-1/messages/m-1".into(),
            version,
            created: version == 1,
            deleted: false,
            message: Some(MessageState {
                text: Some("hello".into()),
                sender_role: Some(role.into()),
                author_id: Some("u".into()),
                relay_to_teams: role == "staff",
                borrower_receipt: borrower_receipt.map(str::to_string),
                staff_receipt: staff_receipt.map(str::to_string),
            }),
        }
    }

    #[test]
    fn delivery_moves_forward_only() {
        let t0 = Utc::now();
        let sent = evolve(&MessageRow::default(), &event(1, "staff", None, None), t0);
        assert_eq!((sent.status.as_deref(), sent.relay_status.as_deref()), (Some("sent"), Some("pending")));
        let t1 = t0 + chrono::Duration::seconds(5);
        let read = evolve(&sent, &event(2, "staff", Some("read"), None), t1);
        assert_eq!((read.status.as_deref(), read.delivered_at, read.read_at), (Some("read"), Some(t1), Some(t1)), "read implies delivered");
        let late = evolve(&read, &event(3, "staff", Some("delivered"), None), t1 + chrono::Duration::seconds(1));
        assert_eq!((late.status.as_deref(), late.read_at), (Some("read"), Some(t1)), "a late delivered receipt does not go back");
        assert!(!projected_differs(&read, &late), "nothing new to show");
    }

    #[test]
    fn a_bad_message_is_rejected_and_relay_outcomes_are_final() {
        let rejected = evolve(&MessageRow::default(), &event(1, "robot", None, None), Utc::now());
        assert_eq!((rejected.status.as_deref(), rejected.rejection_code.as_deref()), (Some("rejected"), Some("invalid_sender_role")));
        let pending = evolve(&MessageRow::default(), &event(1, "staff", None, None), Utc::now());
        let outcome = MessageRelayed {
            event_id: Uuid::new_v4().to_string(),
            occurred_at: 0,
            tenant_id: "t".into(),
            correlation_id: "c".into(),
            causation_id: None,
            producer: "p".into(),
            application_id: "app-1".into(),
            message_id: "m-1".into(),
            outcome: "relayed".into(),
            teams_message_id: Some("17".into()),
            web_url: None,
            reason: None,
            attempts: 1,
        };
        let done = relayed(&pending, &outcome).unwrap();
        assert_eq!(done.relay_status.as_deref(), Some("relayed"));
        assert!(relayed(&done, &outcome).is_none());
        let names: Vec<&str> = fields(&done).iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["delivery", "fromBorrower", "fromStaff", "fromSystem", "teamsRelay", "updatedBy"]);
    }
}
