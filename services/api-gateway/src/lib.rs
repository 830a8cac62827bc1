//! api-gateway: the HTTP API for the apps and operators.
//!
//! Every route but `/health*`, `/ready`, `/metrics`, the API's description
//! (`/api/v1/openapi.json`, `/api/v1/docs`; see [`openapi`]), the ops page (`/ops`, whose
//! calls carry the operator's token; see [`ops_page`]) and QBO's webhook (signed by Intuit; see
//! [`qbo::webhook`]) needs a bearer token from a
//! configured OIDC issuer ([`auth`]). Without issuers the gateway does not start, unless
//! authentication is explicitly disabled, which it allows on a loopback address only.

pub mod admin;
pub mod applications;
pub mod auth;
pub mod body;
pub mod calendar;
pub mod capabilities;
pub mod commands;
pub mod documents;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod ops_page;
pub mod qbo;
pub mod status;
pub mod sync_health;

use std::{net::SocketAddr, str::FromStr, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use brain_runtime::{
    events::{Codec, RegistryClient, codec::SchemaIds, topics},
    flags::Flags,
    kafka,
    producer::EventProducer,
    settings::{self, Env, KafkaSettings, SettingsError},
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, postgres::{PgConnectOptions, PgPoolOptions}};
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{Auth, AuthSettings},
    error::ApiError,
};

