//! One sweeper per tenant across every instance of ventures-sync: a PostgreSQL session advisory
//! lock, held on a connection of its own for as long as the instance sweeps. An instance that
//! dies (or loses its connection) loses the lock with its session, and another instance, which
//! tries every `SWEEP_INTERVAL_MS`, takes over from the stored cursor. The cursor only moves
//! forward (`store_cursor`), so a deposed sweeper that had not noticed yet cannot set it back; the
//! events it may still publish carry the ids the new sweeper gives them, and consumers skip them.

use std::time::Duration;

use brain_runtime::retry::sleep_or_cancel;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

pub struct Lease {
    connection: PgConnection,
    key: String,
}

impl Lease {
    /// Waits until this instance holds `key`, trying every `every`; `None` once told to stop.
    pub async fn acquire(pool: &PgPool, key: &str, every: Duration, shutdown: &CancellationToken) -> Option<Self> {
        let mut said = false;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            match Self::try_acquire(pool, key).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) if !said => {
                    tracing::info!(lease = key, "another instance holds the sweep lease; standing by");
                    said = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(lease = key, error = %e, "could not ask for the sweep lease; trying again"),
            }
            if !sleep_or_cancel(every, shutdown).await {
                return None;
            }
        }
    }

    async fn try_acquire(pool: &PgPool, key: &str) -> Result<Option<Self>, sqlx::Error> {
        let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))").bind(key).fetch_one(&mut connection).await?;
        if got {
            Ok(Some(Self { connection, key: key.to_string() }))
        } else {
            connection.close().await?;
            Ok(None)
        }
    }

    /// Whether the lease is still held: the session that holds it answers.
    pub async fn held(&mut self) -> bool {
        let alive = tokio::time::timeout(Duration::from_secs(5), sqlx::query("SELECT 1").execute(&mut self.connection)).await;
        let held = matches!(alive, Ok(Ok(_)));
        if !held {
            tracing::warn!(lease = %self.key, "the sweep lease's connection is gone: this instance stops sweeping");
        }
        held
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}
