//! The CloudEvent ids this gateway instance has published, so that an event Intuit delivers again
//! is not published again. Bounded: the last [`CAPACITY`] ids, none older than [`TTL`]. An id
//! forgotten (or seen by another instance) is published once more, which is harmless: qbo-mirror
//! coalesces a realm's webhooks into one sync, and the record's `event_id` is the same.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub const CAPACITY: usize = 100_000;
pub const TTL: Duration = Duration::from_secs(24 * 3600);

pub struct SeenEvents {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashSet<Arc<str>>,
    /// Oldest first.
    order: VecDeque<(Instant, Arc<str>)>,
}

impl Default for SeenEvents {
    fn default() -> Self {
        Self::new(CAPACITY, TTL)
    }
}

impl SeenEvents {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity, ttl, inner: Mutex::default() }
    }

    /// Whether `id` was remembered (and not forgotten since).
    pub fn contains(&self, id: &str) -> bool {
        self.contains_at(id, Instant::now())
    }

    /// Remembers `ids` as published.
    pub fn remember<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.remember_at(ids, Instant::now());
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("seen events lock").ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains_at(&self, id: &str, now: Instant) -> bool {
        let mut inner = self.inner.lock().expect("seen events lock");
        self.forget_old(&mut inner, now);
        inner.ids.contains(id)
    }

    fn remember_at<'a>(&self, ids: impl IntoIterator<Item = &'a str>, now: Instant) {
        let mut inner = self.inner.lock().expect("seen events lock");
        for id in ids {
            if inner.ids.contains(id) {
                continue;
            }
            let id: Arc<str> = Arc::from(id);
            inner.ids.insert(id.clone());
            inner.order.push_back((now, id));
        }
        self.forget_old(&mut inner, now);
    }

    fn forget_old(&self, inner: &mut Inner, now: Instant) {
        while let Some((at, _)) = inner.order.front() {
            if inner.order.len() <= self.capacity && now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, id)) = inner.order.pop_front() {
                inner.ids.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_until_they_are_too_many_or_too_old() {
        let seen = SeenEvents::new(3, Duration::from_secs(60));
        let start = Instant::now();
        seen.remember_at(["a", "b", "a"], start);
        assert!(seen.contains_at("a", start) && seen.contains_at("b", start));
        assert!(!seen.contains_at("c", start));
        assert_eq!(seen.len(), 2);

        seen.remember_at(["c", "d"], start + Duration::from_secs(1));
        assert!(!seen.contains_at("a", start), "the oldest went past the capacity");
        assert!(seen.contains_at("b", start) && seen.contains_at("d", start));
        assert_eq!(seen.len(), 3);

        assert!(!seen.contains_at("b", start + Duration::from_secs(60)), "too old");
        assert!(seen.contains_at("c", start + Duration::from_secs(60)));
        assert!(!seen.contains_at("d", start + Duration::from_secs(61)));
        assert!(seen.is_empty());
    }
}
