//! Cancel and resend, the commands that change a booked meeting. Both are harmless to repeat in
//! Graph (a second cancel changes nothing; a resend sends the same invitation again), and the
//! command ledger keeps a redelivered command from sending anything twice once recorded.
//!
//! - **cancel**: `POST .../events/{id}/cancel` (Graph tells the attendees), then the meeting is
//!   `cancelled`, its `SEQUENCE` one higher, its ICS `METHOD:CANCEL`, and its slot free again.
//!   An event already deleted in Outlook (404) counts as cancelled.
//! - **resend**: the attendees are sent the invitation again (`PATCH` of the event's attendees),
//!   the `SEQUENCE` rises and the ICS (`METHOD:REQUEST`) is rendered anew.
//!
//! A meeting that is not booked (a conflict, failed, already cancelled) is left alone. Failing
//! in Graph is treated like a booking: waits for throttling, retried, then noted on the meeting
//! as its `error` (the meeting stays as it was) and published.

use brain_events::BookingRequested;
use brain_runtime::{
    consumer::{Applied, ErrorClass, HandlerError, Outcome},
    db,
};
use uuid::Uuid;

use crate::{
    availability::{self, staff_lock},
    booking::{BookingHandler, graph_error},
    graph::GraphError,
    ics, meetings,
};

impl BookingHandler {
    pub(crate) async fn change(&self, attempt: u32, c: &BookingRequested, command_id: Uuid, meeting_id: Uuid) -> Outcome {
        let cancel = c.action == "cancel";
        let Some(mut m) = meetings::load(&self.pool, meeting_id).await.map_err(db::classify)? else {
            return Err(HandlerError::permanent("meeting_not_found", format!("no meeting {meeting_id}")));
        };
        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        db::lock_entity(&mut tx, &staff_lock(&m.staff_id)).await.map_err(db::classify)?;
        let Some(event_id) = m.graph_event_id.clone().filter(|_| m.state == "booked") else {
            tracing::info!(meeting_id = %meeting_id, state = %m.state, action = %c.action, "the meeting is not booked; nothing to change");
            meetings::record_command(&mut tx, command_id, meeting_id, &c.action, "ignored").await.map_err(db::classify)?;
            tx.commit().await.map_err(db::classify)?;
            meetings::publish(&self.producer, &m, Some(c.event_id.clone())).await?;
            return Ok(Applied::Processed);
        };
        let result = if cancel {
            let comment = c.reason.clone().unwrap_or_else(|| "The meeting was cancelled.".into());
            match self.graph.cancel_event(&m.staff_id, &event_id, &comment).await {
                Err(GraphError::Rejected { status: 404, .. }) => Ok(()),
                other => other,
            }
        } else {
            self.graph.resend_invitation(&m.staff_id, &event_id, &m.attendee_email, m.attendee_name.as_deref()).await.map(drop)
        };
        let outcome = match result {
            Ok(()) if cancel => {
                m.state = "cancelled".into();
                m.sequence += 1;
                m.error = None;
                meetings::render_ics(&mut m, ics::Method::Cancel);
                sqlx::query("DELETE FROM busy_intervals WHERE source = 'meeting' AND meeting_id = $1").bind(meeting_id).execute(&mut *tx).await.map_err(db::classify)?;
                availability::recompute(&mut tx, &self.availability.config, &m.staff_id).await.map_err(db::classify)?;
                "cancelled"
            }
            Ok(()) => {
                m.sequence += 1;
                m.resends += 1;
                m.error = None;
                meetings::render_ics(&mut m, ics::Method::Request);
                "resent"
            }
            Err(e) => {
                let error = graph_error(&self.graph, &e);
                let retry = match error.class {
                    ErrorClass::Unavailable => true,
                    ErrorClass::Transient => attempt < self.attempts,
                    ErrorClass::Permanent => false,
                };
                if retry {
                    return Err(error);
                }
                m.error = Some(format!("{} failed: {}: {e} (after {attempt} tries)", c.action, e.kind()));
                "failed"
            }
        };
        m.version += 1;
        meetings::save(&mut tx, &m).await.map_err(db::classify)?;
        meetings::record_command(&mut tx, command_id, meeting_id, &c.action, outcome).await.map_err(db::classify)?;
        tx.commit().await.map_err(db::classify)?;
        tracing::info!(meeting_id = %meeting_id, action = %c.action, outcome, sequence = m.sequence, "meeting changed");
        meetings::publish(&self.producer, &m, Some(c.event_id.clone())).await?;
        Ok(Applied::Processed)
    }
}
