//! The documents seeded and `/control` changes are made of: a fixed chart of accounts, vendor
//! and customer names, and generated bills and invoices, some with the hygiene tray's issues.

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, rngs::StdRng};
use serde_json::{Map, json};

use crate::{
    clock::SimClock,
    model::{
        AccountBasedExpenseLineDetail, Bill, Entity, EntityKind, Invoice, Line, Ref, Text, money,
    },
    realm::Realm,
};

pub const COMPANIES: [&str; 8] = [
    "Craig's Design and Landscaping",
    "Bayside Bakery",
    "Northwind Dental",
    "Summit Outfitters",
    "Harbor Logistics",
    "Maple Street Clinic",
    "Redwood Brewing",
    "Lakeview Architects",
];
pub const VENDORS: [&str; 12] = [
    "Brosnahan Insurance Agency",
    "Cal Telephone",
    "Computers by Jenni",
    "Diego's Road Warrior",
    "Ellis Equipment Rental",
    "Hicks Hardware",
    "Lee Advertising",
    "Norton Lumber",
    "PG&E",
    "Robertson & Associates",
    "Tania's Nursery",
    "Tim Philip Masonry",
];
pub const CUSTOMERS: [&str; 10] = [
    "Amy's Bird Sanctuary",
    "Bill's Windsurf Shop",
    "Cool Cars",
    "Diego Rodriguez",
    "Dukes Basketball Camp",
    "Freeman Sporting Goods",
    "Geeta Kalapatapu",
    "Jeff's Jalopies",
    "Kookies by Kathy",
    "Mark Cho",
];
const DESCRIPTIONS: [&str; 6] = [
    "Monthly service",
    "Materials",
    "Equipment rental",
    "Consulting",
    "Repairs",
    "Supplies",
];
/// Id, name, type, subtype, classification; ids 5..=9 are expense accounts, 10 uncategorised.
pub const CHART: [(u64, &str, &str, &str, &str); 12] = [
    (1, "Checking", "Bank", "Checking", "Asset"),
    (2, "Savings", "Bank", "Savings", "Asset"),
    (
        3,
        "Accounts Payable (A/P)",
        "Accounts Payable",
        "AccountsPayable",
        "Liability",
    ),
    (
        4,
        "Accounts Receivable (A/R)",
        "Accounts Receivable",
        "AccountsReceivable",
        "Asset",
    ),
    (
        5,
        "Office Supplies",
        "Expense",
        "OfficeGeneralAdministrativeExpenses",
        "Expense",
    ),
    (
        6,
        "Rent or Lease",
        "Expense",
        "RentOrLeaseOfBuildings",
        "Expense",
    ),
    (7, "Utilities", "Expense", "Utilities", "Expense"),
    (
        8,
        "Legal & Professional Fees",
        "Expense",
        "LegalProfessionalFees",
        "Expense",
    ),
    (
        9,
        "Cost of Goods Sold",
        "Cost of Goods Sold",
        "SuppliesMaterialsCogs",
        "Expense",
    ),
    (
        10,
        "Uncategorized Expense",
        "Expense",
        "OtherMiscellaneousServiceCost",
        "Expense",
    ),
    (11, "Sales", "Income", "SalesOfProductIncome", "Revenue"),
    (12, "Visa", "Credit Card", "CreditCard", "Liability"),
];

/// What generated documents refer to in their realm.
#[derive(Debug, Clone)]
pub struct Context {
    pub vendors: Vec<Ref>,
    pub customers: Vec<Ref>,
    pub expense_accounts: Vec<Ref>,
    pub uncategorized: Ref,
    pub issue_percent: f64,
}

impl Context {
    /// From a realm's current vendors, customers and accounts.
    pub fn of(realm: &Realm, issue_percent: f64) -> Self {
        let refs = |kind| -> Vec<(u64, Ref)> {
            realm
                .active(kind)
                .filter_map(|r| {
                    let name = match &r.body {
                        Entity::Vendor(p) | Entity::Customer(p) => p.display_name.clone(),
                        Entity::Account(a) => a.name.clone(),
                        _ => return None,
                    };
                    Some((r.id, Ref::new(r.id.to_string(), name)))
                })
                .collect()
        };
        let accounts = refs(EntityKind::Account);
        let find = |id: u64| {
            accounts
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, r)| r.clone())
        };
        Self {
            vendors: refs(EntityKind::Vendor)
                .into_iter()
                .map(|(_, r)| r)
                .collect(),
            customers: refs(EntityKind::Customer)
                .into_iter()
                .map(|(_, r)| r)
                .collect(),
            expense_accounts: (5..=9).filter_map(find).collect(),
            uncategorized: find(10).unwrap_or_else(|| Ref::new("10", "Uncategorized Expense")),
            issue_percent,
        }
    }
}

