//! `POST /api/v1/calendar/book`: books a meeting with a staff member in one of their free slots.
//!
//! Checked in order, before anything is queued: the body, the caller (a borrower books for one of
//! the applications in its token; staff, ops and admin for anyone of their tenant), the staff
//! member (known, active, of the caller's tenant), the duration (a multiple of the staff member's
//! grid), the start (on the grid, in the future, within the known availability) and the slot
//! (free in the stored availability; 409 `slot_unavailable` otherwise). Then a `book` command goes
//! to `gateway.calendar.booking-requested.v1` and the answer is 202 with the meeting id;
//! graph-calendar books it in Graph, or records a `conflict` when someone took the slot meanwhile.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use brain_runtime::events::BookingRequested;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{meetings::Meeting, publish, read_failed, slots};
use crate::{
    AppState, SERVICE,
    applications::valid_id,
    auth::{Principal, Role},
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi,
};

const MAX_SUBJECT_CHARS: usize = 200;

/// A meeting to book.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "staffId": "ann", "start": "2026-06-01T10:00:00Z", "durationMinutes": 30, "attendeeEmail": "bo@example.com", "applicationId": "app-17" }))]
pub struct BookRequest {
    pub staff_id: String,
    /// On the staff member's grid (see `GET /api/v1/calendar/slots`), RFC 3339.
    pub start: DateTime<Utc>,
    #[schema(minimum = 5, maximum = 480)]
    pub duration_minutes: u32,
    /// Who meets the staff member (gets the invitation).
    pub attendee_email: String,
    pub attendee_name: Option<String>,
    /// 1-200 characters (default "Meeting").
    pub subject: Option<String>,
    /// The application the meeting is about; required for a borrower (one in its token).
    pub application_id: Option<String>,
}

/// The answer to a booking (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookAccepted {
    /// Follow it at `/api/v1/meetings/{meetingId}` (also the `Location` header).
    pub meeting_id: Uuid,
    pub command_id: Uuid,
    #[schema(example = "pending")]
    pub state: &'static str,
    pub staff_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

fn clean(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)).then(|| text.to_string())
}

