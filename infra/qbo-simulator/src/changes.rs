//! Changes made "inside QuickBooks" by `/control`: create, update and delete bills and invoices
//! as a bookkeeper would. Each bumps `SyncToken` and `LastUpdatedTime` and emits a webhook like
//! an API write. Deterministic for a given `seed` and realm state.

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::Deserialize;

use crate::{
    clock::SimClock,
    documents::{self, Context},
    model::{Entity, EntityKind, money},
    realm::{Change, Realm},
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeSpec {
    /// For `/control/changes`: these realms (default: every realm).
    pub realm_ids: Option<Vec<String>>,
    #[serde(default)]
    pub creates: usize,
    #[serde(default)]
    pub updates: usize,
    #[serde(default)]
    pub deletes: usize,
    /// `Bill` or `Invoice`; default: either, at random.
    pub entity: Option<String>,
    pub seed: Option<u64>,
    /// Share of created bills with a hygiene issue, 0..=100 (default 5).
    pub issue_percent: Option<f64>,
}

impl ChangeSpec {
    pub fn kinds(&self) -> Result<Vec<EntityKind>, String> {
        match &self.entity {
            None => Ok(vec![EntityKind::Bill, EntityKind::Invoice]),
            Some(name) => match EntityKind::parse(name) {
                Some(kind) if kind.deletable() => Ok(vec![kind]),
                _ => Err(format!("entity must be Bill or Invoice, not {name:?}")),
            },
        }
    }

    /// The RNG for one realm: its own seed when given, else one drawn from `fallback`.
    pub fn rng(&self, realm_index: usize, fallback: &mut StdRng) -> StdRng {
        match self.seed {
            Some(seed) => {
                StdRng::seed_from_u64(seed ^ (realm_index as u64).wrapping_mul(0x9E37_79B9))
            }
            None => StdRng::seed_from_u64(fallback.random()),
        }
    }
}

/// Applies `spec` to one realm: creates, then updates, then deletes.
pub fn apply(
    realm: &mut Realm,
    spec: &ChangeSpec,
    kinds: &[EntityKind],
    rng: &mut StdRng,
    clock: &SimClock,
) -> Vec<Change> {
    let now = clock.now_millis();
    let ctx = Context::of(realm, spec.issue_percent.unwrap_or(5.0));
    let mut changes = Vec::with_capacity(spec.creates + spec.updates + spec.deletes);
    for _ in 0..spec.creates {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let n = realm.next_id(kind);
        let body = match kind {
            EntityKind::Bill => {
                Entity::Bill(documents::bill(rng, &ctx, format!("B-{n:05}"), clock, now))
            }
            _ => Entity::Invoice(documents::invoice(rng, &ctx, 1000 + n, clock, now)),
        };
        changes.push(realm.create(body, now).1);
    }
    let mut live: Vec<(EntityKind, u64)> = kinds
        .iter()
        .flat_map(|&k| realm.active(k).map(move |r| (k, r.id)))
        .collect();
    live.shuffle(rng);
    for (kind, id) in live.iter().take(spec.updates) {
        let roll = rng.random_range(0..4);
        let shift = rng.random_range(-10..=20);
        let factor = rng.random_range(0.5..1.5);
        let edited = realm.update(*kind, *id, None, now, |old| {
            Ok(edit(old.clone(), roll, shift, factor))
        });
        changes.extend(edited.ok().map(|(_, c)| c));
    }
    let start = spec.updates.min(live.len());
    for (kind, id) in live.iter().skip(start).take(spec.deletes) {
        changes.extend(realm.delete(*kind, *id, None, now).ok());
    }
    changes
}

/// One bookkeeping edit: pay in full, pay half, move the due date, or change the amount.
fn edit(mut entity: Entity, roll: u32, shift: i64, factor: f64) -> Entity {
    let (total, balance, due, lines) = match &mut entity {
        Entity::Bill(b) => (
            &mut b.total_amt,
            &mut b.balance,
            &mut b.due_date,
            &mut b.line,
        ),
        Entity::Invoice(i) => (
            &mut i.total_amt,
            &mut i.balance,
            &mut i.due_date,
            &mut i.line,
        ),
        _ => return entity,
    };
    match roll {
        0 => *balance = 0.0,
        1 => *balance = money(*balance / 2.0),
        2 => *due = due.map(|d| d + TimeDelta::days(shift)),
        _ => {
            if let Some(line) = lines.first_mut() {
                let before = *total;
                line.amount = money(line.amount * factor);
                *total = money(lines.iter().map(|l| l.amount).sum());
                *balance = money(*balance + (*total - before));
            }
        }
    }
    entity
}

/// When the most recent change in a realm happened (for `/control/realms`).
pub fn last_change(realm: &Realm) -> Option<DateTime<Utc>> {
    EntityKind::ALL
        .iter()
        .flat_map(|&k| realm.table(k).records.values().map(|r| r.updated))
        .max()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::seed::{self, SeedSpec};

    #[test]
    fn creates_updates_and_deletes_with_one_change_each() {
        let clock = SimClock::wall();
        let seed: SeedSpec = serde_json::from_value(json!({"documentsPerRealm": 50})).unwrap();
        let mut realm = seed::generate(&seed, "1", 0, &clock, clock.now());
        let before = realm.counts();
        let spec: ChangeSpec = serde_json::from_value(
            json!({"creates": 3, "updates": 4, "deletes": 2, "entity": "Bill", "seed": 1}),
        )
        .unwrap();
        let kinds = spec.kinds().unwrap();
        let mut rng = spec.rng(0, &mut StdRng::seed_from_u64(0));
        let changes = apply(&mut realm, &spec, &kinds, &mut rng, &clock);
        assert_eq!(changes.len(), 9);
        let after = realm.counts();
        assert_eq!(after["Bill"].active, before["Bill"].active + 3 - 2);
        assert_eq!(after["Bill"].deleted, before["Bill"].deleted + 2);
        assert!(changes.iter().all(|c| c.entity == EntityKind::Bill));
        let bad: ChangeSpec = serde_json::from_value(json!({"entity": "Account"})).unwrap();
        assert!(bad.kinds().is_err());
    }
}
