//! Deterministic companies: the same spec and seed give the same realms, ids, amounts, dates and
//! data-quality issues (the hygiene tray's cases: missing vendor, missing or uncategorised
//! account, duplicate doc numbers, overdue, zero and negative amounts). Timestamps are relative to
//! `asOf` (default: the simulated now).

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use serde_json::Map;

use crate::{
    clock::SimClock,
    documents::{CHART, COMPANIES, CUSTOMERS, Context, VENDORS, bill, invoice, settle, text},
    model::{Account, Entity, EntityKind, Party, Record, Text, money},
    realm::Realm,
};

pub const DEFAULT_FIRST_REALM_ID: u64 = 9_130_350_000_000_001;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSpec {
    /// How many realms (ignored when `realmIds` is given).
    #[serde(default = "one")]
    pub realms: usize,
    pub realm_ids: Option<Vec<String>>,
    pub first_realm_id: Option<u64>,
    /// Bills plus invoices per realm.
    #[serde(default)]
    pub documents_per_realm: usize,
    #[serde(default)]
    pub seed: u64,
    /// Documents were created within this many days before `asOf`.
    pub span_days: Option<u32>,
    /// Share of bills with a data-quality issue, 0..=100 (default 5).
    pub issue_percent: Option<f64>,
    /// Share of documents that are bills, 0..=100 (default 60).
    pub bill_percent: Option<f64>,
    /// Share of documents that are deleted (tombstones), 0..=100 (default 1).
    pub deleted_percent: Option<f64>,
    pub as_of: Option<DateTime<Utc>>,
}

fn one() -> usize {
    1
}

