//! projection-writer: the only server-side writer of Firestore projections, and the writer of the
//! console read models and the append-only audit log in PostgreSQL.

pub mod firestore;
pub mod handler;
pub mod seen;

use std::{sync::Arc, time::Duration};

use brain_events::{Codec, RegistryClient, topics};
use brain_runtime::{
    consumer::{self, ConsumerConfig},
    db, kafka, ops,
    producer::EventProducer,
    settings::{CommonSettings, Env, SettingsError},
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
    /// PostgreSQL connections of the pool (one per partition worker in flight is plenty).
    pub database_connections: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let group_id: String = env.or("GROUP_ID", SERVICE.to_string())?;
        Ok(Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9102")?,
            firestore_project_id: env.required("FIRESTORE_PROJECT_ID")?,
            firestore_deadline: env.millis_in("FIRESTORE_DEADLINE", 10_000, 100..=120_000)?,
            consumer: ConsumerConfig::from_env(&env, SERVICE, group_id, &[topics::LOAN_STATUS_CHANGED])?,
            database_connections: env.ranged("DATABASE_CONNECTIONS", 8, 1..=200)?,
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
    kafka::ensure_topics(&settings.common.kafka, &[topics::LOAN_STATUS_CHANGED, &config.dead_letter_topic()]).await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let codec = Codec::new(registry, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let projections = firestore::Projections::connect(&settings.firestore_project_id).await?;
    let handler = Arc::new(handler::LoanStatusHandler {
        pool,
        projections,
        consumer: config.group_id.clone(),
        firestore_deadline: settings.firestore_deadline,
        seen: Default::default(),
    });
    readiness.set(true);
    tracing::info!(group = %config.group_id, "ready");

    let result = consumer::run(config, settings.common.kafka.clone(), codec, producer, handler, readiness.clone(), shutdown.clone()).await;
    readiness.set(false);
    shutdown.cancel();
    let _ = ops_task.await;
    result
}
