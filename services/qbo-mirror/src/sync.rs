//! One realm's sync: a full one (paged queries of every entity) the first time or after a gap
//! longer than CDC's 30-day look-back, CDC otherwise. A CDC answer holding 1,000 objects may be
//! cut short: the window moves up to the newest object it holds and CDC is asked again (a run of
//! 1,000 objects with one timestamp falls back to paged queries from there). Each page is applied
//! in one transaction ([`crate::apply`]). A sync does at most `max_pages` pages per turn, then
//! yields its place to the other realms and carries on from where it stopped.

use chrono::{DateTime, Duration, Utc};

use crate::{
    apply::{self, Applied},
    client::{Entity, PAGE, QboClient, QboError},
    limiter::RealmLimiter,
    realms::Realm,
    tokens::{TokenError, Tokens},
};

/// The entities mirrored, accounts first (the digest's cash position).
pub const KINDS: [&str; 3] = ["Account", "Bill", "Invoice"];
/// CDC looks back at most 30 days; a cursor older than this syncs in full.
const CDC_LIMIT: i64 = 29;
/// Each CDC asks again for the last minute before where it stopped (clock skew; harmless, as
/// applying is monotonic).
const OVERLAP: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Qbo(#[from] QboError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the mirror's database failed")]
    Database(#[from] sqlx::Error),
}

impl SyncError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Qbo(e) | Self::Token(TokenError::Qbo(e)) => e.kind(),
            Self::Token(TokenError::Realm(_)) => "realm",
            Self::Database(_) => "database",
        }
    }

    pub fn revoked(&self) -> bool {
        matches!(self, Self::Qbo(QboError::Revoked) | Self::Token(TokenError::Qbo(QboError::Revoked)))
    }

    pub fn throttled(&self) -> bool {
        matches!(self, Self::Qbo(QboError::Throttled) | Self::Token(TokenError::Qbo(QboError::Throttled)))
    }
}

/// How a turn ended.
#[derive(Debug, PartialEq)]
pub enum Turn {
    /// Caught up; the next CDC starts at `cdc_since`.
    Done { cdc_since: DateTime<Utc>, applied: Applied },
    /// More to do; carry on from `cdc_since` (or, for a full sync, from the start again: the
    /// pages already applied change nothing the second time).
    More { cdc_since: Option<DateTime<Utc>>, applied: Applied },
}

pub struct Syncer {
    pub client: QboClient,
    pub tokens: Tokens,
    pub limiter: RealmLimiter,
    pub pool: sqlx::PgPool,
    pub max_pages: usize,
}

impl Syncer {
    pub async fn turn(&self, realm: &Realm) -> Result<Turn, SyncError> {
        let fresh = realm.cdc_since.filter(|since| Utc::now() - *since < Duration::days(CDC_LIMIT));
        match fresh {
            Some(since) => self.cdc(realm, since).await,
            None => self.full(realm).await,
        }
    }

    async fn full(&self, realm: &Realm) -> Result<Turn, SyncError> {
        let started = Utc::now();
        let mut applied = Applied::default();
        let mut pages = 0;
        for kind in KINDS {
            let mut start = 1;
            loop {
                let page = self.query(realm, kind, None, start).await?;
                let full = page.len() >= PAGE;
                add(&mut applied, apply::apply(&self.pool, &realm.tenant_id, &realm.realm_id, &page).await?);
                pages += 1;
                if !full {
                    break;
                }
                start += PAGE;
                if pages >= self.max_pages * 10 {
                    // A very large realm: yield, the next turn pages on (what is mirrored stays).
                    return Ok(Turn::More { cdc_since: None, applied });
                }
            }
        }
        Ok(Turn::Done { cdc_since: started - Duration::seconds(OVERLAP), applied })
    }

    async fn cdc(&self, realm: &Realm, mut since: DateTime<Utc>) -> Result<Turn, SyncError> {
        let mut applied = Applied::default();
        for _ in 0..self.max_pages {
            let (page, time) = self.call_cdc(realm, since).await?;
            add(&mut applied, apply::apply(&self.pool, &realm.tenant_id, &realm.realm_id, &page).await?);
            if page.len() < PAGE {
                let until = time.unwrap_or_else(Utc::now);
                return Ok(Turn::Done { cdc_since: until - Duration::seconds(OVERLAP), applied });
            }
            // Possibly cut short: ask again from the newest object it held.
            let newest = page.iter().map(|e| e.last_updated).max().unwrap_or(since);
            if newest <= since {
                // 1,000 objects at one instant: page through them with queries instead.
                for kind in crate::sync::KINDS {
                    let mut start = 1;
                    loop {
                        let rows = self.query(realm, kind, Some(since - Duration::milliseconds(1)), start).await?;
                        let full = rows.len() >= PAGE;
                        add(&mut applied, apply::apply(&self.pool, &realm.tenant_id, &realm.realm_id, &rows).await?);
                        if !full {
                            break;
                        }
                        start += PAGE;
                    }
                }
                since += Duration::milliseconds(1);
            } else {
                since = newest;
            }
        }
        Ok(Turn::More { cdc_since: Some(since), applied })
    }

    /// One page of every active `kind` of `realm`, from `start` (reconciliation reads these).
    pub async fn query_page(&self, realm: &Realm, kind: &'static str, start: usize) -> Result<Vec<Entity>, SyncError> {
        self.query(realm, kind, None, start).await
    }

    async fn query(&self, realm: &Realm, kind: &'static str, since: Option<DateTime<Utc>>, start: usize) -> Result<Vec<Entity>, SyncError> {
        let mut renewed = false;
        loop {
            let access = self.tokens.access(&realm.realm_id).await?;
            self.limiter.acquire(&realm.realm_id).await;
            match self.client.query(&realm.realm_id, &access, kind, since, start).await {
                Err(QboError::Unauthorized) if !renewed => {
                    renewed = true;
                    self.tokens.renew(&realm.realm_id).await?;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn call_cdc(&self, realm: &Realm, since: DateTime<Utc>) -> Result<(Vec<Entity>, Option<DateTime<Utc>>), SyncError> {
        let mut renewed = false;
        loop {
            let access = self.tokens.access(&realm.realm_id).await?;
            self.limiter.acquire(&realm.realm_id).await;
            match self.client.cdc(&realm.realm_id, &access, &KINDS, since).await {
                Err(QboError::Unauthorized) if !renewed => {
                    renewed = true;
                    self.tokens.renew(&realm.realm_id).await?;
                }
                other => return Ok(other?),
            }
        }
    }
}

fn add(total: &mut Applied, more: Applied) {
    total.changes += more.changes;
    total.unchanged += more.unchanged;
}