pub const SERVICE: &str = "api-gateway";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Largest request body accepted (413 `body_too_large` past it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_addr: SocketAddr,
    /// A role that can only read the published read models.
    pub database_url: SecretString,
    pub request_timeout: Duration,
    pub otlp_endpoint: Option<String>,
    pub log_json: bool,
    pub auth: AuthSettings,
    /// Where status-change commands go (`BRAIN__KAFKA_*`).
    pub kafka: KafkaSettings,
    pub schema_registry_url: SecretString,
    pub schema_ids: SchemaIds,
    /// How often `GET /api/v1/health/sync`'s figures are gathered.
    pub sync_health_refresh: Duration,
    /// dlq-replayer's API, behind `/api/v1/admin/...`.
    pub dlq_replayer: admin::DlqSettings,
    /// `POST /api/v1/webhooks/qbo` (`QBO_WEBHOOK_*`) and the advisor's views (`ADVISOR_VIEWS_*`).
    pub qbo: qbo::QboSettings,
    /// `POST /api/v1/documents/ingest`: Cloud Storage and what an upload may be.
    pub documents: documents::DocumentSettings,
    /// Flow 5: Graph's webhook (`GRAPH_CLIENT_STATE`, `GRAPH_WEBHOOK_PUBLISH_TIMEOUT_MS`).
    pub calendar: calendar::CalendarSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Env::new(SERVICE);
        let settings = Self {
            listen_addr: env.or("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            database_url: env.secret("DATABASE_URL")?,
            request_timeout: env.millis("REQUEST_TIMEOUT", 10_000)?,
            otlp_endpoint: env.optional("OTLP_ENDPOINT")?,
            log_json: env.or::<String>("LOG_FORMAT", "json".into())? != "text",
            auth: AuthSettings::from_env(&env)?,
            kafka: KafkaSettings::from_env(&env)?,
            schema_registry_url: settings::registry_url(&env)?,
            schema_ids: settings::schema_ids(&env)?,
            sync_health_refresh: env.millis_in("SYNC_HEALTH_REFRESH", 15_000, 1_000..=600_000)?,
            dlq_replayer: admin::DlqSettings::from_env(&env)?,
            qbo: qbo::QboSettings::from_env(&env)?,
            documents: documents::DocumentSettings::from_env(&env)?,
            calendar: calendar::CalendarSettings::from_env(&env)?,
        };
        settings.check_auth(settings.listen_addr)?;
        Ok(settings)
    }

    /// Authentication is required: at least one issuer, or `AUTH_DISABLED=true` on a loopback
    /// address (and then no issuers, so it is never unclear which applies).
    pub fn check_auth(&self, addr: SocketAddr) -> Result<(), SettingsError> {
        let invalid = |var: &str, value: String, reason: &str| SettingsError::Invalid { var: format!("API_GATEWAY__{var}"), value, reason: reason.into() };
        match (self.auth.disabled, self.auth.issuers.is_empty()) {
            (false, true) => Err(SettingsError::Missing { service_var: "API_GATEWAY__OIDC_ISSUERS".into(), shared_var: "API_GATEWAY__AUTH_DISABLED=true, loopback only, for local development".into() }),
            (true, false) => Err(invalid("AUTH_DISABLED", "true".into(), "OIDC_ISSUERS is set too: remove one of them")),
            (true, true) if !addr.ip().is_loopback() => Err(invalid("LISTEN_ADDR", addr.to_string(), "authentication is disabled (AUTH_DISABLED=true), so the gateway listens on loopback only")),
            _ => Ok(()),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub auth: Auth,
    /// Publishes status-change commands.
    pub producer: EventProducer,
    /// Commands this instance queued that may not be projected yet.
    pub recent: commands::RecentCommands,
    /// The last figures of `GET /api/v1/health/sync`.
    pub sync_health: sync_health::SyncHealthCache,
    /// Where the admin API forwards to.
    pub dlq: admin::DlqClient,
    /// Capability flags and panic mode as the flags topic holds them (followed from start-up).
    pub flags: Flags,
    /// QBO's webhook: the verifier's key and the CloudEvents already published.
    pub qbo: qbo::QboState,
    /// The ingest endpoint's Cloud Storage client and limits.
    pub documents: documents::DocumentState,
    /// Graph's webhook secret and the meetings queued here.
    pub calendar: calendar::CalendarState,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    auth: Auth,
    kafka: KafkaSettings,
    pool: PgPool,
    sync_health: sync_health::SyncHealthCache,
    sync_health_refresh: Duration,
    flags: Flags,
    codec: Codec,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the routes.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(settings.database_url.expose_secret())?;
        // Lazy: the gateway starts (and says it is not ready) while the database is down.
        let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(3)).connect_lazy_with(options);
        let auth = Auth::new(&settings.auth)?;
        let codec = Codec::new(RegistryClient::new(settings.schema_registry_url.expose_secret())?, settings.schema_ids);
        let producer = EventProducer::new(&settings.kafka, codec.clone(), SERVICE)?;
        // The gateway gates nothing itself: no overrides of its own, the services' are theirs.
        let flags = Flags::new(SERVICE, Default::default());
        let listener = tokio::net::TcpListener::bind(settings.listen_addr).await?;
        let addr = listener.local_addr()?;
        // Checked again on the bound address: settings may be built in code.
        settings.check_auth(addr)?;
        if auth.is_disabled() {
            tracing::warn!(%addr, "AUTHENTICATION IS DISABLED (API_GATEWAY__AUTH_DISABLED=true): every caller is an admin of every tenant; loopback only");
        } else {
            let issuers: Vec<String> = settings.auth.issuers.iter().map(|i| i.label()).collect();
            tracing::info!(%addr, ?issuers, "listening; every API route needs a bearer token from one of the issuers");
        }
        let sync_health = sync_health::SyncHealthCache::default();
        let dlq = admin::DlqClient::new(&settings.dlq_replayer)?;
        let state = AppState { pool: pool.clone(), auth: auth.clone(), producer, recent: Default::default(), sync_health: sync_health.clone(), dlq, flags: flags.clone(), qbo: qbo::QboState::new(&settings.qbo), documents: documents::DocumentState::new(&settings.documents)?, calendar: calendar::CalendarState::new(&settings.calendar) };
        Ok(Self {
            listener,
            router: router(state, settings.request_timeout),
            auth,
            kafka: settings.kafka.clone(),
            pool,
            sync_health,
            sync_health_refresh: settings.sync_health_refresh,
            flags,
            codec,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // The server may also stop on an error: the refresh tasks have a token of their own.
        let stop_refreshing = shutdown.child_token();
        let mut refreshers = self.auth.keep_keys_fresh(&stop_refreshing);
        refreshers.spawn(brain_runtime::flags::reader::follow(self.flags.clone(), self.kafka.clone(), self.codec, stop_refreshing.clone()));
        refreshers.spawn(sync_health::refresh(self.sync_health, self.pool, self.kafka.clone(), self.flags, self.sync_health_refresh, stop_refreshing.clone()));
        refreshers.spawn(ensure_topics(self.kafka, stop_refreshing.clone()));
        let served = axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        stop_refreshing.cancel();
        refreshers.join_all().await;
        served?;
        Ok(())
    }
}

/// Creates the topics the gateway publishes to if they are missing (the workers do too), retrying
/// while Kafka is unreachable: the gateway serves reads meanwhile, and status changes and QBO
/// webhooks answer 503.
async fn ensure_topics(kafka: KafkaSettings, stop: CancellationToken) {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), kafka::ensure_topics(&kafka, &[topics::STATUS_CHANGE_REQUESTED, topics::QBO_WEBHOOK_RECEIVED, topics::DOCUMENT_UPLOADED, topics::BOOKING_REQUESTED, topics::GRAPH_NOTIFICATION_RECEIVED])).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "could not create the gateway's topics; retrying"),
            Err(_) => tracing::warn!("Kafka did not answer; retrying to create the gateway's topics"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The routes that need a bearer token. Each handler's `#[utoipa::path]` gives both its route and
/// its description, so the router and the OpenAPI document cannot disagree.
fn authenticated_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(applications::get))
        .routes(routes!(status::post))
        .routes(routes!(commands::get))
        .routes(routes!(admin::dead_letters::list))
        .routes(routes!(admin::dead_letters::counts))
        .routes(routes!(admin::dead_letters::show))
        .routes(routes!(admin::dead_letters::park))
        .routes(routes!(admin::dead_letters::unpark))
        .routes(routes!(admin::dead_letters::discard))
        .routes(routes!(admin::replays::start, admin::replays::list))
        .routes(routes!(admin::replays::get))
        .routes(routes!(capabilities::list))
        .routes(routes!(capabilities::set))
        .routes(routes!(capabilities::panic))
        .routes(routes!(capabilities::history))
        .routes(routes!(qbo::digest::get))
        .routes(routes!(qbo::trays::hygiene))
        .routes(routes!(qbo::trays::decisions))
        .routes(routes!(documents::ingest::post))
        .routes(routes!(documents::tasks::list))
        .routes(routes!(documents::actions::post))
        .routes(routes!(documents::inbox::get))
        .routes(routes!(calendar::slots::get))
        .routes(routes!(calendar::book::post))
        .routes(routes!(calendar::meetings::get))
        .routes(routes!(calendar::meetings::ics))
        .routes(routes!(calendar::meetings::cancel))
        .routes(routes!(calendar::meetings::resend))
}

