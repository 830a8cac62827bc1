//! Starting, running and stopping a simulator: [`Simulator::start`] validates the config and
//! binds (port 0 picks a free port), [`Simulator::run_until`] serves until a token fires and then
//! drains in-flight requests for up to 5 s, [`Simulator::spawn`] runs it on a background task
//! behind a [`RunningSimulator`] that shuts it down when stopped or dropped.

use std::{future::Future, marker::PhantomData, net::SocketAddr, pin::Pin, time::Duration};

use axum::Router;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing_subscriber::EnvFilter;

use crate::{
    error::{ConfigError, SimError},
    http::url_of,
};

/// How long in-flight requests (e.g. ones held by an injected fault) may run after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Companion =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One simulator, for [`Simulator`]: `pub type Simulator = simulator_kit::Simulator<MyApi>;`.
pub trait App: Send + 'static {
    type Config: Send;
    fn listen_addr(config: &Self::Config) -> SocketAddr;
    fn validate(config: &Self::Config) -> Result<(), ConfigError>;
    /// The whole app (API, `/control`, fallback) from a validated config.
    fn build(config: Self::Config) -> Result<Built, SimError>;
}

/// What [`App::build`] makes: the router and, optionally, a task that runs beside the server
/// (e.g. webhook delivery) until the token it is given fires.
pub struct Built {
    app: Router,
    companion: Option<Companion>,
}

impl Built {
    pub fn new(app: Router) -> Self {
        Self {
            app,
            companion: None,
        }
    }

    pub fn with_companion<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.companion = Some(Box::new(move |stop| Box::pin(task(stop))));
        self
    }
}

/// A simulator bound to its port, not yet serving.
pub struct Simulator<A> {
    listener: TcpListener,
    addr: SocketAddr,
    built: Built,
    app: PhantomData<fn() -> A>,
}

impl<A: App> Simulator<A> {
    /// Validates the config and binds the listener (port 0 picks a free port).
    pub async fn start(config: A::Config) -> Result<Self, SimError> {
        A::validate(&config)?;
        let addr = A::listen_addr(&config);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let built = A::build(config)?;
        Ok(Self {
            listener,
            addr,
            built,
            app: PhantomData,
        })
    }
}

impl<A> Simulator<A> {
    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Serves (and runs the companion task) until `shutdown` fires; then drains in-flight
    /// requests for up to 5 s.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), SimError> {
        let companion_stop = shutdown.child_token();
        let companion = self
            .built
            .companion
            .map(|task| tokio::spawn(task(companion_stop.clone())));
        let server = axum::serve(self.listener, self.built.app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let result = tokio::select! {
            result = server => result.map_err(SimError::Serve),
            () = grace_elapsed(&shutdown) => {
                tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "shutdown grace elapsed; dropping open requests");
                Ok(())
            }
        };
        companion_stop.cancel();
        if let Some(Err(error)) = match companion {
            Some(task) => Some(task.await),
            None => None,
        } {
            tracing::warn!(%error, "the simulator's companion task failed");
        }
        result
    }

    /// Runs on a background task until the returned handle is stopped or dropped.
    pub fn spawn(self) -> RunningSimulator
    where
        A: 'static,
    {
        let addr = self.addr;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.run_until(shutdown.clone()));
        RunningSimulator {
            addr,
            task: Some(task),
            shutdown: shutdown.clone(),
            guard: Some(shutdown.drop_guard()),
        }
    }

    /// For a `main`: serves until SIGINT or SIGTERM, logging start and stop as `name`.
    pub async fn run_until_signal(self, name: &str) -> Result<(), SimError> {
        tracing::info!(listen_addr = %self.addr, base_url = %self.base_url(), "{name} listening");
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        self.run_until(shutdown).await?;
        tracing::info!("{name} stopped");
        Ok(())
    }
}

async fn grace_elapsed(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// A simulator serving on a background task; dropping it shuts the server down.
pub struct RunningSimulator {
    addr: SocketAddr,
    task: Option<JoinHandle<Result<(), SimError>>>,
    shutdown: CancellationToken,
    guard: Option<DropGuard>,
}

impl RunningSimulator {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`: prefix of the API's paths and of `/control/...`.
    pub fn base_url(&self) -> String {
        url_of(self.addr)
    }

    /// Cancelling this token shuts the server down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), SimError> {
        drop(self.guard.take());
        match self.task.take() {
            Some(task) => task.await.map_err(SimError::Panicked)?,
            None => Ok(()),
        }
    }
}

/// JSON logs to stdout, filtered by `RUST_LOG` (default `info`): for a simulator's `main`.
pub fn init_json_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the simulator");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
