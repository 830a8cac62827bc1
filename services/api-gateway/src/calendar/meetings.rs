//! A meeting as graph-calendar recorded it (`read_api.calendar_meetings`): `GET
//! /api/v1/meetings/{id}` (state `pending`, `booked`, `conflict`, `failed` or `cancelled`, the
//! Teams join link, the error), `GET /api/v1/meetings/{id}/ics` (the invitation Brain rendered,
//! `text/calendar`), and the commands `POST .../cancel` and `POST .../resend`.
//!
//! Scoped to the caller's tenant; a borrower sees the meetings it booked and those of its
//! applications. Anything else is 404, exactly like a meeting that does not exist.

use axum::{
    Extension, Json,
    extract::{FromRequestParts, Path, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use brain_runtime::events::BookingRequested;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{publish, read_failed};
use crate::{
    AppState, SERVICE,
    auth::{Principal, Role},
    error::{ApiError, ErrorBody},
    openapi,
};

/// A meeting with a staff member.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meeting {
    pub meeting_id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    pub staff_id: String,
    pub application_id: Option<String>,
    #[serde(skip)]
    pub requested_by: String,
    pub subject: String,
    pub attendee_email: String,
    pub attendee_name: Option<String>,
    #[serde(rename = "start")]
    pub start_at: DateTime<Utc>,
    #[serde(rename = "end")]
    pub end_at: DateTime<Utc>,
    /// `pending`, then `booked`, `conflict` (the slot was taken meanwhile) or `failed` (Graph
    /// failed after a retry); `cancelled` once cancelled.
    #[schema(example = "booked")]
    pub state: String,
    /// The Teams join link (with `booked`).
    pub join_url: Option<String>,
    /// The event in Outlook on the web.
    pub web_link: Option<String>,
    /// The invitation's `UID`.
    pub ical_uid: Option<String>,
    pub graph_event_id: Option<String>,
    /// The invitation's `SEQUENCE`: rises with every cancel and resend.
    pub sequence: i32,
    /// With `conflict` or `failed` (or a cancel or resend that failed): why.
    pub error: Option<String>,
    /// How often the invitation was resent.
    pub resends: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// False while the meeting is known only to the gateway that queued it.
    #[sqlx(default)]
    pub recorded: bool,
    #[serde(skip)]
    #[sqlx(default)]
    pub ics: Option<String>,
}

/// `{id}` of a meeting route: a UUID, else 400 `invalid_meeting_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct MeetingId(
    /// The meeting id of the 202 that booked it.
    #[param(value_type = String, format = Uuid, example = "0f6e1f2a-8a4c-4a53-9a55-3c1f1d0e7b11")]
    pub Uuid,
);

impl<S: Send + Sync> FromRequestParts<S> for MeetingId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Path::<String>::from_request_parts(parts, state).await.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok());
        id.map(Self).ok_or_else(|| ApiError::bad_request("invalid_meeting_id", "meeting ids are UUIDs"))
    }
}

const QUERY: &str = "SELECT meeting_id, tenant_id, staff_id, application_id, requested_by, subject, attendee_email, attendee_name, start_at, end_at, state,
        join_url, web_link, ical_uid, graph_event_id, sequence, error, resends, created_at, updated_at, ics, true AS recorded
 FROM read_api.calendar_meetings WHERE meeting_id = $1 AND ($2::text IS NULL OR tenant_id = $2)";

/// The meeting as `caller` may see it: recorded by graph-calendar, or queued here moments ago.
pub async fn find(state: &AppState, caller: &Principal, id: Uuid) -> Result<Meeting, ApiError> {
    let not_found = || ApiError::not_found("meeting_not_found", format!("no meeting {id}"));
    let row: Option<Meeting> = sqlx::query_as(QUERY).bind(id).bind(caller.tenant.as_deref()).fetch_optional(&state.pool).await.map_err(read_failed)?;
    let meeting = row.or_else(|| state.calendar.recent.get(id, caller.tenant.as_deref())).ok_or_else(not_found)?;
    let visible = caller.role != Role::Borrower || meeting.requested_by == caller.subject || meeting.application_id.as_deref().is_some_and(|a| caller.may_read_application(a));
    if visible { Ok(meeting) } else { Err(not_found()) }
}

