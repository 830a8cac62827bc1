//! What this instance last saw of each projected document: its update time and projected version,
//! as returned by its own `Commit`s. It saves the `BatchGetDocuments` before each write.
//!
//! It is only ever a guess, never trusted for correctness: a write built from it still carries
//! the update time as its precondition, so if anyone wrote the document since (another instance
//! after a rebalance, an app, a console), Firestore refuses the write and the caller reads the
//! documents again under its lock (see `handler::project`). A cached version can only be lower
//! than the document's (projection writes are monotonic), so skipping a write because the cache
//! already holds that version is safe too.

use std::{collections::HashMap, sync::Mutex};

use crate::firestore::Seen;

/// Documents remembered at most; past it the cache starts again empty (a cold cache costs one
/// read per document, nothing else).
const CAPACITY: usize = 200_000;

#[derive(Default)]
pub struct SeenCache {
    entries: Mutex<HashMap<String, Seen>>,
}

impl SeenCache {
    /// The cached state of each of `ids` that is known.
    pub fn get(&self, ids: &[&str]) -> HashMap<String, Seen> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter_map(|id| entries.get(*id).map(|s| (id.to_string(), s.clone()))).collect()
    }

    /// Remembers what a successful `Commit` (or a read) showed.
    pub fn put(&self, seen: impl IntoIterator<Item = (String, Seen)>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (id, s) in seen {
            if entries.len() >= CAPACITY && !entries.contains_key(&id) {
                entries.clear();
            }
            entries.insert(id, s);
        }
    }

    /// Forgets `ids` (after a refused precondition: someone else wrote them).
    pub fn forget(&self, ids: &[&str]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            entries.remove(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firestore::Timestamp;

    #[test]
    fn remembers_forgets_and_stays_bounded() {
        let cache = SeenCache::default();
        let seen = Seen { update_time: Some(Timestamp { seconds: 1, nanos: 2 }), version: Some(3) };
        cache.put([("a".to_string(), seen.clone())]);
        assert_eq!(cache.get(&["a", "b"]), HashMap::from([("a".to_string(), seen.clone())]));
        cache.forget(&["a"]);
        assert!(cache.get(&["a"]).is_empty());
        cache.put((0..CAPACITY + 10).map(|i| (i.to_string(), seen.clone())));
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
