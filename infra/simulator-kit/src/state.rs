//! What a simulator's state holds for the kit ([`Core`]: faults, their RNG and the ledger) and
//! what it tells the kit ([`Simulated`]: how its API renders an injected answer, what its ledger
//! entries and `/control/stats` add, how it resets).

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, MutexGuard},
};

use axum::{http::StatusCode, response::Response};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::Value;

use crate::{
    faults::{FaultKind, Faults},
    ledger::{Ledger, LedgerEntry, Tally},
    middleware::Call,
};

/// Locks, carrying on after a panic elsewhere left the data behind (plain data, still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The faults, the seeded RNG that rolls their probabilities, and the ledger, each behind its own
/// small lock, never held across an `.await`.
pub struct Core<K, E, T> {
    faults: Mutex<Faults<K>>,
    ledger: Mutex<Ledger<E, T>>,
    rng: Mutex<StdRng>,
}

impl<K: FaultKind, E: Clone, T: Tally<E>> Core<K, E, T> {
    pub fn new(ledger_capacity: usize, seed: u64) -> Self {
        Self {
            faults: Mutex::default(),
            ledger: Mutex::new(Ledger::new(ledger_capacity)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults<K>> {
        lock(&self.faults)
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger<E, T>> {
        lock(&self.ledger)
    }

    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        lock(&self.rng)
    }

    /// Forgets the faults, the ledger and its counters (the RNG runs on).
    pub fn reset(&self) {
        self.faults().clear();
        self.ledger().clear();
    }
}

/// A simulator's state, as the kit's middleware and `/control` routes use it.
pub trait Simulated: Send + Sync + Sized + 'static {
    type Fault: FaultKind;
    /// The simulator's own ledger fields ([`LedgerEntry::detail`]).
    type Entry: Clone + Serialize + fmt::Debug + Send + 'static;
    /// The counters behind `/control/stats`.
    type Tally: Tally<Self::Entry>;

    fn core(&self) -> &Core<Self::Fault, Self::Entry, Self::Tally>;

    /// The API's own error for an injected 429 or 5xx (or the 504 after a held request), with
    /// `Retry-After` when given.
    fn error_answer(status: StatusCode, retry_after_secs: Option<u64>) -> Response;

    /// Renders an answer only this simulator's faults give.
    fn custom_answer(answer: <Self::Fault as FaultKind>::Custom) -> Response;

    /// The ledger fields of a call just answered; may adjust the answer on its way out.
    fn describe(&self, call: &Call, response: &mut Response) -> Self::Entry;

    /// The body of `GET /control/stats`.
    fn stats(&self) -> Value;

    /// `POST /control/reset`: back to the configured start, [`Core::reset`] included.
    fn reset(&self);

    /// Whether `GET /control/ledger` with these query parameters lists the entry (beyond
    /// `after` and `limit`).
    fn keep(params: &HashMap<String, String>, entry: &LedgerEntry<Self::Entry>) -> bool {
        let _ = (params, entry);
        true
    }
}