pub fn text(s: &'static str) -> Text {
    Cow::Borrowed(s)
}

pub fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

/// A bill created on `txn_day` (in the company's zone); `doc_number` as given.
pub fn bill(
    rng: &mut StdRng,
    ctx: &Context,
    doc_number: String,
    clock: &SimClock,
    at: DateTime<Utc>,
) -> Bill {
    let txn_date = at.with_timezone(&clock.zone()).date_naive();
    let terms = [15, 30, 30, 45, 60][rng.random_range(0..5)];
    let mut vendor = pick(rng, &ctx.vendors);
    let mut doc_number = Some(Text::Owned(doc_number));
    let lines: usize = rng.random_range(1..=3);
    let mut line: Vec<Line> = (1..=lines)
        .map(|n| Line {
            id: Some(text(["1", "2", "3"][n - 1])),
            amount: money(rng.random_range(25.0..8_000.0)),
            description: pick(rng, &DESCRIPTIONS).map(text),
            detail_type: text("AccountBasedExpenseLineDetail"),
            account_based_expense_line_detail: Some(AccountBasedExpenseLineDetail {
                account_ref: pick(rng, &ctx.expense_accounts),
            }),
            sales_item_line_detail: None,
        })
        .collect();
    if rng.random::<f64>() * 100.0 < ctx.issue_percent {
        match rng.random_range(0..6) {
            0 => vendor = None,
            1 => line[0].account_based_expense_line_detail = None,
            2 => {
                line[0].account_based_expense_line_detail = Some(AccountBasedExpenseLineDetail {
                    account_ref: Some(ctx.uncategorized.clone()),
                })
            }
            // A duplicate of an earlier document number (the caller numbers bills densely).
            3 => doc_number = Some(Text::Owned(format!("B-{:05}", rng.random_range(1..=50)))),
            4 => line.iter_mut().for_each(|l| l.amount = 0.0),
            _ => line[0].amount = -line.iter().map(|l| l.amount).sum::<f64>() - 10.0,
        }
    }
    let total = money(line.iter().map(|l| l.amount).sum());
    Bill {
        vendor_ref: vendor,
        txn_date: Some(txn_date),
        due_date: Some(txn_date + TimeDelta::days(terms)),
        doc_number,
        total_amt: total,
        balance: total,
        currency_ref: Some(Ref::new(text("USD"), text("United States Dollar"))),
        line,
        extra: Map::new(),
    }
}

pub fn invoice(
    rng: &mut StdRng,
    ctx: &Context,
    doc_number: u64,
    clock: &SimClock,
    at: DateTime<Utc>,
) -> Invoice {
    let txn_date = at.with_timezone(&clock.zone()).date_naive();
    let amount = money(rng.random_range(100.0..20_000.0));
    Invoice {
        customer_ref: pick(rng, &ctx.customers),
        doc_number: Some(Text::Owned(doc_number.to_string())),
        txn_date: Some(txn_date),
        due_date: Some(txn_date + TimeDelta::days([15, 30, 45][rng.random_range(0..3)])),
        total_amt: amount,
        balance: amount,
        email_status: Some(text(if rng.random_bool(0.7) {
            "EmailSent"
        } else {
            "NotSet"
        })),
        currency_ref: Some(Ref::new(text("USD"), text("United States Dollar"))),
        line: vec![Line {
            id: Some(text("1")),
            amount,
            description: pick(rng, &DESCRIPTIONS).map(text),
            detail_type: text("SalesItemLineDetail"),
            account_based_expense_line_detail: None,
            sales_item_line_detail: Some(json!({"ItemRef": {"value": "1", "name": "Services"}})),
        }],
        extra: Map::new(),
    }
}

/// Whether a document due on `due` is paid, part paid or open, given how old it is.
pub fn settle(rng: &mut StdRng, total: f64, overdue: bool) -> f64 {
    let paid = if overdue { 0.7 } else { 0.2 };
    let roll = rng.random::<f64>();
    if roll < paid {
        0.0
    } else if roll < paid + 0.1 {
        money(total / 2.0)
    } else {
        total
    }
}
