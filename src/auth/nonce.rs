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
