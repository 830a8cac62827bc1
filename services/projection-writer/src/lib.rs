//! projection-writer: the only server-side writer of Firestore projections, and the writer of the
//! console read models and the append-only audit log in PostgreSQL.
//!
//! Ten consumers in one process, each its own group (so each has its own dead-letter topic):
//! loan states (`handler`), status-change requests and their outcomes (`commands`), the
//! Firestore changes that touched Brain-owned fields (`guard`), and the tasks' conditions, uploads
//! and stored documents and the staff's actions on them (`tasks`, with the per-staff `inbox`), and the messages with their Teams relay outcomes
//! (`messages`).

pub mod commands;
pub mod firestore;
pub mod guard;
pub mod handler;
pub mod inbox;
pub mod messages;
pub mod reconcile;
pub mod seen;
pub mod sla;
pub mod tasks;

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

pub const SERVICE: &str = "projection-writer";
/// The PostgreSQL role the service runs as after migrating (see the migration's grants).
pub const DB_ROLE: &str = "brain_projection_writer";
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/projection-writer");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub firestore_project_id: String,
    /// Deadline of each Firestore call.
    pub firestore_deadline: Duration,
    pub consumer: ConsumerConfig,
    /// Status-change requests (group `<GROUP_ID>.command-requests`).
    pub command_requests: ConsumerConfig,
    /// Status-change outcomes (group `<GROUP_ID>.command-outcomes`).
    pub command_outcomes: ConsumerConfig,
    /// Firestore document changes (group `<GROUP_ID>.document-changes`).
    pub document_changes: ConsumerConfig,
    /// Ventures condition changes, uploads and stored documents → tasks (groups
    /// `<GROUP_ID>.task-conditions`, `.task-uploads`, `.task-documents`).
    pub task_conditions: ConsumerConfig,
    pub task_uploads: ConsumerConfig,
    pub task_documents: ConsumerConfig,
    /// Staff actions on tasks (group `<GROUP_ID>.task-actions`).
    pub task_actions: ConsumerConfig,
    /// Messages the apps wrote and their Teams relay outcomes (groups `<GROUP_ID>.messages`,
    /// `<GROUP_ID>.message-relays`).
    pub messages: ConsumerConfig,
    pub message_relays: ConsumerConfig,
    /// PostgreSQL connections of the pool (one per partition worker in flight is plenty).
    pub database_connections: u32,
    /// The Firestore circuit breaker (`BREAKER_THRESHOLD`, `BREAKER_OPEN_MS`).
    pub breaker: BreakerConfig,
    /// Panic mode of the `firestore` capability (`PANIC_*`).
    pub panic: PanicConfig,
    /// `CAPABILITY_OVERRIDES`: the environment's emergency overrides of the flags.
    pub capability_overrides: Overrides,
    /// `RECONCILE_INTERVAL_MS`: how often the projections are compared with the read model (0: never).
    pub reconcile_every: Duration,
    /// `SLA_*`: the tasks' SLA timers.
    pub sla: sla::SlaConfig,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let group_id: String = env.or("GROUP_ID", SERVICE.to_string())?;
        Ok(Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9102")?,
            firestore_project_id: env.required("FIRESTORE_PROJECT_ID")?,
            firestore_deadline: env.millis_in("FIRESTORE_DEADLINE", 10_000, 100..=120_000)?,
            consumer: ConsumerConfig::from_env(&env, SERVICE, group_id.clone(), &[topics::LOAN_STATUS_CHANGED])?,
            command_requests: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.command-requests"), &[topics::STATUS_CHANGE_REQUESTED])?,
            command_outcomes: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.command-outcomes"), &[topics::STATUS_CHANGE_RESOLVED])?,
            document_changes: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.document-changes"), &[topics::DOCUMENT_CHANGED])?,
            task_conditions: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.task-conditions"), &[topics::CONDITION_CHANGED])?,
            task_uploads: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.task-uploads"), &[topics::DOCUMENT_UPLOADED])?,
            task_documents: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.task-documents"), &[topics::DOCUMENT_STORED])?,
            task_actions: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.task-actions"), &[topics::TASK_ACTION_REQUESTED])?,
            messages: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.messages"), &[topics::MESSAGE_CHANGED])?,
            message_relays: ConsumerConfig::from_env(&env, SERVICE, format!("{group_id}.message-relays"), &[topics::MESSAGE_RELAYED])?,
            database_connections: env.ranged("DATABASE_CONNECTIONS", 8, 1..=200)?,
            breaker: BreakerConfig::from_env(&env)?,
            panic: PanicConfig::from_env(&env)?,
            capability_overrides: Flags::overrides_from_env(&env)?,
            reconcile_every: env.millis_in("RECONCILE_INTERVAL", 600_000, 0..=86_400_000)?,
            sla: sla::SlaConfig::from_env(&env)?,
        })
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");

    let pool = db::connect(&settings.common.database_url, "projection_writer", &MIGRATOR, Some(DB_ROLE), settings.database_connections).await?;
    let config = settings.consumer.clone();
    let requests = settings.command_requests.clone();
    let outcomes = settings.command_outcomes.clone();
    let changes = settings.document_changes.clone();
    let (task_conditions, task_uploads, task_documents) = (settings.task_conditions.clone(), settings.task_uploads.clone(), settings.task_documents.clone());
    let task_actions = settings.task_actions.clone();
    let (message_changes, message_relays) = (settings.messages.clone(), settings.message_relays.clone());
    kafka::ensure_topics(
        &settings.common.kafka,
        &[
            topics::LOAN_STATUS_CHANGED,
            topics::STATUS_CHANGE_REQUESTED,
            topics::STATUS_CHANGE_RESOLVED,
            topics::DOCUMENT_CHANGED,
            topics::PROTECTED_FIELD_VIOLATION,
            topics::CONDITION_CHANGED,
            topics::DOCUMENT_UPLOADED,
            topics::DOCUMENT_STORED,
            topics::TASK_SLA_BREACHED,
            topics::MESSAGE_CHANGED,
            topics::MESSAGE_RELAYED,
            topics::TASK_ACTION_REQUESTED,
            &task_actions.dead_letter_topic(),
            &message_changes.dead_letter_topic(),
            &message_relays.dead_letter_topic(),
            &task_conditions.dead_letter_topic(),
            &task_uploads.dead_letter_topic(),
            &task_documents.dead_letter_topic(),
            &config.dead_letter_topic(),
            &changes.dead_letter_topic(),
            &requests.dead_letter_topic(),
            &outcomes.dead_letter_topic(),
        ],
    )
    .await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let codec = Codec::new(registry, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let mut background = tokio::task::JoinSet::new();
    let flags = Flags::follow(SERVICE, settings.capability_overrides.clone(), &settings.common.kafka, codec.clone(), &mut background, shutdown.clone());
    let breaker = flags.panic_mode(Breaker::new(SERVICE, "firestore", settings.breaker), settings.panic, producer.clone(), &mut background, shutdown.clone());
    let projections = firestore::Projections::connect(&settings.firestore_project_id)
        .await?
        .with_breaker(breaker.clone())
        .with_gate(Gate::new(flags, "firestore", pool.clone()));
    background.spawn(brain_runtime::breaker::publish_state(pool.clone(), breaker, brain_runtime::breaker::instance_name(), shutdown.clone()));
    let seen = Arc::new(seen::SeenCache::default());
    let handler = Arc::new(handler::LoanStatusHandler {
        pool: pool.clone(),
        projections: projections.clone(),
        consumer: config.group_id.clone(),
        firestore_deadline: settings.firestore_deadline,
        seen: seen.clone(),
    });
    let guard = Arc::new(guard::ProtectedFieldGuard {
        pool: pool.clone(),
        projections: projections.clone(),
        producer: producer.clone(),
        firestore_deadline: settings.firestore_deadline,
        seen: seen.clone(),
    });
    background.spawn(reconcile::run(guard.clone(), pool.clone(), projections.clone(), settings.reconcile_every, shutdown.clone()));
    let tasks = Arc::new(tasks::TaskProjector { pool: pool.clone(), projections: projections.clone(), firestore_deadline: settings.firestore_deadline, sla: settings.sla });
    let timers = Arc::new(sla::Timers { pool: pool.clone(), projections: projections.clone(), producer: producer.clone(), firestore_deadline: settings.firestore_deadline, config: settings.sla });
    background.spawn(timers.run(shutdown.clone()));
    let condition_handler = Arc::new(tasks::ConditionHandler { projector: tasks.clone(), consumer: task_conditions.group_id.clone() });
    let uploaded_handler = Arc::new(tasks::UploadedHandler { projector: tasks.clone(), consumer: task_uploads.group_id.clone() });
    let stored_handler = Arc::new(tasks::StoredHandler { projector: tasks.clone(), consumer: task_documents.group_id.clone() });
    let action_handler = Arc::new(tasks::ActionHandler { projector: tasks, consumer: task_actions.group_id.clone() });
    let conversation = Arc::new(messages::MessageProjector { pool: pool.clone(), projections: projections.clone(), firestore_deadline: settings.firestore_deadline });
    let message_handler = Arc::new(messages::MessageHandler { projector: conversation.clone(), consumer: message_changes.group_id.clone() });
    let relayed_handler = Arc::new(messages::RelayedHandler { projector: conversation, consumer: message_relays.group_id.clone() });
    let projector = Arc::new(commands::CommandProjector { pool, projections, firestore_deadline: settings.firestore_deadline, seen });
    let requested = Arc::new(commands::RequestedHandler { projector: projector.clone(), consumer: requests.group_id.clone() });
    let resolved = Arc::new(commands::ResolvedHandler { projector, consumer: outcomes.group_id.clone() });
    readiness.set(true);
    tracing::info!(group = %config.group_id, "ready");

    let kafka = &settings.common.kafka;
    let result = shutdown::run_together(
        &shutdown,
        vec![
            Box::pin(consumer::run(config, kafka.clone(), codec.clone(), producer.clone(), handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(requests, kafka.clone(), codec.clone(), producer.clone(), requested, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(outcomes, kafka.clone(), codec.clone(), producer.clone(), resolved, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(changes, kafka.clone(), codec.clone(), producer.clone(), guard, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(task_conditions, kafka.clone(), codec.clone(), producer.clone(), condition_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(task_uploads, kafka.clone(), codec.clone(), producer.clone(), uploaded_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(task_documents, kafka.clone(), codec.clone(), producer.clone(), stored_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(task_actions, kafka.clone(), codec.clone(), producer.clone(), action_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(message_changes, kafka.clone(), codec.clone(), producer.clone(), message_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(message_relays, kafka.clone(), codec, producer, relayed_handler, readiness.clone(), shutdown.clone())),
        ],
    )
    .await;
    background.join_all().await;
    readiness.set(false);
    shutdown.cancel();
    let _ = ops_task.await;
    result
}
