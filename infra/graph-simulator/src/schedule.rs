//! `POST /v1.0/users/{user}/calendar/getSchedule`: free/busy of the `schedules` (ids or mail
//! addresses) between `startTime` and `endTime`, from each calendar's seeded busy items and its
//! live events (cancelled and `showAs: free` events free the time).
//!
//! `availabilityView` has one digit per `availabilityViewInterval` minutes (default 30; the last
//! slot may be shorter), the status of the most unavailable item overlapping the slot:
//! 0 free, 1 tentative, 2 busy, 3 out of office, 4 working elsewhere. Times are answered in UTC.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::GraphError,
    events::parse_body,
    model::BusyItem,
    state::{SharedState, lock},
    time::{self, DateTimeTimeZone},
};

const DEFAULT_INTERVAL_MINUTES: i64 = 30;
/// Graph's bounds for `availabilityViewInterval`.
const INTERVAL_MINUTES: std::ops::RangeInclusive<i64> = 5..=1440;
/// Longest window asked for at once (unverified; kept generous).
const MAX_WINDOW_DAYS: i64 = 62;
const MAX_SCHEDULES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRequest {
    schedules: Option<Vec<String>>,
    start_time: Option<DateTimeTimeZone>,
    end_time: Option<DateTimeTimeZone>,
    availability_view_interval: Option<i64>,
}

/// One digit per interval: the highest-ranked status overlapping it, `0` where nothing does.
pub fn availability_view(
    items: &[BusyItem],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: TimeDelta,
) -> String {
    let mut view = String::new();
    let mut slot_start = start;
    while slot_start < end {
        let slot_end = (slot_start + interval).min(end);
        let digit = items
            .iter()
            .filter(|i| i.start < slot_end && i.end > slot_start)
            .max_by_key(|i| i.status.rank())
            .map_or('0', |i| i.status.digit());
        view.push(digit);
        slot_start = slot_end;
    }
    view
}

fn item_json(item: &BusyItem) -> Value {
    let mut value = json!({
        "isPrivate": item.is_private,
        "status": item.status,
        "isMeeting": item.is_meeting,
        "start": time::zoned(item.start),
        "end": time::zoned(item.end),
    });
    if !item.is_private {
        value["subject"] = json!(item.subject);
        value["location"] = json!(item.location);
    }
    value
}

fn schedule(
    state: &SharedState,
    schedule_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: TimeDelta,
) -> Value {
    let Some(staff) = state.staff(schedule_id) else {
        return json!({
            "scheduleId": schedule_id,
            "availabilityView": "",
            "error": {
                "message": format!("The mailbox '{schedule_id}' could not be found."),
                "responseCode": "ErrorMailRecipientNotFound",
            },
        });
    };
    let staff = lock(&staff);
    let mut items: Vec<BusyItem> = staff
        .schedule_items()
        .into_iter()
        .filter(|i| i.start < end && i.end > start)
        .collect();
    items.sort_by_key(|i| (i.start, i.end));
    json!({
        "scheduleId": schedule_id,
        "availabilityView": availability_view(&items, start, end, interval),
        "scheduleItems": items.iter().map(item_json).collect::<Vec<_>>(),
        "workingHours": staff.working_hours.to_json(),
    })
}

pub async fn get_schedule(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    state.mailbox(&user)?;
    let request: ScheduleRequest = parse_body(&body)?;
    let schedules = request.schedules.unwrap_or_default();
    if schedules.is_empty() || schedules.len() > MAX_SCHEDULES {
        return Err(GraphError::invalid_request(format!(
            "schedules must name 1 to {MAX_SCHEDULES} mailboxes."
        )));
    }
    let (Some(start), Some(end)) = (request.start_time, request.end_time) else {
        return Err(GraphError::invalid_request(
            "startTime and endTime are required.",
        ));
    };
    let (start, end) = (start.parse()?, end.parse()?);
    if end <= start {
        return Err(GraphError::invalid_request(
            "The start time must be before the end time.",
        ));
    }
    if end - start > TimeDelta::days(MAX_WINDOW_DAYS) {
        return Err(GraphError::invalid_request(format!(
            "The requested time window exceeds {MAX_WINDOW_DAYS} days."
        )));
    }
    let minutes = request
        .availability_view_interval
        .unwrap_or(DEFAULT_INTERVAL_MINUTES);
    if !INTERVAL_MINUTES.contains(&minutes) {
        return Err(GraphError::invalid_request(
            "availabilityViewInterval must be between 5 and 1440 minutes.",
        ));
    }
    let interval = TimeDelta::minutes(minutes);
    let value: Vec<Value> = schedules
        .iter()
        .map(|id| schedule(&state, id, start, end, interval))
        .collect();
    Ok(Json(json!({
        "@odata.context":
            "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
        "value": value,
    })))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::FreeBusy;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, m, 0).unwrap()
    }

    fn item(start: DateTime<Utc>, end: DateTime<Utc>, status: FreeBusy) -> BusyItem {
        BusyItem {
            start,
            end,
            status,
            subject: String::new(),
            location: String::new(),
            is_private: false,
            is_meeting: false,
        }
    }

    #[test]
    fn one_digit_per_interval_most_unavailable_wins() {
        let items = [
            item(at(9, 0), at(10, 0), FreeBusy::Busy),
            item(at(9, 45), at(10, 15), FreeBusy::Tentative),
            item(at(11, 0), at(11, 10), FreeBusy::Oof),
            item(at(12, 0), at(13, 0), FreeBusy::WorkingElsewhere),
            item(at(12, 30), at(13, 0), FreeBusy::Tentative),
        ];
        let view = availability_view(&items, at(8, 30), at(13, 0), TimeDelta::minutes(30));
        // 8:30 9:00 9:30 10:00 10:30 11:00 11:30 12:00 12:30
        assert_eq!(view, "022103041");
    }

    #[test]
    fn a_partial_last_slot_and_touching_edges() {
        let items = [item(at(10, 0), at(10, 30), FreeBusy::Busy)];
        let view = availability_view(&items, at(9, 0), at(10, 40), TimeDelta::minutes(60));
        assert_eq!(view, "02", "9:00-10:00 only touches the item");
        let view = availability_view(&[], at(9, 0), at(9, 1), TimeDelta::minutes(30));
        assert_eq!(view, "0");
    }
}
