//! PostgreSQL: one schema per service, migrations at start-up, and the two helpers behind the
//! delivery contract: the processed-event record and the monotonic version check.
//!
//! Each service connects with `search_path` set to its own schema, so its tables (and sqlx's
//! migration history) live there and nowhere else.

use std::{str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    Connection, PgConnection, PgPool, Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::consumer::{ErrorClass, HandlerError};

/// Connects to `url` with `schema` as the search path: creates the schema, runs `migrator` on a
/// connection of the URL's own user, then opens the service's pool. With `run_as`, every pooled
/// connection acts as that role (`SET ROLE`), so the service holds only the privileges the
/// migrations granted it (e.g. no UPDATE or DELETE on an append-only log).
pub async fn connect(
    url: &SecretString,
    schema: &str,
    migrator: &Migrator,
    run_as: Option<&str>,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    anyhow::ensure!(
        !schema.is_empty() && schema.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "schema name {schema:?} must be lowercase letters and underscores"
    );
    let options = PgConnectOptions::from_str(url.expose_secret())?;
    let mut admin = PgConnection::connect_with(&options).await?;
    // Two instances starting at once may race on CREATE SCHEMA; the loser finds it there.
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))).execute(&mut admin).await {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut admin)
            .await?;
        anyhow::ensure!(exists, "could not create schema {schema}: {e}");
    }
    admin.close().await?;
    let mut migrating = PgConnection::connect_with(&options.clone().options([("search_path", schema)])).await?;
    migrator.run(&mut migrating).await?;
    migrating.close().await?;
    let mut pool_options = options.options([("search_path", schema)]);
    if let Some(role) = run_as {
        pool_options = pool_options.options([("role", role)]);
    }
    // Every connection opened up front (and kept): the first burst after start-up does not pay
    // for connecting and preparing statements while it holds locks.
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(pool_options)
        .await?;
    Ok(pool)
}

/// Records that `consumer` has applied `event_id`, inside the effect's transaction.
/// Returns false when it was already recorded (the event is a duplicate).
pub async fn record_processed(tx: &mut Transaction<'_, Postgres>, consumer: &str, event_id: Uuid) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Whether `consumer` already applied `event_id`.
pub async fn was_processed(tx: &mut Transaction<'_, Postgres>, consumer: &str, event_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2)")
        .bind(consumer)
        .bind(event_id)
        .fetch_one(&mut **tx)
        .await
}

/// Serialises work on one entity across every instance until the transaction ends.
pub async fn lock_entity(tx: &mut Transaction<'_, Postgres>, entity: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(entity).execute(&mut **tx).await?;
    Ok(())
}

/// Like [`lock_entity`], without waiting: `false` when another transaction holds the lock.
pub async fn try_lock_entity(tx: &mut Transaction<'_, Postgres>, entity: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))").bind(entity).fetch_one(&mut **tx).await
}

/// The monotonic-apply rule: an incoming version applies only if it is newer than the applied one.
pub fn is_newer(applied: Option<i64>, incoming: i64) -> bool {
    applied.is_none_or(|applied| incoming > applied)
}

/// Classifies a database error for the consumer loop.
pub fn classify(e: sqlx::Error) -> HandlerError {
    let class = match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            ErrorClass::Unavailable
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization failure, deadlock, lock timeout, too many connections, shutting down
            Some("40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03") => ErrorClass::Transient,
            Some(code) if code.starts_with("08") => ErrorClass::Unavailable,
            _ => ErrorClass::Permanent,
        },
        _ => ErrorClass::Permanent,
    };
    HandlerError::new(class, "database", e.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::is_newer;

    proptest! {
        /// Whatever order versions arrive in, applying only newer ones ends at the maximum and
        /// never moves backwards.
        #[test]
        fn monotonic_apply_converges_to_the_max(versions in proptest::collection::vec(0i64..50, 1..60)) {
            let mut applied: Option<i64> = None;
            let mut history = Vec::new();
            for v in &versions {
                if is_newer(applied, *v) {
                    applied = Some(*v);
                    history.push(*v);
                }
            }
            prop_assert_eq!(applied, versions.iter().max().copied());
            prop_assert!(history.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn duplicates_and_older_versions_are_not_newer() {
        assert!(is_newer(None, 1));
        assert!(is_newer(Some(1), 2));
        assert!(!is_newer(Some(2), 2));
        assert!(!is_newer(Some(3), 2));
    }
}
