//! The simulated clock: wall time scaled by `time_scale`, plus whatever `/control/clock/advance`
//! added. Entity timestamps, token lifetimes and the CDC look-back all read it; rate limits and
//! webhook timing use real time.
//!
//! QBO writes timestamps in the company's zone with a numeric offset
//! (`2015-12-23T12:55:50-08:00`); entity times are shown to the second, the response `time`
//! to the millisecond.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Instant,
};

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, SubsecRound, TimeDelta, TimeZone, Utc,
};

#[derive(Debug)]
pub struct SimClock {
    origin_real: Instant,
    origin_sim: DateTime<Utc>,
    scale: f64,
    /// Milliseconds added by `advance`.
    advanced_ms: AtomicI64,
    zone: FixedOffset,
}

impl SimClock {
    pub fn new(scale: f64, zone: FixedOffset) -> Self {
        Self {
            origin_real: Instant::now(),
            origin_sim: Utc::now(),
            scale,
            advanced_ms: AtomicI64::new(0),
            zone,
        }
    }

    /// The unscaled clock in Pacific daylight time, for bodies rendered without state.
    pub fn wall() -> Self {
        Self::new(1.0, FixedOffset::west_opt(7 * 3600).expect("valid offset"))
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin_real.elapsed().as_secs_f64() * self.scale;
        let elapsed = TimeDelta::milliseconds((elapsed * 1000.0) as i64);
        self.origin_sim
            + elapsed
            + TimeDelta::milliseconds(self.advanced_ms.load(Ordering::Relaxed))
    }

    /// Now, to the millisecond, as entity timestamps are kept. They are shown to the second,
    /// as QBO shows them, but compared at full precision, so a client that passes a response's
    /// `time` as the next `changedSince` misses nothing written in the same second.
    pub fn now_millis(&self) -> DateTime<Utc> {
        self.now().trunc_subsecs(3)
    }

    pub fn advance(&self, by: TimeDelta) {
        self.advanced_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }

    pub fn zone(&self) -> FixedOffset {
        self.zone
    }

    /// `2015-12-23T12:55:50-08:00`, as in `MetaData`.
    pub fn format(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    /// `2015-12-23T12:56:06.196-08:00`, as in a response's `time`.
    pub fn format_precise(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string()
    }

    /// `2015-10-05T14:42:19-0700`, as in legacy webhook notifications.
    pub fn format_legacy(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%dT%H:%M:%S%z")
            .to_string()
    }

    /// Parses what QBO accepts in `changedSince` and query literals: RFC 3339 with an offset or
    /// `Z`, a date-time without offset (the company's zone) or a date (its midnight there).
    pub fn parse(&self, text: &str) -> Option<DateTime<Utc>> {
        let text = text.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Some(at.with_timezone(&Utc));
        }
        if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z") {
            return Some(at.with_timezone(&Utc));
        }
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").ok())
            .or_else(|| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })?;
        self.zone
            .from_local_datetime(&local)
            .single()
            .map(|at| at.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let clock = SimClock::wall();
        let at = Utc.with_ymd_and_hms(2015, 12, 23, 20, 55, 50).unwrap();
        assert_eq!(clock.format(at), "2015-12-23T13:55:50-07:00");
        assert_eq!(clock.format_legacy(at), "2015-12-23T13:55:50-0700");
        assert_eq!(clock.parse(&clock.format(at)), Some(at));
        assert_eq!(clock.parse(&clock.format_legacy(at)), Some(at));
        assert_eq!(clock.parse("2015-12-23T20:55:50Z"), Some(at));
        assert_eq!(clock.parse("2015-12-23T13:55:50"), Some(at));
        assert_eq!(
            clock.parse("2015-12-23"),
            Some(Utc.with_ymd_and_hms(2015, 12, 23, 7, 0, 0).unwrap())
        );
        assert_eq!(clock.parse("yesterday"), None);
    }

    #[test]
    fn advance_moves_now() {
        let clock = SimClock::wall();
        let before = clock.now();
        clock.advance(TimeDelta::days(31));
        assert!(clock.now() - before >= TimeDelta::days(31));
    }
}
