//! All Firestore access of projection-writer, through the two RPCs that behave the same on
//! Firestore and on the emulator: `Commit` (writes) and `BatchGetDocuments` (reads by id).
//!
//! `applications/{id}` is shared with the apps, so Brain writes only its own fields, with an
//! update mask; everything else in the document belongs to the apps and is left untouched.
//! Integers stay within ±2^53 and ids are strings.

use std::{collections::HashMap, time::Duration};

use firestore::{
    FirestoreDb, FirestoreDbOptions,
    gcloud_sdk::{
        google::firestore::v1::{
            BatchGetDocumentsRequest, CommitRequest, Document, DocumentMask, Precondition, Value, Write,
            batch_get_documents_response, precondition::ConditionType, value::ValueType, write::Operation,
        },
        tonic::{Code, Request},
    },
};
use brain_runtime::{breaker::Breaker, flags::Gate};
use futures::StreamExt;

pub use firestore::gcloud_sdk::{google::firestore::v1::{Value as FirestoreValue, Write as FirestoreWrite}, prost_types::Timestamp, tonic::Status};

#[derive(Clone)]
pub struct Projections {
    db: FirestoreDb,
    /// Fed by every call when set: Firestore unreachable opens it, any answer closes it.
    breaker: Option<Breaker>,
    /// The `firestore` capability flags every handler honours.
    gate: Option<Gate>,
}

impl Projections {
    /// Connects to the emulator when `FIRESTORE_EMULATOR_HOST` is set, else to Firestore with
    /// Application Default Credentials.
    pub async fn connect(project_id: &str) -> anyhow::Result<Self> {
        Ok(Self { db: FirestoreDb::with_options(FirestoreDbOptions::new(project_id.to_string())).await?, breaker: None, gate: None })
    }

    /// Every call feeds `breaker`; handlers wait in [`Projections::ready`] while it is open.
    pub fn with_breaker(mut self, breaker: Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Handlers honour `gate`'s flags (the `firestore` capability) before calling Firestore.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    pub fn gate(&self) -> Option<&Gate> {
        self.gate.as_ref()
    }

    /// Returns once Firestore may be called (at once without a breaker or while it is closed).
    pub async fn ready(&self) {
        if let Some(breaker) = &self.breaker {
            breaker.ready().await;
        }
    }

    /// Feeds the breaker: Firestore unreachable or timing out is a failure; any answer,
    /// refusals included, a success.
    fn observe<T>(&self, result: Result<T, Status>) -> Result<T, Status> {
        if let Some(breaker) = &self.breaker {
            match &result {
                Err(status) if is_transient(status) => {
                    breaker.failure();
                }
                _ => breaker.success(),
            }
        }
        result
    }

