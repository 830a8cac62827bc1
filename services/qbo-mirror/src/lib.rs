//! qbo-mirror: keeps a PostgreSQL mirror of each client company's (realm's) QuickBooks Online
//! bills, invoices and accounts (flow 7), for the advisor's views.
//!
//! - **Sync** ([`scheduler`], [`sync`]): every realm every `SYNC_INTERVAL_MS` (15 min) and at once
//!   when a verified webhook names it ([`webhooks`]; many webhooks make one sync). CDC from where
//!   the last sync stopped; a full paged sync the first time or after more than 29 days.
//! - **Applying** ([`apply`]): each page in one transaction: mirror rows, the append-only
//!   `transaction_log` (old and new values), the digest's aggregates and an outbox event;
//!   monotonic by `LastUpdatedTime` then `SyncToken`; deletions mirrored.
//! - **Events** ([`outbox`]): `qbo.entity.changed.v1` per applied change, published from the outbox.
//! - **Reconciliation** ([`reconcile`]): every `RECONCILE_INTERVAL_MS` (1 h; 0 = off) and on
//!   `qbo-mirror reconcile`, the mirror is compared with QBO and what drifted is repaired.
//! - **QBO's limits** ([`limiter`], [`client`]): at most `RATE_PER_MINUTE` (400 of QBO's 500)
//!   requests a minute per realm, one request at a time per realm; a 429 waits 60 s; refresh
//!   tokens rotate and are stored sealed ([`vault`], key `TOKEN_KEY`) before use; a revoked one
//!   pauses only its realm.

pub mod apply;
pub mod client;
pub mod fields;
pub mod limiter;
pub mod outbox;
pub mod realms;
pub mod reconcile;
pub mod scheduler;
pub mod sync;
pub mod tokens;
pub mod vault;
pub mod webhooks;

use std::sync::Arc;

use brain_events::{Codec, RegistryClient, topics};
use brain_runtime::{
    consumer::{self, ConsumerConfig},
    db, kafka, ops,
    producer::EventProducer,
    settings::{CommonSettings, Env, SettingsError},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "qbo-mirror";
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/qbo-mirror");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub client: client::ClientConfig,
    /// `TOKEN_KEY`: 32 bytes, base64, sealing refresh tokens at rest.
    pub token_key: SecretString,
    pub schedule: scheduler::ScheduleConfig,
    /// `RATE_PER_MINUTE`: requests per realm and minute (QBO allows 500).
    pub rate_per_minute: usize,
    /// `MAX_PAGES_PER_TURN`: pages a realm's turn may take before it yields.
    pub max_pages: usize,
    /// Webhook-triggered syncs (group `<GROUP_ID>`, default `qbo-mirror.webhooks`).
    pub webhooks: ConsumerConfig,
    /// `RECONCILE_INTERVAL_MS`: how often the mirror is compared with QBO (0: never by itself).
    pub reconcile_every: std::time::Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        Ok(Self {
            common: CommonSettings::from_env(SERVICE, "127.0.0.1:9106")?,
            client: client::ClientConfig {
                api_base: env.or("QBO_API_BASE", "https://quickbooks.api.intuit.com".to_string())?,
                token_url: env.or("QBO_TOKEN_URL", "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer".to_string())?,
                client_id: env.required("QBO_CLIENT_ID")?,
                client_secret: env.secret("QBO_CLIENT_SECRET")?,
                timeout: env.millis_in("QBO_TIMEOUT", 120_000, 1_000..=300_000)?,
            },
            token_key: env.secret("TOKEN_KEY")?,
            schedule: scheduler::ScheduleConfig {
                interval: env.millis_in("SYNC_INTERVAL", 15 * 60_000, 1_000..=86_400_000)?,
                concurrency: env.ranged("SYNC_CONCURRENCY", 8, 1..=256)?,
            },
            rate_per_minute: env.ranged("RATE_PER_MINUTE", 400, 1..=500)?,
            max_pages: env.ranged("MAX_PAGES_PER_TURN", 20, 1..=10_000)?,
            reconcile_every: env.millis_in("RECONCILE_INTERVAL", 3_600_000, 0..=604_800_000)?,
            webhooks: ConsumerConfig::from_env(&env, SERVICE, env.or("GROUP_ID", format!("{SERVICE}.webhooks"))?, &[topics::QBO_WEBHOOK_RECEIVED])?,
        })
    }
}

