//! `LoanStatusChanged` → `applications/{id}` in Firestore, the console read model and one
//! `event_log` row, exactly once per (application, version), a batch at a time.
//!
//! One batch is one PostgreSQL transaction, and at the same time one Firestore `Commit`:
//! - **PostgreSQL:** lock every application of the batch (advisory locks, in sorted order, so two
//!   instances never deadlock) while recording every event id as processed, read the applied
//!   versions, decide per event in offset order (duplicate; stale: not newer than what is
//!   applied or than an earlier event of the batch; or applied), then upsert the read model and
//!   append the `event_log` rows set-wise (`UNNEST` arrays);
//! - **Firestore, meanwhile:** the Brain-owned fields of the newest version of each document in
//!   the batch, in one `Commit` (up to 500 writes), each guarded by the document's update time
//!   as a precondition and skipped when the document already has that version or newer, with a
//!   call deadline. Update time and version come from what this instance last wrote or read
//!   (`seen::SeenCache`); when the precondition fails because someone else wrote since (another
//!   instance, an app), the documents are read again and written once more.
//!
//! The transaction commits only after both succeeded. Firestore's own version check and the
//! precondition keep its documents monotonic without the PostgreSQL lock: an instance that lost
//! its partition cannot move a document back, its late `Commit` fails once the next owner wrote.
//! A crash before the commit redelivers the batch, which finds Firestore already at its versions
//! and commits the rest.

use std::collections::{HashMap, HashSet};

use brain_events::LoanStatusChanged;
use brain_runtime::{
    consumer::{Applied, Delivery, Handler, HandlerError, Outcome, Source},
    db,
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    SERVICE,
    firestore::{self, Projections, Seen},
    seen::SeenCache,
};

pub const COLLECTION: &str = "applications";
/// The Firestore field holding the version Brain last projected.
pub const VERSION_FIELD: &str = "venturesVersion";
/// Most writes Firestore takes in one `Commit`.
const MAX_COMMIT_WRITES: usize = 500;

pub struct LoanStatusHandler {
    pub pool: PgPool,
    pub projections: Projections,
    pub consumer: String,
    /// Deadline of each Firestore call.
    pub firestore_deadline: std::time::Duration,
    /// The update time and version of each document as this instance last wrote or read them.
    pub seen: std::sync::Arc<SeenCache>,
}

impl Handler for LoanStatusHandler {
    type Event = LoanStatusChanged;

    crate::firestore::firestore_gated!(projections, LoanStatusChanged);

    async fn handle(&self, source: Source<'_>, event: LoanStatusChanged) -> Outcome {
        let mut outcomes = self.apply(vec![Delivery { source, event }]).await?;
        outcomes.pop().unwrap_or_else(|| Err(HandlerError::permanent("internal", "no outcome")))
    }

    async fn handle_batch(&self, batch: Vec<Delivery<'_, LoanStatusChanged>>) -> Result<Vec<Outcome>, HandlerError> {
        self.apply(batch).await
    }
}

/// What the batch decided for one valid event.
enum Decision {
    Duplicate,
    Stale,
    /// Applied, with the status it replaces.
    Applied { previous_status: Option<String> },
}