/// One meeting
///
/// Where a booking stands: `pending` until graph-calendar handled it, then `booked` (with the
/// Teams `joinUrl`), `conflict` or `failed` (with `error`), `cancelled` once cancelled.
#[utoipa::path(
    get,
    path = "/api/v1/meetings/{id}",
    operation_id = "getMeeting",
    tag = openapi::TAG_CALENDAR,
    params(MeetingId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The meeting", body = Meeting),
        (status = 400, description = "`invalid_meeting_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no such meeting for this caller", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, MeetingId(id): MeetingId) -> Result<Json<Meeting>, ApiError> {
    Ok(Json(find(&state, &caller, id).await?))
}

/// A meeting's invitation (ICS)
///
/// The iCalendar object (RFC 5545) Brain rendered for the meeting: `UID` is the event's
/// `iCalUId`, `METHOD:REQUEST` while booked, `METHOD:CANCEL` once cancelled, with a rising
/// `SEQUENCE`.
#[utoipa::path(
    get,
    path = "/api/v1/meetings/{id}/ics",
    operation_id = "getMeetingIcs",
    tag = openapi::TAG_CALENDAR,
    params(MeetingId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The invitation", content_type = "text/calendar", body = String),
        (status = 400, description = "`invalid_meeting_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no such meeting for this caller", body = ErrorBody),
        (status = 409, description = "`meeting_not_booked`: the meeting is pending, in conflict or failed, so there is no invitation", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_READ, body = ErrorBody),
    )
)]
pub async fn ics(State(state): State<AppState>, Extension(caller): Extension<Principal>, MeetingId(id): MeetingId) -> Result<Response, ApiError> {
    let meeting = find(&state, &caller, id).await?;
    let Some(text) = meeting.ics else {
        return Err(ApiError::new(StatusCode::CONFLICT, "meeting_not_booked", format!("the meeting is {}: there is no invitation", meeting.state)));
    };
    let method = if meeting.state == "cancelled" { "CANCEL" } else { "REQUEST" };
    let content_type = HeaderValue::from_str(&format!("text/calendar; charset=utf-8; method={method}")).expect("a valid header");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"meeting-{id}.ics\"")).expect("a valid header");
    Ok(([(header::CONTENT_TYPE, content_type), (header::CONTENT_DISPOSITION, disposition)], text).into_response())
}

/// The answer to a cancel or resend (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingCommandAccepted {
    pub meeting_id: Uuid,
    pub command_id: Uuid,
    /// `cancel` or `resend`.
    pub action: &'static str,
    /// The meeting's state when the command was queued.
    pub state: String,
}

async fn command(state: AppState, caller: Principal, id: Uuid, action: &'static str) -> Result<(StatusCode, Json<MeetingCommandAccepted>), ApiError> {
    let m = find(&state, &caller, id).await?;
    match m.state.as_str() {
        "booked" | "pending" => {}
        "cancelled" => return Err(ApiError::new(StatusCode::CONFLICT, "meeting_cancelled", "the meeting is cancelled")),
        other => return Err(ApiError::new(StatusCode::CONFLICT, "meeting_not_booked", format!("the meeting is {other}: there is nothing to {action}"))),
    }
    let command_id = Uuid::new_v4();
    let command = BookingRequested {
        event_id: command_id.to_string(),
        occurred_at: Utc::now().timestamp_millis(),
        tenant_id: m.tenant_id.clone(),
        correlation_id: m.meeting_id.to_string(),
        causation_id: None,
        producer: SERVICE.to_string(),
        action: action.to_string(),
        meeting_id: m.meeting_id.to_string(),
        staff_id: m.staff_id.clone(),
        start_at: m.start_at.timestamp_millis(),
        end_at: m.end_at.timestamp_millis(),
        subject: m.subject.clone(),
        attendee_email: m.attendee_email.clone(),
        attendee_name: m.attendee_name.clone(),
        application_id: m.application_id.clone(),
        requested_by: caller.subject.clone(),
        reason: None,
    };
    publish(&state, &command).await?;
    tracing::info!(meeting_id = %id, %command_id, action, "meeting command queued");
    Ok((StatusCode::ACCEPTED, Json(MeetingCommandAccepted { meeting_id: id, command_id, action, state: m.state })))
}

/// Cancel a meeting
///
/// Queues the cancellation: graph-calendar cancels the event in Graph (the attendee is told),
/// the meeting becomes `cancelled` and its ICS `METHOD:CANCEL` with a higher `SEQUENCE`.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{id}/cancel",
    operation_id = "cancelMeeting",
    tag = openapi::TAG_CALENDAR,
    params(MeetingId),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = MeetingCommandAccepted),
        (status = 400, description = "`invalid_meeting_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no such meeting for this caller", body = ErrorBody),
        (status = 409, description = "`meeting_cancelled` or `meeting_not_booked` (in conflict or failed)", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable`, `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn cancel(State(state): State<AppState>, Extension(caller): Extension<Principal>, MeetingId(id): MeetingId) -> Result<(StatusCode, Json<MeetingCommandAccepted>), ApiError> {
    command(state, caller, id, "cancel").await
}

/// Resend a meeting's invitation
///
/// Queues a resend: graph-calendar sends the invitation to the attendee again and renders the
/// ICS anew with a higher `SEQUENCE`.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{id}/resend",
    operation_id = "resendMeetingInvitation",
    tag = openapi::TAG_CALENDAR,
    params(MeetingId),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = MeetingCommandAccepted),
        (status = 400, description = "`invalid_meeting_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no such meeting for this caller", body = ErrorBody),
        (status = 409, description = "`meeting_cancelled` or `meeting_not_booked` (in conflict or failed)", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`broker_unavailable`, `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn resend(State(state): State<AppState>, Extension(caller): Extension<Principal>, MeetingId(id): MeetingId) -> Result<(StatusCode, Json<MeetingCommandAccepted>), ApiError> {
    command(state, caller, id, "resend").await
}
