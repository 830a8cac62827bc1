//! Capability flags and panic mode: switch an integration off, for everyone or for one tenant,
//! without losing a single event.
//!
//! - **Where the state lives.** The compacted topic `ops.capability.flag-changed.v1`: the latest
//!   record per key is the state (`flag:<integration>:<tenant or *>`, `panic:<integration>`).
//!   Every instance of every service reads it from the beginning ([`reader`]) and follows it, so a
//!   change takes effect everywhere within about a second and survives restarts. Operators change
//!   flags with `dlq-replayer flags|panic` or the gateway's admin API ([`FlagWriter`]); services
//!   switch panic mode themselves ([`panic`]).
//! - **Precedence**, first match wins: the environment's emergency override
//!   (`CAPABILITY_OVERRIDES=ventures=off,firestore@t2=on`; tenant entries before integration
//!   entries) → panic mode (off) → the per-tenant flag → the global flag → on.
//! - **What off means.** A consumer whose handler has a [`Gate`] does not take events of a
//!   switched-off integration: when the whole integration is off its partitions wait (librdkafka
//!   stops fetching them); when only some tenants are off, their events are parked in the service's
//!   `held_events` table in offset order and the other tenants keep flowing on the same partitions.
//!   Switched back on, a partition's worker drains its held events in order before new events of
//!   that tenant. Held events are never dropped and never dead-lettered.
//! - Metrics: `<service>_capability_enabled{integration}` (the global decision, 1 on),
//!   `<service>_panic_mode{integration}` (1 on), `<service>_consumer_messages_total{outcome="held"}`.

pub mod hold;
pub mod panic;
pub mod reader;
pub mod writer;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use brain_events::Codec;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use hold::{Gate, HoldStore};
pub use panic::{Panic, PanicConfig};
pub use writer::{FlagState, FlagWriter};

use crate::{
    breaker::Breaker,
    producer::EventProducer,
    settings::{Env, KafkaSettings, SettingsError},
    telemetry::metric_name,
};

/// The integrations Brain knows; flags for other names are refused by the writer and warned about
/// everywhere else.
pub const INTEGRATIONS: [&str; 6] = ["ventures", "sharefile", "graph", "teams", "qbo", "firestore"];

/// One flag's (or one panic mode's) current record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub on: bool,
    pub actor: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

/// Why a capability is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    EnvironmentOverride,
    Panic,
    Tenant,
    Global,
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub enabled: bool,
    pub source: Source,
}

/// `(integration, tenant)`; `None` is the global flag.
type FlagKey = (String, Option<String>);

/// The environment's emergency overrides: `(integration, tenant)` → on.
pub type Overrides = HashMap<FlagKey, bool>;

#[derive(Debug, Default)]
struct Table {
    flags: HashMap<FlagKey, Setting>,
    panic: HashMap<String, Setting>,
    overrides: HashMap<FlagKey, bool>,
}

impl Table {
    fn decide(&self, integration: &str, tenant: Option<&str>) -> Decision {
        self.decide_with(integration, tenant, true)
    }

    /// `decide`, with panic mode counted only if `panic` (a consumer holds events for flags, not
    /// for panic mode, which its breaker handles by probing).
    fn decide_with(&self, integration: &str, tenant: Option<&str>, panic: bool) -> Decision {
        let key = |t: Option<&str>| (integration.to_string(), t.map(str::to_string));
        if let Some(t) = tenant
            && let Some(on) = self.overrides.get(&key(Some(t)))
        {
            return Decision { enabled: *on, source: Source::EnvironmentOverride };
        }
        if let Some(on) = self.overrides.get(&key(None)) {
            return Decision { enabled: *on, source: Source::EnvironmentOverride };
        }
        if panic && self.panic.get(integration).is_some_and(|p| p.on) {
            return Decision { enabled: false, source: Source::Panic };
        }
        if let Some(t) = tenant
            && let Some(s) = self.flags.get(&key(Some(t)))
        {
            return Decision { enabled: s.on, source: Source::Tenant };
        }
        if let Some(s) = self.flags.get(&key(None)) {
            return Decision { enabled: s.on, source: Source::Global };
        }
        Decision { enabled: true, source: Source::Default }
    }