/// Everything the CLI and the service share.
pub struct Parts {
    pub realms: realms::Realms,
    pub vault: Arc<vault::Vault>,
    pub pool: sqlx::PgPool,
}

pub async fn connect(settings: &Settings) -> anyhow::Result<Parts> {
    let vault = Arc::new(vault::Vault::new(&settings.token_key)?);
    let pool = db::connect(&settings.common.database_url, "qbo_mirror", &MIGRATOR, None, (settings.schedule.concurrency as u32 + 4).min(64)).await?;
    Ok(Parts { realms: realms::Realms { pool: pool.clone() }, vault, pool })
}

/// The syncer (QBO client, tokens, per-realm limiter) over `parts`.
pub fn syncer(settings: &Settings, parts: &Parts) -> anyhow::Result<sync::Syncer> {
    let client = client::QboClient::new(settings.client.clone())?;
    let tokens = tokens::Tokens::new(client.clone(), parts.realms.clone(), parts.vault.clone());
    Ok(sync::Syncer { client, tokens, limiter: limiter::RealmLimiter::new(settings.rate_per_minute), pool: parts.pool.clone(), max_pages: settings.max_pages })
}

/// Reconciles every active realm (or `only`) once: what drifted, and the realms that could not
/// be reconciled with why.
pub async fn reconcile_all(syncer: &sync::Syncer, realms: &realms::Realms, only: Option<&str>) -> anyhow::Result<(Vec<reconcile::Drift>, Vec<(String, String)>)> {
    let mut drifts = Vec::new();
    let mut failed = Vec::new();
    for realm in realms.active().await? {
        if only.is_some_and(|o| o != realm.realm_id) {
            continue;
        }
        match reconcile::realm(syncer, &realm).await {
            Ok(drift) => drifts.push(drift),
            Err(e) => {
                tracing::warn!(realm = %realm.realm_id, error = %e, "could not reconcile the realm");
                failed.push((realm.realm_id.clone(), chain(&e)));
            }
        }
    }
    Ok((drifts, failed))
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn reconcile_periodically(syncer: Arc<sync::Syncer>, realms: realms::Realms, every: std::time::Duration, stop: CancellationToken) {
    if every.is_zero() {
        return;
    }
    while brain_runtime::retry::sleep_or_cancel(every, &stop).await {
        match reconcile_all(&syncer, &realms, None).await {
            Ok((drifts, failed)) => tracing::info!(realms = drifts.len(), drifted = drifts.iter().filter(|d| d.total() > 0).count(), failed = failed.len(), "reconciled the mirror with QBO"),
            Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
        }
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = ops::Readiness::default();
    let (ops_addr, ops_task) = ops::serve(settings.common.ops_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%ops_addr, "ops endpoint listening");
    let parts = connect(&settings).await?;
    let webhooks = settings.webhooks.clone();
    kafka::ensure_topics(&settings.common.kafka, &[topics::QBO_ENTITY_CHANGED, topics::QBO_WEBHOOK_RECEIVED, &webhooks.dead_letter_topic()]).await?;
    let codec = Codec::new(RegistryClient::new(settings.common.schema_registry_url.expose_secret())?, settings.common.schema_ids);
    let producer = EventProducer::new(&settings.common.kafka, codec.clone(), SERVICE)?;
    let syncer = Arc::new(syncer(&settings, &parts)?);
    let wake = Arc::new(Notify::new());
    let relay_wake = Arc::new(Notify::new());
    let mut background = tokio::task::JoinSet::new();
    background.spawn(scheduler::run(syncer.clone(), parts.realms.clone(), settings.schedule, wake.clone(), shutdown.clone()));
    background.spawn(reconcile_periodically(syncer, parts.realms.clone(), settings.reconcile_every, shutdown.clone()));
    background.spawn(outbox::relay(parts.pool.clone(), producer.clone(), relay_wake, shutdown.clone()));
    readiness.set(true);
    tracing::info!("ready");
    let handler = Arc::new(webhooks::WebhookHandler { realms: parts.realms.clone(), wake });
    let result = consumer::run(webhooks, settings.common.kafka.clone(), codec, producer, handler, readiness.clone(), shutdown.clone()).await;
    shutdown.cancel();
    background.join_all().await;
    readiness.set(false);
    let _ = ops_task.await;
    result
}
