//! Graph's `dateTimeTimeZone` (`{"dateTime":"2026-06-01T10:00:00.0000000","timeZone":"UTC"}`)
//! and instant formats. Only UTC is simulated (the zone names Graph accepts for it are accepted);
//! another zone is refused as Graph refuses an unknown one, so a client that sends one notices.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::GraphError;

const UTC_NAMES: [&str; 5] = [
    "UTC",
    "Etc/UTC",
    "Etc/GMT",
    "Coordinated Universal Time",
    "tzone://Microsoft/Utc",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    pub date_time: String,
    /// Missing: UTC.
    pub time_zone: Option<String>,
}

/// A time as `/control` accepts it: RFC 3339 text or a `dateTimeTimeZone`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeInput {
    Text(String),
    Zoned(DateTimeTimeZone),
}

impl TimeInput {
    pub fn parse(&self) -> Result<DateTime<Utc>, GraphError> {
        match self {
            Self::Text(text) => parse_date_time(text),
            Self::Zoned(zoned) => zoned.parse(),
        }
    }
}

pub fn is_utc(zone: &str) -> bool {
    UTC_NAMES
        .iter()
        .any(|n| n.eq_ignore_ascii_case(zone.trim()))
}

pub fn unsupported_zone(zone: &str) -> GraphError {
    GraphError::bad_request(format!(
        "A valid TimeZone value must be specified. The following TimeZone value is not \
         supported: '{zone}'."
    ))
    .with_code("TimeZoneNotSupportedException")
}

impl DateTimeTimeZone {
    pub fn parse(&self) -> Result<DateTime<Utc>, GraphError> {
        match self.time_zone.as_deref() {
            Some(zone) if !is_utc(zone) => Err(unsupported_zone(zone)),
            _ => parse_date_time(&self.date_time),
        }
    }
}

/// `2026-06-01T10:00:00[.fffffff][Z|±hh:mm]` or `2026-06-01T10:00`; no offset means UTC.
pub fn parse_date_time(text: &str) -> Result<DateTime<Utc>, GraphError> {
    let text = text.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    let bare = text.strip_suffix('Z').unwrap_or(text);
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(bare, f).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| {
            GraphError::bad_request(format!(
                "Cannot convert the literal '{text}' to a DateTime."
            ))
        })
}

/// `08:00`, `08:00:00` or `08:00:00.0000000`.
pub fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(text.trim(), f).ok())
}

fn ticks(nanos: u32) -> String {
    format!("{:07}", nanos / 100)
}

/// `2026-06-01T10:00:00.0000000`, as Graph writes `dateTime`.
pub fn format_local(at: DateTime<Utc>) -> String {
    format!(
        "{}.{}",
        at.format("%Y-%m-%dT%H:%M:%S"),
        ticks(at.nanosecond())
    )
}

/// `2026-06-01T10:00:00.0000000Z`, as Graph writes instants (`createdDateTime`, ...).
pub fn format_instant(at: DateTime<Utc>) -> String {
    format!("{}Z", format_local(at))
}

/// `08:00:00.0000000`.
pub fn format_time_of_day(t: NaiveTime) -> String {
    format!("{}.{}", t.format("%H:%M:%S"), ticks(t.nanosecond()))
}

/// `{"dateTime": "...", "timeZone": "UTC"}`.
pub fn zoned(at: DateTime<Utc>) -> Value {
    json!({"dateTime": format_local(at), "timeZone": "UTC"})
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn parses_what_graph_clients_send() {
        let expected = Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap();
        for text in [
            "2026-06-01T10:00:00",
            "2026-06-01T10:00:00.0000000",
            "2026-06-01T10:00:00Z",
            "2026-06-01T12:00:00+02:00",
            "2026-06-01T10:00",
        ] {
            assert_eq!(parse_date_time(text).unwrap(), expected, "{text}");
        }
        assert!(parse_date_time("June 1st").is_err());
        let zoned = DateTimeTimeZone {
            date_time: "2026-06-01T10:00:00".into(),
            time_zone: Some("Pacific Standard Time".into()),
        };
        assert_eq!(
            zoned.parse().unwrap_err().code,
            "TimeZoneNotSupportedException"
        );
    }

    #[test]
    fn formats_with_seven_digits() {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap();
        assert_eq!(format_local(at), "2026-06-01T10:00:00.0000000");
        assert_eq!(format_instant(at), "2026-06-01T10:00:00.0000000Z");
        let nine = parse_time_of_day("09:00").unwrap();
        assert_eq!(format_time_of_day(nine), "09:00:00.0000000");
    }
}
