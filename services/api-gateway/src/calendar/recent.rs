//! Meetings this gateway instance queued moments ago that graph-calendar has not recorded yet:
//! `GET /api/v1/meetings/{id}` answers them `pending` (with `recorded: false`) instead of 404, and
//! a cancel right after the booking finds the meeting. Bounded in size and time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::meetings::Meeting;

/// How long a queued meeting is remembered while graph-calendar catches up.
const REMEMBER_FOR: Duration = Duration::from_secs(600);
/// At most this many are remembered; the oldest go first.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Clone, Default)]
pub struct RecentMeetings(Arc<Mutex<HashMap<Uuid, (Instant, Meeting)>>>);

impl RecentMeetings {
    pub fn insert(&self, meeting: Meeting) {
        let mut map = self.0.lock().expect("recent meetings lock");
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (at, _)| at.elapsed() < REMEMBER_FOR);
            if map.len() >= MAX_REMEMBERED
                && let Some(oldest) = map.iter().min_by_key(|(_, (at, _))| *at).map(|(id, _)| *id)
            {
                map.remove(&oldest);
            }
        }
        map.insert(meeting.meeting_id, (Instant::now(), meeting));
    }

    /// The meeting, if this instance queued it recently within `tenant` (`None`: any tenant).
    pub fn get(&self, id: Uuid, tenant: Option<&str>) -> Option<Meeting> {
        let map = self.0.lock().expect("recent meetings lock");
        map.get(&id).filter(|(at, m)| at.elapsed() < REMEMBER_FOR && tenant.is_none_or(|t| t == m.tenant_id)).map(|(_, m)| m.clone())
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("recent meetings lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
