//! The second line of defence of Brain-owned fields (the first is `firestore.rules`): a change of
//! `applications/{id}` that touched Brain-owned fields (flagged by firestore-change-listener) is
//! checked against Brain's truth, the read model. Brain's own writes match it and pass; anything
//! else is written back with Brain's values and reported as a `ProtectedFieldViolation`.
//!
//! The check reads the document as it is now (not as the event shows it), so a redelivered or
//! late change event finds the document already restored and does nothing. A document at a newer
//! version than the read model is a projection still in flight: retried until the read model has
//! it. The restore is guarded by the update time just read: if anyone wrote since, the check runs
//! again.

use std::collections::BTreeMap;

use brain_events::{DocumentChanged, ProtectedFieldViolation, topics};
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    producer::EventProducer,
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    SERVICE,
    commands::{COMMAND_FIELD, latest_command},
    firestore::{self, FirestoreValue, Projections, Seen},
    handler::{COLLECTION, VERSION_FIELD, check_application_id, firestore_error},
    seen::SeenCache,
};

/// Tries while Firestore is ahead of the read model before that counts as a violation (with the
/// runtime's backoff, about a second and a half).
const IN_FLIGHT_ATTEMPTS: u32 = 4;

/// Namespace of violation ids derived from change ids.
const VIOLATION_NAMESPACE: Uuid = Uuid::from_u128(0x9a3e_5c21_0b7f_4d68_a4e2_6f19_c0d8_3b57);

pub struct ProtectedFieldGuard {
    pub pool: PgPool,
    pub projections: Projections,
    pub producer: EventProducer,
    pub firestore_deadline: std::time::Duration,
    pub seen: std::sync::Arc<SeenCache>,
}

/// Brain's values of an application, from the read model.
#[derive(sqlx::FromRow)]
struct Truth {
    ventures_status: String,
    loan_id: String,
    version: i64,
    status_changed_at: DateTime<Utc>,
    correlation_id: String,
}

impl Handler for ProtectedFieldGuard {
    type Event = DocumentChanged;

    crate::firestore::firestore_gated!(projections, DocumentChanged);

    async fn handle(&self, source: Source<'_>, change: DocumentChanged) -> Outcome {
        let guarded = change.collection == "applications" && !change.deleted && !change.protected_fields.is_empty() && change.document_path.split('/').count() == 2;
        if !guarded {
            return Ok(Applied::Processed);
        }
        check_application_id(&change.application_id)?;
        tracing::Span::current().record("correlation_id", change.correlation_id.as_str());
        let check = Check {
            application_id: &change.application_id,
            tenant_id: &change.tenant_id,
            correlation_id: &change.correlation_id,
            cause: &change.event_id,
            attempt: source.attempt,
            create_missing: false,
        };
        self.check(check).await.map(|_| Applied::Processed)
    }
}

/// One application to check against the read model.
pub struct Check<'a> {
    pub application_id: &'a str,
    pub tenant_id: &'a str,
    pub correlation_id: &'a str,
    /// What caused the check (a change event's id, or a reconciliation's): the violation's id is
    /// derived from it.
    pub cause: &'a str,
    /// 1 on the first try: a document ahead of the read model is at first a projection in flight.
    pub attempt: u32,
    /// Write Brain's fields into a document that does not exist (reconciliation); the guard
    /// leaves a deleted document alone.
    pub create_missing: bool,
}

