//! `GET /api/v1/health/sync`: how each integration keeps up, refreshed in the background every
//! `API_GATEWAY__SYNC_HEALTH_REFRESH_MS` (15 s) (the endpoint answers from the last refresh, so it never waits on Kafka):
//! - per consumer group of the integration: consumer lag in messages (high watermark minus the
//!   committed offset, summed over partitions) and in seconds (the age of the oldest message not
//!   yet processed);
//! - for QBO, the client companies: active, revoked (paused until reconnected) and the stalest
//!   sync (`read_api.qbo_realms`);
//! - the capability: on or off and why (flags, panic mode, the environment; from the flags topic,
//!   which the gateway follows), the tenants switched off or on apart from the rest, and the events
//!   held for switched-off tenants (`read_api.<service>_held_events`);
//! - the circuit breakers of every live instance: Ventures of ventures-sync
//!   (`read_api.integration_health`), Firestore of projection-writer
//!   (`read_api.projection_writer_integration_health`), ShareFile of sharefile-sync
//!   (`read_api.sharefile_sync_integration_health`), Graph of graph-calendar (which the Teams
//!   relay shares; `read_api.graph_calendar_integration_health`);
//! - dead letters per processed message over the last 5 minutes (from the committed offsets and
//!   the dead-letter topics' high watermarks, between this gateway's gatherings);
//! - source event → projection committed over the last 5 minutes, P50 and P95 (the read model);
//! - per dead-letter topic: how many dead letters, how many of them no operator has dealt with yet
//!   (replayed, parked or discarded; `read_api.dead_letters_handled`, kept by dlq-replayer), how
//!   many of those are older than 15 minutes (offsets for that time), and the oldest one's age.
//!
//! The lag in seconds and the held events are also Prometheus gauges,
//! `api_gateway_consumer_lag_seconds{group}` and `api_gateway_held_events{integration,tenant}`; the
//! dead-letter figures are too, `api_gateway_dead_letters{topic}`
//! (unhandled) and `api_gateway_dead_letters_older_than_15m{topic}` (unhandled and older than
//! 15 minutes), which the alert rules use.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::{Json, extract::State};
use brain_runtime::{flags::Flags, settings::KafkaSettings, telemetry::metric_name};
use chrono::{DateTime, Utc};
use kafka::kafka_figures;
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::{AppState, SERVICE, error::ErrorBody, openapi::TAG_OPERATIONS};

mod kafka;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);
/// The window of the error rate.
const ERROR_WINDOW: Duration = Duration::from_secs(300);
/// Dead letters older than this count against the SLO (fewer than 20 older than 15 minutes).
const OLD: chrono::Duration = chrono::Duration::minutes(15);

