//! The meeting record (`meetings`), the commands already handled (`meeting_commands`) and the
//! `MeetingChanged` event that says what became of a meeting.

use brain_events::{BookingRequested, MeetingChanged, topics};
use brain_runtime::{
    consumer::HandlerError,
    producer::EventProducer,
};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{SERVICE, ics};

/// Namespace of `MeetingChanged` ids, derived from (meeting, version).
const CHANGED_NAMESPACE: Uuid = Uuid::from_u128(0x6c1d_93a4_2b7e_4f05_a8c3_5e91_d24f_07b6);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Meeting {
    pub meeting_id: Uuid,
    pub tenant_id: String,
    pub staff_id: String,
    pub transaction_id: String,
    pub application_id: Option<String>,
    pub subject: String,
    pub attendee_email: String,
    pub attendee_name: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub state: String,
    pub graph_event_id: Option<String>,
    pub ical_uid: Option<String>,
    pub join_url: Option<String>,
    pub web_link: Option<String>,
    pub organizer_email: Option<String>,
    pub sequence: i32,
    pub ics: Option<String>,
    pub ics_method: Option<String>,
    pub error: Option<String>,
    pub create_attempts: i32,
    pub resends: i32,
    pub version: i64,
    pub correlation_id: String,
}

const COLUMNS: &str = "meeting_id, tenant_id, staff_id, transaction_id, application_id, subject, attendee_email, attendee_name, start_at, end_at, state,
    graph_event_id, ical_uid, join_url, web_link, organizer_email, sequence, ics, ics_method, error, create_attempts, resends, version, correlation_id";

/// Graph's `transactionId` of a booking command: the command id itself (a UUID, well within
/// Graph's limits), so every delivery of the command sends the same one.
pub fn transaction_id(command_id: Uuid) -> String {
    command_id.to_string()
}

pub fn millis(t: i64) -> Result<DateTime<Utc>, HandlerError> {
    Utc.timestamp_millis_opt(t).single().ok_or_else(|| HandlerError::permanent("validation", format!("{t} is not a time")))
}

pub async fn load(pool: &PgPool, id: Uuid) -> Result<Option<Meeting>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM meetings WHERE meeting_id = $1"))).bind(id).fetch_optional(pool).await
}

/// The meeting of a booking command, recorded `pending` the first time it is seen.
pub async fn insert_pending(pool: &PgPool, c: &BookingRequested, meeting_id: Uuid, command_id: Uuid) -> Result<Meeting, HandlerError> {
    let (start, end) = (millis(c.start_at)?, millis(c.end_at)?);
    if end <= start {
        return Err(HandlerError::permanent("validation", "the meeting ends before it starts"));
    }
    sqlx::query(
        "INSERT INTO meetings (meeting_id, tenant_id, staff_id, booking_command_id, transaction_id, application_id, requested_by, subject,
             attendee_email, attendee_name, start_at, end_at, state, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13) ON CONFLICT (meeting_id) DO NOTHING",
    )
    .bind(meeting_id)
    .bind(&c.tenant_id)
    .bind(&c.staff_id)
    .bind(command_id)
    .bind(transaction_id(command_id))
    .bind(&c.application_id)
    .bind(&c.requested_by)
    .bind(&c.subject)
    .bind(&c.attendee_email)
    .bind(&c.attendee_name)
    .bind(start)
    .bind(end)
    .bind(&c.correlation_id)
    .execute(pool)
    .await
    .map_err(brain_runtime::db::classify)?;
    load(pool, meeting_id).await.map_err(brain_runtime::db::classify)?.ok_or_else(|| HandlerError::transient("database", "the meeting just recorded is not there"))
}

/// Writes the meeting's changed fields, its version one higher.
pub async fn save(tx: &mut Transaction<'_, Postgres>, m: &Meeting) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE meetings SET state = $2, graph_event_id = $3, ical_uid = $4, join_url = $5, web_link = $6, organizer_email = $7, sequence = $8,
             ics = $9, ics_method = $10, error = $11, resends = $12, version = $13, updated_at = now() WHERE meeting_id = $1",
    )
    .bind(m.meeting_id)
    .bind(&m.state)
    .bind(&m.graph_event_id)
    .bind(&m.ical_uid)
    .bind(&m.join_url)
    .bind(&m.web_link)
    .bind(&m.organizer_email)
    .bind(m.sequence)
    .bind(&m.ics)
    .bind(&m.ics_method)
    .bind(&m.error)
    .bind(m.resends)
    .bind(m.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn command_seen(pool: &PgPool, command_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM meeting_commands WHERE command_id = $1)").bind(command_id).fetch_one(pool).await
}

pub async fn record_command(tx: &mut Transaction<'_, Postgres>, command_id: Uuid, meeting_id: Uuid, action: &str, outcome: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO meeting_commands (command_id, meeting_id, action, outcome) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(command_id)
        .bind(meeting_id)
        .bind(action)
        .bind(outcome)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Renders the meeting's invitation with `method` at its current sequence.
pub fn render_ics(m: &mut Meeting, method: ics::Method) {
    let Some(uid) = m.ical_uid.as_deref() else { return };
    let organizer = m.organizer_email.clone().unwrap_or_else(|| m.staff_id.clone());
    let text = ics::render(&ics::Invitation {
        method,
        uid,
        sequence: m.sequence,
        stamp: Utc::now(),
        start: m.start_at,
        end: m.end_at,
        summary: &m.subject,
        organizer_email: &organizer,
        organizer_name: None,
        attendee_email: &m.attendee_email,
        attendee_name: m.attendee_name.as_deref(),
        join_url: m.join_url.as_deref(),
    });
    m.ics = Some(text);
    m.ics_method = Some(method.as_str().to_string());
}

/// Publishes the meeting's current state (the same version always has the same event id).
pub async fn publish(producer: &EventProducer, m: &Meeting, causation: Option<String>) -> Result<(), HandlerError> {
    if m.version == 0 {
        return Ok(());
    }
    let event = MeetingChanged {
        event_id: Uuid::new_v5(&CHANGED_NAMESPACE, format!("{}\n{}", m.meeting_id, m.version).as_bytes()).to_string(),
        occurred_at: Utc::now().timestamp_millis(),
        tenant_id: m.tenant_id.clone(),
        correlation_id: m.correlation_id.clone(),
        causation_id: causation,
        producer: SERVICE.to_string(),
        meeting_id: m.meeting_id.to_string(),
        version: m.version,
        state: m.state.clone(),
        staff_id: m.staff_id.clone(),
        start_at: m.start_at.timestamp_millis(),
        end_at: m.end_at.timestamp_millis(),
        subject: m.subject.clone(),
        attendee_email: m.attendee_email.clone(),
        application_id: m.application_id.clone(),
        graph_event_id: m.graph_event_id.clone(),
        ical_uid: m.ical_uid.clone(),
        join_url: m.join_url.clone(),
        sequence: m.sequence,
        error: m.error.clone(),
    };
    producer.send(topics::MEETING_CHANGED, &event.meeting_id, &event).await.map_err(|e| {
        if e.is_transient() { HandlerError::unavailable("kafka", e.to_string()) } else { HandlerError::permanent("encode", e.to_string()) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_id_is_the_command_id() {
        let id = Uuid::new_v4();
        assert_eq!(transaction_id(id), transaction_id(id));
        assert_ne!(transaction_id(id), transaction_id(Uuid::new_v4()));
        assert!(millis(i64::MAX).is_err());
    }
}
