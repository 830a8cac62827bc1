//! What the mirror keeps of each QBO entity, read from its JSON.

use chrono::NaiveDate;
use serde_json::Value;

/// Money in cents (QBO amounts have two decimals).
pub fn cents(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_f64).map_or(0, |x| (x * 100.0).round() as i64)
}

fn text(raw: &Value, pointer: &str) -> Option<String> {
    raw.pointer(pointer).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty())
}

fn date(raw: &Value, field: &str) -> Option<NaiveDate> {
    raw.get(field).and_then(Value::as_str).and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok())
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bill {
    pub vendor_id: Option<String>,
    pub vendor_name: Option<String>,
    pub doc_number: Option<String>,
    pub txn_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub total_cents: i64,
    pub balance_cents: i64,
    pub account_ids: Vec<String>,
    pub account_names: Vec<String>,
    pub issues: Vec<String>,
}

impl Bill {
    pub fn from(raw: &Value) -> Self {
        let mut account_ids = Vec::new();
        let mut account_names = Vec::new();
        let mut line_without_account = false;
        for line in raw.get("Line").and_then(Value::as_array).into_iter().flatten() {
            if line.get("DetailType").and_then(Value::as_str) == Some("SubTotalLineDetail") {
                continue;
            }
            match line.pointer("/AccountBasedExpenseLineDetail/AccountRef") {
                Some(r) if r.get("value").and_then(Value::as_str).is_some_and(|v| !v.is_empty()) => {
                    account_ids.push(r["value"].as_str().unwrap_or_default().to_string());
                    account_names.push(r.get("name").and_then(Value::as_str).unwrap_or_default().to_string());
                }
                _ => line_without_account = true,
            }
        }
        let mut bill = Self {
            vendor_id: text(raw, "/VendorRef/value"),
            vendor_name: text(raw, "/VendorRef/name"),
            doc_number: text(raw, "/DocNumber"),
            txn_date: date(raw, "TxnDate"),
            due_date: date(raw, "DueDate"),
            total_cents: cents(raw.get("TotalAmt")),
            balance_cents: cents(raw.get("Balance")),
            account_ids,
            account_names,
            issues: Vec::new(),
        };
        if bill.vendor_id.is_none() {
            bill.issues.push("missing_vendor".into());
        }
        if line_without_account || bill.account_ids.is_empty() {
            bill.issues.push("missing_account".into());
        }
        if bill.account_names.iter().any(|n| n.to_ascii_lowercase().contains("uncategori")) {
            bill.issues.push("uncategorised_account".into());
        }
        if bill.total_cents <= 0 {
            bill.issues.push("non_positive_amount".into());
        }
        bill
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invoice {
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub doc_number: Option<String>,
    pub txn_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub total_cents: i64,
    pub balance_cents: i64,
}

impl Invoice {
    pub fn from(raw: &Value) -> Self {
        Self {
            customer_id: text(raw, "/CustomerRef/value"),
            customer_name: text(raw, "/CustomerRef/name"),
            doc_number: text(raw, "/DocNumber"),
            txn_date: date(raw, "TxnDate"),
            due_date: date(raw, "DueDate"),
            total_cents: cents(raw.get("TotalAmt")),
            balance_cents: cents(raw.get("Balance")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub name: Option<String>,
    pub account_type: Option<String>,
    pub current_balance_cents: i64,
    pub active: bool,
}

impl Account {
    pub fn from(raw: &Value) -> Self {
        Self {
            name: text(raw, "/Name"),
            account_type: text(raw, "/AccountType"),
            current_balance_cents: cents(raw.get("CurrentBalance")),
            active: raw.get("Active").and_then(Value::as_bool).unwrap_or(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_clean_bill_has_no_issues_and_a_bad_one_has_each() {
        let clean = Bill::from(&json!({
            "VendorRef": {"value": "56", "name": "Bob's Burger Joint"}, "DocNumber": "B-1", "TxnDate": "2026-11-01", "DueDate": "2026-12-01",
            "TotalAmt": 103.55, "Balance": 103.55,
            "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "Amount": 103.55, "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7", "name": "Meals"}}}]
        }));
        assert_eq!((clean.total_cents, clean.balance_cents, clean.issues.len()), (10355, 10355, 0));
        assert_eq!(clean.due_date, NaiveDate::from_ymd_opt(2026, 12, 1));
        let bad = Bill::from(&json!({
            "TotalAmt": 0, "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "9", "name": "Uncategorized Expense"}}}, {"DetailType": "AccountBasedExpenseLineDetail"}]
        }));
        assert_eq!(bad.issues, ["missing_vendor", "missing_account", "uncategorised_account", "non_positive_amount"]);
    }

    #[test]
    fn invoices_and_accounts_read_their_fields() {
        let invoice = Invoice::from(&json!({"CustomerRef": {"value": "3", "name": "Amy"}, "TotalAmt": 10.0, "Balance": 2.5, "DueDate": "2026-01-31"}));
        assert_eq!((invoice.balance_cents, invoice.customer_name.as_deref()), (250, Some("Amy")));
        let account = Account::from(&json!({"Name": "Checking", "AccountType": "Bank", "CurrentBalance": -12.34, "Active": true}));
        assert_eq!((account.current_balance_cents, account.account_type.as_deref()), (-1234, Some("Bank")));
    }
}
