//! One Firestore `Listen` stream per target, following the watch protocol:
//! - `DocumentChange` → the document's new state is pending; `DocumentDelete` / `DocumentRemove`
//!   → it is gone;
//! - `RESET` → forget what is pending: the target's whole result follows again;
//! - `CURRENT` after a full result (a `RESET`, or a start without a resume token) → every known
//!   document that did not come back is gone;
//! - `NO_CHANGE` for all targets with a read time: a consistent snapshot. The pending documents
//!   whose update time is newer than the checkpoint's become change events; once the broker has
//!   acknowledged them, the documents and the resume token are checkpointed.
//!
//! The emulator sends no resume tokens and no deletes, and answers every write anywhere with a
//! `RESET` and the whole result again: the update-time check against the (in-memory copy of the)
//! checkpoint makes that cheap, and absence after a `RESET` makes deletions visible.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use brain_events::topics;
use brain_runtime::{ops::{Check, FailureGuard}, producer::EventProducer, retry::Backoff, telemetry::metric_name};
use firestore::{
    FirestoreDb,
    gcloud_sdk::{
        google::firestore::v1::{
            Document, ListenRequest, StructuredQuery, Target, listen_request, listen_response::ResponseType, structured_query::CollectionSelector,
            target::{self, QueryTarget, query_target},
            target_change::TargetChangeType,
        },
        prost_types::Timestamp,
        tonic::{Request, Status},
    },
};
use futures::StreamExt;
use serde_json::Map;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    checkpoint::{Checkpoint, Known},
    events::{self, Seen},
    values,
};

const TARGET_ID: i32 = 1;

/// What one stream watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTarget {
    /// The collection id (`applications`, `tasks`, `messages`).
    pub collection: String,
    /// Every collection of that id at any depth (a collection-group query), or only the
    /// top-level one.
    pub all_descendants: bool,
}

