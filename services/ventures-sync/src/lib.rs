//! ventures-sync: keeps Brain consistent with the Ventures loan origination system.
//!
//! - Downstream: a sweep of the Ventures change feed publishes the full state of every changed
//!   loan to `ventures.loan.status-changed.v1`, keyed by application id (`sweep`); one instance
//!   sweeps per tenant, holding the tenant's lease (`lease`), the others stand by.
//! - Upstream: status-change commands from `gateway.application.status-change-requested.v1` are
//!   applied in Ventures exactly once and their outcome published (`commands`); borrowers' draft
//!   edits from `firestore.document.changed.v1` are pushed to Ventures as drafts (`drafts`);
//!   documents stored in ShareFile (`sharefile.document.stored.v1`) are attached to their
//!   conditions (`attach`). The sweep also publishes condition changes (`conditions`).
//!
//! All four run in one process until shutdown; any ending stops the others.

pub mod attach;
pub mod client;
pub mod commands;
pub mod conditions;
pub mod drafts;
pub mod events;
pub mod lease;
pub mod sweep;

use std::{sync::Arc, time::Duration};

use brain_events::{Codec, RegistryClient, topics};
use brain_runtime::{
    breaker::{Breaker, BreakerConfig},
    flags::{Flags, Gate, Overrides, PanicConfig},
    consumer::{self, ConsumerConfig},
    db, kafka, ops,
    producer::EventProducer,
    retry::Backoff,
    settings::{CommonSettings, Env, SettingsError},
    shutdown,
};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::client::{Credentials, VenturesClient};

