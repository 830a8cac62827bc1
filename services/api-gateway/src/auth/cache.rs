//! Verified tokens, remembered until they expire, so a client that sends the same token on every
//! request pays for the signature check once. An entry holds only for the key-set generation it
//! was verified under: when an issuer's keys change, its tokens are verified again.
//!
//! Only tokens that passed every check get in, so the cache cannot be filled with junk; when full
//! it drops the expired entries, and if that is not enough, everything (verifying again is the
//! worst that happens).

use std::{collections::HashMap, sync::RwLock};

use super::{AuthError, claims::Principal};

struct Entry {
    principal: Principal,
    /// `exp` of the token, seconds since the epoch.
    expires_at: i64,
    issuer: usize,
    generation: u64,
}

pub struct TokenCache {
    capacity: usize,
    leeway_secs: i64,
    entries: RwLock<HashMap<Box<str>, Entry>>,
}

impl TokenCache {
    pub fn new(capacity: usize, leeway_secs: i64) -> Self {
        Self { capacity, leeway_secs, entries: RwLock::new(HashMap::new()) }
    }

    /// The principal of `token` if it was verified under the issuer's current key generation;
    /// `Some(Err(Expired))` once it has expired.
    pub fn get(&self, token: &str, now: i64, generation: impl Fn(usize) -> u64) -> Option<Result<Principal, AuthError>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().expect("token cache lock");
        let entry = entries.get(token)?;
        if entry.generation != generation(entry.issuer) {
            return None;
        }
        if now > entry.expires_at + self.leeway_secs {
            return Some(Err(AuthError::Expired));
        }
        Some(Ok(entry.principal.clone()))
    }

    pub fn insert(&self, token: &str, principal: &Principal, expires_at: i64, issuer: usize, generation: u64, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().expect("token cache lock");
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now <= e.expires_at + self.leeway_secs);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), Entry { principal: principal.clone(), expires_at, issuer, generation });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::Role;

    fn staff() -> Principal {
        Principal { subject: "u".into(), role: Role::Staff, tenant: Some("t1".into()), applications: vec![] }
    }

    #[test]
    fn hits_until_expiry_plus_leeway_and_only_for_the_same_key_generation() {
        let cache = TokenCache::new(10, 30);
        cache.insert("tok", &staff(), 1_000, 0, 7, 900);
        assert_eq!(cache.get("tok", 950, |_| 7).unwrap().unwrap(), staff());
        assert!(cache.get("tok", 1_030, |_| 7).unwrap().is_ok(), "within the leeway");
        assert_eq!(cache.get("tok", 1_031, |_| 7).unwrap().unwrap_err().code(), "token_expired");
        assert!(cache.get("tok", 950, |_| 8).is_none(), "the issuer's keys changed: verify again");
        assert!(cache.get("other", 950, |_| 7).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let cache = TokenCache::new(2, 0);
        cache.insert("a", &staff(), 100, 0, 0, 0);
        cache.insert("b", &staff(), 1_000, 0, 0, 0);
        cache.insert("c", &staff(), 1_000, 0, 0, 500);
        assert_eq!(cache.len(), 2, "a had expired");
        cache.insert("d", &staff(), 1_000, 0, 0, 500);
        assert_eq!(cache.len(), 1, "nothing had expired: cleared");
        let off = TokenCache::new(0, 0);
        off.insert("a", &staff(), 100, 0, 0, 0);
        assert!(off.get("a", 0, |_| 0).is_none());
    }
}
