//! graph-calendar: scheduling with staff through Microsoft Graph (flow 5).
//!
//! - **Availability** (`availability`): every staff member's schedule is read from Graph
//!   (`getSchedule`) every `REFRESH_INTERVAL_MS` and at once when a change notification says
//!   their calendar changed (group `graph-calendar.notifications` of
//!   `gateway.graph.notification-received.v1`); Brain computes the free slots itself (`slots`)
//!   and publishes them to the gateway through `read_api.calendar_free_slots`, with freshness.
//! - **Meetings** (`booking`, `changes`): group `graph-calendar.bookings` of
//!   `gateway.calendar.booking-requested.v1` books, cancels and resends, exactly once in Graph
//!   (`transactionId`), with the ICS Brain renders (`ics`), and publishes `MeetingChanged`.
//! - **Subscriptions** (`subscriptions`): one per staff member, created and renewed, pointing at
//!   the gateway's `POST /api/v1/webhooks/graph`.
//!
//! - **Teams relay** (`relay`): group `graph-calendar.relays` of `firestore.message.changed.v1`
//!   posts staff messages that asked for it to the Teams channel once and publishes
//!   `graph.message.relayed.v1` (flow 6).
//!
//! Graph failing holds only this service's work: its circuit breaker (with panic mode) and the
//! `graph` capability flag gate the bookings.

pub mod availability;
pub mod booking;
pub mod changes;
pub mod graph;
pub mod ics;
pub mod meetings;
pub mod notifications;
pub mod relay;
pub mod slots;
pub mod subscriptions;

use std::{sync::Arc, time::Duration};

use brain_events::{Codec, RegistryClient, topics};
use brain_runtime::{
    breaker::{Breaker, BreakerConfig},
    consumer::{self, ConsumerConfig},
    db,
    flags::{Flags, Gate, Overrides, PanicConfig},
    kafka, ops,
    producer::EventProducer,
    settings::{CommonSettings, Env, SettingsError},
    shutdown,
};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::{
    availability::{Availability, AvailabilityConfig},
    graph::{GraphClient, GraphConfig},
    slots::WorkingHours,
    subscriptions::{SubscriptionConfig, Subscriptions},
};

pub const SERVICE: &str = "graph-calendar";
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/graph-calendar");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub graph: GraphConfig,
    /// The Brain tenant the staff calendars belong to (`TENANT_ID`).
    pub tenant_id: String,
    /// `STAFF`: the staff members' Graph user ids (added to the `staff` table at start-up).
    pub staff: Vec<String>,
    pub availability: AvailabilityConfig,
    /// `NOTIFICATION_URL` and `CLIENT_STATE`: without them, no subscriptions (the periodic
    /// refresh alone keeps availability fresh).
    pub subscriptions: Option<SubscriptionConfig>,
    pub bookings: ConsumerConfig,
    pub notifications: ConsumerConfig,
    /// Messages, for the Teams relay (group `graph-calendar.relays`).
    pub relays: ConsumerConfig,
    pub relay: relay::RelayConfig,
    /// `BOOKING_ATTEMPTS`: tries of a command failing in Graph before the meeting shows it.
    pub booking_attempts: u32,
    pub breaker: BreakerConfig,
    pub panic: PanicConfig,
    pub capability_overrides: Overrides,
}

