//! Building and running the application: database, migrations, listener, graceful shutdown.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use anyhow::Context;
use axum::Router;
use sqlx::{
    Connection, PgConnection, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{routes, settings::Settings, store::Store};

/// The PostgreSQL schema holding our tables and sqlx's migration table.
const DB_SCHEMA: &str = "schema_registry";
/// How long in-flight requests get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    pool: PgPool,
}

impl Application {
    /// Connects to PostgreSQL, migrates and binds the listener (port 0 allowed).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = connect(&settings.database_url).await?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let local_addr = listener.local_addr()?;
        Ok(Application {
            listener,
            local_addr,
            router: routes::router(Store::new(pool.clone())),
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until `shutdown` fires, then lets in-flight requests finish (bounded by a grace
    /// period) and closes the pool.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(listen_addr = %self.local_addr, "schema registry listening");
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut task = tokio::spawn(server.into_future());
        let result = tokio::select! {
            joined = &mut task => joined,
            () = shutdown.cancelled() => match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; aborting them");
                    task.abort();
                    Ok(Ok(()))
                }
            },
        };
        self.pool.close().await;
        result
            .context("HTTP server task failed")?
            .context("HTTP server failed")?;
        tracing::info!("schema registry stopped");
        Ok(())
    }
}

/// Creates our schema if needed, then opens a pool whose `search_path` is that schema and runs
/// the migrations (their bookkeeping table lands there too).
async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url)
        .context("SCHEMA_REGISTRY__DATABASE_URL is not a valid PostgreSQL URL")?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .context("cannot connect to PostgreSQL")?;
    if let Err(err) = sqlx::query("CREATE SCHEMA IF NOT EXISTS schema_registry")
        .execute(&mut conn)
        .await
    {
        // Two instances starting together can race on IF NOT EXISTS; fine if it now exists.
        let exists = sqlx::query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind(DB_SCHEMA)
            .fetch_one(&mut conn)
            .await?
            .try_get::<i64, _>("n")?
            > 0;
        if !exists {
            return Err(err).context("cannot create schema schema_registry");
        }
    }
    conn.close().await?;

    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.options([("search_path", DB_SCHEMA)]))
        .await
        .context("cannot open the PostgreSQL pool")?;
    sqlx::migrate!("../../migrations/schema-registry")
        .run(&pool)
        .await
        .context("schema registry migrations failed")?;
    Ok(pool)
}
