//! All simulator state behind one mutex. Every mutation of a loan or condition goes through here
//! so that it bumps the entity's version and appends exactly one change-feed entry.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use chrono::Utc;
use serde::Serialize;

use crate::{
    config::Config,
    error::ApiError,
    faults::Faults,
    feed::{Change, ChangeType, EntityType, Feed},
    model::{
        Amounts, Borrower, Condition, ConditionStatus, DocumentRef, Loan, LoanStatus, LoanType,
    },
    records::Records,
};

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: Config,
    store: Mutex<Store>,
}

impl AppState {
    pub fn new(config: Config) -> SharedState {
        let store = Store::new(config.feed_retention);
        Arc::new(Self {
            config,
            store: Mutex::new(store),
        })
    }

    /// Handlers keep the guard only for in-memory work, never across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug)]
pub struct LoanEntry {
    pub loan: Loan,
    /// In creation order.
    pub conditions: Vec<Condition>,
}

/// Fields of a new loan; ids and the loan number are generated when absent.
#[derive(Debug)]
pub struct NewLoan {
    pub loan_id: Option<String>,
    pub loan_number: Option<String>,
    pub loan_type: LoanType,
    pub status: LoanStatus,
    pub borrower: Borrower,
    pub amounts: Amounts,
    pub external_id: Option<String>,
}

/// A loan update from the control API; `None` leaves a field unchanged.
#[derive(Debug, Default)]
pub struct LoanPatch {
    pub loan_number: Option<String>,
    pub loan_type: Option<LoanType>,
    pub borrower: Option<Borrower>,
    pub amounts: Option<Amounts>,
    pub external_id: Option<Option<String>>,
}

/// A condition update; `document_ref: Some(None)` clears the reference.
#[derive(Debug, Default)]
pub struct ConditionPatch {
    pub status: Option<ConditionStatus>,
    pub document_ref: Option<Option<DocumentRef>>,
}

#[derive(Debug)]
pub struct Store {
    pub loans: BTreeMap<String, LoanEntry>,
    pub feed: Feed,
    pub faults: Faults,
    pub records: Records,
    /// Bearer token → expiry. Survives `/control/reset`.
    pub tokens: HashMap<String, Instant>,
    /// Loan id → the borrower's draft (`drafts.rs`).
    pub drafts: HashMap<String, crate::drafts::Draft>,
    loans_created: u64,
}

impl Store {
    fn new(feed_retention: usize) -> Self {
        Self {
            loans: BTreeMap::new(),
            feed: Feed::new(feed_retention),
            faults: Faults::default(),
            records: Records::default(),
            tokens: HashMap::new(),
            drafts: HashMap::new(),
            loans_created: 0,
        }
    }

    /// Clears loans, feed (new epoch), faults, effects and counters; tokens stay valid.
    pub fn reset(&mut self) {
        self.loans.clear();
        self.feed.reset();
        self.faults.clear();
        self.records = Records::default();
        self.drafts.clear();
        self.loans_created = 0;
    }

    pub fn loan(&self, loan_id: &str) -> Result<&LoanEntry, ApiError> {
        self.loans
            .get(loan_id)
            .ok_or_else(|| ApiError::not_found(format_args!("loan {loan_id}")))
    }

    fn loan_mut(&mut self, loan_id: &str) -> Result<&mut LoanEntry, ApiError> {
        self.loans
            .get_mut(loan_id)
            .ok_or_else(|| ApiError::not_found(format_args!("loan {loan_id}")))
    }

    pub fn create_loan(&mut self, new: NewLoan) -> Result<Loan, ApiError> {
        let loan_id = new
            .loan_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if loan_id.is_empty() || loan_id.contains('/') {
            return Err(ApiError::unprocessable(
                "loanId must be non-empty and contain no '/'",
            ));
        }
        if self.loans.contains_key(&loan_id) {
            return Err(ApiError::conflict(format!("loan {loan_id} already exists")));
        }
        self.loans_created += 1;
        let now = Utc::now();
        let loan = Loan {
            loan_number: new
                .loan_number
                .unwrap_or_else(|| format!("VL-{:06}", self.loans_created)),
            loan_id: loan_id.clone(),
            loan_type: new.loan_type,
            status: new.status,
            status_changed_at: now,
            borrower: new.borrower,
            amounts: new.amounts,
            external_id: new.external_id,
            version: 1,
            updated_at: now,
        };
        self.loans.insert(
            loan_id,
            LoanEntry {
                loan: loan.clone(),
                conditions: Vec::new(),
            },
        );
        self.append_loan_change(&loan, ChangeType::Created);
        Ok(loan)
    }