    fn document_name(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.db.get_documents_path())
    }

    /// Sets `fields` of `collection/id` (creating the document if needed) and no other field.
    pub async fn merge_fields(&self, collection: &str, id: &str, fields: Vec<(&'static str, Value)>) -> Result<(), Status> {
        self.commit(vec![self.merge_write(collection, id, fields, None)], Duration::from_secs(30)).await.map(drop)
    }

    /// Deletes `collection/id` (tools and tests).
    pub async fn delete(&self, collection: &str, id: &str) -> Result<(), Status> {
        self.commit(vec![self.delete_write(collection, id)], Duration::from_secs(30)).await.map(drop)
    }

    /// A delete of `collection/id` (nothing if it is not there), for a `Commit`.
    pub fn delete_write(&self, collection: &str, id: &str) -> Write {
        Write { operation: Some(Operation::Delete(self.document_name(collection, id))), ..Default::default() }
    }

    /// A write of `fields` (and no other field) of `collection/id`, applied only if the document
    /// is still as `seen` (its update time, or its absence) when given.
    pub fn merge_write(&self, collection: &str, id: &str, fields: Vec<(&'static str, Value)>, seen: Option<&Seen>) -> Write {
        let mask = DocumentMask { field_paths: fields.iter().map(|(k, _)| k.to_string()).collect() };
        let document = Document {
            name: self.document_name(collection, id),
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        };
        let current_document = seen.map(|seen| Precondition {
            condition_type: Some(match &seen.update_time {
                Some(time) => ConditionType::UpdateTime(*time),
                None => ConditionType::Exists(false),
            }),
        });
        Write { update_mask: Some(mask), operation: Some(Operation::Update(document)), current_document, ..Default::default() }
    }

    /// A write of `fields` (and no other field) of `collection/id` that fails with `NotFound`
    /// instead of creating the document (for fields Brain adds to documents the apps own).
    pub fn merge_write_existing(&self, collection: &str, id: &str, fields: Vec<(&'static str, Value)>) -> Write {
        let mut write = self.merge_write(collection, id, fields, None);
        write.current_document = Some(Precondition { condition_type: Some(ConditionType::Exists(true)) });
        write
    }

    /// Applies `writes` in one `Commit` (atomic on Firestore), failing with `DeadlineExceeded`
    /// after `deadline`. Returns each written document's update time, in the order of `writes`.
    pub async fn commit(&self, writes: Vec<Write>, deadline: Duration) -> Result<Vec<Option<Timestamp>>, Status> {
        let result = self.commit_once(writes, deadline).await;
        self.observe(result)
    }

    #[tracing::instrument(name = "firestore.commit", skip_all, fields(otel.kind = "client", db.system = "firestore", writes = writes.len()))]
    async fn commit_once(&self, writes: Vec<Write>, deadline: Duration) -> Result<Vec<Option<Timestamp>>, Status> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = Request::new(CommitRequest { database: self.db.get_database_path().clone(), writes, ..Default::default() });
        request.set_timeout(deadline);
        let response = self.db.client().get().commit(request).await?.into_inner();
        Ok(response.write_results.into_iter().map(|r| r.update_time).collect())
    }

    /// For each of `ids` in `collection`: its update time (none if it does not exist) and the
    /// integer field `version_field`, read in one `BatchGetDocuments`.
    pub async fn seen(&self, collection: &str, ids: &[&str], version_field: &str, deadline: Duration) -> Result<HashMap<String, Seen>, Status> {
        let result = self.seen_once(collection, ids, version_field, deadline).await;
        self.observe(result)
    }

    async fn seen_once(&self, collection: &str, ids: &[&str], version_field: &str, deadline: Duration) -> Result<HashMap<String, Seen>, Status> {
        let mut request = Request::new(BatchGetDocumentsRequest {
            database: self.db.get_database_path().clone(),
            documents: ids.iter().map(|id| self.document_name(collection, id)).collect(),
            mask: Some(DocumentMask { field_paths: vec![version_field.to_string()] }),
            ..Default::default()
        });
        request.set_timeout(deadline);
        let mut stream = self.db.client().get().batch_get_documents(request).await?.into_inner();
        let mut seen = HashMap::new();
        while let Some(item) = stream.next().await {
            match item?.result {
                Some(batch_get_documents_response::Result::Found(doc)) => {
                    let id = doc.name.rsplit('/').next().unwrap_or_default().to_string();
                    let version = doc.fields.get(version_field).and_then(as_i64);
                    seen.insert(id, Seen { update_time: doc.update_time, version });
                }
                Some(batch_get_documents_response::Result::Missing(name)) => {
                    let id = name.rsplit('/').next().unwrap_or_default().to_string();
                    seen.insert(id, Seen { update_time: None, version: None });
                }
                None => {}
            }
        }
        Ok(seen)
    }

    /// One document's update time and fields, or `None` when it does not exist.
    pub async fn read(&self, collection: &str, id: &str, deadline: Duration) -> Result<Option<(Timestamp, HashMap<String, Value>)>, Status> {
        let result = self.read_once(collection, id, deadline).await;
        self.observe(result)
    }

    async fn read_once(&self, collection: &str, id: &str, deadline: Duration) -> Result<Option<(Timestamp, HashMap<String, Value>)>, Status> {
        let mut request = Request::new(BatchGetDocumentsRequest {
            database: self.db.get_database_path().clone(),
            documents: vec![self.document_name(collection, id)],
            ..Default::default()
        });
        request.set_timeout(deadline);
        let mut stream = self.db.client().get().batch_get_documents(request).await?.into_inner();
        while let Some(item) = stream.next().await {
            if let Some(batch_get_documents_response::Result::Found(doc)) = item?.result {
                return Ok(doc.update_time.map(|t| (t, doc.fields)));
            }
        }
        Ok(None)
    }

    /// The fields of the documents `ids` in `collection` that exist.
    pub async fn get(&self, collection: &str, ids: &[String]) -> Result<HashMap<String, HashMap<String, Value>>, Status> {
        let result = self.get_once(collection, ids).await;
        self.observe(result)
    }

    async fn get_once(&self, collection: &str, ids: &[String]) -> Result<HashMap<String, HashMap<String, Value>>, Status> {
        let request = BatchGetDocumentsRequest {
            database: self.db.get_database_path().clone(),
            documents: ids.iter().map(|id| self.document_name(collection, id)).collect(),
            ..Default::default()
        };
        let mut stream = self.db.client().get().batch_get_documents(request).await?.into_inner();
        let mut found = HashMap::new();
        while let Some(item) = stream.next().await {
            if let Some(batch_get_documents_response::Result::Found(doc)) = item?.result {
                let id = doc.name.rsplit('/').next().unwrap_or_default().to_string();
                found.insert(id, doc.fields);
            }
        }
        Ok(found)
    }
}

/// A document as read before writing it: its update time (`None`: it does not exist) and the
/// version Brain last projected into it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub update_time: Option<Timestamp>,
    pub version: Option<i64>,
}

