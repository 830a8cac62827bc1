//! sharefile-sync: copies borrowers' uploads from Cloud Storage into the application's ShareFile
//! folder (flow 4) and says so with `DocumentStored`.
//!
//! One consumer (group `sharefile-sync.documents`) of `gateway.document.uploaded.v1`; the copy's
//! contract is in `copy`. ShareFile failing holds only this service's partitions: its circuit
//! breaker (with panic mode) and the `sharefile` capability flag gate the consumer.

pub mod copy;
pub mod folders;
pub mod md5;
pub mod sharefile;

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
use cloud_storage::{StorageClient, StorageConfig};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::sharefile::{ShareFileClient, ShareFileConfig};

pub const SERVICE: &str = "sharefile-sync";
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sharefile-sync");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub sharefile: ShareFileConfig,
    /// The folder the applications' folders are made in (`/Clients`).
    pub root_folder: String,
    pub storage: StorageConfig,
    pub documents: ConsumerConfig,
    /// The ShareFile circuit breaker (`BREAKER_THRESHOLD`, `BREAKER_OPEN_MS`).
    pub breaker: BreakerConfig,
    /// Panic mode of the `sharefile` capability (`PANIC_*`).
    pub panic: PanicConfig,
    pub capability_overrides: Overrides,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let timeout = env.millis_in("REQUEST_TIMEOUT", 30_000, 100..=600_000)?;
        let settings = Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9107")?,
            sharefile: ShareFileConfig {
                api_base: env.required("SHAREFILE_API_BASE")?,
                token_url: env.required("SHAREFILE_TOKEN_URL")?,
                client_id: env.required("SHAREFILE_CLIENT_ID")?,
                client_secret: env.secret("SHAREFILE_CLIENT_SECRET")?,
                username: env.required("SHAREFILE_USERNAME")?,
                password: env.secret("SHAREFILE_PASSWORD")?,
                timeout,
            },
            root_folder: env.or("ROOT_FOLDER", "/Clients".to_string())?,
            storage: StorageConfig {
                base_url: env.or("STORAGE_BASE_URL", "https://storage.googleapis.com".to_string())?,
                token: env.optional_secret("STORAGE_TOKEN")?,
                timeout,
            },
            documents: ConsumerConfig::from_env(&env, SERVICE, env.or("GROUP_ID", format!("{SERVICE}.documents"))?, &[topics::DOCUMENT_UPLOADED])?,
            breaker: BreakerConfig::from_env(&env)?,
            panic: PanicConfig::from_env(&env)?,
            capability_overrides: Flags::overrides_from_env(&env)?,
        };
        if settings.breaker.threshold > 0 && settings.breaker.threshold > settings.documents.max_attempts {
            return Err(SettingsError::Invalid {
                var: "SHAREFILE_SYNC__BREAKER_THRESHOLD".into(),
                value: settings.breaker.threshold.to_string(),
                reason: format!("must not exceed MAX_ATTEMPTS ({}): a document would be dead-lettered for an outage the breaker has not recognised yet", settings.documents.max_attempts),
            });
        }
        if !settings.root_folder.starts_with('/') {
            return Err(SettingsError::Invalid { var: "SHAREFILE_SYNC__ROOT_FOLDER".into(), value: settings.root_folder.clone(), reason: "must be a ShareFile path such as /Clients".into() });
        }
        Ok(settings)
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");

    let pool = db::connect(&settings.common.database_url, "sharefile_sync", &MIGRATOR, None, 4).await?;
    let documents = settings.documents.clone();
    kafka::ensure_topics(&settings.common.kafka, &[topics::DOCUMENT_UPLOADED, topics::DOCUMENT_STORED, &documents.dead_letter_topic()]).await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let codec = Codec::new(registry, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let mut background = tokio::task::JoinSet::new();
    let flags = Flags::follow(SERVICE, settings.capability_overrides.clone(), &settings.common.kafka, codec.clone(), &mut background, shutdown.clone());
    let breaker = flags.panic_mode(Breaker::new(SERVICE, "sharefile", settings.breaker), settings.panic, producer.clone(), &mut background, shutdown.clone());
    background.spawn(brain_runtime::breaker::publish_state(pool.clone(), breaker.clone(), brain_runtime::breaker::instance_name(), shutdown.clone()));
    let sharefile = Arc::new(ShareFileClient::new(settings.sharefile.clone(), breaker)?);
    let handler = Arc::new(copy::CopyHandler {
        storage: StorageClient::new(settings.storage.clone())?,
        sharefile: sharefile.clone(),
        folders: folders::Folders { sharefile, pool: pool.clone(), root: settings.root_folder.clone() },
        producer: producer.clone(),
        pool: pool.clone(),
        gate: Gate::new(flags, "sharefile", pool),
    });
    readiness.set(true);
    tracing::info!(group = %documents.group_id, root = %settings.root_folder, "ready");

    let result = shutdown::run_together(
        &shutdown,
        vec![Box::pin(consumer::run(documents, settings.common.kafka.clone(), codec, producer.clone(), handler, readiness.clone(), shutdown.clone()))],
    )
    .await;
    producer.flush(Duration::from_secs(10));
    background.join_all().await;
    readiness.set(false);
    shutdown.cancel();
    let _ = ops_task.await;
    result
}