    /// Sets the status without transition rules (callers check them when they apply).
    pub fn set_status(&mut self, loan_id: &str, status: LoanStatus) -> Result<Loan, ApiError> {
        let now = Utc::now();
        let loan = &mut self.loan_mut(loan_id)?.loan;
        loan.status = status;
        loan.status_changed_at = now;
        loan.version += 1;
        loan.updated_at = now;
        let loan = loan.clone();
        self.append_loan_change(&loan, ChangeType::StatusChanged);
        Ok(loan)
    }

    pub fn update_loan(&mut self, loan_id: &str, patch: LoanPatch) -> Result<Loan, ApiError> {
        let loan = &mut self.loan_mut(loan_id)?.loan;
        if let Some(v) = patch.loan_number {
            loan.loan_number = v;
        }
        if let Some(v) = patch.loan_type {
            loan.loan_type = v;
        }
        if let Some(v) = patch.borrower {
            loan.borrower = v;
        }
        if let Some(v) = patch.amounts {
            loan.amounts = v;
        }
        if let Some(v) = patch.external_id {
            loan.external_id = v;
        }
        loan.version += 1;
        loan.updated_at = Utc::now();
        let loan = loan.clone();
        self.append_loan_change(&loan, ChangeType::Updated);
        Ok(loan)
    }

    pub fn add_condition(
        &mut self,
        loan_id: &str,
        condition_id: Option<String>,
        name: String,
        status: ConditionStatus,
    ) -> Result<Condition, ApiError> {
        let condition_id = condition_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let entry = self.loan_mut(loan_id)?;
        if entry
            .conditions
            .iter()
            .any(|c| c.condition_id == condition_id)
        {
            return Err(ApiError::conflict(format!(
                "condition {condition_id} already exists"
            )));
        }
        let condition = Condition {
            condition_id,
            loan_id: loan_id.to_owned(),
            name,
            status,
            document_ref: None,
            version: 1,
            updated_at: Utc::now(),
        };
        entry.conditions.push(condition.clone());
        self.append_condition_change(&condition, ChangeType::Created);
        Ok(condition)
    }

    /// Applies `patch` when `expected_version` is current; a stale version is 409 CONFLICT.
    pub fn update_condition(
        &mut self,
        loan_id: &str,
        condition_id: &str,
        expected_version: u64,
        patch: ConditionPatch,
    ) -> Result<Condition, ApiError> {
        let entry = self.loan_mut(loan_id)?;
        let condition = entry
            .conditions
            .iter_mut()
            .find(|c| c.condition_id == condition_id)
            .ok_or_else(|| ApiError::not_found(format_args!("condition {condition_id}")))?;
        if condition.version != expected_version {
            return Err(ApiError::conflict(format!(
                "condition {condition_id} is at version {}, not {expected_version}",
                condition.version
            )));
        }
        if let Some(status) = patch.status {
            condition.status = status;
        }
        if let Some(document_ref) = patch.document_ref {
            condition.document_ref = document_ref;
        }
        condition.version += 1;
        condition.updated_at = Utc::now();
        let condition = condition.clone();
        self.append_condition_change(&condition, ChangeType::ConditionUpdated);
        Ok(condition)
    }

    fn append_loan_change(&mut self, loan: &Loan, change_type: ChangeType) {
        let change = Change {
            seq: 0,
            entity_type: EntityType::Loan,
            entity_id: loan.loan_id.clone(),
            loan_id: loan.loan_id.clone(),
            change_type,
            changed_at: loan.updated_at,
            version: loan.version,
            data: snapshot(loan),
        };
        self.feed.append(change);
    }

    fn append_condition_change(&mut self, condition: &Condition, change_type: ChangeType) {
        let change = Change {
            seq: 0,
            entity_type: EntityType::Condition,
            entity_id: condition.condition_id.clone(),
            loan_id: condition.loan_id.clone(),
            change_type,
            changed_at: condition.updated_at,
            version: condition.version,
            data: snapshot(condition),
        };
        self.feed.append(change);
    }
}

fn snapshot(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("model types serialize")
}
