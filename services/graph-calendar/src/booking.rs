//! Flow 5's commands (`gateway.calendar.booking-requested.v1`, keyed by staff member, so one
//! staff member's commands are handled one at a time and in order): book, cancel, resend.
//!
//! A booking, exactly once in Graph:
//! 1. **Ledger.** A command already handled only republishes the meeting's state. A meeting
//!    already booked, in conflict or failed is final.
//! 2. **Lock** the staff member's calendar (an advisory lock held through the Graph calls), so
//!    no two bookings of one staff member are checked and made at once, on any instance.
//! 3. **An earlier try?** When a create was sent before (`create_attempts`), the event is looked
//!    up by its `transactionId` first: found, it is this booking's.
//! 4. **Conflict check**: the stored busy time (Brain's own bookings, the last refresh) and a fresh
//!    `getSchedule` of the slot. Anything busy there: the meeting is `conflict`, with the reason.
//! 5. **Create** the event with `transactionId` = the command id, `isOnlineMeeting` with
//!    `teamsForBusiness` (the join link). A repeat of the create (a redelivery, a retry after a
//!    lost answer) makes nothing new in Graph.
//! 6. **Record** `booked` with the Graph event id, `iCalUId`, join link and the ICS Brain renders,
//!    mark the slot busy and recompute the free slots, in one transaction; then publish
//!    `MeetingChanged`.
//!
//! Failures: throttling (429, 503 with `Retry-After`) and Graph's breaker being open make the
//! command wait (honouring `Retry-After`) without spending its tries; Graph failing otherwise is
//! retried `BOOKING_ATTEMPTS - 1` times (once by default), then the meeting is `failed` with the
//! reason (shown on the console), never dropped; a refusal (4xx) fails it at once.

use std::sync::Arc;

use brain_events::BookingRequested;
use brain_runtime::{
    consumer::{Applied, ErrorClass, Handler, HandlerError, Outcome, Source},
    db,
    flags::Gate,
    producer::EventProducer,
    telemetry::metric_name,
};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    SERVICE,
    availability::{self, Availability, staff_lock},
    graph::{Event, GraphClient, GraphError, NewEvent},
    ics,
    meetings::{self, Meeting},
    slots::Interval,
};

pub struct BookingHandler {
    pub pool: PgPool,
    pub graph: Arc<GraphClient>,
    pub availability: Arc<Availability>,
    pub producer: EventProducer,
    /// The `graph` capability flags.
    pub gate: Gate,
    /// Tries of a booking failing in Graph before it is shown `failed`.
    pub attempts: u32,
}

/// What the checks and the create came to.
enum Booking {
    Booked(Event),
    Conflict(String),
}

impl Handler for BookingHandler {
    type Event = BookingRequested;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &BookingRequested) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the Graph breaker is open, the partition waits here.
    async fn admit(&self, _source: &Source<'_>) {
        self.graph.breaker().ready().await;
    }

    async fn handle(&self, source: Source<'_>, c: BookingRequested) -> Outcome {
        tracing::Span::current().record("correlation_id", c.correlation_id.as_str());
        let uuid = |what: &str, v: &str| Uuid::parse_str(v).map_err(|_| HandlerError::permanent("validation", format!("{what} {v:?} is not a UUID")));
        let (command_id, meeting_id) = (uuid("command id", &c.event_id)?, uuid("meeting id", &c.meeting_id)?);
        if meetings::command_seen(&self.pool, command_id).await.map_err(db::classify)? {
            if let Some(m) = meetings::load(&self.pool, meeting_id).await.map_err(db::classify)? {
                meetings::publish(&self.producer, &m, Some(c.event_id.clone())).await?;
            }
            return Ok(Applied::Duplicate);
        }
        let outcome = match c.action.as_str() {
            "book" => self.book(source.attempt, &c, command_id, meeting_id).await,
            "cancel" | "resend" => self.change(source.attempt, &c, command_id, meeting_id).await,
            other => return Err(HandlerError::permanent("validation", format!("unknown action {other:?}"))),
        };
        metrics::counter!(metric_name(SERVICE, "commands_total"), "action" => action_label(&c.action), "outcome" => if outcome.is_ok() { "done" } else { "retry" }).increment(1);
        outcome
    }
}

