//! dlq-replayer: the operators' tool for dead letters (flow 8). It lists, counts and shows the
//! dead letters of every `deadletter.*` topic (decoded, with their history), replays chosen ones
//! to their original topics (dry run, rate limit, progress, resumable jobs, an audit in its own
//! PostgreSQL schema), and parks or discards those that must not be replayed.
//!
//! Used as a CLI (`dlq-replayer --help`) and as a service with an internal HTTP API
//! (`dlq-replayer serve`, [`serve`]), which the gateway's admin API and its ops page forward to.
//! Both run the same jobs ([`job`]), dispositions ([`dispose`]) and views ([`view`]).

pub mod audit;
pub mod capabilities;
pub mod dispose;
pub mod filter;
pub mod job;
pub mod read;
pub mod replay;
pub mod serve;
pub mod view;

use brain_events::{Codec, RegistryClient, codec::SchemaIds};
use brain_runtime::{
    db,
    producer::EventProducer,
    settings::{self, Env, KafkaSettings, SettingsError},
};
use secrecy::{ExposeSecret, SecretString};

pub const SERVICE: &str = "dlq-replayer";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/dlq-replayer");

/// `DLQ_REPLAYER__…` or `BRAIN__…`: the same Kafka, registry and database settings as the services.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub schema_registry_url: SecretString,
    pub schema_ids: SchemaIds,
    pub database_url: SecretString,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        Ok(Self {
            kafka: KafkaSettings::from_env(&env)?,
            schema_registry_url: settings::registry_url(&env)?,
            schema_ids: settings::schema_ids(&env)?,
            database_url: env.secret("DATABASE_URL")?,
        })
    }
}

/// What every command needs.
pub struct Tools {
    pub settings: Settings,
    pub codec: Codec,
    pub audit: audit::Audit,
}

impl Tools {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        Self::connect_with(settings, 2).await
    }

    /// With a pool of `connections` (the service serves several requests at once).
    pub async fn connect_with(settings: Settings, connections: u32) -> anyhow::Result<Self> {
        let codec = Codec::new(RegistryClient::new(settings.schema_registry_url.expose_secret())?, settings.schema_ids);
        let pool = db::connect(&settings.database_url, "dlq_replayer", &MIGRATOR, None, connections).await?;
        Ok(Self { settings, codec, audit: audit::Audit { pool } })
    }

    pub fn producer(&self) -> anyhow::Result<EventProducer> {
        EventProducer::new(&self.settings.kafka, self.codec.clone(), SERVICE)
    }
}
