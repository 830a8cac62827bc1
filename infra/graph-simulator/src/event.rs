//! An `event` resource: what a create or update may set, and how Graph renders it (ids,
//! `iCalUId`, `changeKey`/`@odata.etag`, `webLink`, the Teams `onlineMeeting.joinUrl`).
//! Properties the simulator does not model are stored and echoed back.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE},
};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    error::GraphError,
    model::{BusyItem, FreeBusy, Staff},
    time::{self, DateTimeTimeZone},
};

/// Read-only properties a client may send back (from a GET) and Graph ignores.
const READ_ONLY: [&str; 12] = [
    "id",
    "iCalUId",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "webLink",
    "organizer",
    "isCancelled",
    "onlineMeeting",
    "isOrganizer",
    "type",
    "seriesMasterId",
];

/// The body of a create (`POST .../events`) or update (`PATCH .../events/{id}`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventInput {
    pub subject: Option<String>,
    pub body: Option<Value>,
    pub start: Option<DateTimeTimeZone>,
    pub end: Option<DateTimeTimeZone>,
    pub location: Option<Value>,
    pub attendees: Option<Vec<Value>>,
    pub is_online_meeting: Option<bool>,
    pub online_meeting_provider: Option<String>,
    pub show_as: Option<FreeBusy>,
    pub sensitivity: Option<String>,
    pub transaction_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where an event came from: the API, or "inside Outlook" through `/control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    Api,
    Control,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub id: String,
    pub ical_uid: String,
    pub change_key: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub subject: String,
    pub body: Value,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub location: Value,
    pub attendees: Vec<Value>,
    pub is_online_meeting: bool,
    pub online_meeting_provider: String,
    pub join_url: Option<String>,
    pub show_as: FreeBusy,
    pub sensitivity: String,
    pub transaction_id: Option<String>,
    pub is_cancelled: bool,
    pub cancel_comment: Option<String>,
    pub origin: Origin,
    pub extra: Map<String, Value>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    rand::rng().random()
}

fn new_change_key() -> String {
    STANDARD.encode(random_bytes::<12>())
}

fn location(value: Option<Value>) -> Value {
    value.unwrap_or_else(|| json!({"displayName": "", "locationType": "default"}))
}

impl Event {
    /// A new event from a create body; `start` and `end` are required, `end` not before `start`.
    pub fn create(
        input: EventInput,
        staff: &Staff,
        tenant_id: &str,
        origin: Origin,
    ) -> Result<Self, GraphError> {
        let (Some(start), Some(end)) = (&input.start, &input.end) else {
            return Err(GraphError::invalid_request(
                "Your request can't be completed. The start and end of the event are required.",
            ));
        };
        let (start, end) = (start.parse()?, end.parse()?);
        let now = Utc::now();
        let id = format!("AAMkAD{}", URL_SAFE.encode(random_bytes::<48>()));
        let hex: String = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let mut event = Self {
            seq: 0,
            id,
            ical_uid: format!("040000008200E00074C5B7101A82E00800000000{hex}"),
            change_key: new_change_key(),
            created: now,
            last_modified: now,
            subject: String::new(),
            body: json!({"contentType": "html", "content": ""}),
            start,
            end,
            location: location(None),
            attendees: Vec::new(),
            is_online_meeting: false,
            online_meeting_provider: "unknown".to_owned(),
            join_url: None,
            show_as: FreeBusy::Busy,
            sensitivity: "normal".to_owned(),
            transaction_id: input.transaction_id.clone(),
            is_cancelled: false,
            cancel_comment: None,
            origin,
            extra: Map::new(),
        };
        event.apply(input, staff, tenant_id)?;
        Ok(event)
    }

    /// Applies an update (or the create body): only the properties sent change.
    pub fn apply(
        &mut self,
        input: EventInput,
        staff: &Staff,
        tenant_id: &str,
    ) -> Result<(), GraphError> {
        let start = input.start.as_ref().map(|s| s.parse()).transpose()?;
        let end = input.end.as_ref().map(|e| e.parse()).transpose()?;
        let (start, end) = (start.unwrap_or(self.start), end.unwrap_or(self.end));
        if end < start {
            return Err(GraphError::invalid_request(
                "The end time of the event must be after its start time.",
            ));
        }
        (self.start, self.end) = (start, end);
        if let Some(subject) = input.subject {
            self.subject = subject;
        }
        if let Some(body) = input.body {
            self.body = body;
        }
        if input.location.is_some() {
            self.location = location(input.location);
        }
        if let Some(attendees) = input.attendees {
            self.attendees = attendees.into_iter().map(with_response_status).collect();
        }
        if let Some(provider) = input.online_meeting_provider {
            self.online_meeting_provider = provider;
        }
        if let Some(show_as) = input.show_as {
            self.show_as = show_as;
        }
        if let Some(sensitivity) = input.sensitivity {
            self.sensitivity = sensitivity;
        }
        if let Some(online) = input.is_online_meeting {
            self.is_online_meeting = online;
        }
        let teams = self.is_online_meeting && self.online_meeting_provider == "teamsForBusiness";
        if teams && self.join_url.is_none() {
            self.join_url = Some(join_url(tenant_id, &staff.id));
        } else if !self.is_online_meeting {
            self.join_url = None;
        }
        for (key, value) in input.extra {
            if !key.starts_with("@odata") && !READ_ONLY.contains(&key.as_str()) {
                self.extra.insert(key, value);
            }
        }
        Ok(())
    }

    /// A new `changeKey` and `lastModifiedDateTime`, after any change.
    pub fn touch(&mut self) {
        self.change_key = new_change_key();
        self.last_modified = Utc::now();
    }

    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.change_key)
    }

    pub fn web_link(&self) -> String {
        let id: String = form_urlencoded::byte_serialize(self.id.as_bytes()).collect();
        format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item")
    }

    pub fn as_busy_item(&self) -> BusyItem {
        BusyItem {
            start: self.start,
            end: self.end,
            status: self.show_as,
            subject: self.subject.clone(),
            location: self.location["displayName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            is_private: self.sensitivity == "private",
            is_meeting: !self.attendees.is_empty(),
        }
    }

    pub fn to_json(&self, staff: &Staff) -> Value {
        let mut value = Value::Object(self.extra.clone());
        let online = self.join_url.as_ref().map(|url| json!({"joinUrl": url}));
        let fields = json!({
            "@odata.context": format!(
                "https://graph.microsoft.com/v1.0/$metadata#users('{}')/events/$entity",
                staff.id
            ),
            "@odata.etag": self.etag(),
            "id": self.id,
            "createdDateTime": time::format_instant(self.created),
            "lastModifiedDateTime": time::format_instant(self.last_modified),
            "changeKey": self.change_key,
            "iCalUId": self.ical_uid,
            "webLink": self.web_link(),
            "subject": self.subject,
            "body": self.body,
            "start": time::zoned(self.start),
            "end": time::zoned(self.end),
            "location": self.location,
            "attendees": self.attendees,
            "organizer": staff.organizer(),
            "isOrganizer": true,
            "isCancelled": self.is_cancelled,
            "isOnlineMeeting": self.is_online_meeting,
            "onlineMeetingProvider": self.online_meeting_provider,
            "onlineMeeting": online,
            "showAs": self.show_as,
            "sensitivity": self.sensitivity,
            "type": "singleInstance",
            "responseRequested": true,
            "transactionId": self.transaction_id,
        });
        if let (Value::Object(target), Value::Object(fields)) = (&mut value, fields) {
            target.extend(fields);
        }
        value
    }
}

/// Attendees get `status: {response: "none", time: "0001-01-01T00:00:00Z"}` as in Graph.
fn with_response_status(mut attendee: Value) -> Value {
    if let Value::Object(map) = &mut attendee {
        map.entry("type").or_insert_with(|| json!("required"));
        map.entry("status")
            .or_insert_with(|| json!({"response": "none", "time": "0001-01-01T00:00:00Z"}));
    }
    attendee
}

/// A Teams meeting join URL shaped like the real ones.
fn join_url(tenant_id: &str, user_id: &str) -> String {
    let thread: String = URL_SAFE
        .encode(random_bytes::<24>())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (tenant_id, user_id) = (enc(tenant_id), enc(user_id));
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0?context=\
         %7b%22Tid%22%3a%22{tenant_id}%22%2c%22Oid%22%3a%22{user_id}%22%7d"
    )
}
