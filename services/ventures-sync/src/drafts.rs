//! Upstream: a borrower's draft edits (flow 3). A `DocumentChanged` of `applications/{id}` whose
//! changed fields include `draft.<field>` is pushed to Ventures as a draft: the allowed fields
//! (`DRAFT_FIELDS`) with their new values (a removed field is sent as null), under the change's
//! event id as `Idempotency-Key`, so a redelivered change is answered from Ventures' store. A
//! change older than the last one pushed for the application is skipped (stale). Draft fields
//! outside the allowed list are not sent and are counted; Ventures refusing a value (422) or the
//! application having no Ventures loan yet is dead-lettered with the reason.

use std::sync::Arc;

use brain_events::DocumentChanged;
use brain_runtime::{
    flags::Gate,
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
    telemetry::metric_name,
};
use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::{
    SERVICE,
    client::{VenturesClient, VenturesError},
    commands::failure_with,
};

pub struct DraftHandler {
    pub client: Arc<VenturesClient>,
    pub pool: PgPool,
    pub tenant_id: String,
    /// The draft fields borrowers may change.
    pub fields: Vec<String>,
    /// The `ventures` capability flags.
    pub gate: Gate,
}

impl Handler for DraftHandler {
    type Event = DocumentChanged;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &DocumentChanged) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the Ventures breaker is open, changes wait here.
    async fn admit(&self, _source: &Source<'_>) {
        self.client.breaker().ready().await;
    }

    async fn handle(&self, _source: Source<'_>, change: DocumentChanged) -> Outcome {
        let application = change.collection == "applications" && !change.deleted && change.document_path.split('/').count() == 2;
        let drafted: Vec<&str> = change.changed_fields.iter().filter_map(|p| p.strip_prefix("draft.")).collect();
        if !application || drafted.is_empty() {
            return Ok(Applied::Processed);
        }
        tracing::Span::current().record("correlation_id", change.correlation_id.as_str());
        if change.tenant_id != self.tenant_id {
            return Err(HandlerError::permanent("tenant_not_served", format!("this ventures-sync serves tenant {:?}, not {:?}", self.tenant_id, change.tenant_id)));
        }
        let (allowed, refused): (Vec<&str>, Vec<&str>) = drafted.into_iter().partition(|f| self.fields.iter().any(|a| a == f));
        for field in &refused {
            metrics::counter!(metric_name(SERVICE, "draft_fields_refused_total"), "field" => field.to_string()).increment(1);
        }
        if !refused.is_empty() {
            tracing::warn!(application_id = %change.application_id, ?refused, "draft fields outside DRAFT_FIELDS are not sent to Ventures");
        }
        if allowed.is_empty() {
            return Ok(Applied::Processed);
        }
        let loan_id = change
            .ventures_loan_id
            .clone()
            .ok_or_else(|| HandlerError::permanent("application_not_linked", format!("application {} has no Ventures loan yet", change.application_id)))?;
        let pushed: Option<i64> = sqlx::query_scalar("SELECT update_time_ns FROM draft_pushes WHERE application_id = $1")
            .bind(&change.application_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db::classify)?;
        if pushed.is_some_and(|p| p >= change.update_time_ns) {
            return Ok(Applied::Stale);
        }
        let mut fields = Map::new();
        for field in &allowed {
            let value = change.new_values.get(&format!("draft.{field}")).map(|v| serde_json::from_str(v).unwrap_or(Value::Null)).unwrap_or(Value::Null);
            fields.insert(field.to_string(), value);
        }
        match self.client.update_draft(&loan_id, &fields, &change.event_id).await {
            Ok(_) => {}
            Err(VenturesError::Rejected { status: 422, message, .. }) => return Err(HandlerError::permanent("draft_refused", message)),
            Err(VenturesError::Rejected { status: 404, message, .. }) => return Err(HandlerError::permanent("loan_not_found", message)),
            Err(e) => return Err(failure_with(self.client.breaker())(e)),
        }
        sqlx::query(
            "INSERT INTO draft_pushes (application_id, loan_id, update_time_ns) VALUES ($1, $2, $3)
             ON CONFLICT (application_id) DO UPDATE SET loan_id = EXCLUDED.loan_id, update_time_ns = EXCLUDED.update_time_ns, pushed_at = now()
             WHERE draft_pushes.update_time_ns < EXCLUDED.update_time_ns",
        )
        .bind(&change.application_id)
        .bind(&loan_id)
        .bind(change.update_time_ns)
        .execute(&self.pool)
        .await
        .map_err(db::classify)?;
        tracing::info!(application_id = %change.application_id, %loan_id, fields = ?allowed, "draft pushed to Ventures");
        Ok(Applied::Processed)
    }
}