/// Whether a failed Firestore call may succeed later.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::Internal | Code::Unknown | Code::Cancelled
    )
}

/// Our own credentials refused: Firestore is unavailable to us; no record is at fault.
pub fn is_credentials(status: &Status) -> bool {
    matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied)
}

/// The document is not there (a write with an `exists` precondition).
pub fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}

/// Someone wrote the document after we read it (or created it): read again and retry.
pub fn is_precondition(status: &Status) -> bool {
    matches!(status.code(), Code::FailedPrecondition | Code::AlreadyExists | Code::NotFound)
}

pub fn string(s: impl Into<String>) -> Value {
    Value { value_type: Some(ValueType::StringValue(s.into())) }
}

pub fn integer(i: i64) -> Value {
    Value { value_type: Some(ValueType::IntegerValue(i)) }
}

pub fn timestamp_millis(ms: i64) -> Value {
    Value {
        value_type: Some(ValueType::TimestampValue(Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        })),
    }
}

pub fn boolean(b: bool) -> Value {
    Value { value_type: Some(ValueType::BooleanValue(b)) }
}

pub fn null() -> Value {
    Value { value_type: Some(ValueType::NullValue(0)) }
}

/// `None` as a Firestore null.
pub fn optional(value: Option<Value>) -> Value {
    value.unwrap_or_else(null)
}

/// A map of `fields`.
pub fn map(fields: Vec<(&'static str, Value)>) -> Value {
    Value {
        value_type: Some(ValueType::MapValue(firestore::gcloud_sdk::google::firestore::v1::MapValue {
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })),
    }
}

/// Reads a map field, for tests and tools.
pub fn as_map(value: &Value) -> Option<&HashMap<String, Value>> {
    match &value.value_type {
        Some(ValueType::MapValue(m)) => Some(&m.fields),
        _ => None,
    }
}

/// Reads a timestamp field as milliseconds since the epoch.
pub fn as_millis(value: &Value) -> Option<i64> {
    match &value.value_type {
        Some(ValueType::TimestampValue(t)) => Some(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
        _ => None,
    }
}

/// Reads a string field, for tests and tools.
pub fn as_bool(value: &Value) -> Option<bool> {
    match &value.value_type {
        Some(ValueType::BooleanValue(b)) => Some(*b),
        _ => None,
    }
}

pub fn as_str(value: &Value) -> Option<&str> {
    match &value.value_type {
        Some(ValueType::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Reads an integer field, for tests and tools.
pub fn as_i64(value: &Value) -> Option<i64> {
    match &value.value_type {
        Some(ValueType::IntegerValue(i)) => Some(*i),
        _ => None,
    }
}

/// The `gate`, `tenant` and `admit` of a handler whose effect goes through `Projections` (at the
/// field path given, e.g. `projections` or `projector.projections`): the `firestore` capability
/// flags, the event's tenant, and waiting while the Firestore breaker is open.
macro_rules! firestore_gated {
    ($($field:ident).+, $event:ty) => {
        fn gate(&self) -> Option<&brain_runtime::flags::Gate> {
            self.$($field).+.gate()
        }

        fn tenant(&self, event: &$event) -> Option<String> {
            Some(event.tenant_id.clone())
        }

        /// While the Firestore breaker is open, the partition waits here.
        async fn admit(&self, _source: &brain_runtime::consumer::Source<'_>) {
            self.$($field).+.ready().await;
        }
    };
}
pub(crate) use firestore_gated;
