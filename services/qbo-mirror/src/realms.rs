//! The realms (client companies) qbo-mirror keeps: who they belong to, their sealed refresh
//! token, and where their sync stands.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::vault::{Vault, VaultError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Realm {
    pub realm_id: String,
    pub tenant_id: String,
    pub cdc_since: Option<DateTime<Utc>>,
    pub sync_requested_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Realms {
    pub pool: PgPool,
}

#[derive(Debug, thiserror::Error)]
pub enum RealmError {
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    #[error("the realm's token could not be sealed or opened")]
    Vault(#[from] VaultError),
    #[error("realm {0} is not connected")]
    Unknown(String),
}

impl Realms {
    /// Connects (or reconnects) a realm with a refresh token from the OAuth consent; a full sync
    /// follows at once.
    pub async fn connect(&self, vault: &Vault, realm: &str, tenant: &str, advisor: &str, company: Option<&str>, refresh_token: &str) -> Result<(), RealmError> {
        let sealed = vault.seal(realm, refresh_token)?;
        sqlx::query(
            "INSERT INTO realms (realm_id, tenant_id, advisor_id, company_name, refresh_token) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (realm_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, advisor_id = EXCLUDED.advisor_id,
                 company_name = COALESCE(EXCLUDED.company_name, realms.company_name), refresh_token = EXCLUDED.refresh_token,
                 state = 'active', state_reason = NULL, next_sync_at = now(), updated_at = now()",
        )
        .bind(realm)
        .bind(tenant)
        .bind(advisor)
        .bind(company)
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Active realms whose sync is due, longest waiting first, at most `limit`, not in `busy`.
    pub async fn due(&self, limit: i64, busy: &[String]) -> Result<Vec<Realm>, sqlx::Error> {
        sqlx::query_as(
            "SELECT realm_id, tenant_id, cdc_since, sync_requested_at FROM realms
             WHERE state = 'active' AND next_sync_at <= now() AND NOT (realm_id = ANY($2))
             ORDER BY next_sync_at LIMIT $1",
        )
        .bind(limit)
        .bind(busy)
        .fetch_all(&self.pool)
        .await
    }

    /// Every active realm.
    pub async fn active(&self) -> Result<Vec<Realm>, sqlx::Error> {
        sqlx::query_as("SELECT realm_id, tenant_id, cdc_since, sync_requested_at FROM realms WHERE state = 'active' ORDER BY realm_id").fetch_all(&self.pool).await
    }

    /// Rotates the realm's refresh token: under the realm row's lock (so two processes never
    /// spend the same refresh token), `exchange` trades the stored token for a new pair, whose
    /// refresh token is stored before the lock is released. Returns what `exchange` returned.
    pub async fn rotate<T, E, F, Fut>(&self, vault: &Vault, realm: &str, exchange: F) -> Result<T, E>
    where
        F: FnOnce(secrecy::SecretString) -> Fut,
        Fut: std::future::Future<Output = Result<(T, String), E>>,
        E: From<RealmError>,
    {
        let mut tx = self.pool.begin().await.map_err(RealmError::from)?;
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT refresh_token FROM realms WHERE realm_id = $1 FOR UPDATE").bind(realm).fetch_optional(&mut *tx).await.map_err(RealmError::from)?;
        let sealed = sealed.ok_or_else(|| RealmError::Unknown(realm.to_string()))?;
        let current = vault.open(realm, &sealed).map_err(RealmError::from)?;
        let (out, next) = exchange(current).await?;
        let resealed = vault.seal(realm, &next).map_err(RealmError::from)?;
        sqlx::query("UPDATE realms SET refresh_token = $2, updated_at = now() WHERE realm_id = $1").bind(realm).bind(resealed).execute(&mut *tx).await.map_err(RealmError::from)?;
        tx.commit().await.map_err(RealmError::from)?;
        Ok(out)
    }

    /// The realm's consent is gone: it pauses until reconnected; the others carry on.
    pub async fn revoke(&self, realm: &str, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE realms SET state = 'revoked', state_reason = $2, updated_at = now() WHERE realm_id = $1").bind(realm).bind(reason).execute(&self.pool).await?;
        Ok(())
    }

    /// A sync ended: the next CDC starts at `cdc_since`; the next sync is due after `every`,
    /// or at once if a webhook asked for one while this one ran.
    pub async fn synced(&self, realm: &str, started: DateTime<Utc>, cdc_since: Option<DateTime<Utc>>, every: chrono::Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE realms SET cdc_since = COALESCE($2, cdc_since), last_synced_at = now(), last_error = NULL, updated_at = now(),
                 next_sync_at = CASE WHEN sync_requested_at > $3 THEN now() ELSE now() + $4 END
             WHERE realm_id = $1",
        )
        .bind(realm)
        .bind(cdc_since)
        .bind(started)
        .bind(every)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A sync stopped part-way (its turn is over, or it failed): try again after `after`.
    pub async fn again_in(&self, realm: &str, after: chrono::Duration, cdc_since: Option<DateTime<Utc>>, error: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE realms SET next_sync_at = now() + $2, cdc_since = COALESCE($3, cdc_since), last_error = $4, updated_at = now() WHERE realm_id = $1")
            .bind(realm)
            .bind(after)
            .bind(cdc_since)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The interval may have been shortened since the realms were last scheduled: no realm waits
    /// longer than `every` after its last sync (the spread of their times is kept).
    pub async fn cap_next_sync(&self, every: chrono::Duration) -> Result<u64, sqlx::Error> {
        let capped = sqlx::query(
            "UPDATE realms SET next_sync_at = GREATEST(now(), COALESCE(last_synced_at, now()) + $1)
             WHERE state = 'active' AND next_sync_at > now() + $1",
        )
        .bind(every)
        .execute(&self.pool)
        .await?;
        Ok(capped.rows_affected())
    }

    /// A webhook said the realm changed: sync it now (many webhooks, one sync).
    pub async fn request_sync(&self, realm: &str) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query("UPDATE realms SET sync_requested_at = now(), next_sync_at = LEAST(next_sync_at, now()) WHERE realm_id = $1 AND state = 'active'")
            .bind(realm)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }
}
