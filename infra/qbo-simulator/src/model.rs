//! The QBO entities the advisor views need, spelled as the real API spells them.
//!
//! Bodies are typed (compact enough for 100 realms × 5,000 documents in memory); fields the
//! simulator does not model are kept in `extra` and echoed back, as QBO keeps what it stores.
//! `Id`, `SyncToken`, `MetaData`, `domain` and `sparse` live on [`Record`], not in the body.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::SimClock;

/// Seeded strings borrow from static tables; strings from requests are owned.
pub type Text = Cow<'static, str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    Bill,
    Invoice,
    Account,
    Vendor,
    Customer,
}

impl EntityKind {
    pub const ALL: [Self; 5] = [
        Self::Bill,
        Self::Invoice,
        Self::Account,
        Self::Vendor,
        Self::Customer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Bill => "Bill",
            Self::Invoice => "Invoice",
            Self::Account => "Account",
            Self::Vendor => "Vendor",
            Self::Customer => "Customer",
        }
    }

    /// Entity names are case-insensitive in queries, CDC lists and URLs (`/bill`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Transactions can be deleted; names and accounts are only made inactive.
    pub fn deletable(self) -> bool {
        matches!(self, Self::Bill | Self::Invoice)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    pub value: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

impl Ref {
    pub fn new(value: impl Into<Text>, name: impl Into<Text>) -> Self {
        Self {
            value: value.into(),
            name: Some(name.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountBasedExpenseLineDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<Ref>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text>,
    #[serde(default)]
    pub amount: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    pub detail_type: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_based_expense_line_detail: Option<AccountBasedExpenseLineDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_item_line_detail: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bill {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_number: Option<Text>,
    #[serde(default)]
    pub total_amt: f64,
    #[serde(default)]
    pub balance: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_ref: Option<Ref>,
    #[serde(default)]
    pub line: Vec<Line>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_number: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    #[serde(default)]
    pub total_amt: f64,
    #[serde(default)]
    pub balance: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_status: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_ref: Option<Ref>,
    #[serde(default)]
    pub line: Vec<Line>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub name: Text,
    pub account_type: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sub_type: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Text>,
    #[serde(default)]
    pub current_balance: f64,
    #[serde(default)]
    pub current_balance_with_sub_accounts: f64,
    #[serde(default = "active")]
    pub active: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Vendors and customers share a shape here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Party {
    pub display_name: Text,
    #[serde(default = "active")]
    pub active: bool,
    #[serde(default)]
    pub balance: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn active() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Bill(Bill),
    Invoice(Invoice),
    Account(Account),
    Vendor(Party),
    Customer(Party),
}

impl Entity {
    pub fn kind(&self) -> EntityKind {
        match self {
            Self::Bill(_) => EntityKind::Bill,
            Self::Invoice(_) => EntityKind::Invoice,
            Self::Account(_) => EntityKind::Account,
            Self::Vendor(_) => EntityKind::Vendor,
            Self::Customer(_) => EntityKind::Customer,
        }
    }

    /// The body's fields (no `Id`, `SyncToken`, `MetaData`).
    pub fn to_map(&self) -> Map<String, Value> {
        let value = match self {
            Self::Bill(b) => serde_json::to_value(b),
            Self::Invoice(i) => serde_json::to_value(i),
            Self::Account(a) => serde_json::to_value(a),
            Self::Vendor(p) | Self::Customer(p) => serde_json::to_value(p),
        };
        match value {
            Ok(Value::Object(map)) => map,
            // Plain structs of strings and numbers always serialize to an object.
            _ => Map::new(),
        }
    }

    pub fn from_map(kind: EntityKind, map: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let value = Value::Object(map);
        Ok(match kind {
            EntityKind::Bill => Self::Bill(serde_json::from_value(value)?),
            EntityKind::Invoice => Self::Invoice(serde_json::from_value(value)?),
            EntityKind::Account => Self::Account(serde_json::from_value(value)?),
            EntityKind::Vendor => Self::Vendor(serde_json::from_value(value)?),
            EntityKind::Customer => Self::Customer(serde_json::from_value(value)?),
        })
    }

    /// What QBO computes itself: `TotalAmt` is the sum of the lines; a new transaction is
    /// unpaid (`Balance` = `TotalAmt`); an update moves `Balance` by the change of `TotalAmt`.
    pub fn normalize(&mut self, previous: Option<&Entity>) {
        fn fix(total: &mut f64, balance: &mut f64, lines: &[Line], previous: Option<(f64, f64)>) {
            if !lines.is_empty() {
                *total = money(lines.iter().map(|l| l.amount).sum());
            }
            *balance = match previous {
                None => *total,
                Some((old_total, old_balance)) => money(old_balance + (*total - old_total)),
            };
        }
        match (self, previous) {
            (Self::Bill(b), prev) => {
                let prev = match prev {
                    Some(Self::Bill(p)) => Some((p.total_amt, p.balance)),
                    _ => None,
                };
                fix(&mut b.total_amt, &mut b.balance, &b.line, prev);
            }
            (Self::Invoice(i), prev) => {
                let prev = match prev {
                    Some(Self::Invoice(p)) => Some((p.total_amt, p.balance)),
                    _ => None,
                };
                fix(&mut i.total_amt, &mut i.balance, &i.line, prev);
            }
            _ => {}
        }
    }
}

/// Rounds to cents.
pub fn money(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// One stored entity; a deleted one stays as a tombstone so CDC can report it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub sync_token: u64,
    pub created: DateTime<Utc>,
    /// For a tombstone: when it was deleted.
    pub updated: DateTime<Utc>,
    pub deleted: bool,
    pub body: Entity,
}

impl Record {
    /// The full payload, or the `{"status":"Deleted",...}` stub of a tombstone.
    pub fn to_json(&self, clock: &SimClock) -> Value {
        if self.deleted {
            return json!({
                "status": "Deleted",
                "domain": "QBO",
                "Id": self.id.to_string(),
                "MetaData": {"LastUpdatedTime": clock.format(self.updated)},
            });
        }
        let mut map = self.body.to_map();
        map.insert("Id".into(), Value::String(self.id.to_string()));
        map.insert(
            "SyncToken".into(),
            Value::String(self.sync_token.to_string()),
        );
        map.insert("domain".into(), Value::String("QBO".into()));
        map.insert("sparse".into(), Value::Bool(false));
        map.insert(
            "MetaData".into(),
            json!({
                "CreateTime": clock.format(self.created),
                "LastUpdatedTime": clock.format(self.updated),
            }),
        );
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn bill_round_trips_with_unknown_fields_and_computed_totals() {
        let request = json!({
            "VendorRef": {"value": "3", "name": "Acme"},
            "DueDate": "2026-07-01",
            "PrivateNote": "kept as is",
            "Line": [
                {"Amount": 100.25, "DetailType": "AccountBasedExpenseLineDetail",
                 "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}}},
                {"Amount": 50, "DetailType": "AccountBasedExpenseLineDetail"}
            ]
        });
        let Value::Object(map) = request else {
            unreachable!()
        };
        let mut entity = Entity::from_map(EntityKind::Bill, map).unwrap();
        entity.normalize(None);
        let Entity::Bill(bill) = &entity else {
            unreachable!()
        };
        assert_eq!((bill.total_amt, bill.balance), (150.25, 150.25));
        let record = Record {
            id: 63,
            sync_token: 2,
            created: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
            updated: Utc.with_ymd_and_hms(2026, 6, 2, 12, 0, 0).unwrap(),
            deleted: false,
            body: entity,
        };
        let json = record.to_json(&SimClock::wall());
        assert_eq!(json["Id"], "63");
        assert_eq!(json["SyncToken"], "2");
        assert_eq!(json["PrivateNote"], "kept as is");
        assert_eq!(
            json["MetaData"]["LastUpdatedTime"],
            "2026-06-02T05:00:00-07:00"
        );
        assert_eq!(
            json["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"],
            "7"
        );
    }

    #[test]
    fn tombstone_is_the_deleted_stub() {
        let record = Record {
            id: 9,
            sync_token: 0,
            created: Utc::now(),
            updated: Utc.with_ymd_and_hms(2026, 6, 2, 12, 0, 0).unwrap(),
            deleted: true,
            body: Entity::Vendor(Party {
                display_name: "x".into(),
                active: true,
                balance: 0.0,
                extra: Map::new(),
            }),
        };
        let json = record.to_json(&SimClock::wall());
        assert_eq!(json["status"], "Deleted");
        assert_eq!(json.as_object().unwrap().len(), 4);
    }
}