/// The token-free routes.
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::health))
        .routes(routes!(ops::api_health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::deps))
        .routes(routes!(ops::metrics))
        .routes(routes!(sync_health::get))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs))
        .routes(routes!(ops_page::page))
        .routes(routes!(qbo::webhook::receive))
        .routes(routes!(calendar::webhook::receive))
}

/// The gateway's OpenAPI 3.1 document (served at `/api/v1/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(authenticated_routes()).merge(open_routes()).into_openapi();
    openapi::complete(&mut doc);
    doc
}

pub fn router(state: AppState, timeout: Duration) -> Router {
    brain_runtime::telemetry::metrics_handle();
    // route_layer: only matched routes authenticate; an unknown path is a plain 404.
    let api = authenticated_routes().route_layer(middleware::from_fn_with_state(state.auth.clone(), auth::middleware));
    let (routes, _) = api.merge(open_routes()).split_for_parts();
    routes
        .with_state(state)
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .layer(middleware::from_fn_with_state(SERVICE, brain_runtime::ops::record_http_metrics))
        // Enforced where a body is read (`body::JsonBody`), which answers 413 `body_too_large`.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(timeout, time_limit))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            // role and tenant are recorded once the caller is authenticated.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id, role = tracing::field::Empty, tenant = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// 503 `request_timeout` when the request takes longer than `timeout` (the handler is dropped).
async fn time_limit(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?timeout, "request timed out");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "request_timeout", "the request took longer than the gateway allows; retry later").into_response()
        }
    }
}


/// What unit tests of the routes share.
#[cfg(test)]
pub(crate) mod testing {
    use std::{str::FromStr, time::Duration};

    use brain_runtime::{
        events::{Codec, RegistryClient, codec::SchemaIds},
        producer::EventProducer,
        settings::KafkaSettings,
    };
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use crate::{
        AppState,
        auth::{Auth, AuthSettings},
    };

    /// A state whose dependencies are all unreachable (authentication disabled): reads answer
    /// 503, publishing fails.
    pub fn state() -> AppState {
        let auth = Auth::new(&AuthSettings { disabled: true, ..AuthSettings::default() }).unwrap();
        // Nothing listens there: reads fail, which is an answer the document declares too.
        let options = PgConnectOptions::from_str("postgres://nobody@127.0.0.1:9/none").unwrap();
        let pool = PgPoolOptions::new().acquire_timeout(Duration::from_millis(200)).connect_lazy_with(options);
        let codec = Codec::new(RegistryClient::new("http://127.0.0.1:9").unwrap(), SchemaIds::AutoRegister);
        let producer = EventProducer::new(&KafkaSettings::new("127.0.0.1:9"), codec, crate::SERVICE).unwrap();
        // Nothing listens there either: admin requests answer 503 `dlq_replayer_unavailable`.
        let dlq_settings = crate::admin::DlqSettings { url: "http://127.0.0.1:9".parse().unwrap(), timeout: Duration::from_millis(500) };
        let dlq = crate::admin::DlqClient::new(&dlq_settings).unwrap();
        AppState {
            pool,
            auth,
            producer,
            recent: Default::default(),
            sync_health: Default::default(),
            dlq,
            flags: brain_runtime::flags::Flags::new("api-gateway", Default::default()),
            qbo: Default::default(),
            documents: crate::documents::DocumentState::new(&Default::default()).unwrap(),
            calendar: Default::default(),
        }
    }
}