impl ProtectedFieldGuard {
    /// Checks `applications/{id}` against the read model; restores and reports what differs.
    /// Returns the fields that were restored (empty: the document was right).
    pub async fn check(&self, check: Check<'_>) -> Result<Vec<&'static str>, HandlerError> {
        let id = check.application_id;
        let truth: Option<Truth> = sqlx::query_as("SELECT ventures_status, loan_id, version, status_changed_at, correlation_id FROM applications WHERE application_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db::classify)?;        let read = self.projections.read(COLLECTION, id, self.firestore_deadline).await.map_err(firestore_error)?;
        let (update_time, fields) = match read {
            Some(found) => (Some(found.0), found.1),
            None if check.create_missing && truth.is_some() => (None, Default::default()),
            None => return Ok(Vec::new()),
        };
        // Firestore ahead of the read model is, at first, Brain's own projection whose
        // transaction has not committed yet; only if it stays ahead is it someone else's.
        let current_version = fields.get(VERSION_FIELD).and_then(firestore::as_i64);
        let ahead = current_version.is_some_and(|current| truth.as_ref().is_none_or(|t| current > t.version));
        if ahead && check.attempt < IN_FLIGHT_ATTEMPTS {
            let known = truth.as_ref().map_or_else(|| "none".to_string(), |t| t.version.to_string());
            return Err(HandlerError::transient("projection_in_flight", format!("{id} is at version {current_version:?} in Firestore, {known} in the read model")));
        }

        // Brain's value of every field it owns, and which ones the document does not hold.
        let mut expected: Vec<(&'static str, FirestoreValue)> = match &truth {
            Some(t) => vec![
                ("venturesStatus", firestore::string(&t.ventures_status)),
                ("venturesStatusChangedAt", firestore::timestamp_millis(t.status_changed_at.timestamp_millis())),
                ("venturesLoanId", firestore::string(&t.loan_id)),
                (VERSION_FIELD, firestore::integer(t.version)),
                ("updatedBy", firestore::string(format!("brain:{SERVICE}"))),
                ("correlationId", firestore::string(&t.correlation_id)),
            ],
            // Brain never projected this application: none of its fields may be there.
            None => ["venturesStatus", "venturesStatusChangedAt", "venturesLoanId", VERSION_FIELD, "updatedBy", "correlationId", "lastVenturesSyncAt"]
                .into_iter()
                .map(|f| (f, firestore::null()))
                .collect(),
        };
        let (command_value, latest) = latest_command(&self.pool, id).await.map_err(db::classify)?;
        let mut wrong: Vec<&'static str> = expected.iter().filter(|(name, want)| !same(fields.get(*name), want)).map(|(name, _)| *name).collect();
        let shown = fields.get(COMMAND_FIELD).and_then(firestore::as_map);
        let shown_command = shown.and_then(|m| Some((firestore::as_str(m.get("commandId")?)?.to_string(), firestore::as_str(m.get("state")?)?.to_string())));
        if shown_command != latest && !(latest.is_none() && shown.is_none()) {
            wrong.push(COMMAND_FIELD);
        }
        if wrong.is_empty() {
            return Ok(Vec::new());
        }
        expected.push((COMMAND_FIELD, command_value));
        if truth.is_some() {
            expected.push(("lastVenturesSyncAt", firestore::timestamp_millis(Utc::now().timestamp_millis())));
        }
        let restore: Vec<_> = expected.into_iter().filter(|(name, _)| wrong.contains(name) || *name == "lastVenturesSyncAt").collect();
        let restored_values: BTreeMap<String, String> = restore.iter().map(|(name, value)| (name.to_string(), json_of(value).to_string())).collect();
        let write = self.projections.merge_write(COLLECTION, id, restore, Some(&Seen { update_time, version: current_version }));
        let committed = self.projections.commit(vec![write], self.firestore_deadline).await;
        self.seen.forget(&[id]);
        committed.map_err(firestore_error)?;

        // What the document held (it may be a later write than the change that woke the guard).
        let written_at = update_time.map_or_else(|| Utc::now().timestamp_millis(), |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        let detected_after_ms = (Utc::now().timestamp_millis() - written_at).max(0);
        let actor = fields.get("lastEditedBy").and_then(firestore::as_str).map(str::to_string);
        for field in &wrong {
            metrics::counter!(metric_name(SERVICE, "protected_field_violations_total"), "field" => *field).increment(1);
        }
        tracing::warn!(application_id = id, fields = ?wrong, ?actor, detected_after_ms, "a client wrote Brain-owned fields; Brain's values restored");
        let written_values = wrong.iter().map(|f| (f.to_string(), fields.get(*f).map_or(serde_json::Value::Null, json_of).to_string())).collect();
        let violation = ProtectedFieldViolation {
            event_id: Uuid::new_v5(&VIOLATION_NAMESPACE, check.cause.as_bytes()).to_string(),
            occurred_at: written_at,
            tenant_id: check.tenant_id.to_string(),
            correlation_id: check.correlation_id.to_string(),
            causation_id: Some(check.cause.to_string()),
            producer: SERVICE.to_string(),
            application_id: id.to_string(),
            fields: wrong.iter().map(|f| f.to_string()).collect(),
            written_values,
            restored_values,
            actor,
            detected_after_ms,
        };
        self.producer
            .send(topics::PROTECTED_FIELD_VIOLATION, id, &violation)
            .await
            .map_err(|e| HandlerError::unavailable("kafka", e.to_string()))?;
        Ok(wrong)
    }
}

/// Whether the document's value is Brain's (an absent field equals null).
fn same(found: Option<&FirestoreValue>, want: &FirestoreValue) -> bool {
    found.map_or(serde_json::Value::Null, json_of) == json_of(want)
}

/// A Firestore value as JSON, for comparisons and reports.
fn json_of(value: &FirestoreValue) -> serde_json::Value {
    if let Some(s) = firestore::as_str(value) {
        return json!(s);
    }
    if let Some(i) = firestore::as_i64(value) {
        return json!(i);
    }
    if let Some(ms) = firestore::as_millis(value) {
        return json!(DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()));
    }
    if let Some(map) = firestore::as_map(value) {
        let sorted: BTreeMap<&String, serde_json::Value> = map.iter().map(|(k, v)| (k, json_of(v))).collect();
        return json!(sorted);
    }
    serde_json::Value::Null
}
