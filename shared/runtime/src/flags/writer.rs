//! Changing flags and panic mode: one record on the compacted flags topic per change.

use brain_events::{CapabilityFlagChanged, topics};
use chrono::Utc;
use thiserror::Error;
use uuid::Uuid;

use super::INTEGRATIONS;
use crate::producer::{EventProducer, ProduceError};

#[derive(Debug, Error)]
pub enum FlagError {
    #[error("unknown integration {0:?} (known: ventures, sharefile, graph, qbo, firestore)")]
    UnknownIntegration(String),
    #[error("a reason is required")]
    NoReason,
    #[error("an actor is required")]
    NoActor,
    #[error("the tenant must be 1-128 characters without ':'")]
    BadTenant,
    #[error("publishing the change failed")]
    Publish(#[source] ProduceError),
}

/// A flag's new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    On,
    Off,
    /// The flag no longer applies (the next rule in precedence decides).
    Cleared,
}

impl FlagState {
    pub fn label(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Cleared => "cleared",
        }
    }
}

/// Publishes flag and panic-mode changes.
#[derive(Clone)]
pub struct FlagWriter {
    producer: EventProducer,
}

/// The record key of a flag.
pub fn flag_key(integration: &str, tenant: Option<&str>) -> String {
    format!("flag:{integration}:{}", tenant.unwrap_or("*"))
}

pub fn panic_key(integration: &str) -> String {
    format!("panic:{integration}")
}

impl FlagWriter {
    pub fn new(producer: EventProducer) -> Self {
        Self { producer }
    }

    /// Sets the flag of `integration` for `tenant` (or globally).
    pub async fn set_flag(&self, integration: &str, tenant: Option<&str>, state: FlagState, actor: &str, reason: &str) -> Result<CapabilityFlagChanged, FlagError> {
        if let Some(t) = tenant
            && (t.is_empty() || t.len() > 128 || t.contains(':'))
        {
            return Err(FlagError::BadTenant);
        }
        let change = change("flag", integration, tenant, state.label(), actor, reason)?;
        self.publish(&flag_key(integration, tenant), change).await
    }

    /// Switches panic mode of `integration` on or off.
    pub async fn set_panic(&self, integration: &str, on: bool, actor: &str, reason: &str) -> Result<CapabilityFlagChanged, FlagError> {
        let change = change("panic", integration, None, if on { "on" } else { "off" }, actor, reason)?;
        self.publish(&panic_key(integration), change).await
    }

    async fn publish(&self, key: &str, change: CapabilityFlagChanged) -> Result<CapabilityFlagChanged, FlagError> {
        self.producer.send(topics::CAPABILITY_FLAGS, key, &change).await.map_err(FlagError::Publish)?;
        tracing::info!(key, state = %change.state, actor = %change.actor, reason = %change.reason, "capability change published");
        Ok(change)
    }
}

fn change(kind: &str, integration: &str, tenant: Option<&str>, state: &str, actor: &str, reason: &str) -> Result<CapabilityFlagChanged, FlagError> {
    if !INTEGRATIONS.contains(&integration) {
        return Err(FlagError::UnknownIntegration(integration.to_string()));
    }
    if reason.trim().is_empty() {
        return Err(FlagError::NoReason);
    }
    if actor.trim().is_empty() {
        return Err(FlagError::NoActor);
    }
    Ok(CapabilityFlagChanged {
        change_id: Uuid::now_v7().to_string(),
        kind: kind.to_string(),
        integration: integration.to_string(),
        tenant: tenant.map(str::to_string),
        state: state.to_string(),
        actor: actor.trim().to_string(),
        reason: reason.trim().to_string(),
        changed_at: Utc::now().timestamp_millis(),
    })
}
