//! The advisor's views, answered once for everyone who asks at the same time: concurrent
//! requests for the same view of the same portfolio share one query, and its answer is reused for
//! `API_GATEWAY__ADVISOR_VIEWS_CACHE_MS` (1 s by default; 0: only requests arriving while a query
//! runs share it). A dashboard polled by many screens then costs the read model one query per
//! view and portfolio per interval, and the answer is never older than that interval (plus the
//! query's own time). Failures are shared with the requests already waiting, never kept.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use brain_runtime::telemetry::metric_name;
use tokio::sync::OnceCell;

use crate::{SERVICE, error::ApiError};

/// Most portfolios' views kept; past it, the stale ones go, then all.
const MAX_ENTRIES: usize = 10_000;

type Answer = (Instant, Result<Bytes, ApiError>);

pub struct ViewCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
}

impl ViewCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    /// The answer for `key`: a fresh one already there, the one being loaded, or `load`'s.
    /// `view` labels the metric.
    pub async fn get_or_load<F, Fut>(&self, view: &'static str, key: String, load: F) -> Result<Bytes, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, ApiError>>,
    {
        let slot = self.slot(key);
        let mut loaded = false;
        let (_, answer) = slot
            .get_or_init(|| async {
                loaded = true;
                let started = Instant::now();
                (started, load().await)
            })
            .await;
        let source = if loaded { "query" } else { "shared" };
        metrics::counter!(metric_name(SERVICE, "advisor_views_total"), "view" => view, "source" => source).increment(1);
        answer.clone()
    }

    /// The slot to wait on: the key's current one while it loads or is fresh, else a new one.
    fn slot(&self, key: String) -> Arc<OnceCell<Answer>> {
        let now = Instant::now();
        let usable = |cell: &OnceCell<Answer>| cell.get().is_none_or(|(at, answer)| answer.is_ok() && now.saturating_duration_since(*at) < self.ttl);
        let mut entries = self.entries.lock().expect("view cache lock");
        if let Some(slot) = entries.get(&key).filter(|s| usable(s)) {
            return slot.clone();
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, s| usable(s));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let slot = Arc::new(OnceCell::new());
        entries.insert(key, slot.clone());
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;

    use super::*;

    async fn load(cache: &ViewCache, key: &str, calls: &AtomicUsize, answer: Result<&'static str, ()>) -> Result<Bytes, ApiError> {
        cache
            .get_or_load("test", key.to_string(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                answer.map(|a| Bytes::from_static(a.as_bytes())).map_err(|()| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "down"))
            })
            .await
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_query_and_fresh_answers_are_reused() {
        let cache = ViewCache::new(Duration::from_millis(300));
        let calls = AtomicUsize::new(0);
        let answers = futures_join(&cache, "a", &calls, Ok("1")).await;
        assert!(answers.iter().all(|a| a.as_deref() == Ok(&b"1"[..])));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "ten at once: one query");
        load(&cache, "a", &calls, Ok("2")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "fresh: reused");
        load(&cache, "b", &calls, Ok("3")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "another key");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(load(&cache, "a", &calls, Ok("4")).await.unwrap(), "4", "stale: loaded again");
    }

    #[tokio::test]
    async fn failures_are_shared_but_not_kept_and_no_ttl_shares_only_in_flight_queries() {
        let cache = ViewCache::new(Duration::ZERO);
        let calls = AtomicUsize::new(0);
        let answers = futures_join(&cache, "a", &calls, Err(())).await;
        assert!(answers.iter().all(|a| a.is_err()));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the waiting requests got the failure");
        assert_eq!(load(&cache, "a", &calls, Ok("1")).await.unwrap(), "1", "not kept");
        load(&cache, "a", &calls, Ok("2")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "no TTL: every request after the query loads");
    }

    /// Ten requests for `key` at once.
    async fn futures_join(cache: &ViewCache, key: &str, calls: &AtomicUsize, answer: Result<&'static str, ()>) -> Vec<Result<Bytes, ()>> {
        futures::future::join_all((0..10).map(|_| async { load(cache, key, calls, answer).await.map_err(|_| ()) })).await
    }
}
