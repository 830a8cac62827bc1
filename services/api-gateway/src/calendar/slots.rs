//! `GET /api/v1/calendar/slots?staffId=&duration=`: a staff member's free slots, from what
//! graph-calendar stored (`read_api.calendar_free_slots`), in milliseconds and also while Graph is
//! down: the answer says how fresh it is (`freshAsOf`, `ageSeconds`, and `refreshError` when the
//! latest refresh failed). A slot starts on the staff member's grid (`slotMinutes`, aligned to
//! midnight UTC) and lasts `duration` minutes, a multiple of the grid.

use axum::{
    Extension, Json,
    extract::{Query, State},
    http::{StatusCode, Uri},
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{read_failed, valid_staff_id};
use crate::{
    AppState,
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi,
};

/// Longest meeting, in minutes.
pub const MAX_DURATION_MINUTES: u32 = 480;
/// Most slots in one answer.
const MAX_SLOTS: usize = 2_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlotsQuery {
    /// The staff member (their Graph user id).
    #[param(example = "ann")]
    pub staff_id: String,
    /// Minutes, a multiple of the staff member's grid (default: one grid step).
    #[param(minimum = 5, maximum = 480)]
    pub duration: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slots {
    pub staff_id: String,
    pub duration_minutes: u32,
    /// The grid slots start on.
    pub slot_minutes: u32,
    /// When the availability was read from Graph.
    pub fresh_as_of: DateTime<Utc>,
    /// Seconds since then.
    pub age_seconds: f64,
    /// Why the latest refresh failed, if it did (the slots are then older).
    pub refresh_error: Option<String>,
    /// Availability is known until then.
    pub horizon_end: Option<DateTime<Utc>>,
    pub slots: Vec<Slot>,
}

/// A staff member as the calendar knows them.
#[derive(Debug, sqlx::FromRow)]
pub struct Staff {
    pub staff_id: String,
    pub slot_minutes: i32,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub horizon_end: Option<DateTime<Utc>>,
    pub refresh_error: Option<String>,
}

/// The active staff member `id` of the caller's tenant: 404 `staff_not_found` otherwise.
pub async fn staff(state: &AppState, caller: &Principal, id: &str) -> Result<Staff, ApiError> {
    let not_found = || ApiError::not_found("staff_not_found", format!("no staff member {id}"));
    if !valid_staff_id(id) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_staff_id", "staffId is 1-256 letters, digits, -, _, . and @"));
    }
    sqlx::query_as("SELECT staff_id, slot_minutes, refreshed_at, horizon_end, refresh_error FROM read_api.calendar_staff WHERE staff_id = $1 AND active AND ($2::text IS NULL OR tenant_id = $2)")
        .bind(id)
        .bind(caller.tenant.as_deref())
        .fetch_optional(&state.pool)
        .await
        .map_err(read_failed)?
        .ok_or_else(not_found)
}

/// `duration` checked against the grid: 422 `invalid_duration`.
pub fn duration(minutes: Option<u32>, slot_minutes: u32) -> Result<u32, ApiError> {
    let minutes = minutes.unwrap_or(slot_minutes);
    if minutes == 0 || minutes > MAX_DURATION_MINUTES || !minutes.is_multiple_of(slot_minutes) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_duration", format!("the duration is a multiple of {slot_minutes} minutes, at most {MAX_DURATION_MINUTES}")));
    }
    Ok(minutes)
}

/// The grid-aligned starts of `minutes`-long slots inside the free windows, from `not_before`.
pub fn starts(windows: &[(DateTime<Utc>, DateTime<Utc>)], minutes: u32, slot_minutes: u32, not_before: DateTime<Utc>) -> Vec<Slot> {
    let (length, step) = (Duration::minutes(i64::from(minutes)), i64::from(slot_minutes) * 60);
    let mut out = Vec::new();
    for (start, end) in windows {
        let from = (*start).max(not_before);
        let secs = from.timestamp() + i64::from(from.timestamp_subsec_nanos() > 0);
        let first = secs.div_euclid(step) * step + if secs.rem_euclid(step) == 0 { 0 } else { step };
        let mut t = Utc.timestamp_opt(first, 0).single().unwrap_or(from);
        while t + length <= *end && out.len() < MAX_SLOTS {
            out.push(Slot { start: t, end: t + length });
            t += Duration::seconds(step);
        }
    }
    out
}

/// A staff member's free slots
///
/// Free slots of `duration` minutes from now to the end of the known availability, computed by
/// Brain from the staff member's working hours and Graph's free/busy. Answered from what is
/// stored, also while Graph is down: `freshAsOf` and `ageSeconds` say how fresh it is.
#[utoipa::path(
    get,
    path = "/api/v1/calendar/slots",
    operation_id = "calendarSlots",
    tag = openapi::TAG_CALENDAR,
    params(SlotsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The free slots, earliest first", body = Slots),
        (status = 400, description = "`invalid_query`: `staffId` missing, or an unknown or malformed parameter", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`staff_not_found`: no such staff member in the caller's tenant", body = ErrorBody),
        (status = 422, description = "`invalid_staff_id` or `invalid_duration`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`availability_unknown` (graph-calendar has not read this staff member's calendar yet), `dependency_unavailable`, `issuer_unavailable` or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, uri: Uri) -> Result<Json<Slots>, ApiError> {
    let Query(query) = Query::<SlotsQuery>::try_from_uri(&uri).map_err(|e| ApiError::bad_request("invalid_query", format!("{}; this route takes staffId and duration", e.body_text())))?;
    let staff = staff(&state, &caller, &query.staff_id).await?;
    let slot_minutes = staff.slot_minutes.max(1) as u32;
    let minutes = duration(query.duration, slot_minutes)?;
    let Some(fresh_as_of) = staff.refreshed_at else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "availability_unknown", "this staff member's calendar has not been read yet; retry shortly"));
    };
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as("SELECT start_at, end_at FROM read_api.calendar_free_slots WHERE staff_id = $1 AND end_at > now() ORDER BY start_at")
        .bind(&staff.staff_id)
        .fetch_all(&state.pool)
        .await
        .map_err(read_failed)?;
    let now = Utc::now();
    Ok(Json(Slots {
        staff_id: staff.staff_id,
        duration_minutes: minutes,
        slot_minutes,
        fresh_as_of,
        age_seconds: (now - fresh_as_of).num_milliseconds().max(0) as f64 / 1000.0,
        refresh_error: staff.refresh_error,
        horizon_end: staff.horizon_end,
        slots: starts(&windows, minutes, slot_minutes, now),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn slots_start_on_the_grid_inside_the_windows() {
        let windows = [(at("2026-06-05T09:00:00Z"), at("2026-06-05T10:30:00Z")), (at("2026-06-05T12:00:00Z"), at("2026-06-05T13:00:00Z"))];
        let got: Vec<String> = starts(&windows, 60, 30, at("2026-06-05T09:10:00Z")).iter().map(|s| s.start.format("%H:%M").to_string()).collect();
        assert_eq!(got, ["09:30", "12:00"]);
        assert_eq!(starts(&windows, 30, 30, at("2026-06-01T00:00:00Z")).len(), 5);
        assert!(starts(&windows, 120, 30, at("2026-06-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn durations_are_multiples_of_the_grid() {
        assert_eq!(duration(None, 30).unwrap(), 30);
        assert_eq!(duration(Some(90), 30).unwrap(), 90);
        for bad in [0, 45, 510] {
            assert!(duration(Some(bad), 30).is_err(), "{bad}");
        }
    }
}