pub const SERVICE: &str = "ventures-sync";
/// Messages a consumer takes at once to let tenants take turns (see `brain_runtime::consumer`).
const FAIR_WINDOW: usize = 2_000;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/ventures-sync");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub ventures_base_url: String,
    pub ventures_client: String,
    pub ventures_username: String,
    pub ventures_password: SecretString,
    pub tenant_id: String,
    pub sweep_interval: Duration,
    pub page_size: u32,
    pub request_timeout: Duration,
    /// The consumer of status-change commands.
    pub commands: ConsumerConfig,
    /// The consumer of Firestore changes (borrower drafts).
    pub drafts: ConsumerConfig,
    /// The consumer of documents stored in ShareFile (attached to their conditions).
    pub documents: ConsumerConfig,
    /// The draft fields borrowers may change (`draft.<field>` in `applications/{id}`).
    pub draft_fields: Vec<String>,
    /// The Ventures circuit breaker (`BREAKER_THRESHOLD`, `BREAKER_OPEN_MS`).
    pub breaker: BreakerConfig,
    /// Panic mode of the `ventures` capability (`PANIC_*`).
    pub panic: PanicConfig,
    /// `CAPABILITY_OVERRIDES`: the environment's emergency overrides of the flags.
    pub capability_overrides: Overrides,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let settings = Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9101")?,
            ventures_base_url: env.required("VENTURES_BASE_URL")?,
            ventures_client: env.required("VENTURES_CLIENT")?,
            ventures_username: env.required("VENTURES_USERNAME")?,
            ventures_password: env.secret("VENTURES_PASSWORD")?,
            tenant_id: env.or("TENANT_ID", "default".to_string())?,
            sweep_interval: env.millis("SWEEP_INTERVAL", 1000)?,
            page_size: env.or("SWEEP_PAGE_SIZE", 500)?,
            request_timeout: env.millis("REQUEST_TIMEOUT", 10_000)?,
            // Every command is a Ventures call: tenants take turns (FAIR_WINDOW, default 2,000).
            commands: ConsumerConfig {
                fair_window: env.ranged("FAIR_WINDOW", FAIR_WINDOW, 0..=100_000)?,
                ..ConsumerConfig::from_env(&env, SERVICE, env.or("COMMANDS_GROUP_ID", format!("{SERVICE}.commands"))?, &[topics::STATUS_CHANGE_REQUESTED])?
            },
            drafts: ConsumerConfig {
                fair_window: env.ranged("FAIR_WINDOW", FAIR_WINDOW, 0..=100_000)?,
                ..ConsumerConfig::from_env(&env, SERVICE, env.or("DRAFTS_GROUP_ID", format!("{SERVICE}.drafts"))?, &[topics::DOCUMENT_CHANGED])?
            },
            documents: ConsumerConfig {
                fair_window: env.ranged("FAIR_WINDOW", FAIR_WINDOW, 0..=100_000)?,
                ..ConsumerConfig::from_env(&env, SERVICE, env.or("DOCUMENTS_GROUP_ID", format!("{SERVICE}.documents"))?, &[topics::DOCUMENT_STORED])?
            },
            draft_fields: env
                .or("DRAFT_FIELDS", "businessName,purpose,amountRequested,contactPhone".to_string())?
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
            breaker: BreakerConfig::from_env(&env)?,
            panic: PanicConfig::from_env(&env)?,
            capability_overrides: Flags::overrides_from_env(&env)?,
        };
        // A message must not run out of tries before the breaker recognises an outage.
        for consumer in [&settings.commands, &settings.drafts, &settings.documents] {
            if settings.breaker.threshold > 0 && settings.breaker.threshold > consumer.max_attempts {
                return Err(SettingsError::Invalid {
                    var: "VENTURES_SYNC__BREAKER_THRESHOLD".into(),
                    value: settings.breaker.threshold.to_string(),
                    reason: format!("must not exceed MAX_ATTEMPTS ({}): a message would be dead-lettered for an outage the breaker has not recognised yet", consumer.max_attempts),
                });
            }
        }
        Ok(settings)
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");

    let pool = db::connect(&settings.common.database_url, "ventures_sync", &MIGRATOR, None, 4).await?;
    let commands = settings.commands.clone();
    let drafts = settings.drafts.clone();
    let documents = settings.documents.clone();
    kafka::ensure_topics(
        &settings.common.kafka,
        &[
            topics::LOAN_STATUS_CHANGED,
            topics::STATUS_CHANGE_REQUESTED,
            topics::STATUS_CHANGE_RESOLVED,
            topics::DOCUMENT_CHANGED,
            topics::CONDITION_CHANGED,
            topics::DOCUMENT_STORED,
            &commands.dead_letter_topic(),
            &drafts.dead_letter_topic(),
            &documents.dead_letter_topic(),
        ],
    )
    .await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let codec = Codec::new(registry, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let mut background = tokio::task::JoinSet::new();
    let flags = Flags::follow(SERVICE, settings.capability_overrides.clone(), &settings.common.kafka, codec.clone(), &mut background, shutdown.clone());
    let breaker = flags.panic_mode(Breaker::new(SERVICE, "ventures", settings.breaker), settings.panic, producer.clone(), &mut background, shutdown.clone());
    let gate = Gate::new(flags.clone(), "ventures", pool.clone());
    let client = Arc::new(VenturesClient::new(
        &settings.ventures_base_url,
        Credentials {
            client: settings.ventures_client.clone(),
            username: settings.ventures_username.clone(),
            password: settings.ventures_password.clone(),
        },
        settings.request_timeout,
        breaker,
    )?);
    readiness.set(true);
    tracing::info!(tenant_id = %settings.tenant_id, "ready");

    let handler = Arc::new(commands::StatusCommandHandler {
        client: client.clone(),
        producer: producer.clone(),
        pool: pool.clone(),
        tenant_id: settings.tenant_id.clone(),
        gate: gate.clone(),
    });
    background.spawn(brain_runtime::breaker::publish_state(pool.clone(), client.breaker().clone(), brain_runtime::breaker::instance_name(), shutdown.clone()));
    let draft_handler = Arc::new(drafts::DraftHandler {
        client: client.clone(),
        pool: pool.clone(),
        tenant_id: settings.tenant_id.clone(),
        fields: settings.draft_fields.clone(),
        gate: gate.clone(),
    });
    let attach_handler = Arc::new(attach::AttachHandler { client: client.clone(), pool: pool.clone(), tenant_id: settings.tenant_id.clone(), gate });
    let sweep = sweep::Sweep {
        client,
        producer: producer.clone(),
        applications: conditions::Applications { pool: pool.clone() },
        pool,
        tenant_id: settings.tenant_id.clone(),
        interval: settings.sweep_interval,
        page_size: settings.page_size,
        // A poller keeps its lag low: at most 10 s between tries unless the server asks for more.
        backoff: Backoff { max: Duration::from_secs(10), ..Backoff::default() },
        flags,
    };
    let kafka = &settings.common.kafka;
    let result = shutdown::run_together(
        &shutdown,
        vec![
            Box::pin(sweep.run(shutdown.clone())),
            Box::pin(consumer::run(commands, kafka.clone(), codec.clone(), producer.clone(), handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(drafts, kafka.clone(), codec.clone(), producer.clone(), draft_handler, readiness.clone(), shutdown.clone())),
            Box::pin(consumer::run(documents, kafka.clone(), codec, producer, attach_handler, readiness.clone(), shutdown.clone())),
        ],
    )
    .await;
    background.join_all().await;
    readiness.set(false);
    shutdown.cancel();
    let _ = ops_task.await;
    result
}