impl SeedSpec {
    pub fn realm_ids(&self) -> Vec<String> {
        match &self.realm_ids {
            Some(ids) => ids.clone(),
            None => {
                let first = self.first_realm_id.unwrap_or(DEFAULT_FIRST_REALM_ID);
                (0..self.realms as u64)
                    .map(|i| (first + i).to_string())
                    .collect()
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let percent = |name: &str, v: Option<f64>| match v {
            Some(v) if !(0.0..=100.0).contains(&v) => Err(format!("{name} must be 0..=100")),
            _ => Ok(()),
        };
        percent("issuePercent", self.issue_percent)?;
        percent("billPercent", self.bill_percent)?;
        percent("deletedPercent", self.deleted_percent)?;
        if self.documents_per_realm > 1_000_000 {
            return Err("documentsPerRealm must be at most 1,000,000".into());
        }
        if self.realm_ids().is_empty() {
            return Err("no realms to seed".into());
        }
        Ok(())
    }
}

/// Generates one realm; `index` keeps realms of one seed different from each other.
pub fn generate(
    spec: &SeedSpec,
    realm_id: &str,
    index: usize,
    clock: &SimClock,
    as_of: DateTime<Utc>,
) -> Realm {
    let mut rng =
        StdRng::seed_from_u64(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
    let company = format!("{} #{}", COMPANIES[index % COMPANIES.len()], index + 1);
    let mut realm = Realm::new(realm_id, company);
    let span_secs = i64::from(spec.span_days.unwrap_or(90).max(1)) * 86_400;
    // Names and accounts predate every document.
    let base = as_of - TimeDelta::seconds(span_secs + 86_400);
    for (id, name, ty, sub, class) in CHART {
        let account = Account {
            name: text(name),
            account_type: text(ty),
            account_sub_type: Some(text(sub)),
            classification: Some(text(class)),
            current_balance: 0.0,
            current_balance_with_sub_accounts: 0.0,
            active: true,
            extra: Map::new(),
        };
        realm.insert_seeded(record(id, Entity::Account(account), base));
    }
    let parties = (10 + spec.documents_per_realm / 100).min(200);
    for n in 0..parties {
        let (v, c) = (VENDORS[n % VENDORS.len()], CUSTOMERS[n % CUSTOMERS.len()]);
        let vendor = party(format!("{v} {}", n / VENDORS.len() + 1));
        let customer = party(format!("{c} {}", n / CUSTOMERS.len() + 1));
        realm.insert_seeded(record(n as u64 + 1, Entity::Vendor(vendor), base));
        realm.insert_seeded(record(n as u64 + 1, Entity::Customer(customer), base));
    }
    let (ap, ar) = documents(&mut realm, spec, &mut rng, clock, as_of, span_secs);
    let balances = [
        (1, money(rng.random_range(5_000.0..400_000.0))),
        (2, money(rng.random_range(0.0..150_000.0))),
        (3, money(ap)),
        (4, money(ar)),
    ];
    for (id, balance) in balances {
        let _ = realm.update(EntityKind::Account, id, None, base, |e| {
            let mut e = e.clone();
            if let Entity::Account(a) = &mut e {
                a.current_balance = balance;
                a.current_balance_with_sub_accounts = balance;
            }
            Ok(e)
        });
    }
    realm
}

fn record(id: u64, body: Entity, created: DateTime<Utc>) -> Record {
    Record {
        id,
        sync_token: 0,
        created,
        updated: created,
        deleted: false,
        body,
    }
}

fn party(name: String) -> Party {
    Party {
        display_name: Text::Owned(name),
        active: true,
        balance: 0.0,
        extra: Map::new(),
    }
}

/// The bills and invoices, some paid, some edited since, some deleted: returns the open AP and
/// AR totals.
fn documents(
    realm: &mut Realm,
    spec: &SeedSpec,
    rng: &mut StdRng,
    clock: &SimClock,
    as_of: DateTime<Utc>,
    span_secs: i64,
) -> (f64, f64) {
    let ctx = Context::of(realm, spec.issue_percent.unwrap_or(5.0));
    let today = as_of.with_timezone(&clock.zone()).date_naive();
    let bill_share = spec.bill_percent.unwrap_or(60.0) / 100.0;
    let deleted_share = spec.deleted_percent.unwrap_or(1.0) / 100.0;
    let (mut bills, mut invoices, mut ap, mut ar) = (0u64, 0u64, 0.0, 0.0);
    for _ in 0..spec.documents_per_realm {
        let created = as_of - TimeDelta::seconds(rng.random_range(86_400..=span_secs.max(86_401)));
        let (id, mut body) = if rng.random::<f64>() < bill_share {
            bills += 1;
            let doc_number = format!("B-{bills:05}");
            (
                bills,
                Entity::Bill(bill(rng, &ctx, doc_number, clock, created)),
            )
        } else {
            invoices += 1;
            let doc_number = 1000 + invoices;
            (
                invoices,
                Entity::Invoice(invoice(rng, &ctx, doc_number, clock, created)),
            )
        };
        let deleted = rng.random::<f64>() < deleted_share;
        let balance = match &mut body {
            Entity::Bill(b) => {
                b.balance = settle(rng, b.total_amt, b.due_date.is_some_and(|d| d < today));
                b.balance
            }
            Entity::Invoice(i) => {
                i.balance = settle(rng, i.total_amt, i.due_date.is_some_and(|d| d < today));
                i.balance
            }
            _ => 0.0,
        };
        match (&body, deleted) {
            (Entity::Bill(_), false) => ap += balance,
            (Entity::Invoice(_), false) => ar += balance,
            _ => {}
        }
        let mut rec = record(id, body, created);
        if deleted || rng.random_bool(0.5) {
            let age = (as_of - created).num_seconds().max(1);
            rec.updated = created + TimeDelta::seconds(rng.random_range(0..age));
            rec.sync_token = rng.random_range(1..=4);
        }
        rec.deleted = deleted;
        realm.insert_seeded(rec);
    }
    (ap, ar)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Bill;

    fn spec(seed: u64) -> SeedSpec {
        serde_json::from_value(json!({"documentsPerRealm": 500, "seed": seed, "issuePercent": 20}))
            .unwrap()
    }

    #[test]
    fn same_seed_same_realm() {
        let clock = SimClock::wall();
        let as_of = Utc::now();
        let a = generate(&spec(7), "1", 0, &clock, as_of);
        let b = generate(&spec(7), "1", 0, &clock, as_of);
        let c = generate(&spec(8), "1", 0, &clock, as_of);
        let bills = |r: &Realm| -> Vec<f64> {
            r.active(EntityKind::Bill)
                .map(|r| match &r.body {
                    Entity::Bill(b) => b.total_amt,
                    _ => 0.0,
                })
                .collect()
        };
        assert_eq!(bills(&a), bills(&b));
        assert_ne!(bills(&a), bills(&c));
        let counts = a.counts();
        let docs = ["Bill", "Invoice"]
            .iter()
            .map(|k| counts[k].active + counts[k].deleted)
            .sum::<usize>();
        assert_eq!(docs, 500);
        assert_eq!(counts["Account"].active, 12);
    }

    #[test]
    fn some_bills_carry_hygiene_issues() {
        let realm = generate(&spec(1), "1", 0, &SimClock::wall(), Utc::now());
        let bills: Vec<&Bill> = realm
            .active(EntityKind::Bill)
            .filter_map(|r| match &r.body {
                Entity::Bill(b) => Some(b),
                _ => None,
            })
            .collect();
        assert!(bills.iter().any(|b| b.vendor_ref.is_none()));
        assert!(bills.iter().any(|b| b.total_amt == 0.0));
        assert!(bills.iter().any(|b| b.total_amt < 0.0));
        assert!(
            bills
                .iter()
                .any(|b| b.line[0].account_based_expense_line_detail.is_none())
        );
    }
}
