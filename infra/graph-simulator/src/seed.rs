//! `/control/seed`: staff mailboxes with their working hours and the busy items already in their
//! calendars.
//!
//! ```json
//! {"staff": [{"id": "ann", "displayName": "Ann Lee", "mail": "ann@contoso.com",
//!   "workingHours": {"daysOfWeek": ["monday"], "startTime": "09:00", "endTime": "17:00",
//!                    "timeZone": "Pacific Standard Time"},
//!   "busy": [{"start": "2026-06-01T10:00:00Z", "end": "2026-06-01T11:00:00Z",
//!             "status": "busy", "subject": "1:1"}]}]}
//! ```

use serde::Deserialize;

use crate::{
    model::{BusyItem, FreeBusy, Staff, WorkingHours},
    time::{TimeInput, parse_time_of_day},
};

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSpec {
    pub staff: Vec<StaffSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaffSpec {
    pub id: String,
    pub display_name: Option<String>,
    /// Default: the id when it is an address, else `{id}@simulator.onmicrosoft.com`.
    pub mail: Option<String>,
    pub working_hours: Option<WorkingHoursSpec>,
    #[serde(default)]
    pub busy: Vec<BusySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkingHoursSpec {
    pub days_of_week: Option<Vec<String>>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub time_zone: Option<ZoneSpec>,
}

/// `"UTC"` or `{"name": "UTC"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ZoneSpec {
    Name(String),
    Object { name: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BusySpec {
    pub start: TimeInput,
    pub end: TimeInput,
    /// Default `busy`.
    pub status: Option<FreeBusy>,
    pub subject: Option<String>,
    pub location: Option<String>,
    #[serde(default)]
    pub is_private: bool,
    /// Default true.
    pub is_meeting: Option<bool>,
}

impl BusySpec {
    pub fn build(&self) -> Result<BusyItem, String> {
        let start = self.start.parse().map_err(|e| e.message)?;
        let end = self.end.parse().map_err(|e| e.message)?;
        if end <= start {
            return Err("a busy item must end after it starts".into());
        }
        Ok(BusyItem {
            start,
            end,
            status: self.status.unwrap_or(FreeBusy::Busy),
            subject: self.subject.clone().unwrap_or_default(),
            location: self.location.clone().unwrap_or_default(),
            is_private: self.is_private,
            is_meeting: self.is_meeting.unwrap_or(true),
        })
    }
}

fn working_hours(spec: &WorkingHoursSpec) -> Result<WorkingHours, String> {
    let mut hours = WorkingHours::default();
    if let Some(days) = &spec.days_of_week {
        hours.days_of_week = days
            .iter()
            .map(|d| {
                let day = d.to_ascii_lowercase();
                DAYS.contains(&day.as_str())
                    .then_some(day)
                    .ok_or_else(|| format!("unknown day {d:?}"))
            })
            .collect::<Result<_, _>>()?;
    }
    let time = |t: &Option<String>, default| match t {
        None => Ok(default),
        Some(t) => parse_time_of_day(t).ok_or_else(|| format!("invalid time of day {t:?}")),
    };
    hours.start_time = time(&spec.start_time, hours.start_time)?;
    hours.end_time = time(&spec.end_time, hours.end_time)?;
    if let Some(zone) = &spec.time_zone {
        hours.time_zone = match zone {
            ZoneSpec::Name(name) | ZoneSpec::Object { name } => name.clone(),
        };
    }
    Ok(hours)
}

impl StaffSpec {
    pub fn build(&self) -> Result<Staff, String> {
        let id = self.id.trim();
        if id.is_empty() || id.contains('/') {
            return Err(format!(
                "staff id {:?} must be non-empty, without '/'",
                self.id
            ));
        }
        let mail = self.mail.clone().unwrap_or_else(|| {
            if id.contains('@') {
                id.to_owned()
            } else {
                format!("{id}@simulator.onmicrosoft.com")
            }
        });
        let name = self.display_name.clone().unwrap_or_else(|| id.to_owned());
        let mut staff = Staff::new(id.to_owned(), name, mail);
        if let Some(spec) = &self.working_hours {
            staff.working_hours = working_hours(spec).map_err(|e| format!("{id}: {e}"))?;
        }
        staff.busy = self
            .busy
            .iter()
            .map(BusySpec::build)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{id}: {e}"))?;
        Ok(staff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_staff_with_defaults_and_refuses_nonsense() {
        let spec: SeedSpec = serde_json::from_str(
            r#"{"staff": [{"id": "ann", "workingHours": {"startTime": "09:30",
                "timeZone": {"name": "Pacific Standard Time"}},
                "busy": [{"start": "2026-06-01T10:00:00Z",
                          "end": {"dateTime": "2026-06-01T11:00:00", "timeZone": "UTC"},
                          "status": "oof"}]}]}"#,
        )
        .unwrap();
        let staff = spec.staff[0].build().unwrap();
        assert_eq!(staff.mail, "ann@simulator.onmicrosoft.com");
        assert_eq!(staff.working_hours.time_zone, "Pacific Standard Time");
        assert_eq!(staff.busy[0].status, FreeBusy::Oof);
        let bad: StaffSpec = serde_json::from_str(
            r#"{"id": "bob", "busy": [{"start": "2026-06-01T11:00:00Z", "end": "2026-06-01T10:00:00Z"}]}"#,
        )
        .unwrap();
        assert!(bad.build().is_err());
    }
}
