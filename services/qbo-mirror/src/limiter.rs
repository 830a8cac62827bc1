//! QBO's request limit per realm (500 a minute), kept with room to spare: each realm has its own
//! sliding window, so a busy realm waits for itself and never for the others.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct RealmLimiter {
    per_minute: usize,
    sent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl RealmLimiter {
    pub fn new(per_minute: usize) -> Self {
        Self { per_minute: per_minute.max(1), sent: Arc::default() }
    }

    /// Waits until `realm` may send one more request, and counts it.
    pub async fn acquire(&self, realm: &str) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().expect("limiter lock");
                let window = sent.entry(realm.to_string()).or_default();
                let now = Instant::now();
                while window.front().is_some_and(|t| now - *t >= WINDOW) {
                    window.pop_front();
                }
                if window.len() < self.per_minute {
                    window.push_back(now);
                    return;
                }
                WINDOW - (now - window[0])
            };
            metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "rate_limit_waits_total")).increment(1);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_realm_waits_for_its_own_window_only() {
        let limiter = RealmLimiter::new(2);
        limiter.acquire("a").await;
        limiter.acquire("a").await;
        let b = tokio::time::timeout(Duration::from_millis(200), limiter.acquire("b")).await;
        assert!(b.is_ok(), "b does not wait for a");
        let a = tokio::time::timeout(Duration::from_millis(200), limiter.acquire("a")).await;
        assert!(a.is_err(), "a's third request waits for its window");
    }
}
