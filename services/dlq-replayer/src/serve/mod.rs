//! `dlq-replayer serve`: the replayer as a long-running service with an internal HTTP API, which
//! the gateway's admin API (`/api/v1/admin/...`) and its ops page forward to. JSON bodies are the
//! [`dlq_api`] types; errors are `{ "code", "detail" }` with stable codes ([`error`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /dead-letters?topic=&since=&until=&key=&tenant=&class=&kind=&id=&field=&limit=` | list + total |
//! | `GET /dead-letters/counts?…` | counts per topic, class and kind, with the oldest age |
//! | `GET /dead-letters/{id}` | one, decoded |
//! | `POST /dead-letters/park`, `/unpark`, `/discard` | set aside, audited |
//! | `POST /replays` | a dry run (answered with its report) or a replay (202, runs in the background) |
//! | `GET /replays/{id}`, `GET /replays?limit=` | a job with its progress, the recent jobs |
//!
//! It also follows the capability-flags topic (consumer group `dlq-replayer.flag-audit`) and records
//! every change, automatic panic-mode switches included, in `flag_changes`
//! ([`crate::capabilities`]).
//!
//! It also serves `/health`, `/ready` and `/metrics` on the same port. The API trusts its caller
//! (it listens on loopback by default; expose it to the gateway only): the operator comes in the
//! body, and a tenant scope in [`dlq_api::SCOPE_HEADER`] limits an answer to one tenant.
//!
//! Replays run as owned tasks: at shutdown each one stops between two chunks (what it sent is
//! recorded; the job ends `failed` with a note and resumes with the same job id), and is awaited
//! for a grace period, then aborted.

mod dead_letters;
pub mod error;
mod query;
mod replays;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router, middleware,
    routing::{get, post},
};
use brain_runtime::{
    consumer::{self, ConsumerConfig},
    events::topics,
    kafka,
    ops::Readiness,
    producer::EventProducer,
    settings::{Env, SettingsError},
};
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, Settings, Tools};

#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Kafka, registry and database, as for the CLI.
    pub tools: Settings,
    /// `HTTP_ADDR`: the API and `/health`, `/ready`, `/metrics`.
    pub http_addr: SocketAddr,
    pub otlp_endpoint: Option<String>,
    pub log_json: bool,
    /// `SHUTDOWN_GRACE_MS`: how long running replays may take to stop at shutdown.
    pub shutdown_grace: Duration,
}

impl ServeSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        Ok(Self {
            tools: Settings::from_env()?,
            http_addr: env.or("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 8085)))?,
            otlp_endpoint: env.optional("OTLP_ENDPOINT")?,
            log_json: env.or::<String>("LOG_FORMAT", "json".into())? != "text",
            shutdown_grace: env.millis_in("SHUTDOWN_GRACE_MS", 10_000, 0..=300_000)?,
        })
    }
}

#[derive(Clone)]
struct AppState {
    tools: Arc<Tools>,
    producer: EventProducer,
    jobs: replays::Jobs,
}

/// The service, bound and ready to run.
pub struct Service {
    listener: tokio::net::TcpListener,
    router: Router,
    jobs: replays::Jobs,
    readiness: Readiness,
    shutdown_grace: Duration,
    audit: FlagAudit,
}

/// The consumer that records capability changes.
struct FlagAudit {
    config: ConsumerConfig,
    tools: Arc<Tools>,
    producer: EventProducer,
}

impl Service {
    /// Connects (runs the audit's migrations) and binds `http_addr` (port 0 picks a free one).
    pub async fn build(settings: &ServeSettings) -> anyhow::Result<Self> {
        let tools = Tools::connect_with(settings.tools.clone(), 8).await?;
        let producer = tools.producer()?;
        let jobs = replays::Jobs::default();
        let readiness = Readiness::default();
        let tools = Arc::new(tools);
        let config = ConsumerConfig::new(SERVICE, "dlq-replayer.flag-audit", &[topics::CAPABILITY_FLAGS]);
        kafka::ensure_compacted_topics(&settings.tools.kafka, &[topics::CAPABILITY_FLAGS]).await?;
        kafka::ensure_topics(&settings.tools.kafka, &[&config.dead_letter_topic()]).await?;
        let audit = FlagAudit { config, tools: tools.clone(), producer: producer.clone() };
        let state = AppState { tools, producer, jobs: jobs.clone() };
        let listener = tokio::net::TcpListener::bind(settings.http_addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        Ok(Self { listener, router: router(state, readiness.clone()), jobs, readiness, shutdown_grace: settings.shutdown_grace, audit })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.readiness.set(true);
        // The audit consumer stops with the server, whichever way the server ends.
        let stop = shutdown.child_token();
        let FlagAudit { config, tools, producer } = self.audit;
        let handler = crate::capabilities::AuditHandler::new(tools.audit.pool.clone());
        let auditing = consumer::run(config, tools.settings.kafka.clone(), tools.codec.clone(), producer, handler, self.readiness.clone(), stop.clone());
        let serving = async {
            let served = axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
            stop.cancel();
            served
        };
        let (served, audited) = tokio::join!(serving, auditing);
        if let Err(e) = audited {
            tracing::error!(error = %e, "the capability audit consumer failed");
        }
        self.readiness.set(false);
        self.jobs.stop(self.shutdown_grace).await;
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the service and runs it until `shutdown` fires.
pub async fn run(settings: ServeSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    Service::build(&settings).await?.run_until(shutdown).await
}

fn router(state: AppState, readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/counts", get(dead_letters::counts))
        .route("/dead-letters/{id}", get(dead_letters::show))
        .route("/dead-letters/park", post(dead_letters::park))
        .route("/dead-letters/unpark", post(dead_letters::unpark))
        .route("/dead-letters/discard", post(dead_letters::discard))
        .route("/replays", post(replays::start).get(replays::list))
        .route("/replays/{id}", get(replays::get))
        .with_state(state)
        .fallback(|| async { error::ServiceError::NotFound { code: "route_not_found", detail: "no such route".into() } })
        .layer(middleware::from_fn_with_state(SERVICE, brain_runtime::ops::record_http_metrics));
    api.merge(brain_runtime::ops::routes(readiness))
}

