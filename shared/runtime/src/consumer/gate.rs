//! Capability flags in the consumer loop: wait while the handler's integration is off as a whole,
//! park the events of switched-off tenants in the hold, and drain a tenant's held events, in
//! order, once it is switched on again (see `crate::flags`).

use std::{collections::HashSet, time::Duration};

use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::{
    Handler, TopicPartition,
    worker::{self, Disposition, Mode, Shared},
};
use crate::retry::sleep_or_cancel;

/// How often an idle worker with held tenants looks whether one was switched back on.
pub(super) const RECHECK: Duration = Duration::from_millis(500);

/// The tenants with held events on this worker's partition.
#[derive(Default)]
pub(super) struct Holding {
    pub tenants: HashSet<String>,
}

impl Holding {
    /// Reads which tenants have held events on `tp` (retrying while PostgreSQL is unreachable).
    /// `None` once told to stop.
    pub async fn load<H: Handler>(shared: &Shared<H>, tp: &TopicPartition, stop: &CancellationToken) -> Option<Self> {
        let Some(gate) = shared.handler.gate() else { return Some(Self::default()) };
        loop {
            match gate.hold.tenants(&shared.group, &tp.0, tp.1).await {
                Ok(tenants) => {
                    if !tenants.is_empty() {
                        tracing::info!(topic = %tp.0, partition = tp.1, ?tenants, "partition has held events");
                    }
                    return Some(Self { tenants });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the hold; retrying");
                    let _guard = shared.health.fail("hold");
                    if !sleep_or_cancel(Duration::from_secs(1), stop).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// Waits until the flags are known and the integration is not switched off as a whole. False
/// once told to stop.
pub(super) async fn admit<H: Handler>(shared: &Shared<H>, stop: &CancellationToken) -> bool {
    let Some(gate) = shared.handler.gate() else { return true };
    tokio::select! {
        biased;
        _ = stop.cancelled() => return false,
        _ = gate.flags.loaded() => {}
    }
    if gate.flags.paused(gate.integration) {
        tracing::info!(integration = gate.integration, "capability switched off: partition waits");
        tokio::select! {
            biased;
            _ = stop.cancelled() => return false,
            _ = gate.flags.wait_unpaused(gate.integration) => {}
        }
        tracing::info!(integration = gate.integration, "capability switched on: partition resumes");
    }
    true
}

/// Whether some message might have to be held: a tenant is decided apart from the others, or
/// this partition has held events.
pub(super) fn may_hold<H: Handler>(shared: &Shared<H>, holding: &Holding) -> bool {
    shared.handler.gate().is_some_and(|gate| !holding.tenants.is_empty() || gate.flags.has_tenant_rules(gate.integration))
}

/// Parks the messages of `batch` whose tenant (`tenants`, one per message; `None` for one that
/// does not decode, which the normal path dead-letters) is switched off, or still has held events
/// on this partition (so a tenant's events keep their order). Returns which messages were parked,
/// or `None` once told to stop.
pub(super) async fn hold_off<H: Handler>(
    shared: &Shared<H>,
    batch: &[OwnedMessage],
    tenants: &[Option<String>],
    holding: &mut Holding,
    stop: &CancellationToken,
) -> Option<Vec<bool>> {
    let mut held = vec![false; batch.len()];
    let Some(gate) = shared.handler.gate() else { return Some(held) };
    let mut park = Vec::new();
    for (i, (message, tenant)) in batch.iter().zip(tenants).enumerate() {
        let Some(tenant) = tenant else { continue };
        if holding.tenants.contains(tenant) || gate.flags.holds(gate.integration, tenant) {
            held[i] = true;
            park.push((message, tenant.clone()));
        }
    }
    if park.is_empty() {
        return Some(held);
    }
    loop {
        match gate.hold.hold(&shared.group, gate.integration, &park).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "could not park held events; retrying");
                let _guard = shared.health.fail("hold");
                if !sleep_or_cancel(Duration::from_secs(1), stop).await {
                    return None;
                }
            }
        }
    }
    worker::count(&shared.config, batch[0].topic(), "held", park.len() as u64);
    for (_, tenant) in park {
        holding.tenants.insert(tenant);
    }
    Some(held)
}

/// Handles, in offset order, the held events of every tenant of this partition that is switched
/// on again, and forgets them once handled.
pub(super) async fn drain<H: Handler>(shared: &Shared<H>, tp: &TopicPartition, holding: &mut Holding, stop: &CancellationToken) -> Disposition {
    let Some(gate) = shared.handler.gate() else { return Disposition::Done };
    let released: Vec<String> = holding.tenants.iter().filter(|t| !gate.flags.holds(gate.integration, t)).cloned().collect();
    for tenant in released {
        tracing::info!(topic = %tp.0, partition = tp.1, tenant, "tenant switched on: draining its held events");
        let mut drained = 0usize;
        while !gate.flags.holds(gate.integration, &tenant) {
            let page = match gate.hold.page(&shared.group, &tp.0, tp.1, &tenant, shared.config.max_batch as i64).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read held events; retrying");
                    if !sleep_or_cancel(Duration::from_secs(1), stop).await {
                        return Disposition::Abandoned;
                    }
                    continue;
                }
            };
            let Some(last) = page.last().map(Message::offset) else {
                holding.tenants.remove(&tenant);
                tracing::info!(topic = %tp.0, partition = tp.1, tenant, drained, "held events drained");
                break;
            };
            if worker::process(shared, tp, &page, stop, Mode::Drain).await == Disposition::Abandoned {
                return Disposition::Abandoned;
            }
            while let Err(e) = gate.hold.release(&shared.group, &tp.0, tp.1, &tenant, last).await {
                tracing::warn!(error = %e, "could not release drained events; retrying");
                if !sleep_or_cancel(Duration::from_secs(1), stop).await {
                    return Disposition::Abandoned;
                }
            }
            drained += page.len();
            metrics::counter!(crate::telemetry::metric_name(shared.config.service, "consumer_released_total"), "topic" => tp.0.clone()).increment(page.len() as u64);
        }
    }
    Disposition::Done
}
