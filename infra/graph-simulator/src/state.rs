//! The simulator's state. Each mailbox sits behind its own lock, so mailboxes are served in
//! parallel; the other parts have their own small locks, never held across an `.await`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use rand::{SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Tokens,
    config::Config,
    error::{GraphError, SimError},
    faults::Faults,
    ledger::Ledger,
    limits::Limiter,
    model::Staff,
    notifier::{Notifier, Queue},
    subscriptions::{ChangeType, Subscriptions},
    teams::TeamsMessage,
};

pub type SharedState = Arc<AppState>;
pub type SharedStaff = Arc<Mutex<Staff>>;

/// Locks, carrying on after a panic elsewhere left the data behind (plain data, still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Mailboxes by id, and every name they answer to (id and mail, lower-cased) → id.
#[derive(Debug, Default)]
struct Directory {
    by_id: HashMap<String, SharedStaff>,
    aliases: HashMap<String, String>,
}

pub struct AppState {
    pub config: Config,
    pub limiter: Limiter,
    pub notifier: Notifier,
    /// Fires at shutdown: requests held by a `timeout` fault answer at once.
    pub release: CancellationToken,
    strict_conflicts: AtomicBool,
    directory: RwLock<Directory>,
    tokens: Mutex<Tokens>,
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    subscriptions: Mutex<Subscriptions>,
    teams: Mutex<Vec<TeamsMessage>>,
    /// Fault probabilities.
    rng: Mutex<StdRng>,
}

impl AppState {
    pub fn new(config: Config) -> Result<(SharedState, Queue), SimError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(SimError::HttpClient)?;
        let (notifier, queue) = Notifier::new(config.notifications.clone(), config.seed, http);
        let state = Self {
            limiter: Limiter::new(config.mailbox_concurrency),
            notifier,
            release: CancellationToken::new(),
            strict_conflicts: AtomicBool::new(config.strict_conflicts),
            directory: RwLock::default(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            ledger: Mutex::new(Ledger::new(config.ledger_capacity)),
            subscriptions: Mutex::default(),
            teams: Mutex::default(),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
        };
        Ok((Arc::new(state), queue))
    }

    /// The id of the mailbox `name` (an id or a mail address, any case) names.
    pub fn resolve(&self, name: &str) -> Option<String> {
        let directory = self.directory.read().unwrap_or_else(|p| p.into_inner());
        directory.aliases.get(&name.to_lowercase()).cloned()
    }

    pub fn staff(&self, name: &str) -> Option<SharedStaff> {
        let id = self.resolve(name)?;
        let directory = self.directory.read().unwrap_or_else(|p| p.into_inner());
        directory.by_id.get(&id).cloned()
    }

    /// The mailbox in a `/v1.0/users/{user}` path, or 404 `ErrorInvalidUser`.
    pub fn mailbox(&self, name: &str) -> Result<SharedStaff, GraphError> {
        self.staff(name)
            .ok_or_else(|| GraphError::invalid_user(name))
    }

    pub fn staff_ids(&self) -> Vec<String> {
        let directory = self.directory.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<String> = directory.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Adds or replaces mailboxes (a replaced one loses its events).
    pub fn insert_staff(&self, staff: Vec<Staff>) {
        let mut directory = self.directory.write().unwrap_or_else(|p| p.into_inner());
        for s in staff {
            let id = s.id.clone();
            directory.aliases.retain(|_, target| *target != id);
            directory.aliases.insert(id.to_lowercase(), id.clone());
            directory.aliases.insert(s.mail.to_lowercase(), id.clone());
            directory.by_id.insert(id, Arc::new(Mutex::new(s)));
        }
    }

    pub fn strict_conflicts(&self) -> bool {
        self.strict_conflicts.load(Ordering::SeqCst)
    }

    pub fn set_strict_conflicts(&self, on: bool) {
        self.strict_conflicts.store(on, Ordering::SeqCst);
    }

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    pub fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        lock(&self.subscriptions)
    }

    pub fn teams(&self) -> MutexGuard<'_, Vec<TeamsMessage>> {
        lock(&self.teams)
    }

    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        lock(&self.rng)
    }

    /// Queues one change notification per live subscription on the mailbox's events.
    pub fn notify(&self, user_id: &str, event_id: &str, etag: &str, change: ChangeType) {
        let matching = self.subscriptions().matching(user_id, change);
        for subscription in matching {
            self.notifier
                .enqueue(subscription, change, user_id, event_id, etag);
        }
    }

    /// Forgets mailboxes, tokens, faults, the ledger, subscriptions, Teams messages and the
    /// notification log; keeps settings (strict conflicts back to the configured value).
    pub fn reset(&self) {
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Directory::default();
        *self.tokens() = Tokens::default();
        self.faults().clear();
        self.ledger().clear();
        *self.subscriptions() = Subscriptions::default();
        self.teams().clear();
        self.notifier.clear_log();
        self.set_strict_conflicts(self.config.strict_conflicts);
    }
}
