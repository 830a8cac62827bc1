//! One company (realm): its entities per type, each type with its own `Id` sequence as in QBO,
//! and the responses remembered per `requestid`.
//!
//! Every mutation goes through here so that it bumps `SyncToken` and `LastUpdatedTime` (which
//! never moves backwards) and yields exactly one [`Change`], which the caller turns into a
//! webhook notification.

use std::collections::{BTreeMap, HashMap, VecDeque};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{
    error::Fault,
    model::{Entity, EntityKind, Record},
};

/// `requestid`s remembered per realm; the oldest are forgotten first.
const MAX_REQUEST_IDS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// CloudEvents spell it in the type: `qbo.bill.created.v1`.
    pub fn past_tense(self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Update => "updated",
            Self::Delete => "deleted",
        }
    }
}

/// One change to one entity, as webhooks report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub realm_id: String,
    pub entity: EntityKind,
    pub id: String,
    pub operation: Operation,
    /// `LastUpdatedTime` after the change.
    #[serde(rename = "lastUpdated")]
    pub at: DateTime<Utc>,
    pub sync_token: String,
}

#[derive(Debug, Default)]
pub struct Table {
    pub records: BTreeMap<u64, Record>,
    next_id: u64,
}

/// A response stored under its `requestid`, returned again verbatim on a repeat.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub body: Value,
    /// `Fault.Error[0].code` when the stored answer is a fault.
    pub fault_code: Option<String>,
}

#[derive(Debug, Default)]
struct RequestIds {
    responses: HashMap<String, StoredResponse>,
    order: VecDeque<String>,
}

#[derive(Debug)]
pub struct Realm {
    pub id: String,
    pub company_name: String,
    tables: [Table; 5],
    request_ids: RequestIds,
}

#[derive(Debug, Default, Serialize)]
pub struct KindCounts {
    pub active: usize,
    pub deleted: usize,
}

impl Realm {
    pub fn new(id: impl Into<String>, company_name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            company_name: company_name.into(),
            tables: Default::default(),
            request_ids: RequestIds::default(),
        }
    }

    pub fn table(&self, kind: EntityKind) -> &Table {
        &self.tables[kind.index()]
    }

    /// Active or deleted.
    pub fn get(&self, kind: EntityKind, id: u64) -> Option<&Record> {
        self.table(kind).records.get(&id)
    }

    pub fn active(&self, kind: EntityKind) -> impl Iterator<Item = &Record> {
        self.table(kind).records.values().filter(|r| !r.deleted)
    }

    /// Inserts a generated record as is (seeding), keeping the `Id` sequence ahead of it.
    pub fn insert_seeded(&mut self, record: Record) {
        let table = &mut self.tables[record.body.kind().index()];
        table.next_id = table.next_id.max(record.id);
        table.records.insert(record.id, record);
    }

    /// The next `Id` a create of `kind` would get.
    pub fn next_id(&self, kind: EntityKind) -> u64 {
        self.table(kind).next_id + 1
    }

    pub fn create(&mut self, mut body: Entity, now: DateTime<Utc>) -> (&Record, Change) {
        body.normalize(None);
        let kind = body.kind();
        let table = &mut self.tables[kind.index()];
        table.next_id += 1;
        let id = table.next_id;
        let record = Record {
            id,
            sync_token: 0,
            created: now,
            updated: now,
            deleted: false,
            body,
        };
        let change = change_of(&self.id, &record, Operation::Create);
        let record = self.tables[kind.index()]
            .records
            .entry(id)
            .or_insert(record);
        (record, change)
    }

    /// Replaces the body of an active entity. `sync_token: None` skips the check (changes made
    /// "inside QuickBooks" by `/control`); a stale token is Fault 5010.
    pub fn update(
        &mut self,
        kind: EntityKind,
        id: u64,
        sync_token: Option<u64>,
        now: DateTime<Utc>,
        edit: impl FnOnce(&Entity) -> Result<Entity, Fault>,
    ) -> Result<(&Record, Change), Fault> {
        let record = live_mut(&mut self.tables, kind, id, sync_token)?;
        let body = edit(&record.body)?;
        record.body = body;
        record.sync_token += 1;
        record.updated = record.updated.max(now);
        let change = change_of(&self.id, record, Operation::Update);
        Ok((&*record, change))
    }

    /// Turns an active transaction into a tombstone.
    pub fn delete(
        &mut self,
        kind: EntityKind,
        id: u64,
        sync_token: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Change, Fault> {
        if !kind.deletable() {
            return Err(Fault::validation(
                "6000",
                "A business validation error has occurred while processing your request",
                format!(
                    "Business Validation Error: {} cannot be deleted; make it inactive.",
                    kind.name()
                ),
            ));
        }
        let record = live_mut(&mut self.tables, kind, id, sync_token)?;
        record.deleted = true;
        record.sync_token += 1;
        record.updated = record.updated.max(now);
        Ok(change_of(&self.id, record, Operation::Delete))
    }

    pub fn counts(&self) -> BTreeMap<&'static str, KindCounts> {
        EntityKind::ALL
            .into_iter()
            .map(|kind| {
                let mut counts = KindCounts::default();
                for r in self.table(kind).records.values() {
                    if r.deleted {
                        counts.deleted += 1;
                    } else {
                        counts.active += 1;
                    }
                }
                (kind.name(), counts)
            })
            .collect()
    }

    pub fn stored_response(&self, request_id: &str) -> Option<&StoredResponse> {
        self.request_ids.responses.get(request_id)
    }

    pub fn store_response(&mut self, request_id: String, response: StoredResponse) {
        let ids = &mut self.request_ids;
        while ids.order.len() >= MAX_REQUEST_IDS {
            if let Some(old) = ids.order.pop_front() {
                ids.responses.remove(&old);
            }
        }
        if ids.responses.insert(request_id.clone(), response).is_none() {
            ids.order.push_back(request_id);
        }
    }
}