    /// Whether some tenant of `integration` may be decided apart from the others (a per-tenant
    /// entry exists, or the integration is off globally), so a consumer must look at tenants.
    fn has_tenant_rules(&self, integration: &str) -> bool {
        let tenant_of = |(i, t): &FlagKey| i == integration && t.is_some();
        self.flags.keys().any(tenant_of) || self.overrides.keys().any(tenant_of) || !self.decide_with(integration, None, false).enabled
    }

    /// Whether every event of `integration` waits: off globally (not by panic mode, which lets
    /// probes through) and no tenant switched on on its own.
    fn paused(&self, integration: &str) -> bool {
        let global = self.decide_with(integration, None, false);
        if global.enabled {
            return false;
        }
        let tenant_on = |(k, on): (&FlagKey, bool)| k.0 == integration && k.1.is_some() && on;
        if self.overrides.iter().map(|(k, on)| (k, *on)).any(tenant_on) {
            return false;
        }
        global.source == Source::EnvironmentOverride || !self.flags.iter().map(|(k, s)| (k, s.on)).any(tenant_on)
    }
}

/// The flags as this process knows them; cheap to clone.
#[derive(Clone)]
pub struct Flags(Arc<Inner>);

struct Inner {
    service: &'static str,
    table: RwLock<Table>,
    changed: watch::Sender<u64>,
    loaded: watch::Sender<bool>,
}

/// A flag or panic entry for listings (`dlq-replayer flags list`, the gateway's health).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub kind: &'static str,
    pub integration: String,
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub setting: Setting,
}

impl Flags {
    /// `CAPABILITY_OVERRIDES` of `env`'s service (or `BRAIN__`).
    pub fn overrides_from_env(env: &Env) -> Result<Overrides, SettingsError> {
        let raw: String = env.or("CAPABILITY_OVERRIDES", String::new())?;
        parse_overrides(&raw).map_err(|reason| SettingsError::Invalid { var: "CAPABILITY_OVERRIDES".into(), value: raw.clone(), reason })
    }

    /// Flags with the environment's `overrides` and nothing read yet; [`reader::follow`] fills
    /// them in. Warns about every active override and every unknown integration name.
    pub fn new(service: &'static str, overrides: Overrides) -> Self {
        for ((integration, tenant), on) in &overrides {
            if !INTEGRATIONS.contains(&integration.as_str()) {
                tracing::warn!(integration, known = ?INTEGRATIONS, "CAPABILITY_OVERRIDES names an unknown integration");
            }
            tracing::warn!(integration, tenant = tenant.as_deref().unwrap_or("*"), on, "emergency override active: the environment decides this capability, whatever the flags say");
        }
        Self::with_overrides(service, overrides)
    }

    /// `new`, following the flags topic in a task of `tasks` until `stop` fires.
    pub fn follow(service: &'static str, overrides: Overrides, kafka: &KafkaSettings, codec: Codec, tasks: &mut JoinSet<()>, stop: CancellationToken) -> Self {
        let flags = Self::new(service, overrides);
        tasks.spawn(reader::follow(flags.clone(), kafka.clone(), codec, stop));
        flags
    }

    /// Puts `breaker` under panic mode (`config`), publishing its switches from a task of `tasks`.
    pub fn panic_mode(&self, breaker: Breaker, config: PanicConfig, producer: EventProducer, tasks: &mut JoinSet<()>, stop: CancellationToken) -> Breaker {
        let actor = format!("{}/{}", self.0.service, crate::breaker::instance_name());
        let (panic, publisher) = Panic::new(breaker.integration(), self.clone(), config, FlagWriter::new(producer), actor, stop);
        tasks.spawn(publisher);
        breaker.with_panic(panic)
    }

    fn with_overrides(service: &'static str, overrides: Overrides) -> Self {
        let flags = Self(Arc::new(Inner {
            service,
            table: RwLock::new(Table { overrides, ..Table::default() }),
            changed: watch::Sender::new(0),
            loaded: watch::Sender::new(false),
        }));
        flags.publish_metrics();
        flags
    }

    pub fn decide(&self, integration: &str, tenant: Option<&str>) -> Decision {
        self.0.table.read().expect("flags lock").decide(integration, tenant)
    }

    pub fn enabled(&self, integration: &str, tenant: Option<&str>) -> bool {
        self.decide(integration, tenant).enabled
    }

    /// Whether a consumer holds `tenant`'s events of `integration`: the decision without panic
    /// mode (the breaker probes through panic mode instead).
    pub fn holds(&self, integration: &str, tenant: &str) -> bool {
        !self.0.table.read().expect("flags lock").decide_with(integration, Some(tenant), false).enabled
    }