impl BookingHandler {
    async fn book(&self, attempt: u32, c: &BookingRequested, command_id: Uuid, meeting_id: Uuid) -> Outcome {
        let mut m = meetings::insert_pending(&self.pool, c, meeting_id, command_id).await?;
        if m.state != "pending" {
            let mut tx = self.pool.begin().await.map_err(db::classify)?;
            meetings::record_command(&mut tx, command_id, meeting_id, "book", &m.state).await.map_err(db::classify)?;
            tx.commit().await.map_err(db::classify)?;
            meetings::publish(&self.producer, &m, Some(c.event_id.clone())).await?;
            return Ok(Applied::Duplicate);
        }
        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        db::lock_entity(&mut tx, &staff_lock(&m.staff_id)).await.map_err(db::classify)?;
        let mut outcome = self.try_book(&mut tx, &m).await;
        if let Err(BookError::Graph(e)) = &outcome
            && matches!(graph_error(&self.graph, e).class, ErrorClass::Transient)
            && attempt >= self.attempts
        {
            // Giving up: the last create may have landed with its answer lost; look first.
            if let Ok(Some(event)) = self.graph.find_by_transaction(&m.staff_id, &m.transaction_id).await {
                tracing::info!(meeting_id = %meeting_id, "the last create made the event (its answer was lost); taking it");
                outcome = Ok(Booking::Booked(event));
            }
        }
        match outcome {
            Ok(Booking::Booked(event)) => {
                m.state = "booked".into();
                m.join_url = event.join_url().map(str::to_string);
                m.organizer_email = event.organizer_email().map(str::to_string);
                m.web_link = event.web_link.clone();
                m.graph_event_id = Some(event.id);
                m.ical_uid = Some(event.ical_uid);
                m.sequence = 0;
                m.error = None;
                meetings::render_ics(&mut m, ics::Method::Request);
                sqlx::query("INSERT INTO busy_intervals (staff_id, start_at, end_at, status, source, meeting_id) VALUES ($1, $2, $3, 'busy', 'meeting', $4) ON CONFLICT (meeting_id) WHERE source = 'meeting' DO NOTHING")
                    .bind(&m.staff_id)
                    .bind(m.start_at)
                    .bind(m.end_at)
                    .bind(m.meeting_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db::classify)?;
                availability::recompute(&mut tx, &self.availability.config, &m.staff_id).await.map_err(db::classify)?;
            }
            Ok(Booking::Conflict(reason)) => {
                m.state = "conflict".into();
                m.error = Some(reason);
            }
            Err(BookError::Database(e)) => return Err(db::classify(e)),
            Err(BookError::Graph(e)) => {
                let error = graph_error(&self.graph, &e);
                let retry = match error.class {
                    ErrorClass::Unavailable => true,
                    ErrorClass::Transient => attempt < self.attempts,
                    ErrorClass::Permanent => false,
                };
                if retry {
                    tracing::info!(meeting_id = %meeting_id, attempt, kind = error.kind, error = %e, "booking not made yet; it is retried");
                    return Err(error);
                }
                m.state = "failed".into();
                m.error = Some(format!("{}: {e} (after {attempt} tries)", e.kind()));
            }
        }
        m.version += 1;
        meetings::save(&mut tx, &m).await.map_err(db::classify)?;
        meetings::record_command(&mut tx, command_id, meeting_id, "book", &m.state).await.map_err(db::classify)?;
        tx.commit().await.map_err(db::classify)?;
        match m.state.as_str() {
            "booked" => tracing::info!(meeting_id = %meeting_id, staff = %m.staff_id, event_id = ?m.graph_event_id, "meeting booked"),
            state => tracing::warn!(meeting_id = %meeting_id, staff = %m.staff_id, state, error = ?m.error, "meeting not booked"),
        }
        meetings::publish(&self.producer, &m, Some(c.event_id.clone())).await?;
        Ok(Applied::Processed)
    }

