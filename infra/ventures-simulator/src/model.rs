//! Ventures resources as they appear on the wire (camelCase), and the status rules Ventures
//! enforces on `PUT /api/v4/loans/{loanId}/status`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoanType {
    #[serde(rename = "504")]
    Sba504,
    #[serde(rename = "7A")]
    Sba7A,
    Commercial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoanStatus {
    Prospect,
    Open,
    Approved,
    Funded,
    Denied,
    Withdrawn,
    Incomplete,
}

impl LoanStatus {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// Whether Ventures accepts `self → to` through the public status endpoint.
    /// Funded, Denied and Withdrawn are terminal.
    pub fn can_become(self, to: LoanStatus) -> bool {
        use LoanStatus::*;
        matches!(
            (self, to),
            (Prospect, Open)
                | (Open, Approved)
                | (Approved, Funded)
                | (Incomplete, Open)
                | (Prospect | Open | Approved, Denied | Withdrawn | Incomplete)
                | (Incomplete, Denied | Withdrawn)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Borrower {
    pub entity_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    pub requested: f64,
    #[serde(default)]
    pub approved: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loan {
    pub loan_id: String,
    pub loan_number: String,
    pub loan_type: LoanType,
    pub status: LoanStatus,
    pub status_changed_at: DateTime<Utc>,
    pub borrower: Borrower,
    pub amounts: Amounts,
    /// The lender app's application id (our extension of the Ventures contract).
    pub external_id: Option<String>,
    /// Starts at 1 and grows by one on every change.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    Open,
    Received,
    Satisfied,
    Waived,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRef {
    pub system: String,
    pub item_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub condition_id: String,
    pub loan_id: String,
    pub name: String,
    pub status: ConditionStatus,
    pub document_ref: Option<DocumentRef>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::{LoanStatus::*, *};

    const ALL: [LoanStatus; 7] = [
        Prospect, Open, Approved, Funded, Denied, Withdrawn, Incomplete,
    ];

    #[test]
    fn terminal_statuses_allow_nothing() {
        for from in [Funded, Denied, Withdrawn] {
            assert!(ALL.iter().all(|&to| !from.can_become(to)), "{from:?}");
        }
    }

    #[test]
    fn allowed_transitions_match_the_contract() {
        let allowed: Vec<_> = ALL
            .iter()
            .flat_map(|&f| ALL.iter().map(move |&t| (f, t)))
            .filter(|&(f, t)| f.can_become(t))
            .collect();
        let expected = vec![
            (Prospect, Open),
            (Prospect, Denied),
            (Prospect, Withdrawn),
            (Prospect, Incomplete),
            (Open, Approved),
            (Open, Denied),
            (Open, Withdrawn),
            (Open, Incomplete),
            (Approved, Funded),
            (Approved, Denied),
            (Approved, Withdrawn),
            (Approved, Incomplete),
            (Incomplete, Open),
            (Incomplete, Denied),
            (Incomplete, Withdrawn),
        ];
        assert_eq!(allowed, expected);
    }

    #[test]
    fn wire_names() {
        assert_eq!(serde_json::to_value(LoanType::Sba7A).unwrap(), "7A");
        assert_eq!(serde_json::to_value(LoanType::Sba504).unwrap(), "504");
        assert_eq!(LoanStatus::parse("Funded"), Some(Funded));
        assert_eq!(LoanStatus::parse("funded"), None);
    }
}