    pub fn panic_on(&self, integration: &str) -> bool {
        self.0.table.read().expect("flags lock").panic.get(integration).is_some_and(|p| p.on)
    }

    pub fn has_tenant_rules(&self, integration: &str) -> bool {
        self.0.table.read().expect("flags lock").has_tenant_rules(integration)
    }

    pub fn paused(&self, integration: &str) -> bool {
        self.0.table.read().expect("flags lock").paused(integration)
    }

    /// Every flag and panic record, sorted.
    pub fn entries(&self) -> Vec<Entry> {
        let table = self.0.table.read().expect("flags lock");
        let mut out: Vec<Entry> = table
            .flags
            .iter()
            .map(|((i, t), s)| Entry { kind: "flag", integration: i.clone(), tenant: t.clone(), setting: s.clone() })
            .chain(table.panic.iter().map(|(i, s)| Entry { kind: "panic", integration: i.clone(), tenant: None, setting: s.clone() }))
            .collect();
        out.sort_by(|a, b| (a.kind, &a.integration, &a.tenant).cmp(&(b.kind, &b.integration, &b.tenant)));
        out
    }

    /// The environment's overrides, as `integration[@tenant]` → on.
    pub fn overrides(&self) -> Vec<(String, bool)> {
        let table = self.0.table.read().expect("flags lock");
        let mut out: Vec<_> = table.overrides.iter().map(|((i, t), on)| (t.as_ref().map_or(i.clone(), |t| format!("{i}@{t}")), *on)).collect();
        out.sort();
        out
    }

    /// Resolves at the next change of any flag.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.changed.subscribe()
    }

    /// Returns once the topic has been read up to where it ended when reading began.
    pub async fn loaded(&self) {
        let mut rx = self.0.loaded.subscribe();
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    pub fn is_loaded(&self) -> bool {
        *self.0.loaded.borrow()
    }

    /// Waits until `integration` is not paused as a whole.
    pub async fn wait_unpaused(&self, integration: &str) {
        let mut rx = self.subscribe();
        while self.paused(integration) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub(crate) fn apply_flag(&self, integration: String, tenant: Option<String>, setting: Option<Setting>) {
        {
            let mut table = self.0.table.write().expect("flags lock");
            match setting {
                Some(s) => table.flags.insert((integration, tenant), s),
                None => table.flags.remove(&(integration, tenant)),
            };
        }
        self.notify();
    }

    pub(crate) fn apply_panic(&self, integration: String, setting: Setting) {
        self.0.table.write().expect("flags lock").panic.insert(integration, setting);
        self.notify();
    }

    pub(crate) fn set_loaded(&self) {
        self.0.loaded.send_replace(true);
    }

    fn notify(&self) {
        self.publish_metrics();
        self.0.changed.send_modify(|v| *v += 1);
    }

    fn publish_metrics(&self) {
        for integration in INTEGRATIONS {
            let enabled = self.decide(integration, None).enabled;
            metrics::gauge!(metric_name(self.0.service, "capability_enabled"), "integration" => integration).set(if enabled { 1.0 } else { 0.0 });
            metrics::gauge!(metric_name(self.0.service, "panic_mode"), "integration" => integration).set(if self.panic_on(integration) { 1.0 } else { 0.0 });
        }
    }
}

/// `ventures=off,firestore@t2=on`: integration entries and tenant entries, `on`/`off`.
pub fn parse_overrides(raw: &str) -> Result<Overrides, String> {
    let mut out = HashMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, state) = entry.split_once('=').ok_or_else(|| format!("{entry:?}: expected integration[@tenant]=on|off"))?;
        let on = parse_state(state.trim()).ok_or_else(|| format!("{entry:?}: the state is on or off"))?;
        let (integration, tenant) = match name.trim().split_once('@') {
            Some((i, t)) if !t.is_empty() => (i.to_string(), Some(t.to_string())),
            Some(_) => return Err(format!("{entry:?}: empty tenant after @")),
            None => (name.trim().to_string(), None),
        };
        if integration.is_empty() {
            return Err(format!("{entry:?}: empty integration"));
        }
        out.insert((integration, tenant), on);
    }
    Ok(out)
}

fn parse_state(raw: &str) -> Option<bool> {
    match raw {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
