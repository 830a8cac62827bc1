//! The shapes of Graph's answers that Brain reads, its errors, and its times
//! (`{"dateTime": "2026-06-01T10:00:00.0000000", "timeZone": "UTC"}`).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Graph asks us to slow down (HTTP {status} {code})")]
    Throttled { status: u16, code: String, retry_after: Option<Duration> },
    #[error("Graph failed with HTTP {status} {code}")]
    Unavailable { status: u16, code: String, retry_after: Option<Duration> },
    #[error("could not reach Graph")]
    Network(#[source] reqwest::Error),
    #[error("Graph refused our credentials (HTTP {status})")]
    Credentials { status: u16 },
    #[error("Graph refused the request: HTTP {status} {code}: {message}")]
    Rejected { status: u16, code: String, message: String },
    #[error("unexpected answer from Graph")]
    Decode(#[source] serde_json::Error),
}

impl GraphError {
    /// Whether a later try may succeed: throttling, 408, 5xx (but 501), network failures.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. } | Self::Network(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Throttled { status, .. } | Self::Unavailable { status, .. } | Self::Credentials { status } | Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A stable short code for metrics, dead letters and the meeting record.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "graph_throttled",
            Self::Unavailable { .. } => "graph_unavailable",
            Self::Network(_) => "graph_network",
            Self::Credentials { .. } => "graph_credentials",
            Self::Rejected { .. } => "graph_rejected",
            Self::Decode(_) => "graph_decode",
        }
    }
}

/// The error of a non-2xx answer, from its status and Graph's body
/// (`{"error":{"code","message","innerError":{...}}}`).
pub fn error_of(status: u16, retry_after: Option<Duration>, body: &[u8]) -> GraphError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = parsed["error"]["code"].as_str().or(parsed["error"].as_str()).unwrap_or_default().to_string();
    let message = parsed["error"]["message"].as_str().or(parsed["error_description"].as_str()).map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    match status {
        429 => GraphError::Throttled { status, code, retry_after },
        // 503 with Retry-After is Graph throttling too ("serviceNotAvailable").
        503 if retry_after.is_some() => GraphError::Throttled { status, code, retry_after },
        401 | 403 => GraphError::Credentials { status },
        408 | 500 | 502..=599 => GraphError::Unavailable { status, code, retry_after },
        _ => GraphError::Rejected { status, code, message },
    }
}

/// A time as Graph writes it, in UTC.
pub fn graph_time(t: DateTime<Utc>) -> Value {
    json!({ "dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC" })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl DateTimeTimeZone {
    /// Graph answers in UTC (Brain never sends `Prefer: outlook.timezone`); an offset or `Z` is
    /// honoured too.
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        let s = self.date_time.trim();
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))
    }
}

/// One item of a schedule (`scheduleItems`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleItem {
    /// free, tentative, busy, oof, workingElsewhere, unknown.
    pub status: String,
    pub start: DateTimeTimeZone,
    pub end: DateTimeTimeZone,
}

impl ScheduleItem {
    /// Whether the item makes its time unavailable for a booking (tentative counts: it may
    /// become busy).
    pub fn blocks(&self) -> bool {
        !matches!(self.status.as_str(), "free" | "workingElsewhere")
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScheduleInformation {
    #[serde(default)]
    pub schedule_items: Vec<ScheduleItem>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default)]
    pub email_address: EmailAddress,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineMeeting {
    #[serde(default)]
    pub join_url: Option<String>,
}

/// A calendar event, the fields Brain keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "iCalUId")]
    pub ical_uid: String,
    #[serde(default)]
    pub web_link: Option<String>,
    #[serde(default)]
    pub online_meeting: Option<OnlineMeeting>,
    #[serde(default)]
    pub organizer: Option<Recipient>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub is_cancelled: Option<bool>,
}

impl Event {
    pub fn join_url(&self) -> Option<&str> {
        self.online_meeting.as_ref().and_then(|m| m.join_url.as_deref())
    }

    pub fn organizer_email(&self) -> Option<&str> {
        self.organizer.as_ref().and_then(|o| o.email_address.address.as_deref())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct EventList {
    #[serde(default)]
    pub value: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ScheduleAnswer {
    #[serde(default)]
    pub value: Vec<ScheduleInformation>,
}

/// A change-notification subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub expiration_date_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_status() {
        let body = br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#;
        let throttled = error_of(429, Some(Duration::from_secs(2)), body);
        assert!(matches!(&throttled, GraphError::Throttled { code, .. } if code == "TooManyRequests"));
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
        assert!(matches!(error_of(503, Some(Duration::from_secs(1)), b""), GraphError::Throttled { .. }));
        assert!(matches!(error_of(503, None, b""), GraphError::Unavailable { .. }));
        assert!(error_of(504, None, b"").is_transient());
        assert!(!error_of(501, None, b"").is_transient());
        assert!(matches!(error_of(401, None, b""), GraphError::Credentials { status: 401 }));
        let rejected = error_of(404, None, br#"{"error":{"code":"ErrorInvalidUser","message":"no such user"}}"#);
        assert!(matches!(&rejected, GraphError::Rejected { code, message, .. } if code == "ErrorInvalidUser" && message == "no such user"));
    }

    #[test]
    fn graph_times_read_with_fractions_or_offsets() {
        let t = |s: &str| DateTimeTimeZone { date_time: s.into(), time_zone: Some("UTC".into()) }.to_utc().map(|t| t.to_rfc3339());
        assert_eq!(t("2026-06-01T10:00:00.0000000"), Some("2026-06-01T10:00:00+00:00".into()));
        assert_eq!(t("2026-06-01T10:00:00Z"), Some("2026-06-01T10:00:00+00:00".into()));
        assert_eq!(t("2026-06-01T12:00:00+02:00"), Some("2026-06-01T10:00:00+00:00".into()));
        assert_eq!(t("tomorrow"), None);
        let at = DateTime::parse_from_rfc3339("2026-06-01T10:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(graph_time(at), json!({ "dateTime": "2026-06-01T10:30:00", "timeZone": "UTC" }));
    }

    #[test]
    fn events_read_graphs_names() {
        let e: Event = serde_json::from_value(json!({
            "id": "AAMk1", "iCalUId": "040000008200E0", "webLink": "https://outlook.office365.com/owa/?itemid=1",
            "onlineMeeting": { "joinUrl": "https://teams.microsoft.com/l/meetup-join/x" },
            "organizer": { "emailAddress": { "address": "ann@contoso.example", "name": "Ann" } },
            "transactionId": "t-1", "isCancelled": false, "subject": "ignored"
        }))
        .unwrap();
        assert_eq!((e.ical_uid.as_str(), e.join_url(), e.organizer_email()), ("040000008200E0", Some("https://teams.microsoft.com/l/meetup-join/x"), Some("ann@contoso.example")));
    }
}
