//! Runs the realms' syncs: every realm every `interval` (15 min by default) and at once when a
//! webhook asks. At most `concurrency` realms at a time, the longest-waiting first; a realm's turn
//! is bounded (`max_pages`), after which it goes to the back of the queue, so one big realm never
//! starves the small ones. Each realm has one sync at a time. Throttled realms wait 60 s (QBO sends
//! no `Retry-After`); failing ones back off; a revoked refresh token pauses its realm only.

use std::{collections::HashSet, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use tracing::Instrument;

use chrono::Utc;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    realms::{Realm, Realms},
    sync::{Syncer, Turn},
};

#[derive(Debug, Clone, Copy)]
pub struct ScheduleConfig {
    pub interval: Duration,
    pub concurrency: usize,
}

pub async fn run(syncer: Arc<Syncer>, realms: Realms, config: ScheduleConfig, wake: Arc<Notify>, stop: CancellationToken) {
    let mut running: JoinSet<String> = JoinSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    let every = chrono::Duration::from_std(config.interval).unwrap_or(chrono::Duration::minutes(15));
    match realms.cap_next_sync(every).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(realms = n, interval_ms = config.interval.as_millis() as u64, "realms scheduled beyond the sync interval brought forward"),
        Err(e) => tracing::warn!(error = %e, "could not bring the realms' next syncs within the interval"),
    }
    loop {
        let free = config.concurrency.saturating_sub(running.len());
        if free > 0 {
            let busy_list: Vec<String> = busy.iter().cloned().collect();
            match realms.due(free as i64, &busy_list).await {
                Ok(due) => {
                    for realm in due {
                        let id = realm.realm_id.clone();
                        busy.insert(id.clone());
                        let turn = one(syncer.clone(), realms.clone(), realm, config).instrument(tracing::info_span!("sync", realm = %id));
                        running.spawn(async move {
                            // A panicking turn must still give its realm back.
                            if AssertUnwindSafe(turn).catch_unwind().await.is_err() {
                                tracing::error!(realm = %id, "a realm's sync panicked; it is tried again at its next turn");
                            }
                            id
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the due realms"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(realm) = done {
                    busy.remove(&realm);
                }
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    // Stop: a turn in progress is abandoned; its applied pages are durable, the rest is redone.
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// One turn of one realm, recorded in `realms`.
async fn one(syncer: Arc<Syncer>, realms: Realms, realm: Realm, config: ScheduleConfig) {
    let started = Utc::now();
    let every = chrono::Duration::from_std(config.interval).unwrap_or(chrono::Duration::minutes(15));
    let result = syncer.turn(&realm).await;
    let kind = match &result {
        Ok(Turn::Done { .. }) => "done",
        Ok(Turn::More { .. }) => "more",
        Err(e) => e.kind(),
    };
    metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "sync_turns_total"), "outcome" => kind).increment(1);
    let recorded = match result {
        Ok(Turn::Done { cdc_since, applied }) => {
            tracing::info!(changes = applied.changes, unchanged = applied.unchanged, "realm synced");
            realms.synced(&realm.realm_id, started, Some(cdc_since), every).await
        }
        Ok(Turn::More { cdc_since, applied }) => {
            tracing::info!(changes = applied.changes, "realm's turn over; more to sync");
            realms.again_in(&realm.realm_id, chrono::Duration::zero(), cdc_since, None).await
        }
        Err(e) if e.revoked() => {
            tracing::error!(error = %e, "the realm's refresh token is revoked: the realm pauses until it is reconnected");
            realms.revoke(&realm.realm_id, &e.to_string()).await
        }
        Err(e) if e.throttled() => {
            tracing::warn!("QBO throttled the realm; waiting 60 s");
            realms.again_in(&realm.realm_id, chrono::Duration::seconds(60), None, Some("throttled")).await
        }
        Err(e) => {
            tracing::warn!(error = %e, kind = e.kind(), "realm sync failed; retrying in 10 s");
            realms.again_in(&realm.realm_id, chrono::Duration::seconds(10), None, Some(&e.to_string())).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record the realm's sync");
    }
}
