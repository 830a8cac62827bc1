//! Turning Ventures loans into `LoanStatusChanged` events.

use brain_events::{LoanState, LoanStatusChanged};
use uuid::Uuid;

use crate::client::Loan;

pub const PRODUCER: &str = "ventures-sync";

/// Namespace of the event ids derived from (tenant, loan, version).
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_2c8e_4e0a_4c47_9d7e_5b0b_1a3c_7e21);

/// The event for `loan` as of its current version. The id is derived from the loan and version,
/// so a change seen twice (after a crash or a resync) yields the same event id.
pub fn loan_event(tenant_id: &str, loan: &Loan, source_seq: i64, occurred_at_ms: i64) -> (String, LoanStatusChanged) {
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, format!("ventures-loan:{tenant_id}:{}:{}", loan.loan_id, loan.version).as_bytes()).to_string();
    let application_id = application_id(loan);
    let event = LoanStatusChanged {
        event_id: event_id.clone(),
        occurred_at: occurred_at_ms,
        tenant_id: tenant_id.to_string(),
        correlation_id: event_id,
        causation_id: None,
        producer: PRODUCER.to_string(),
        application_id: application_id.clone(),
        version: loan.version,
        source_seq,
        loan: LoanState {
            loan_id: loan.loan_id.clone(),
            loan_number: loan.loan_number.clone(),
            loan_type: loan.loan_type.clone(),
            status: loan.status.clone(),
            status_changed_at: loan.status_changed_at.timestamp_millis(),
            borrower_entity_id: loan.borrower.entity_id.clone(),
            amount_requested_cents: cents(loan.amounts.requested),
            amount_approved_cents: loan.amounts.approved.map(cents),
            updated_at: loan.updated_at.timestamp_millis(),
        },
    };
    (application_id, event)
}

/// The lender app's application id of a loan (its Ventures `externalId`), or its loan id.
pub fn application_id(loan: &Loan) -> String {
    loan.external_id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| loan.loan_id.clone())
}

fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Amounts, Borrower};

    fn loan(version: i64, external_id: Option<&str>) -> Loan {
        Loan {
            loan_id: "L-7".into(),
            loan_number: "2026-7".into(),
            loan_type: "504".into(),
            status: "Open".into(),
            status_changed_at: chrono::Utc::now(),
            borrower: Borrower { entity_id: "B-1".into(), name: "Ada".into() },
            amounts: Amounts { requested: 1250.10, approved: None },
            external_id: external_id.map(str::to_string),
            version,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn same_loan_version_gives_the_same_event_id() {
        let (_, a) = loan_event("t", &loan(3, None), 10, 0);
        let (_, b) = loan_event("t", &loan(3, None), 99, 5);
        let (_, c) = loan_event("t", &loan(4, None), 10, 0);
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn keyed_by_application_id_falling_back_to_loan_id() {
        assert_eq!(loan_event("t", &loan(1, Some("app-9")), 0, 0).0, "app-9");
        assert_eq!(loan_event("t", &loan(1, None), 0, 0).0, "L-7");
        assert_eq!(loan_event("t", &loan(1, None), 0, 0).1.loan.amount_requested_cents, 125_010);
    }

    #[test]
    fn borrower_name_never_leaves_ventures_sync() {
        let (_, event) = loan_event("t", &loan(1, None), 0, 0);
        assert!(!format!("{event:?}").contains("Ada"));
    }
}
