//! Ventures loan conditions on the change feed → `ConditionChanged` events (a task of the
//! application follows each condition, flow 4).
//!
//! A condition names its loan, not the application: the sweep remembers each loan's application
//! id (`loan_applications`, written with every loan event it publishes) and asks Ventures for the
//! loan only when it has not seen it yet.

use brain_events::{ConditionChanged, ConditionState};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    client::{Condition, Loan, VenturesClient, VenturesError},
    events::{PRODUCER, application_id},
};

/// Namespace of the event ids derived from (tenant, condition, version).
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x0c5e_7a41_93d2_4b8f_a1e6_2f70_c4d9_58b3);

/// The event for `condition` as of its current version; the same condition version always gets
/// the same event id.
pub fn condition_event(tenant_id: &str, application_id: &str, condition: &Condition, source_seq: i64, occurred_at_ms: i64) -> (String, ConditionChanged) {
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, format!("ventures-condition:{tenant_id}:{}:{}:{}", condition.loan_id, condition.condition_id, condition.version).as_bytes()).to_string();
    let event = ConditionChanged {
        event_id: event_id.clone(),
        occurred_at: occurred_at_ms,
        tenant_id: tenant_id.to_string(),
        correlation_id: event_id,
        causation_id: None,
        producer: PRODUCER.to_string(),
        application_id: application_id.to_string(),
        version: condition.version,
        source_seq,
        condition: ConditionState {
            condition_id: condition.condition_id.clone(),
            loan_id: condition.loan_id.clone(),
            name: condition.name.clone(),
            status: condition.status.clone(),
            document_system: condition.document_ref.as_ref().map(|d| d.system.clone()),
            document_item_id: condition.document_ref.as_ref().map(|d| d.item_id.clone()),
            updated_at: condition.updated_at.timestamp_millis(),
        },
    };
    (application_id.to_string(), event)
}

/// Loan id → application id, remembered from the loans the sweep has seen.
#[derive(Clone)]
pub struct Applications {
    pub pool: PgPool,
}

impl Applications {
    /// Remembers the application of each loan.
    pub async fn remember(&self, loans: &[&Loan]) -> Result<(), sqlx::Error> {
        if loans.is_empty() {
            return Ok(());
        }
        // A page may hold several changes of one loan: one row each (the latest).
        let latest: std::collections::BTreeMap<&str, String> = loans.iter().map(|l| (l.loan_id.as_str(), application_id(l))).collect();
        let (loan_ids, applications): (Vec<&str>, Vec<String>) = latest.into_iter().unzip();
        sqlx::query(
            "INSERT INTO loan_applications (loan_id, application_id) SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (loan_id) DO UPDATE SET application_id = EXCLUDED.application_id, updated_at = now()
             WHERE loan_applications.application_id <> EXCLUDED.application_id",
        )
        .bind(&loan_ids)
        .bind(&applications)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The application of `loan_id`, from memory or from Ventures.
    pub async fn of(&self, client: &VenturesClient, loan_id: &str) -> Result<String, LookupError> {
        let known: Option<String> = sqlx::query_scalar("SELECT application_id FROM loan_applications WHERE loan_id = $1").bind(loan_id).fetch_optional(&self.pool).await?;
        if let Some(application) = known {
            return Ok(application);
        }
        let loan = client.loan(loan_id).await?;
        self.remember(&[&loan]).await?;
        Ok(application_id(&loan))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Ventures(#[from] VenturesError),
    #[error("reading the loan's application failed")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::DocumentRef;

    fn condition(version: i64, document: Option<&str>) -> Condition {
        Condition {
            condition_id: "C-1".into(),
            loan_id: "L-1".into(),
            name: "Tax return 2025".into(),
            status: if document.is_some() { "Received" } else { "Open" }.into(),
            document_ref: document.map(|d| DocumentRef { system: "sharefile".into(), item_id: d.into() }),
            version,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_same_condition_version_gives_the_same_event_id() {
        let (key, a) = condition_event("t", "app-1", &condition(2, None), 5, 0);
        let (_, b) = condition_event("t", "app-1", &condition(2, None), 0, 9);
        let (_, c) = condition_event("t", "app-1", &condition(3, Some("fi-1")), 6, 0);
        assert_eq!(key, "app-1");
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_eq!((c.condition.document_system.as_deref(), c.condition.document_item_id.as_deref()), (Some("sharefile"), Some("fi-1")));
    }
}
