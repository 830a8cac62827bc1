//! All Firestore access of projection-writer, through the two RPCs that behave the same on
//! Firestore and on the emulator: `Commit` (writes) and `BatchGetDocuments` (reads by id).
//!
//! `applications/{id}` is shared with the apps, so Brain writes only its own fields, with an
//! update mask; everything else in the document belongs to the apps and is left untouched.
//! Integers stay within ±2^53 and ids are strings.

use std::collections::HashMap;

use firestore::{
    FirestoreDb, FirestoreDbOptions,
    gcloud_sdk::{
        google::firestore::v1::{
            BatchGetDocumentsRequest, CommitRequest, Document, DocumentMask, Value, Write,
            batch_get_documents_response, value::ValueType, write::Operation,
        },
        prost_types::Timestamp,
        tonic::{Code, Status},
    },
};
use futures::StreamExt;

pub use firestore::gcloud_sdk::google::firestore::v1::Value as FirestoreValue;

#[derive(Clone)]
pub struct Projections {
    db: FirestoreDb,
}

impl Projections {
    /// Connects to the emulator when `FIRESTORE_EMULATOR_HOST` is set, else to Firestore with
    /// Application Default Credentials.
    pub async fn connect(project_id: &str) -> anyhow::Result<Self> {
        Ok(Self { db: FirestoreDb::with_options(FirestoreDbOptions::new(project_id.to_string())).await? })
    }

    fn document_name(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.db.get_documents_path())
    }

    /// Sets `fields` of `collection/id` (creating the document if needed) and no other field.
    pub async fn merge_fields(&self, collection: &str, id: &str, fields: Vec<(&'static str, Value)>) -> Result<(), Status> {
        let mask = DocumentMask { field_paths: fields.iter().map(|(k, _)| k.to_string()).collect() };
        let document = Document {
            name: self.document_name(collection, id),
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        };
        let write = Write {
            update_mask: Some(mask),
            operation: Some(Operation::Update(document)),
            ..Default::default()
        };
        let request = CommitRequest {
            database: self.db.get_database_path().clone(),
            writes: vec![write],
            ..Default::default()
        };
        self.db.client().get().commit(request).await?;
        Ok(())
    }

    /// The fields of the documents `ids` in `collection` that exist.
    pub async fn get(&self, collection: &str, ids: &[String]) -> Result<HashMap<String, HashMap<String, Value>>, Status> {
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

/// Whether a failed Firestore call may succeed later.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::Internal | Code::Unknown | Code::Cancelled
    )
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

/// Reads a string field, for tests and tools.
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
