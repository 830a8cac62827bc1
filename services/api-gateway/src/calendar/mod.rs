//! Flow 5 at the edge: free slots (`GET /api/v1/calendar/slots`), booking
//! (`POST /api/v1/calendar/book`), the meeting record with its ICS, cancel and resend
//! (`/api/v1/meetings/{id}...`), and Graph's change notifications (`POST /api/v1/webhooks/graph`).
//!
//! Reads come from graph-calendar's read models (`read_api.calendar_*`), so they answer while
//! Graph is down; commands go to `gateway.calendar.booking-requested.v1`, keyed by staff member.
//! Every read is scoped to the caller's tenant; a borrower sees the meetings it booked or those of
//! its applications.

pub mod book;
pub mod meetings;
pub mod recent;
pub mod slots;
pub mod webhook;

use std::time::Duration;

use axum::http::StatusCode;
use brain_runtime::{
    events::{BookingRequested, topics},
    settings::{Env, SettingsError},
};
use secrecy::SecretString;

use crate::{AppState, error::ApiError};

/// `GRAPH_CLIENT_STATE` (the `clientState` graph-calendar gives its subscriptions) and
/// `GRAPH_WEBHOOK_PUBLISH_TIMEOUT_MS`.
#[derive(Debug, Clone)]
pub struct CalendarSettings {
    /// Without it, Graph's notifications (and the validation handshake) are refused with 503.
    pub client_state: Option<SecretString>,
    /// How long a notification may wait for Kafka: Graph wants an answer within 3 s.
    pub publish_timeout: Duration,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        Self { client_state: None, publish_timeout: Duration::from_millis(2_000) }
    }
}

impl CalendarSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self { client_state: env.optional_secret("GRAPH_CLIENT_STATE")?, publish_timeout: env.millis_in("GRAPH_WEBHOOK_PUBLISH_TIMEOUT", 2_000, 100..=2_800)? })
    }
}

#[derive(Clone, Default)]
pub struct CalendarState {
    pub settings: CalendarSettings,
    /// Meetings this instance queued that graph-calendar may not have recorded yet.
    pub recent: recent::RecentMeetings,
}

impl CalendarState {
    pub fn new(settings: &CalendarSettings) -> Self {
        Self { settings: settings.clone(), recent: Default::default() }
    }
}

/// Staff ids are Graph user ids or mail addresses.
pub fn valid_staff_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// Publishes a meeting command once the broker has it (503 `broker_unavailable` otherwise).
pub async fn publish(state: &AppState, command: &BookingRequested) -> Result<(), ApiError> {
    state.producer.send(topics::BOOKING_REQUESTED, &command.staff_id, command).await.map_err(|e| {
        tracing::warn!(error = %e, action = %command.action, "the meeting command could not be queued");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the command could not be queued; retry")
    })
}

/// A read-model failure: graph-calendar's views not there yet are 503 `dependency_unavailable`.
pub fn read_failed(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P01" | "3F000" | "42703")) => {
            tracing::warn!(error = %e, "the calendar read model is not there (has graph-calendar migrated?)");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "the calendar is not available yet; retry later")
        }
        _ => ApiError::database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_ids_are_user_ids_or_addresses() {
        for ok in ["ann", "ann@contoso.example", "0f6e1f2a-8a4c-4a53-9a55-3c1f1d0e7b11", "a.b_c-d"] {
            assert!(valid_staff_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(257)] {
            assert!(!valid_staff_id(bad), "{bad}");
        }
    }
}
