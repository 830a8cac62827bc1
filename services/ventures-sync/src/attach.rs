//! Upstream, flow 4: a document stored in ShareFile (`DocumentStored`) is attached to its
//! Ventures condition: `documentRef` = the ShareFile item and status `Received`, with `If-Match`
//! on the condition's version read just before. The task then moves to `pending_review` when the
//! sweep sees the condition change (the change feed is the one source of condition states).
//!
//! Once per document: `condition_attachments` records each document handled, and a condition
//! that already names the item is left alone (a crash between the PATCH and the record). A
//! condition that Ventures has closed (satisfied, waived) meanwhile is left alone too. A
//! condition changed between the read and the PATCH (409) is read again on the retry; a
//! condition or loan Ventures does not know is the document's dead letter.

use std::sync::Arc;

use brain_events::DocumentStored;
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    flags::Gate,
    telemetry::metric_name,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    SERVICE,
    client::{Condition, VenturesClient, VenturesError},
    commands::failure_with,
};

/// The `system` of a ShareFile `documentRef`.
pub const SHAREFILE: &str = "sharefile";

pub struct AttachHandler {
    pub client: Arc<VenturesClient>,
    pub pool: PgPool,
    pub tenant_id: String,
    /// The `ventures` capability flags.
    pub gate: Gate,
}

impl Handler for AttachHandler {
    type Event = DocumentStored;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &DocumentStored) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the Ventures breaker is open, documents wait here.
    async fn admit(&self, _source: &Source<'_>) {
        self.client.breaker().ready().await;
    }

    async fn handle(&self, _source: Source<'_>, e: DocumentStored) -> Outcome {
        tracing::Span::current().record("correlation_id", e.correlation_id.as_str());
        let document_id = Uuid::parse_str(&e.document_id).map_err(|_| HandlerError::permanent("validation", format!("document id {:?} is not a UUID", e.document_id)))?;
        if e.tenant_id != self.tenant_id {
            return Err(HandlerError::permanent("tenant_not_served", format!("this ventures-sync serves tenant {:?}, not {:?}", self.tenant_id, e.tenant_id)));
        }
        if e.loan_id.is_empty() || e.condition_id.is_empty() || e.item_id.is_empty() {
            return Err(HandlerError::permanent("validation", "a stored document needs a loan, a condition and a ShareFile item"));
        }
        let known: Option<String> = sqlx::query_scalar("SELECT outcome FROM condition_attachments WHERE document_id = $1").bind(document_id).fetch_optional(&self.pool).await.map_err(db::classify)?;
        if known.is_some() {
            return Ok(Applied::Duplicate);
        }
        let failure = failure_with(self.client.breaker());
        let conditions = self.client.conditions(&e.loan_id).await.map_err(|err| match err {
            VenturesError::Rejected { status: 404, .. } => HandlerError::permanent("loan_not_found", format!("Ventures has no loan {}", e.loan_id)),
            other => failure(other),
        })?;
        let condition = conditions
            .into_iter()
            .find(|c| c.condition_id == e.condition_id)
            .ok_or_else(|| HandlerError::permanent("condition_not_found", format!("loan {} has no condition {}", e.loan_id, e.condition_id)))?;
        let (outcome, version) = match decide(&condition, &e.item_id) {
            Decision::AlreadyAttached => ("already_attached", None),
            Decision::Closed => ("closed", None),
            Decision::Attach => {
                let patch = json!({ "status": "Received", "documentRef": { "system": SHAREFILE, "itemId": e.item_id } });
                let updated = self.client.update_condition(&e.loan_id, &e.condition_id, condition.version, &patch).await.map_err(|err| match err {
                    // Changed since it was read: read it again and decide again.
                    VenturesError::Rejected { status: 409, .. } => HandlerError::transient("condition_changed", err.to_string()),
                    VenturesError::Rejected { status: 404, .. } => HandlerError::permanent("condition_not_found", err.to_string()),
                    other => failure(other),
                })?;
                ("attached", Some(updated.version))
            }
        };
        sqlx::query(
            "INSERT INTO condition_attachments (document_id, tenant_id, application_id, loan_id, condition_id, item_id, condition_version, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (document_id) DO NOTHING",
        )
        .bind(document_id)
        .bind(&e.tenant_id)
        .bind(&e.application_id)
        .bind(&e.loan_id)
        .bind(&e.condition_id)
        .bind(&e.item_id)
        .bind(version)
        .bind(outcome)
        .execute(&self.pool)
        .await
        .map_err(db::classify)?;
        metrics::counter!(metric_name(SERVICE, "documents_attached_total"), "outcome" => outcome).increment(1);
        tracing::info!(document_id = %document_id, loan_id = %e.loan_id, condition_id = %e.condition_id, item_id = %e.item_id, outcome, "document attached to its Ventures condition");
        Ok(Applied::Processed)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Attach,
    AlreadyAttached,
    Closed,
}

fn decide(condition: &Condition, item_id: &str) -> Decision {
    if condition.document_ref.as_ref().is_some_and(|d| d.system == SHAREFILE && d.item_id == item_id) {
        Decision::AlreadyAttached
    } else if matches!(condition.status.as_str(), "Satisfied" | "Waived") {
        Decision::Closed
    } else {
        Decision::Attach
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::DocumentRef;

    fn condition(status: &str, item: Option<&str>) -> Condition {
        Condition {
            condition_id: "C-1".into(),
            loan_id: "L-1".into(),
            name: "Bank statements".into(),
            status: status.into(),
            document_ref: item.map(|i| DocumentRef { system: SHAREFILE.into(), item_id: i.into() }),
            version: 3,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_document_is_attached_once_and_never_to_a_closed_condition() {
        assert_eq!(decide(&condition("Open", None), "fi-1"), Decision::Attach);
        assert_eq!(decide(&condition("Received", Some("fi-1")), "fi-1"), Decision::AlreadyAttached);
        // A newer upload replaces an earlier one.
        assert_eq!(decide(&condition("Received", Some("fi-0")), "fi-1"), Decision::Attach);
        assert_eq!(decide(&condition("Satisfied", Some("fi-0")), "fi-1"), Decision::Closed);
        assert_eq!(decide(&condition("Waived", None), "fi-1"), Decision::Closed);
    }
}