/// Book a meeting
///
/// Queues the booking of a free slot of a staff member; graph-calendar creates the Teams meeting
/// in the staff member's calendar. Follow it with `GET /api/v1/meetings/{id}`.
#[utoipa::path(
    post,
    path = "/api/v1/calendar/book",
    operation_id = "bookMeeting",
    tag = openapi::TAG_CALENDAR,
    request_body(content = BookRequest, content_type = "application/json", description = "At most 64 KiB; unknown fields are refused."),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued: the meeting is `pending`", body = BookAccepted,
            headers(("Location" = String, description = "`/api/v1/meetings/{meetingId}`"))),
        (status = 400, description = "`invalid_body`", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`staff_not_found` (no such staff member in the caller's tenant) or `application_not_found` (a borrower naming an application not in its token)", body = ErrorBody),
        (status = 409, description = "`slot_unavailable`: the slot is not free in the stored availability", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_staff_id`, `invalid_duration`, `slot_not_on_grid`, `slot_out_of_range` (in the past or beyond the known availability), `invalid_attendee`, `invalid_subject`, `invalid_application_id` or `application_required`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`availability_unknown`, `broker_unavailable`, `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn post(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(body): JsonBody<BookRequest>) -> Result<Response, ApiError> {
    let email = body.attendee_email.trim();
    if email.len() < 3 || email.len() > 254 || !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"')) {
        return Err(unprocessable("invalid_attendee", "attendeeEmail is an e-mail address"));
    }
    let attendee_name = match &body.attendee_name {
        None => None,
        Some(name) => Some(clean(name, MAX_SUBJECT_CHARS).ok_or_else(|| unprocessable("invalid_attendee", "attendeeName is 1-200 characters"))?),
    };
    let subject = match &body.subject {
        None => "Meeting".to_string(),
        Some(s) => clean(s, MAX_SUBJECT_CHARS).ok_or_else(|| unprocessable("invalid_subject", "subject is 1-200 characters, no control characters"))?,
    };
    if body.application_id.as_deref().is_some_and(|a| !valid_id(a)) {
        return Err(unprocessable("invalid_application_id", "applicationId is 1-128 letters, digits, -, _ and ."));
    }
    if caller.role == Role::Borrower {
        let application = body.application_id.as_deref().ok_or_else(|| unprocessable("application_required", "a borrower books for one of its applications: send applicationId"))?;
        if !caller.may_read_application(application) {
            return Err(ApiError::not_found("application_not_found", format!("no application {application}")));
        }
    }
    let staff = slots::staff(&state, &caller, &body.staff_id).await?;
    let slot_minutes = staff.slot_minutes.max(1) as u32;
    let minutes = slots::duration(Some(body.duration_minutes), slot_minutes)?;
    let start = body.start;
    if start.timestamp_subsec_nanos() != 0 || start.timestamp().rem_euclid(i64::from(slot_minutes) * 60) != 0 {
        return Err(unprocessable("slot_not_on_grid", format!("slots start every {slot_minutes} minutes from midnight UTC")));
    }
    let end = start + Duration::minutes(i64::from(minutes));
    let Some(horizon) = staff.horizon_end else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "availability_unknown", "this staff member's calendar has not been read yet; retry shortly"));
    };
    if start <= Utc::now() || end > horizon {
        return Err(unprocessable("slot_out_of_range", format!("the slot must start in the future and end by {horizon}")));
    }
    let free: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM read_api.calendar_free_slots WHERE staff_id = $1 AND start_at <= $2 AND end_at >= $3)")
        .bind(&staff.staff_id)
        .bind(start)
        .bind(end)
        .fetch_one(&state.pool)
        .await
        .map_err(read_failed)?;
    if !free {
        return Err(ApiError::new(StatusCode::CONFLICT, "slot_unavailable", "the slot is not free; pick another from GET /api/v1/calendar/slots"));
    }

    let tenant_id = caller.tenant.clone().unwrap_or_else(|| "default".into());
    let (meeting_id, command_id) = (Uuid::new_v4(), Uuid::new_v4());
    let command = BookingRequested {
        event_id: command_id.to_string(),
        occurred_at: Utc::now().timestamp_millis(),
        tenant_id: tenant_id.clone(),
        correlation_id: meeting_id.to_string(),
        causation_id: None,
        producer: SERVICE.to_string(),
        action: "book".into(),
        meeting_id: meeting_id.to_string(),
        staff_id: staff.staff_id.clone(),
        start_at: start.timestamp_millis(),
        end_at: end.timestamp_millis(),
        subject: subject.clone(),
        attendee_email: email.to_string(),
        attendee_name: attendee_name.clone(),
        application_id: body.application_id.clone(),
        requested_by: caller.subject.clone(),
        reason: None,
    };
    publish(&state, &command).await?;
    let now = Utc::now();
    state.calendar.recent.insert(Meeting {
        meeting_id,
        tenant_id,
        staff_id: staff.staff_id.clone(),
        application_id: body.application_id,
        requested_by: caller.subject.clone(),
        subject,
        attendee_email: email.to_string(),
        attendee_name,
        start_at: start,
        end_at: end,
        state: "pending".into(),
        join_url: None,
        web_link: None,
        ical_uid: None,
        graph_event_id: None,
        sequence: 0,
        error: None,
        resends: 0,
        created_at: now,
        updated_at: now,
        recorded: false,
        ics: None,
    });
    tracing::info!(%meeting_id, staff = %staff.staff_id, %start, minutes, "booking queued");
    let accepted = BookAccepted { meeting_id, command_id, state: "pending", staff_id: staff.staff_id, start, end };
    let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/api/v1/meetings/{meeting_id}")) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}