    /// The checks and the create, under the staff member's lock (`tx`). Only the count of creates
    /// is written outside it: it must outlive a rollback.
    async fn try_book(&self, tx: &mut Transaction<'_, Postgres>, m: &Meeting) -> Result<Booking, BookError> {
        if m.create_attempts > 0
            && let Some(event) = self.graph.find_by_transaction(&m.staff_id, &m.transaction_id).await?
        {
            tracing::info!(meeting_id = %m.meeting_id, "an earlier try made the event; taking it");
            return Ok(Booking::Booked(event));
        }
        let slot = Interval::new(m.start_at, m.end_at);
        // The stored busy time: Brain's own bookings (also those Graph's schedule does not show
        // yet) and the last refresh.
        let taken: Option<(String, Option<Uuid>)> = sqlx::query_as(
            "SELECT source, meeting_id FROM busy_intervals WHERE staff_id = $1 AND meeting_id IS DISTINCT FROM $2 AND start_at < $4 AND end_at > $3
             ORDER BY source DESC LIMIT 1",
        )
        .bind(&m.staff_id)
        .bind(m.meeting_id)
        .bind(m.start_at)
        .bind(m.end_at)
        .fetch_optional(&mut **tx)
        .await?;
        match taken {
            Some((_, Some(other))) => return Ok(Booking::Conflict(format!("the slot was booked meanwhile (meeting {other})"))),
            Some(_) => return Ok(Booking::Conflict("the slot is no longer free in the staff member's calendar (stored availability)".into())),
            None => {}
        }
        let minutes = ((m.end_at - m.start_at).num_minutes()).clamp(5, 1440) as u32;
        let items = self.graph.get_schedule(&m.staff_id, m.start_at, m.end_at, minutes).await?;
        if let Some(item) = items.iter().find(|i| i.blocks() && i.start.to_utc().zip(i.end.to_utc()).is_some_and(|(s, e)| Interval::new(s, e).overlaps(&slot))) {
            return Ok(Booking::Conflict(format!("the slot is no longer free in the staff member's calendar ({} {} to {})", item.status, item.start.date_time, item.end.date_time)));
        }
        sqlx::query("UPDATE meetings SET create_attempts = create_attempts + 1 WHERE meeting_id = $1").bind(m.meeting_id).execute(&self.pool).await?;
        let event = NewEvent {
            subject: m.subject.clone(),
            body_html: format!("<p>{}</p><p>Booked through Brain.</p>", html_escape(&m.subject)),
            start: m.start_at,
            end: m.end_at,
            attendee_email: m.attendee_email.clone(),
            attendee_name: m.attendee_name.clone(),
            transaction_id: m.transaction_id.clone(),
        };
        Ok(Booking::Booked(self.graph.create_event(&m.staff_id, &event).await?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// A Graph failure as the runtime's classes: throttling, Graph's breaker open and our
/// credentials refused wait (no try spent); Graph failing is transient; a refusal is permanent.
pub fn graph_error(graph: &GraphClient, g: &GraphError) -> HandlerError {
    match g {
        GraphError::Credentials { .. } => HandlerError::unavailable("graph_credentials", g.to_string()),
        GraphError::Throttled { .. } => HandlerError::unavailable("graph_throttled", g.to_string()).with_retry_after(g.retry_after()),
        _ if g.is_transient() && graph.breaker().is_open() => HandlerError::unavailable("graph_breaker_open", g.to_string()),
        _ if g.is_transient() => HandlerError::transient(g.kind(), g.to_string()).with_retry_after(g.retry_after()),
        _ => HandlerError::permanent(g.kind(), g.to_string()),
    }
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn action_label(action: &str) -> &'static str {
    match action {
        "book" => "book",
        "cancel" => "cancel",
        _ => "resend",
    }
}
