//! firestore-change-listener: turns changes the apps make in Firestore into events (flow 3).
//!
//! It listens to `applications` and, at any depth, `tasks` and `messages` (one `Listen` stream
//! per target, `watch`), and publishes one `DocumentChanged` per document change on
//! `firestore.document.changed.v1`, keyed by application id: the fields that changed with their
//! old and new values, the old and new update time (the document's version), the actor when the
//! app records one, and which changed fields are Brain-owned. A message an app created, a
//! recipient's receipt on it, or its deletion also goes out as a `MessageChanged` on
//! `firestore.message.changed.v1` (flow 6, `messages`). A durable checkpoint in PostgreSQL
//! (`checkpoint`) deduplicates by update time, so a restart neither loses nor floods changes.
//!
//! It writes nothing to Firestore: Brain-owned fields a client wrote are restored by
//! projection-writer, Firestore's only server-side writer.

pub mod checkpoint;
pub mod events;
pub mod messages;
pub mod values;
pub mod watch;

use std::time::Duration;

use brain_events::{Codec, RegistryClient, topics};
use brain_runtime::{
    db, kafka, ops,
    producer::EventProducer,
    settings::{CommonSettings, Env, SettingsError},
};
use firestore::{FirestoreDb, FirestoreDbOptions};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{checkpoint::Checkpoint, watch::WatchTarget};

pub const SERVICE: &str = "firestore-change-listener";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/firestore-change-listener");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub firestore_project_id: String,
    /// What to listen to: top-level collections, or `*/<id>` for every collection of that id.
    pub targets: Vec<WatchTarget>,
    /// The tenant of documents without a `tenantId` field.
    pub tenant_id: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let raw: String = env.or("TARGETS", "applications,*/tasks,*/messages".to_string())?;
        let targets: Option<Vec<WatchTarget>> = raw.split(',').filter(|s| !s.trim().is_empty()).map(WatchTarget::parse).collect();
        let targets = targets.filter(|t| !t.is_empty()).ok_or_else(|| SettingsError::Invalid {
            var: "FIRESTORE_CHANGE_LISTENER__TARGETS".into(),
            value: raw.clone(),
            reason: "a comma-separated list of collection ids, each optionally prefixed with */ (every collection of that id)".into(),
        })?;
        Ok(Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9103")?,
            firestore_project_id: env.required("FIRESTORE_PROJECT_ID")?,
            targets,
            tenant_id: env.or("TENANT_ID", "default".to_string())?,
        })
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");

    let pool = db::connect(&settings.common.database_url, "firestore_change_listener", &MIGRATOR, None, 4).await?;
    kafka::ensure_topics(&settings.common.kafka, &[topics::DOCUMENT_CHANGED, topics::MESSAGE_CHANGED]).await?;
    let registry = RegistryClient::new(settings.common.schema_registry_url.expose_secret())?;
    let producer = EventProducer::new(&settings.common.kafka, Codec::new(registry, settings.common.schema_ids), SERVICE)?;
    let db = FirestoreDb::with_options(FirestoreDbOptions::new(settings.firestore_project_id.clone())).await?;
    // Ready once every target has published its first snapshot.
    let health = readiness.check("firestore");
    health.set(true, "");
    readiness.set(true);

    let mut watchers = JoinSet::new();
    for target in &settings.targets {
        let watcher = watch::Watcher {
            db: db.clone(),
            target: target.clone(),
            checkpoint: Checkpoint { pool: pool.clone() },
            producer: producer.clone(),
            default_tenant: settings.tenant_id.clone(),
            health: health.clone(),
            starting: Some(health.fail("firestore_listen")),
            known: Default::default(),
        };
        watchers.spawn(watcher.run(shutdown.clone()));
    }
    tracing::info!(targets = ?settings.targets.iter().map(WatchTarget::name).collect::<Vec<_>>(), "ready");
    while let Some(joined) = watchers.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a watcher failed; stopping");
            shutdown.cancel();
        }
    }
    readiness.set(false);
    producer.flush(Duration::from_secs(10));
    shutdown.cancel();
    let _ = ops_task.await;
    Ok(())
}
