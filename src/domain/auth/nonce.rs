//! Single-use nonces for owner signatures (04-auth.md §6).
//!
//! `memory` keeps an LRU of `nonce_cache_max` entries (the oldest is evicted when full);
//! `redb` keeps them in the `nonces` table so they survive restarts. Either way consumption is
//! atomic: a nonce is removed and accepted only if this daemon issued it and it has not expired.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use rand::RngCore;
use waiaas_storage::{Store, StoreError};

use crate::base::clock::Clock;
use crate::runtime::Db;

/// The daemon's nonces: issuing and single-use consumption at daemon time.
pub(crate) struct Nonces {
    store: NonceStore,
    db: Db,
    clock: Clock,
}

impl Nonces {
    pub(crate) fn new(store: NonceStore, db: Db, clock: Clock) -> Nonces {
        Nonces { store, db, clock }
    }

    /// A fresh nonce and when it expires.
    pub(crate) async fn issue(self: &std::sync::Arc<Self>) -> Result<(String, u64), StoreError> {
        let (me, now) = (self.clone(), self.clock.now());
        self.db.call(move |s| me.store.issue(s, now)).await
    }

    /// Consumes a nonce; true only the first time, and only before it expires.
    pub(crate) async fn consume(self: &std::sync::Arc<Self>, nonce: &str) -> Result<bool, StoreError> {
        let (me, now, nonce) = (self.clone(), self.clock.now(), nonce.to_string());
        self.db.call(move |s| me.store.consume(s, &nonce, now)).await
    }

    /// Whether nonces live in the database (the cleanup worker runs only then).
    pub(crate) fn persistent(&self) -> bool {
        matches!(self.store, NonceStore::Redb { .. })
    }
}

/// Where nonces live.
pub(crate) enum NonceStore {
    Memory { cache: Mutex<LruCache<String, u64>>, ttl: u64 },
    Redb { ttl: u64 },
}

impl NonceStore {
    pub(crate) fn memory(max: usize, ttl: u64) -> NonceStore {
        NonceStore::Memory { cache: Mutex::new(LruCache::new(NonZeroUsize::new(max.max(1)).expect("non-zero"))), ttl }
    }

    pub(crate) fn redb(ttl: u64) -> NonceStore {
        NonceStore::Redb { ttl }
    }

    /// Issues a fresh nonce (16 random bytes, 32 lowercase hex) valid until the returned time.
    pub(crate) fn issue(&self, store: &Store, now: u64) -> Result<(String, u64), StoreError> {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        match self {
            NonceStore::Memory { cache, ttl } => {
                cache.lock().expect("nonce lock").push(nonce.clone(), now + ttl);
                Ok((nonce, now + ttl))
            }
            NonceStore::Redb { ttl } => {
                store.insert_nonce(&nonce, now + ttl)?;
                Ok((nonce, now + ttl))
            }
        }
    }

    /// Consumes `nonce`; true only the first time, and only before it expires.
    pub(crate) fn consume(&self, store: &Store, nonce: &str, now: u64) -> Result<bool, StoreError> {
        match self {
            NonceStore::Memory { cache, .. } => {
                Ok(cache.lock().expect("nonce lock").pop(nonce).is_some_and(|exp| exp > now))
            }
            NonceStore::Redb { .. } => store.consume_nonce(nonce, now),
        }
    }
}