/// The integrations and the consumer groups (catalogue names) that carry their work.
const INTEGRATIONS: [(&str, &[&str]); 6] = [
    ("ventures", &["ventures-sync.commands", "ventures-sync.drafts", "ventures-sync.documents"]),
    (
        "firestore",
        &[
            "projection-writer",
            "projection-writer.command-requests",
            "projection-writer.command-outcomes",
            "projection-writer.document-changes",
            "projection-writer.task-conditions",
            "projection-writer.task-uploads",
            "projection-writer.task-documents",
            "projection-writer.task-actions",
            "projection-writer.messages",
            "projection-writer.message-relays",
        ],
    ),
    ("sharefile", &["sharefile-sync.documents"]),
    ("graph", &["graph-calendar.bookings", "graph-calendar.notifications"]),
    ("teams", &["graph-calendar.relays"]),
    ("qbo", &["qbo-mirror.webhooks"]),
];

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncHealth {
    /// When these figures were gathered.
    pub checked_at: DateTime<Utc>,
    pub integrations: Vec<Integration>,
    /// Source event → projection committed, over the last 5 minutes.
    pub projection: ProjectionDelay,
    pub dead_letters: Vec<DeadLetterTopic>,
    /// What could not be gathered this time (the rest is still reported).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub name: String,
    pub consumer_groups: Vec<GroupLag>,
    /// The worst breaker state of the live instances (`closed`, `half_open`, `open`); absent
    /// when the integration has no breaker or no instance reported in the last 30 s.
    pub breaker: Option<String>,
    /// Dead letters per processed message over the last 5 minutes (over what the gateway has
    /// seen of them, once it has two refreshes); absent without traffic.
    pub error_rate: Option<f64>,
    pub capability: Capability,
    /// Events held for switched-off tenants, per tenant.
    pub held: Vec<HeldTenant>,
    /// QBO only: the client companies qbo-mirror keeps (`read_api.qbo_realms`).
    pub realms: Option<RealmHealth>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmHealth {
    pub active: i64,
    /// The realm ids of the companies paused because their refresh token was revoked (reconnect
    /// them: `qbo-mirror connect`; the reason is in qbo-mirror's log and `qbo_mirror.realms`).
    pub revoked: Vec<String>,
    /// The longest time since an active company's last completed sync.
    pub oldest_sync_age_seconds: Option<f64>,
}



#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// Whether the integration is on for tenants without a rule of their own.
    pub enabled: bool,
    /// What decided it: `environment_override`, `panic`, `global`, `default` (`tenant` never here).
    pub source: String,
    /// Panic mode, when it is on.
    pub panic: Option<PanicState>,
    /// Tenants switched off apart from the rest.
    pub tenants_off: Vec<String>,
    /// Tenants switched on apart from the rest.
    pub tenants_on: Vec<String>,
    /// False until the gateway has read the flags topic.
    pub known: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PanicState {
    pub since: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldTenant {
    pub tenant: String,
    pub events: i64,
    pub oldest_held_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupLag {
    pub group: String,
    /// Messages not yet processed, over all partitions of the group's topics.
    pub lag_messages: i64,
    /// The age of the oldest message not yet processed; 0 without lag, absent when unknown.
    pub lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionDelay {
    pub window_seconds: i64,
    pub samples: i64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterTopic {
    pub topic: String,
    /// Every dead letter the topic holds.
    pub count: i64,
    /// Those no operator has replayed, parked or discarded yet (`dlq-replayer`).
    pub unhandled: i64,
    /// Unhandled ones older than 15 minutes (the SLO: fewer than 20).
    pub older_than_15m: i64,
    /// The age of the topic's oldest dead letter, handled or not.
    pub oldest_age_seconds: Option<i64>,
}

/// The last figures gathered.
#[derive(Clone, Default)]
pub struct SyncHealthCache(Arc<RwLock<Option<SyncHealth>>>);

/// Sync health per integration
#[utoipa::path(
    get,
    path = "/api/v1/health/sync",
    operation_id = "syncHealth",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The figures of the last refresh (every 15 s by default)", body = SyncHealth),
        (status = 503, description = "Not gathered yet, or the request timed out", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>) -> Result<Json<SyncHealth>, crate::error::ApiError> {
    let cached = state.sync_health.0.read().expect("sync health lock").clone();
    cached.map(Json).ok_or_else(|| crate::error::ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "not_ready", "sync health is being gathered; retry in a few seconds"))
}

/// Refreshes `cache` every `every` until `stop`.
pub async fn refresh(cache: SyncHealthCache, pool: PgPool, kafka: KafkaSettings, flags: Flags, every: Duration, stop: CancellationToken) {
    let mut history: VecDeque<(Instant, Counters)> = VecDeque::new();
    // Held-events gauges set last time: drained tenants go back to 0.
    let mut held_before: Vec<(String, String)> = Vec::new();
    loop {
        let (mut report, counters) = gather(&pool, &kafka, &flags).await;
        let now = Instant::now();
        while history.front().is_some_and(|(at, _)| now.duration_since(*at) > ERROR_WINDOW) {
            history.pop_front();
        }
        if let Some((_, then)) = history.front() {
            for integration in &mut report.integrations {
                integration.error_rate = error_rate(then, &counters, integration.consumer_groups.iter().map(|g| g.group.as_str()));
            }
        }
        if !counters.is_empty() {
            history.push_back((now, counters));
        }
        for integration in &report.integrations {
            for group in &integration.consumer_groups {
                if let Some(seconds) = group.lag_seconds {
                    metrics::gauge!(metric_name(SERVICE, "consumer_lag_seconds"), "group" => group.group.clone()).set(seconds);
                }
            }
        }
        let held_now: Vec<(String, String, i64)> =
            report.integrations.iter().flat_map(|i| i.held.iter().map(|h| (i.name.clone(), h.tenant.clone(), h.events))).collect();
        for (integration, tenant) in held_before.drain(..) {
            if !held_now.iter().any(|(i, t, _)| *i == integration && *t == tenant) {
                metrics::gauge!(metric_name(SERVICE, "held_events"), "integration" => integration, "tenant" => tenant).set(0.0);
            }
        }
        for (integration, tenant, events) in held_now {
            metrics::gauge!(metric_name(SERVICE, "held_events"), "integration" => integration.clone(), "tenant" => tenant.clone()).set(events as f64);
            held_before.push((integration, tenant));
        }
        for topic in &report.dead_letters {
            metrics::gauge!(metric_name(SERVICE, "dead_letters"), "topic" => topic.topic.clone()).set(topic.unhandled as f64);
            metrics::gauge!(metric_name(SERVICE, "dead_letters_older_than_15m"), "topic" => topic.topic.clone()).set(topic.older_than_15m as f64);
        }
        *cache.0.write().expect("sync health lock") = Some(report);
        if !brain_runtime::retry::sleep_or_cancel(every, &stop).await {
            return;
        }
    }
}

async fn gather(pool: &PgPool, kafka: &KafkaSettings, flags: &Flags) -> (SyncHealth, Counters) {
    let mut problems = Vec::new();
    let kafka_settings = kafka.clone();
    let (lags, dead_letters, counters) = match tokio::task::spawn_blocking(move || kafka_figures(&kafka_settings)).await {
        Ok(Ok(figures)) => figures,
        Ok(Err(e)) => {
            problems.push(format!("kafka: {e}"));
            (Vec::new(), Vec::new(), Counters::new())
        }
        Err(e) => {
            problems.push(format!("kafka: {e}"));
            (Vec::new(), Vec::new(), Counters::new())
        }
    };
    // Subtract what operators have dealt with (the view is absent until dlq-replayer migrated).
    let handled: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT topic, count(*), count(*) FILTER (WHERE dead_lettered_at < now() - interval '15 minutes') FROM read_api.dead_letters_handled GROUP BY topic",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let mut dead_letters = dead_letters;
    for topic in &mut dead_letters {
        if let Some((_, all, old)) = handled.iter().find(|(t, _, _)| *t == topic.topic) {
            topic.unhandled = (topic.count - all).max(0);
            topic.older_than_15m = (topic.older_than_15m - old).max(0);
        }
    }
    // Each service publishes its own breakers through a view of its own; a view that is not there
    // yet (the service has not migrated) leaves its integration without a breaker state.
    let mut breakers: Vec<(String, String)> = Vec::new();
    for view in BREAKER_VIEWS {
        match sqlx::query_as::<_, (String, String)>(view).fetch_all(pool).await {
            Ok(rows) => breakers.extend(rows),
            Err(e) => problems.push(format!("breakers: {e}")),
        }
    }
    let mut held: Vec<(String, HeldTenant)> = Vec::new();
    for view in HELD_VIEWS {
        match sqlx::query_as::<_, (String, String, i64, Option<DateTime<Utc>>)>(view).fetch_all(pool).await {
            Ok(rows) => held.extend(rows.into_iter().map(|(i, tenant, events, oldest_held_at)| (i, HeldTenant { tenant, events, oldest_held_at }))),
            Err(e) => problems.push(format!("held events: {e}")),
        }
    }
    let realms = realm_health(pool).await.map_err(|e| problems.push(format!("qbo realms: {e}"))).ok();
    let projection = sqlx::query_as::<_, (i64, Option<f64>, Option<f64>)>(
        "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d)
         FROM (SELECT extract(epoch FROM projected_at - source_occurred_at)::float8 AS d FROM read_api.applications
               WHERE projected_at > now() - interval '5 minutes') t",
    )
    .fetch_one(pool)
    .await
    .map(|(samples, p50, p95)| ProjectionDelay { window_seconds: 300, samples, p50_seconds: p50, p95_seconds: p95 })
    .unwrap_or_else(|e| {
        problems.push(format!("projection delay: {e}"));
        ProjectionDelay::default()
    });
    let rank = |s: &str| match s {
        "open" => 2,
        "half_open" => 1,
        _ => 0,
    };
    let integrations = INTEGRATIONS
        .iter()
        .map(|(name, groups)| Integration {
            name: name.to_string(),
            consumer_groups: groups
                .iter()
                .map(|g| {
                    let lag = lags.iter().find(|l| l.group == *g);
                    GroupLag { group: g.to_string(), lag_messages: lag.map_or(0, |l| l.messages), lag_seconds: lag.and_then(|l| l.seconds) }
                })
                .collect(),
            breaker: breakers.iter().filter(|(i, _)| i == name).map(|(_, s)| s.clone()).max_by_key(|s| rank(s)),
            error_rate: None,
            capability: capability(flags, name),
            held: held.iter().filter(|(i, _)| i == name).map(|(_, h)| h.clone()).collect(),
            realms: (*name == "qbo").then(|| realms.clone().unwrap_or_default()),
        })
        .collect();
    (SyncHealth { checked_at: Utc::now(), integrations, projection, dead_letters, problems }, counters)
}

/// Per consumer group: messages processed so far (the committed offsets) and dead letters
/// written so far (the high watermarks of its dead-letter topic).
type Counters = HashMap<String, (i64, i64)>;

/// The capability of `integration` as the flags topic says.
fn capability(flags: &Flags, integration: &str) -> Capability {
    let decision = flags.decide(integration, None);
    let panic = flags.entries().into_iter().find(|e| e.kind == "panic" && e.integration == integration && e.setting.on);
    let tenants = |on: bool| -> Vec<String> {
        flags.entries().into_iter().filter(|e| e.kind == "flag" && e.integration == integration && e.setting.on == on).filter_map(|e| e.tenant).collect()
    };
    let source = serde_json::to_value(decision.source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    Capability {
        enabled: decision.enabled,
        source,
        panic: panic.map(|p| PanicState { since: p.setting.changed_at, actor: p.setting.actor, reason: p.setting.reason }),
        tenants_off: tenants(false),
        tenants_on: tenants(true),
        known: flags.is_loaded(),
    }
}

/// Dead letters per processed message between two gatherings, over `groups`; `None` when
/// nothing was processed in between (or a group is missing from either).
fn error_rate<'a>(then: &Counters, now: &Counters, groups: impl Iterator<Item = &'a str>) -> Option<f64> {
    let (mut processed, mut dead_lettered) = (0i64, 0i64);
    for group in groups {
        let (p0, d0) = then.get(group)?;
        let (p1, d1) = now.get(group)?;
        processed += (p1 - p0).max(0);
        dead_lettered += (d1 - d0).max(0);
    }
    // A dead-lettered message is a processed one too, even before its offset is committed.
    let processed = processed.max(dead_lettered);
    (processed > 0).then(|| dead_lettered as f64 / processed as f64)
}

/// The live instances' breaker states, one query per publishing service.
const BREAKER_VIEWS: [&str; 4] = [
    "SELECT integration, breaker_state FROM read_api.integration_health WHERE updated_at > now() - interval '30 seconds'",
    "SELECT integration, breaker_state FROM read_api.projection_writer_integration_health WHERE updated_at > now() - interval '30 seconds'",
    "SELECT integration, breaker_state FROM read_api.sharefile_sync_integration_health WHERE updated_at > now() - interval '30 seconds'",
    "SELECT integration, breaker_state FROM read_api.graph_calendar_integration_health WHERE updated_at > now() - interval '30 seconds'",
];

/// The QBO companies: how many are active, which are revoked, and the stalest sync.
async fn realm_health(pool: &PgPool) -> Result<RealmHealth, sqlx::Error> {
    let (active, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), max(extract(epoch FROM now() - last_synced_at))::float8 FROM read_api.qbo_realms WHERE state = 'active'",
    )
    .fetch_one(pool)
    .await?;
    let revoked: Vec<String> = sqlx::query_scalar("SELECT realm_id FROM read_api.qbo_realms WHERE state = 'revoked' ORDER BY realm_id LIMIT 100").fetch_all(pool).await?;
    Ok(RealmHealth { active, revoked, oldest_sync_age_seconds: oldest })
}

/// Held events per integration and tenant, one query per service that holds.
const HELD_VIEWS: [&str; 4] = [
    "SELECT integration, tenant, events, oldest_held_at FROM read_api.ventures_sync_held_events",
    "SELECT integration, tenant, events, oldest_held_at FROM read_api.projection_writer_held_events",
    "SELECT integration, tenant, events, oldest_held_at FROM read_api.sharefile_sync_held_events",
    "SELECT integration, tenant, events, oldest_held_at FROM read_api.graph_calendar_held_events",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_rate_is_dead_letters_per_processed_message_in_the_window() {
        let then = Counters::from([("a".to_string(), (100, 1)), ("b".to_string(), (0, 0))]);
        let now = Counters::from([("a".to_string(), (300, 3)), ("b".to_string(), (200, 0))]);
        assert_eq!(error_rate(&then, &now, ["a", "b"].into_iter()), Some(2.0 / 400.0));
        assert_eq!(error_rate(&then, &then, ["a"].into_iter()), None, "no traffic, no rate");
        assert_eq!(error_rate(&then, &now, ["c"].into_iter()), None);
        let committed_late = Counters::from([("a".to_string(), (100, 5))]);
        assert_eq!(error_rate(&then, &committed_late, ["a"].into_iter()), Some(1.0), "never above 1");
    }
}