fn invalid(var: &str, value: impl ToString, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { var: format!("GRAPH_CALENDAR__{var}"), value: value.to_string(), reason: reason.into() }
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let hours: String = env.or("WORKING_HOURS", "09:00-17:00".to_string())?;
        let days: String = env.or("WORKING_DAYS", "Mon-Fri".to_string())?;
        let slot_minutes: u32 = env.ranged("SLOT_MINUTES", 30, 5..=240)?;
        if !1440u32.is_multiple_of(slot_minutes) {
            return Err(invalid("SLOT_MINUTES", slot_minutes, "must divide a day (15, 20, 30, 60, ...)"));
        }
        let notification_url: Option<String> = env.optional("NOTIFICATION_URL")?;
        let subscriptions = match notification_url {
            None => None,
            Some(url) => Some(SubscriptionConfig {
                notification_url: url,
                client_state: env.secret("CLIENT_STATE")?,
                lifetime: chrono::Duration::minutes(env.ranged("SUBSCRIPTION_MINUTES", 4_230, 10..=10_080)?),
            }),
        };
        let team: Option<String> = env.optional("TEAMS_TEAM_ID")?;
        let channel: Option<String> = env.optional("TEAMS_CHANNEL_ID")?;
        let channel = match (team, channel) {
            (Some(team_id), Some(channel_id)) => Some(graph::Channel { team_id, channel_id }),
            (None, None) => None,
            (team, _) => return Err(invalid(if team.is_some() { "TEAMS_CHANNEL_ID" } else { "TEAMS_TEAM_ID" }, "", "TEAMS_TEAM_ID and TEAMS_CHANNEL_ID go together")),
        };
        let staff: Vec<String> = env.or("STAFF", String::new())?.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let settings = Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9108")?,
            graph: GraphConfig {
                api_base: env.or("GRAPH_API_BASE", "https://graph.microsoft.com/v1.0".to_string())?,
                token_url: env.required("GRAPH_TOKEN_URL")?,
                client_id: env.required("GRAPH_CLIENT_ID")?,
                client_secret: env.secret("GRAPH_CLIENT_SECRET")?,
                timeout: env.millis_in("REQUEST_TIMEOUT", 10_000, 100..=120_000)?,
            },
            tenant_id: env.or("TENANT_ID", "default".to_string())?,
            availability: AvailabilityConfig {
                days: env.ranged("AVAILABILITY_DAYS", 14, 1..=62)?,
                hours: WorkingHours::parse(&hours, &days).map_err(|reason| invalid("WORKING_HOURS", format!("{hours} {days}"), reason))?,
                slot_minutes,
                refresh_every: env.millis_in("REFRESH_INTERVAL", 300_000, 500..=86_400_000)?,
            },
            subscriptions,
            bookings: ConsumerConfig::from_env(&env, SERVICE, env.or("BOOKINGS_GROUP_ID", format!("{SERVICE}.bookings"))?, &[topics::BOOKING_REQUESTED])?,
            notifications: ConsumerConfig::from_env(&env, SERVICE, env.or("NOTIFICATIONS_GROUP_ID", format!("{SERVICE}.notifications"))?, &[topics::GRAPH_NOTIFICATION_RECEIVED])?,
            relays: ConsumerConfig::from_env(&env, SERVICE, env.or("RELAYS_GROUP_ID", format!("{SERVICE}.relays"))?, &[topics::MESSAGE_CHANGED])?,
            relay: relay::RelayConfig { channel, attempts: env.ranged("RELAY_ATTEMPTS", 3, 1..=10)?, search_pages: env.ranged("RELAY_SEARCH_PAGES", 10, 1..=100)? },
            booking_attempts: env.ranged("BOOKING_ATTEMPTS", 2, 1..=10)?,
            breaker: BreakerConfig::from_env(&env)?,
            panic: PanicConfig::from_env(&env)?,
            capability_overrides: Flags::overrides_from_env(&env)?,
            staff,
        };
        let max_attempts = settings.bookings.max_attempts;
        if settings.booking_attempts > max_attempts {
            return Err(invalid("BOOKING_ATTEMPTS", settings.booking_attempts, format!("must not exceed MAX_ATTEMPTS ({max_attempts}): the runtime would dead-letter a booking before it is shown failed")));
        }
        if settings.relay.attempts > settings.relays.max_attempts {
            return Err(invalid("RELAY_ATTEMPTS", settings.relay.attempts, format!("must not exceed MAX_ATTEMPTS ({})", settings.relays.max_attempts)));
        }
        if settings.breaker.threshold > max_attempts {
            return Err(invalid("BREAKER_THRESHOLD", settings.breaker.threshold, format!("must not exceed MAX_ATTEMPTS ({max_attempts})")));
        }
        Ok(settings)
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");

    let pool = db::connect(&settings.common.database_url, "graph_calendar", &MIGRATOR, None, 20).await?;
    let (bookings, notifications, relays) = (settings.bookings.clone(), settings.notifications.clone(), settings.relays.clone());
    kafka::ensure_topics(
        &settings.common.kafka,
        &[
            topics::BOOKING_REQUESTED,
            topics::GRAPH_NOTIFICATION_RECEIVED,
            topics::MEETING_CHANGED,
            topics::MESSAGE_CHANGED,
            topics::MESSAGE_RELAYED,
            &bookings.dead_letter_topic(),
            &notifications.dead_letter_topic(),
            &relays.dead_letter_topic(),
        ],
    )
    .await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let codec = Codec::new(registry, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let mut background = tokio::task::JoinSet::new();
    let flags = Flags::follow(SERVICE, settings.capability_overrides.clone(), &settings.common.kafka, codec.clone(), &mut background, shutdown.clone());
    let breaker = flags.panic_mode(Breaker::new(SERVICE, "graph", settings.breaker), settings.panic, producer.clone(), &mut background, shutdown.clone());
    background.spawn(brain_runtime::breaker::publish_state(pool.clone(), breaker.clone(), brain_runtime::breaker::instance_name(), shutdown.clone()));
    let graph = Arc::new(GraphClient::new(settings.graph.clone(), breaker)?);
    let availability = Arc::new(Availability { pool: pool.clone(), graph: graph.clone(), config: settings.availability.clone() });
    availability.register_staff(&settings.tenant_id, &settings.staff).await?;
    background.spawn(availability.clone().run(shutdown.clone()));
    if let Some(config) = settings.subscriptions.clone() {
        background.spawn(Subscriptions { pool: pool.clone(), graph: graph.clone(), config }.run(shutdown.clone()));
    } else {
        tracing::warn!("no NOTIFICATION_URL: no change notifications; availability is refreshed every REFRESH_INTERVAL_MS only");
    }
    let booking = Arc::new(booking::BookingHandler {
        pool: pool.clone(),
        graph: graph.clone(),
        availability: availability.clone(),
        producer: producer.clone(),
        gate: Gate::new(flags.clone(), "graph", pool.clone()),
        attempts: settings.booking_attempts,
    });
    if settings.relay.channel.is_none() {
        tracing::warn!("no TEAMS_TEAM_ID/TEAMS_CHANNEL_ID: messages asking for the Teams relay are marked skipped");
    }
    let relay = Arc::new(relay::RelayHandler { pool: pool.clone(), graph: graph.clone(), producer: producer.clone(), gate: Gate::new(flags, "teams", pool), config: settings.relay.clone() });
    let notified = Arc::new(notifications::NotificationHandler { availability });
    readiness.set(true);
    tracing::info!(staff = settings.staff.len(), bookings = %bookings.group_id, notifications = %notifications.group_id, "ready");

    let result = shutdown::run_together(
        &shutdown,
        vec![
            Box::pin(consumer::run(bookings, settings.common.kafka.clone(), codec.clone(), producer.clone(), booking, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(notifications, settings.common.kafka.clone(), codec.clone(), producer.clone(), notified, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(relays, settings.common.kafka.clone(), codec, producer.clone(), relay, readiness.clone(), shutdown.clone())),
        ],
    )
    .await;
    producer.flush(Duration::from_secs(10));
    background.join_all().await;
    readiness.set(false);
    shutdown.cancel();
    let _ = ops_task.await;
    result
}
