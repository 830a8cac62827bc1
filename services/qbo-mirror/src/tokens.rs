//! Access tokens per realm: kept in memory until a minute before they expire; renewed with the
//! realm's refresh token, whose rotated successor is stored (sealed) **before** the new access
//! token is used (a crash in the one round trip between QBO's answer and the commit loses the new
//! token: the realm must then be reconnected); the exchange happens under the realm row's lock, so two processes (the service and
//! `qbo-mirror reconcile`) never spend the same refresh token.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::{
    client::{QboClient, QboError},
    realms::{RealmError, Realms},
    vault::Vault,
};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Qbo(#[from] QboError),
    #[error(transparent)]
    Realm(#[from] RealmError),
}

/// Access token and its expiry, per realm.
type Cache = Arc<Mutex<HashMap<String, (String, DateTime<Utc>)>>>;

#[derive(Clone)]
pub struct Tokens {
    client: QboClient,
    realms: Realms,
    vault: Arc<Vault>,
    cache: Cache,
}

impl Tokens {
    pub fn new(client: QboClient, realms: Realms, vault: Arc<Vault>) -> Self {
        Self { client, realms, vault, cache: Arc::default() }
    }

    /// A valid access token for `realm`.
    pub async fn access(&self, realm: &str) -> Result<String, TokenError> {
        if let Some((token, expires)) = self.cache.lock().await.get(realm)
            && *expires > Utc::now() + Duration::seconds(60)
        {
            return Ok(token.clone());
        }
        self.renew(realm).await
    }

    /// Drops the cached token (QBO answered 401) and renews it.
    pub async fn renew(&self, realm: &str) -> Result<String, TokenError> {
        self.cache.lock().await.remove(realm);
        let client = &self.client;
        let fresh = self
            .realms
            .rotate(&self.vault, realm, |current| async move {
                let fresh = client.refresh(current.expose_secret()).await.map_err(TokenError::Qbo)?;
                let next = fresh.refresh_token.clone();
                Ok::<_, TokenError>((fresh, next))
            })
            .await?;
        metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "token_refreshes_total")).increment(1);
        let expires = Utc::now() + Duration::seconds(fresh.expires_in.max(60));
        self.cache.lock().await.insert(realm.to_string(), (fresh.access_token.clone(), expires));
        Ok(fresh.access_token)
    }
}
