//! Free slots, computed by Brain (Graph's `findMeetingTimes` needs delegated permissions): the
//! working hours of each day minus the busy intervals, as maximal free windows whose ends lie on
//! the slot grid. A slot of any length that is a multiple of the grid starts on the grid inside
//! one window. The grid is aligned to midnight UTC (the slot length divides a day).

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    /// Whether the two share any time (touching ends do not).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The hours staff can be booked in, the same every working day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: Vec<Weekday>,
}

impl WorkingHours {
    /// `hours` as `09:00-17:00`, `days` as `Mon-Fri` or `Mon,Wed,Fri`.
    pub fn parse(hours: &str, days: &str) -> Result<Self, String> {
        let (from, to) = hours.split_once('-').ok_or_else(|| format!("{hours:?} is not HH:MM-HH:MM"))?;
        let time = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| format!("{s:?} is not HH:MM"));
        let (start, end) = (time(from)?, time(to)?);
        if end <= start {
            return Err(format!("{hours:?}: the end must be after the start"));
        }
        let day = |s: &str| s.trim().parse::<Weekday>().map_err(|_| format!("{s:?} is not a weekday (Mon, Tue, ...)"));
        let mut list = Vec::new();
        for part in days.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (mut d, last) = (day(a)?, day(b)?);
                    list.push(d);
                    while d != last {
                        d = d.succ();
                        list.push(d);
                    }
                }
                None => list.push(day(part)?),
            }
        }
        if list.is_empty() {
            return Err(format!("{days:?} names no weekday"));
        }
        list.sort_by_key(Weekday::num_days_from_monday);
        list.dedup();
        Ok(Self { start, end, days: list })
    }

    /// The working periods that overlap `[from, to)`, clipped to it.
    pub fn periods(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        let mut out = Vec::new();
        let mut day = from.date_naive();
        while let Some(start) = Utc.from_local_datetime(&day.and_time(self.start)).single() {
            if start >= to {
                break;
            }
            let end = Utc.from_local_datetime(&day.and_time(self.end)).single().unwrap_or(start);
            if self.days.contains(&day.weekday()) && end > from {
                out.push(Interval::new(start.max(from), end.min(to)));
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        out
    }
}

/// The first grid point at or after `t`.
pub fn ceil_to_grid(t: DateTime<Utc>, slot: Duration) -> DateTime<Utc> {
    let step = slot.num_seconds().max(1);
    let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
    let aligned = secs.div_euclid(step) * step;
    let aligned = if aligned < secs { aligned + step } else { aligned };
    Utc.timestamp_opt(aligned, 0).single().unwrap_or(t)
}

/// The last grid point at or before `t`.
pub fn floor_to_grid(t: DateTime<Utc>, slot: Duration) -> DateTime<Utc> {
    let step = slot.num_seconds().max(1);
    Utc.timestamp_opt(t.timestamp().div_euclid(step) * step, 0).single().unwrap_or(t)
}

/// Whether `t` lies on the grid.
pub fn on_grid(t: DateTime<Utc>, slot: Duration) -> bool {
    t.timestamp_subsec_nanos() == 0 && t.timestamp().rem_euclid(slot.num_seconds().max(1)) == 0
}

/// The free windows of `[from, to)`: working periods minus `busy`, each shrunk to the grid;
/// windows shorter than one slot are dropped.
pub fn free_windows(hours: &WorkingHours, busy: &[Interval], from: DateTime<Utc>, to: DateTime<Utc>, slot: Duration) -> Vec<Interval> {
    let mut busy: Vec<Interval> = busy.iter().filter(|b| b.end > from && b.start < to).copied().collect();
    busy.sort_by_key(|b| b.start);
    let mut out = Vec::new();
    for period in hours.periods(from, to) {
        let mut cursor = period.start;
        for b in busy.iter().filter(|b| b.overlaps(&period)) {
            if b.start > cursor {
                push_window(&mut out, cursor, b.start, slot);
            }
            cursor = cursor.max(b.end);
        }
        if cursor < period.end {
            push_window(&mut out, cursor, period.end, slot);
        }
    }
    out
}

fn push_window(out: &mut Vec<Interval>, start: DateTime<Utc>, end: DateTime<Utc>, slot: Duration) {
    let (start, end) = (ceil_to_grid(start, slot), floor_to_grid(end, slot));
    if end - start >= slot {
        out.push(Interval::new(start, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn working_hours_parse_ranges_and_lists() {
        let h = WorkingHours::parse("09:00-17:00", "Mon-Fri").unwrap();
        assert_eq!(h.days, vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]);
        assert_eq!(WorkingHours::parse("08:30-12:00", "Sat,Mon").unwrap().days, vec![Weekday::Mon, Weekday::Sat]);
        assert_eq!(WorkingHours::parse("08:00-10:00", "Fri-Mon").unwrap().days.len(), 4, "wraps over the weekend");
        for (hours, days) in [("17:00-09:00", "Mon"), ("9-17", "Mon"), ("09:00-17:00", ""), ("09:00-17:00", "Funday")] {
            assert!(WorkingHours::parse(hours, days).is_err(), "{hours} {days}");
        }
    }

    #[test]
    fn free_windows_are_working_hours_minus_busy_on_the_grid() {
        let h = WorkingHours::parse("09:00-17:00", "Mon-Fri").unwrap();
        let slot = Duration::minutes(30);
        // 2026-06-05 is a Friday; the weekend has no working hours.
        let busy = [
            Interval::new(at("2026-06-05T10:10:00Z"), at("2026-06-05T11:00:00Z")),
            Interval::new(at("2026-06-05T10:30:00Z"), at("2026-06-05T12:20:00Z")),
            Interval::new(at("2026-06-08T08:00:00Z"), at("2026-06-08T09:30:00Z")),
        ];
        let windows = free_windows(&h, &busy, at("2026-06-05T09:05:00Z"), at("2026-06-08T12:00:00Z"), slot);
        assert_eq!(
            windows,
            vec![
                Interval::new(at("2026-06-05T09:30:00Z"), at("2026-06-05T10:00:00Z")),
                Interval::new(at("2026-06-05T12:30:00Z"), at("2026-06-05T17:00:00Z")),
                Interval::new(at("2026-06-08T09:30:00Z"), at("2026-06-08T12:00:00Z")),
            ]
        );
        assert!(windows.iter().all(|w| !busy.iter().any(|b| b.overlaps(w))));
    }

    #[test]
    fn the_grid_is_aligned_to_midnight_utc() {
        let slot = Duration::minutes(30);
        assert_eq!(ceil_to_grid(at("2026-06-05T09:00:00Z"), slot), at("2026-06-05T09:00:00Z"));
        assert_eq!(ceil_to_grid(at("2026-06-05T09:00:00.5Z"), slot), at("2026-06-05T09:30:00Z"));
        assert_eq!(floor_to_grid(at("2026-06-05T09:29:59Z"), slot), at("2026-06-05T09:00:00Z"));
        assert!(on_grid(at("2026-06-05T23:30:00Z"), slot) && !on_grid(at("2026-06-05T23:15:00Z"), slot));
        assert!(!Interval::new(at("2026-06-05T09:00:00Z"), at("2026-06-05T10:00:00Z")).overlaps(&Interval::new(at("2026-06-05T10:00:00Z"), at("2026-06-05T11:00:00Z"))));
    }
}
