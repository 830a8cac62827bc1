//! Exchange's mailbox concurrency limit: at most `max_concurrent` requests per mailbox in flight
//! (Graph: 4); the next is refused with 429 `ApplicationThrottled` until one finishes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::state::lock;

type InFlight = Arc<Mutex<HashMap<String, u32>>>;

#[derive(Debug)]
pub struct Limiter {
    max_concurrent: u32,
    in_flight: InFlight,
}

/// Holds one of the mailbox's slots until dropped.
#[derive(Debug)]
pub struct Permit {
    mailbox: String,
    in_flight: InFlight,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = lock(&self.in_flight);
        if let Some(n) = map.get_mut(&self.mailbox) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.mailbox);
            }
        }
    }
}

impl Limiter {
    pub fn new(max_concurrent: u32) -> Self {
        Self {
            max_concurrent,
            in_flight: Arc::default(),
        }
    }

    /// A slot for `mailbox` (a canonical user id), or `None` when all are taken.
    pub fn admit(&self, mailbox: &str) -> Option<Permit> {
        let mut map = lock(&self.in_flight);
        let n = map.entry(mailbox.to_owned()).or_default();
        if *n >= self.max_concurrent {
            return None;
        }
        *n += 1;
        Some(Permit {
            mailbox: mailbox.to_owned(),
            in_flight: self.in_flight.clone(),
        })
    }

    pub fn in_flight(&self, mailbox: &str) -> u32 {
        lock(&self.in_flight).get(mailbox).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_mailbox_and_come_back() {
        let limiter = Limiter::new(2);
        let a = limiter.admit("a").unwrap();
        let _b = limiter.admit("a").unwrap();
        assert!(limiter.admit("a").is_none());
        assert!(limiter.admit("b").is_some());
        drop(a);
        assert_eq!(limiter.in_flight("a"), 1);
        assert!(limiter.admit("a").is_some());
    }
}
