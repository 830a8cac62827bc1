//! QBO's per-realm limits: `rate_limit` requests in any sliding `rate_window` (500 a minute) and
//! `max_concurrent_per_realm` in flight (10). Either answers 429 `ThrottleExceeded`. Refused
//! requests do not count against the window. Real time, not the simulated clock.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

#[derive(Debug, Default)]
struct RealmLimit {
    recent: VecDeque<Instant>,
    in_flight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Rate,
    Concurrency,
}

#[derive(Debug)]
pub struct Limiter {
    rate_limit: usize,
    window: Duration,
    max_concurrent: u32,
    realms: Arc<Mutex<HashMap<String, RealmLimit>>>,
}

/// Holds one of the realm's concurrent slots until dropped.
#[derive(Debug)]
pub struct Permit {
    realm_id: String,
    realms: Arc<Mutex<HashMap<String, RealmLimit>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(limit) = lock(&self.realms).get_mut(&self.realm_id) {
            limit.in_flight = limit.in_flight.saturating_sub(1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Limiter {
    pub fn new(rate_limit: u32, window: Duration, max_concurrent: u32) -> Self {
        Self {
            rate_limit: rate_limit as usize,
            window,
            max_concurrent,
            realms: Arc::default(),
        }
    }

    pub fn admit(&self, realm_id: &str) -> Result<Permit, Refusal> {
        let now = Instant::now();
        let mut realms = lock(&self.realms);
        let limit = realms.entry(realm_id.to_owned()).or_default();
        while limit
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            limit.recent.pop_front();
        }
        if limit.in_flight >= self.max_concurrent {
            return Err(Refusal::Concurrency);
        }
        if limit.recent.len() >= self.rate_limit {
            return Err(Refusal::Rate);
        }
        limit.recent.push_back(now);
        limit.in_flight += 1;
        Ok(Permit {
            realm_id: realm_id.to_owned(),
            realms: self.realms.clone(),
        })
    }

    pub fn reset(&self) {
        lock(&self.realms).retain(|_, l| {
            l.recent.clear();
            l.in_flight > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_concurrency_are_per_realm() {
        let limiter = Limiter::new(3, Duration::from_secs(60), 2);
        let a = limiter.admit("a").unwrap();
        let b = limiter.admit("a").unwrap();
        assert_eq!(limiter.admit("a").unwrap_err(), Refusal::Concurrency);
        assert!(limiter.admit("b").is_ok());
        drop((a, b));
        let _c = limiter.admit("a").unwrap();
        assert_eq!(limiter.admit("a").unwrap_err(), Refusal::Rate);
    }

    #[test]
    fn the_window_slides() {
        let limiter = Limiter::new(1, Duration::from_millis(30), 10);
        drop(limiter.admit("a").unwrap());
        assert!(limiter.admit("a").is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(limiter.admit("a").is_ok());
    }
}