fn live_mut(
    tables: &mut [Table; 5],
    kind: EntityKind,
    id: u64,
    sync_token: Option<u64>,
) -> Result<&mut Record, Fault> {
    let record = tables[kind.index()]
        .records
        .get_mut(&id)
        .filter(|r| !r.deleted)
        .ok_or_else(|| Fault::not_found(kind.name(), &id.to_string()))?;
    if sync_token.is_some_and(|t| t != record.sync_token) {
        return Err(Fault::stale_object());
    }
    Ok(record)
}

fn change_of(realm_id: &str, record: &Record, operation: Operation) -> Change {
    Change {
        realm_id: realm_id.to_owned(),
        entity: record.body.kind(),
        id: record.id.to_string(),
        operation,
        at: record.updated,
        sync_token: record.sync_token.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::Map;

    use super::*;
    use crate::model::Party;

    fn vendor(name: &str) -> Entity {
        Entity::Vendor(Party {
            display_name: name.to_owned().into(),
            active: true,
            balance: 0.0,
            extra: Map::new(),
        })
    }

    #[test]
    fn sync_token_guards_updates_and_time_never_goes_back() {
        let mut realm = Realm::new("1", "Co");
        let now = Utc::now();
        let (record, change) = realm.create(vendor("a"), now);
        assert_eq!((record.id, record.sync_token), (1, 0));
        assert_eq!(change.operation, Operation::Create);
        let earlier = now - TimeDelta::hours(1);
        let (record, _) = realm
            .update(EntityKind::Vendor, 1, Some(0), earlier, |_| Ok(vendor("b")))
            .unwrap();
        assert_eq!((record.sync_token, record.updated), (1, now));
        let stale = realm
            .update(EntityKind::Vendor, 1, Some(0), now, |_| Ok(vendor("c")))
            .unwrap_err();
        assert_eq!(stale.error.code, "5010");
        assert!(realm.delete(EntityKind::Vendor, 1, Some(1), now).is_err());
    }
}