impl WatchTarget {
    /// `applications` (top level) or `*/tasks` (a collection group).
    pub fn parse(spec: &str) -> Option<Self> {
        let (all_descendants, collection) = match spec.trim().strip_prefix("*/") {
            Some(rest) => (true, rest),
            None => (false, spec.trim()),
        };
        let valid = !collection.is_empty() && collection.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| Self { collection: collection.to_string(), all_descendants })
    }

    pub fn name(&self) -> String {
        if self.all_descendants { format!("*/{}", self.collection) } else { self.collection.clone() }
    }
}

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("the Listen stream failed: {0}")]
    Listen(#[from] Status),
    #[error("the Listen stream ended")]
    Ended,
    #[error("Firestore removed the target: {0}")]
    Removed(String),
    #[error("the checkpoint could not be read or written")]
    Checkpoint(#[source] sqlx::Error),
    #[error("the change events could not be published")]
    Publish(#[source] brain_runtime::producer::ProduceError),
}

pub struct Watcher {
    pub db: FirestoreDb,
    pub target: WatchTarget,
    pub checkpoint: Checkpoint,
    pub producer: EventProducer,
    pub default_tenant: String,
    /// `firestore` readiness: failing until this stream has published its first snapshot, and
    /// while it is down.
    pub health: Check,
    /// Held from start-up until the first snapshot is published.
    pub starting: Option<FailureGuard>,
    /// Documents as last emitted (the checkpoint, in memory).
    pub known: HashMap<String, Known>,
}

/// One stream's state between two consistent snapshots.
#[derive(Default)]
struct Snapshot {
    pending: HashMap<String, Option<Document>>,
    /// Whether the documents that follow are the target's whole result.
    full: bool,
    returned: HashSet<String>,
    resume_token: Vec<u8>,
}

impl Watcher {
    /// Listens until `shutdown`, reconnecting with backoff after any failure.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.target.name();
        let backoff = Backoff { max: Duration::from_secs(10), ..Backoff::default() };
        let mut attempt = 0;
        // The series exists from the start (at 0), so the alert's increase() sees the first restart.
        metrics::counter!(metric_name(SERVICE, "listen_restarts_total"), "target" => name.clone()).increment(0);
        loop {
            let result = self.listen(&shutdown).await;
            if shutdown.is_cancelled() {
                return;
            }
            attempt += 1;
            let _down = self.health.fail("firestore_listen");
            metrics::counter!(metric_name(SERVICE, "listen_restarts_total"), "target" => name.clone()).increment(1);
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(target_name = %name, attempt, %error, "listening again");
            if !brain_runtime::retry::sleep_or_cancel(backoff.delay(attempt, None), &shutdown).await {
                return;
            }
        }
    }

    async fn listen(&mut self, shutdown: &CancellationToken) -> Result<(), WatchError> {
        let name = self.target.name();
        self.known = self.checkpoint.load(&name).await.map_err(WatchError::Checkpoint)?;
        let resume = self.checkpoint.resume_token(&name).await.map_err(WatchError::Checkpoint)?;
        let mut snapshot = Snapshot { full: resume.is_none(), ..Snapshot::default() };
        let request = ListenRequest {
            database: self.db.get_database_path().clone(),
            target_change: Some(listen_request::TargetChange::AddTarget(Target {
                target_id: TARGET_ID,
                target_type: Some(target::TargetType::Query(QueryTarget {
                    parent: self.db.get_documents_path().clone(),
                    query_type: Some(query_target::QueryType::StructuredQuery(StructuredQuery {
                        from: vec![CollectionSelector { collection_id: self.target.collection.clone(), all_descendants: self.target.all_descendants }],
                        ..Default::default()
                    })),
                })),
                resume_type: resume.map(target::ResumeType::ResumeToken),
                ..Default::default()
            })),
            ..Default::default()
        };
        // The request stream stays open: closing it would end the Listen call.
        let requests = futures::stream::iter([request]).chain(futures::stream::pending());
        let mut responses = self.db.client().get().listen(Request::new(requests)).await?.into_inner();
        tracing::info!(target_name = %name, known = self.known.len(), "listening");
        // Not ready until the first consistent snapshot is published.
        let mut down = Some(self.starting.take().unwrap_or_else(|| self.health.fail("firestore_listen")));
        loop {
            let response = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = responses.next() => next.ok_or(WatchError::Ended)??,
            };
            match response.response_type {
                Some(ResponseType::DocumentChange(change)) => {
                    if let Some(document) = change.document {
                        let path = self.relative(&document.name);
                        snapshot.returned.insert(path.clone());
                        let gone = change.target_ids.is_empty() && change.removed_target_ids.contains(&TARGET_ID);
                        snapshot.pending.insert(path, (!gone).then_some(document));
                    }
                }
                Some(ResponseType::DocumentDelete(gone)) => {
                    snapshot.pending.insert(self.relative(&gone.document), None);
                }
                Some(ResponseType::DocumentRemove(gone)) => {
                    snapshot.pending.insert(self.relative(&gone.document), None);
                }
                Some(ResponseType::TargetChange(change)) => match TargetChangeType::try_from(change.target_change_type) {
                    Ok(TargetChangeType::Reset) => {
                        snapshot.pending.clear();
                        snapshot.returned.clear();
                        snapshot.full = true;
                    }
                    Ok(TargetChangeType::Current) => {
                        if snapshot.full {
                            for (path, known) in &self.known {
                                if !known.deleted && !snapshot.returned.contains(path) {
                                    snapshot.pending.entry(path.clone()).or_insert(None);
                                }
                            }
                        }
                        snapshot.full = false;
                        snapshot.returned.clear();
                        if !change.resume_token.is_empty() {
                            snapshot.resume_token = change.resume_token;
                        }
                    }
                    Ok(TargetChangeType::NoChange) if change.target_ids.is_empty() => {
                        if !change.resume_token.is_empty() {
                            snapshot.resume_token = change.resume_token;
                        }
                        let read_time_ns = change.read_time.as_ref().map_or(0, nanos);
                        self.emit(&mut snapshot, read_time_ns).await?;
                        drop(down.take());
                    }
                    Ok(TargetChangeType::Remove) => {
                        return Err(WatchError::Removed(change.cause.map(|c| c.message).unwrap_or_default()));
                    }
                    _ => {}
                },
                // An existence filter that does not match means documents were missed: listen
                // again from scratch (the checkpoint deduplicates what comes again).
                Some(ResponseType::Filter(filter)) => {
                    let live = self.known.values().filter(|k| !k.deleted).count() as i32;
                    if filter.count != live {
                        self.checkpoint.forget_resume_token(&name).await.map_err(WatchError::Checkpoint)?;
                        return Err(WatchError::Removed(format!("existence filter: {} documents, {live} known", filter.count)));
                    }
                }
                None => {}
            }
        }
    }

    /// Publishes the pending documents that changed since they were last emitted, then
    /// checkpoints them.
    async fn emit(&mut self, snapshot: &mut Snapshot, read_time_ns: i64) -> Result<(), WatchError> {
        let name = self.target.name();
        let mut events = Vec::new();
        let mut messages = Vec::new();
        let mut updates = Vec::new();
        let mut unchanged = 0u64;
        for (path, document) in snapshot.pending.drain() {
            let previous = self.known.get(&path);
            let (update_time_ns, fields) = match &document {
                Some(doc) => (doc.update_time.as_ref().map_or(read_time_ns, nanos), Some(values::fields_to_json(&doc.fields))),
                None => (read_time_ns.max(previous.map_or(0, |k| k.update_time_ns + 1)), None),
            };
            let already = previous.is_some_and(|k| match &fields {
                Some(_) => !k.deleted && k.update_time_ns >= update_time_ns,
                None => k.deleted,
            });
            if already || (fields.is_none() && previous.is_none()) {
                unchanged += 1;
                continue;
            }
            let seen = Seen { path: &path, collection: &self.target.collection, update_time_ns, fields: fields.as_ref() };
            if let Some(event) = events::change(&seen, previous, &self.default_tenant) {
                if let Some(message) = crate::messages::message(&event, fields.as_ref()) {
                    messages.push((message.application_id.clone(), message));
                }
                events.push((event.application_id.clone(), event));
            }
            updates.push((path, Known { update_time_ns, deleted: fields.is_none(), fields: fields.unwrap_or_else(Map::new) }));
        }
        let counter = |kind: &'static str| metrics::counter!(metric_name(SERVICE, "documents_total"), "target" => name.clone(), "kind" => kind);
        counter("unchanged").increment(unchanged);
        if updates.is_empty() && snapshot.resume_token.is_empty() {
            return Ok(());
        }
        self.producer.send_all(topics::DOCUMENT_CHANGED, &events).await.map_err(WatchError::Publish)?;
        self.producer.send_all(topics::MESSAGE_CHANGED, &messages).await.map_err(WatchError::Publish)?;
        let resume = (!snapshot.resume_token.is_empty()).then_some((snapshot.resume_token.as_slice(), read_time_ns));
        self.checkpoint.store(&name, &updates, resume).await.map_err(WatchError::Checkpoint)?;
        counter("emitted").increment(events.len() as u64);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let lag = metrics::histogram!(metric_name(SERVICE, "change_to_event_seconds"), "target" => name.clone());
        for (_, event) in &events {
            if !event.deleted {
                lag.record((now_ms - event.occurred_at).max(0) as f64 / 1000.0);
            }
        }
        if !events.is_empty() {
            tracing::debug!(target_name = %name, events = events.len(), "changes published");
        }
        self.known.extend(updates);
        Ok(())
    }

    /// `projects/p/databases/d/documents/applications/x` → `applications/x`.
    fn relative(&self, name: &str) -> String {
        let root = self.db.get_documents_path();
        name.strip_prefix(root.as_str()).map_or(name, |rest| rest.trim_start_matches('/')).to_string()
    }
}

fn nanos(t: &Timestamp) -> i64 {
    t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_top_level_collections_or_collection_groups() {
        assert_eq!(WatchTarget::parse("applications"), Some(WatchTarget { collection: "applications".into(), all_descendants: false }));
        assert_eq!(WatchTarget::parse(" */tasks "), Some(WatchTarget { collection: "tasks".into(), all_descendants: true }));
        assert_eq!(WatchTarget::parse("*/tasks").unwrap().name(), "*/tasks");
        assert!(WatchTarget::parse("a/b").is_none());
        assert!(WatchTarget::parse("").is_none());
    }
}