impl LoanStatusHandler {
    async fn apply(&self, batch: Vec<Delivery<'_, LoanStatusChanged>>) -> Result<Vec<Outcome>, HandlerError> {
        if let Some(first) = batch.first() {
            tracing::Span::current().record("correlation_id", first.event.correlation_id.as_str());
        }
        // Invalid events are the only per-record failures; everything else fails the batch.
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
        let mut valid: Vec<(usize, Uuid, &LoanStatusChanged)> = Vec::with_capacity(batch.len());
        for (i, delivery) in batch.iter().enumerate() {
            match validate(&delivery.event) {
                Ok(id) => {
                    outcomes.push(None);
                    valid.push((i, id, &delivery.event));
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        if !valid.is_empty() {
            let decisions = self.apply_valid(&valid).await?;
            for ((i, _, _), decision) in valid.iter().zip(decisions) {
                outcomes[*i] = Some(Ok(match decision {
                    Decision::Duplicate => Applied::Duplicate,
                    Decision::Stale => Applied::Stale,
                    Decision::Applied { .. } => Applied::Processed,
                }));
            }
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every record decided")).collect())
    }

    async fn apply_valid(&self, events: &[(usize, Uuid, &LoanStatusChanged)]) -> Result<Vec<Decision>, HandlerError> {
        // Firestore takes the newest version of each document in the batch unless it has that
        // version or newer; its update-time precondition, not the PostgreSQL lock, keeps that
        // write monotonic. So it runs while PostgreSQL locks, decides and writes, and the
        // transaction commits only once both succeeded (a failed Commit drops the transaction).
        let mut newest: HashMap<&str, &LoanStatusChanged> = HashMap::new();
        for (_, _, e) in events {
            let slot = newest.entry(e.application_id.as_str()).or_insert(e);
            if e.version > slot.version {
                *slot = e;
            }
        }
        let (projected, recorded) = tokio::join!(self.project(&newest), self.record(events));
        let (tx, decisions) = recorded?;
        projected?;
        tx.commit().await.map_err(db::classify)?;

        let now = Utc::now().timestamp_millis();
        let histogram = metrics::histogram!(metric_name(SERVICE, "source_to_projection_seconds"), "entity" => "application");
        for ((_, _, e), decision) in events.iter().zip(&decisions) {
            if matches!(decision, Decision::Applied { .. }) {
                histogram.record((now - e.occurred_at).max(0) as f64 / 1000.0);
            }
        }
        Ok(decisions)
    }

    /// The PostgreSQL side of a batch, up to (not including) the commit: locks, decisions, the
    /// read model and the `event_log` rows.
    async fn record(&self, events: &[(usize, Uuid, &LoanStatusChanged)]) -> Result<(Transaction<'static, Postgres>, Vec<Decision>), HandlerError> {
        let mut apps: Vec<&str> = events.iter().map(|(_, _, e)| e.application_id.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        let ids: Vec<Uuid> = events.iter().map(|(_, id, _)| *id).collect();

        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        let fresh = lock_and_record(&mut tx, &self.consumer, &apps, &ids).await.map_err(db::classify)?;
        let mut applied: HashMap<String, (i64, String)> =
            sqlx::query_as::<_, (String, i64, String)>("SELECT application_id, version, ventures_status FROM applications WHERE application_id = ANY($1)")
                .bind(&apps)
                .fetch_all(&mut *tx)
                .await
                .map_err(db::classify)?
                .into_iter()
                .map(|(app, version, status)| (app, (version, status)))
                .collect();

        let mut seen_ids = HashSet::with_capacity(events.len());
        let mut latest: HashMap<&str, &LoanStatusChanged> = HashMap::new();
        let decisions: Vec<Decision> = events
            .iter()
            .map(|(_, id, e)| {
                if !fresh.contains(id) || !seen_ids.insert(*id) {
                    return Decision::Duplicate;
                }
                let current = applied.get(&e.application_id);
                if !db::is_newer(current.map(|(v, _)| *v), e.version) {
                    return Decision::Stale;
                }
                let previous_status = current.map(|(_, s)| s.clone());
                applied.insert(e.application_id.clone(), (e.version, e.loan.status.clone()));
                latest.insert(e.application_id.as_str(), e);
                Decision::Applied { previous_status }
            })
            .collect();

        let log: Vec<(Uuid, &LoanStatusChanged, Option<&str>)> = events
            .iter()
            .zip(&decisions)
            .filter_map(|((_, id, e), d)| match d {
                Decision::Applied { previous_status } => Some((*id, *e, previous_status.as_deref())),
                _ => None,
            })
            .collect();
        let ids_of_latest: HashMap<&str, Uuid> = log.iter().map(|(id, e, _)| (e.application_id.as_str(), *id)).collect();
        let rows: Vec<(&LoanStatusChanged, Uuid)> = latest.values().map(|e| (*e, ids_of_latest[e.application_id.as_str()])).collect();
        write_read_model(&mut tx, &rows, &log).await.map_err(db::classify)?;
        Ok((tx, decisions))
    }

    /// Writes the newest version of each document, unless Firestore already has it or newer.
    async fn project(&self, latest: &HashMap<&str, &LoanStatusChanged>) -> Result<(), HandlerError> {
        if latest.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = latest.keys().copied().collect();
        for chunk in ids.chunks(MAX_COMMIT_WRITES) {
            let result = match self.project_chunk(latest, chunk, true).await {
                // What this instance last saw is out of date: someone wrote since. Read the
                // documents under the lock and write once more.
                Err(status) if firestore::is_precondition(&status) => {
                    metrics::counter!(metric_name(SERVICE, "firestore_rereads_total")).increment(1);
                    self.project_chunk(latest, chunk, false).await
                }
                result => result,
            };
            result.map_err(firestore_error)?;
        }
        Ok(())
    }

    /// One `Commit` of up to 500 documents, each guarded by its update time as last seen: from
    /// the cache when `cached` and known, else read now (under the lock).
    async fn project_chunk(&self, latest: &HashMap<&str, &LoanStatusChanged>, chunk: &[&str], cached: bool) -> Result<(), firestore::Status> {
        let mut seen = if cached { self.seen.get(chunk) } else { HashMap::new() };
        let unknown: Vec<&str> = chunk.iter().copied().filter(|id| !seen.contains_key(*id)).collect();
        if !unknown.is_empty() {
            seen.extend(self.projections.seen(COLLECTION, &unknown, VERSION_FIELD, self.firestore_deadline).await?);
        }
        let mut written: Vec<(&str, i64)> = Vec::with_capacity(chunk.len());
        let writes: Vec<_> = chunk
            .iter()
            .filter_map(|id| {
                let event = latest[id];
                let seen = seen.get(*id).cloned().unwrap_or_default();
                let behind = seen.version.is_none_or(|v| v < event.version);
                behind.then(|| {
                    written.push((id, event.version));
                    self.projections.merge_write(COLLECTION, id, firestore_fields(event), Some(&seen))
                })
            })
            .collect();
        let started = std::time::Instant::now();
        let committed = self.projections.commit(writes, self.firestore_deadline).await;
        metrics::histogram!(metric_name(SERVICE, "firestore_commit_seconds")).record(started.elapsed().as_secs_f64());
        let update_times = match committed {
            Ok(times) => times,
            Err(status) => {
                // Refused, timed out or partly applied: nothing of this chunk is known any more.
                self.seen.forget(chunk);
                return Err(status);
            }
        };
        for ((id, version), update_time) in written.iter().zip(update_times) {
            seen.insert(id.to_string(), Seen { update_time, version: Some(*version) });
        }
        self.seen.put(seen);
        Ok(())
    }
}

pub(crate) fn firestore_error(status: firestore::Status) -> HandlerError {
    let message = format!("Firestore call failed: {}", status.code());
    if firestore::is_transient(&status) || firestore::is_credentials(&status) {
        HandlerError::unavailable("firestore", message)
    } else if firestore::is_precondition(&status) {
        // Written by someone else since we read it under the lock: read again.
        HandlerError::transient("firestore_precondition", message)
    } else {
        HandlerError::permanent("firestore_rejected", format!("{message}: {}", status.message()))
    }
}

/// Permanent errors for events no retry can fix; they go to the dead-letter topic.
fn validate(event: &LoanStatusChanged) -> Result<Uuid, HandlerError> {
    check_application_id(&event.application_id)?;
    if event.version < 1 {
        return Err(HandlerError::permanent("validation", format!("version {} is not positive", event.version)));
    }
    if event.loan.status.is_empty() {
        return Err(HandlerError::permanent("validation", "empty loan status"));
    }
    if DateTime::from_timestamp_millis(event.occurred_at).is_none() {
        return Err(HandlerError::permanent("validation", "occurred_at out of range"));
    }
    Uuid::parse_str(&event.event_id).map_err(|e| HandlerError::permanent("validation", format!("event_id is not a UUID: {e}")))
}

/// An application id must be a valid Firestore document id.
pub(crate) fn check_application_id(id: &str) -> Result<(), HandlerError> {
    if id.is_empty() || id.len() > 1500 || id.contains('/') || id == "." || id == ".." || (id.starts_with("__") && id.ends_with("__")) {
        return Err(HandlerError::permanent("validation", format!("application id {id:?} is not a valid Firestore document id")));
    }
    Ok(())
}

/// The Brain-owned fields of `applications/{id}`.
pub fn firestore_fields(event: &LoanStatusChanged) -> Vec<(&'static str, firestore::FirestoreValue)> {
    vec![
        ("venturesStatus", firestore::string(&event.loan.status)),
        ("venturesStatusChangedAt", firestore::timestamp_millis(event.loan.status_changed_at)),
        ("venturesLoanId", firestore::string(&event.loan.loan_id)),
        (VERSION_FIELD, firestore::integer(event.version)),
        ("lastVenturesSyncAt", firestore::timestamp_millis(Utc::now().timestamp_millis())),
        ("updatedBy", firestore::string(format!("brain:{SERVICE}"))),
        ("correlationId", firestore::string(&event.correlation_id)),
    ]
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Serialises work on these applications across every instance until the transaction ends, then
/// records every event id as processed, in one statement; returns the ids that were new. `apps`
/// is sorted, so concurrent batches take their locks in one order, and the locks are taken before
/// any id is recorded (the insert reads from the aggregate that takes them). Recording every id
/// both finds the duplicates and records the rest, through the primary key whatever the table's
/// statistics (a `= ANY` filter could scan).
async fn lock_and_record(tx: &mut Transaction<'_, Postgres>, consumer: &str, apps: &[&str], ids: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "WITH locked AS (SELECT count(pg_advisory_xact_lock(hashtextextended('application:' || a, 0))) AS n
                         FROM unnest($3::text[]) WITH ORDINALITY AS t(a, k))
         INSERT INTO processed_events (consumer, event_id) SELECT $1, id FROM locked, unnest($2::uuid[]) AS t(id)
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(ids)
    .bind(apps)
    .fetch_all(&mut **tx)
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Upserts the read model (newer versions only) and appends the `event_log` rows, set-wise, in
/// one statement. Both are empty together or neither is.
async fn write_read_model(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(&LoanStatusChanged, Uuid)],
    log: &[(Uuid, &LoanStatusChanged, Option<&str>)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() && log.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&LoanStatusChanged) -> String| rows.iter().map(|(e, _)| f(e)).collect::<Vec<_>>();
    let time = |f: fn(&LoanStatusChanged) -> i64| rows.iter().map(|(e, _)| ts(f(e))).collect::<Vec<_>>();
    sqlx::query(
        "WITH upserted AS (
           INSERT INTO applications (application_id, tenant_id, loan_id, loan_number, loan_type, ventures_status,
               status_changed_at, amount_requested_cents, amount_approved_cents, version, source_updated_at,
               source_occurred_at, projected_at, last_event_id, correlation_id)
           SELECT a, t, l, n, ty, s, sc, ar, aa, v, su, so, now(), ev, c
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
                       $8::bigint[], $9::bigint[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::uuid[], $14::text[])
                AS r(a, t, l, n, ty, s, sc, ar, aa, v, su, so, ev, c)
           ON CONFLICT (application_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, loan_id = EXCLUDED.loan_id,
               loan_number = EXCLUDED.loan_number, loan_type = EXCLUDED.loan_type, ventures_status = EXCLUDED.ventures_status,
               status_changed_at = EXCLUDED.status_changed_at, amount_requested_cents = EXCLUDED.amount_requested_cents,
               amount_approved_cents = EXCLUDED.amount_approved_cents, version = EXCLUDED.version,
               source_updated_at = EXCLUDED.source_updated_at, source_occurred_at = EXCLUDED.source_occurred_at,
               projected_at = now(), last_event_id = EXCLUDED.last_event_id, correlation_id = EXCLUDED.correlation_id
           WHERE applications.version < EXCLUDED.version)
         INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at,
             correlation_id, causation_id, producer, change)
         SELECT id, 'loan.status_changed', t, 'application', a, v, o, c, ca, p, ch
         FROM unnest($15::uuid[], $16::text[], $17::text[], $18::bigint[], $19::timestamptz[], $20::text[], $21::text[],
                     $22::text[], $23::jsonb[])
              AS r(id, t, a, v, o, c, ca, p, ch)",
    )
    .bind(col(|e| e.application_id.clone()))
    .bind(col(|e| e.tenant_id.clone()))
    .bind(col(|e| e.loan.loan_id.clone()))
    .bind(col(|e| e.loan.loan_number.clone()))
    .bind(col(|e| e.loan.loan_type.clone()))
    .bind(col(|e| e.loan.status.clone()))
    .bind(time(|e| e.loan.status_changed_at))
    .bind(rows.iter().map(|(e, _)| e.loan.amount_requested_cents).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.loan.amount_approved_cents).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.version).collect::<Vec<_>>())
    .bind(time(|e| e.loan.updated_at))
    .bind(time(|e| e.occurred_at))
    .bind(rows.iter().map(|(_, id)| *id).collect::<Vec<_>>())
    .bind(col(|e| e.correlation_id.clone()))
    .bind(log.iter().map(|(id, _, _)| *id).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.tenant_id.clone()).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.application_id.clone()).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.version).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| ts(e.occurred_at)).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.correlation_id.clone()).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.causation_id.clone()).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, _)| e.producer.clone()).collect::<Vec<_>>())
    .bind(log.iter().map(|(_, e, from)| json!({ "field": "venturesStatus", "from": from, "to": e.loan.status })).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use brain_runtime::consumer::ErrorClass;
    use ::firestore::gcloud_sdk::tonic::{Code, Status};

    use super::*;

    #[test]
    fn every_field_projection_writer_writes_is_brain_owned() {
        let event = system_event();
        for (name, _) in firestore_fields(&event) {
            assert!(brain_events::firestore::is_brain_owned(name), "{name} is written by Brain but not protected");
        }
        assert!(brain_events::firestore::is_brain_owned(crate::commands::COMMAND_FIELD));
    }

    fn system_event() -> LoanStatusChanged {
        LoanStatusChanged {
            event_id: Uuid::new_v4().to_string(),
            occurred_at: 0,
            tenant_id: "t".into(),
            correlation_id: "c".into(),
            causation_id: None,
            producer: "p".into(),
            application_id: "a".into(),
            version: 1,
            source_seq: 0,
            loan: brain_events::LoanState {
                loan_id: "l".into(),
                loan_number: "n".into(),
                loan_type: "7A".into(),
                status: "Open".into(),
                status_changed_at: 0,
                borrower_entity_id: "b".into(),
                amount_requested_cents: 1,
                amount_approved_cents: None,
                updated_at: 0,
            },
        }
    }

    #[test]
    fn our_own_refused_credentials_are_unavailable_not_the_records_fault() {
        for code in [Code::Unauthenticated, Code::PermissionDenied, Code::Unavailable, Code::DeadlineExceeded] {
            assert_eq!(firestore_error(Status::new(code, "x")).class, ErrorClass::Unavailable, "{code:?}");
        }
        assert_eq!(firestore_error(Status::new(Code::FailedPrecondition, "x")).class, ErrorClass::Transient);
        assert_eq!(firestore_error(Status::new(Code::InvalidArgument, "x")).class, ErrorClass::Permanent);
    }
}
