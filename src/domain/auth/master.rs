//! masterAuth (04-auth.md §2).
//!
//! The operator's `X-Master-Password` is checked against the Argon2id verifier in master.json.
//! Argon2id costs ~0.2 s, so after one successful verification the daemon keeps
//! `C = HMAC-SHA256(K, password)` under a random per-process key `K`, and a request whose
//! header MACs to `C` (constant-time comparison) is accepted at once: only cache misses pay for
//! Argon2id, and at most two of them run at a time. Five consecutive failures lock masterAuth for
//! 30 minutes; the counter lives in memory and any success resets it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use waiaas_backends::keystore::master::MasterFile;
use zeroize::Zeroizing;

/// Consecutive failures that trigger the lockout.
pub(crate) const MAX_FAILURES: u32 = 5;
/// Lockout length in seconds.
pub(crate) const LOCKOUT_SECS: u64 = 1800;

/// Result of one masterAuth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MasterOutcome {
    Ok,
    /// Header missing or empty (not a failure).
    Required,
    /// Wrong password; `locked_now` when this failure started the lockout.
    Invalid {
        locked_now: bool,
    },
    /// Locked out; seconds remaining.
    Locked {
        retry_after: u64,
    },
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    lockout_until: Option<u64>,
}

/// Where the failure count lives.
enum Counter {
    Memory(Mutex<Failures>),
    /// PostgreSQL: `system_state` of the shared database.
    #[cfg(feature = "postgres")]
    Shared(crate::runtime::Db),
}

/// The masterAuth verifier with its cache and lockout.
pub(crate) struct MasterAuth {
    file: Arc<MasterFile>,
    key: Zeroizing<[u8; 32]>,
    cached: Mutex<Option<[u8; 32]>>,
    failures: Counter,
    argon: Semaphore,
    /// Argon2id verifications run since start (cache misses), for the operator status.
    slow: AtomicU64,
}

impl MasterAuth {
    pub(crate) fn new(file: MasterFile) -> MasterAuth {
        MasterAuth::with_counter(file, Counter::Memory(Mutex::new(Failures::default())))
    }

    /// Under PostgreSQL: the failure count and the lockout in the shared database.
    #[cfg(feature = "postgres")]
    pub(crate) fn shared(file: MasterFile, db: crate::runtime::Db) -> MasterAuth {
        MasterAuth::with_counter(file, Counter::Shared(db))
    }

    fn with_counter(file: MasterFile, failures: Counter) -> MasterAuth {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        MasterAuth {
            file: Arc::new(file),
            key,
            cached: Mutex::new(None),
            failures,
            argon: Semaphore::new(2),
            slow: AtomicU64::new(0),
        }
    }

    /// Argon2id verifications run since start: only cache misses pay for one.
    pub(crate) fn argon2_verifications(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    fn mac(&self, password: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()).expect("HMAC takes any key");
        m.update(password);
        m.finalize().into_bytes().into()
    }

    /// Primes the cache with a password already verified at start (04-auth.md §2 step 5).
    pub(crate) fn prime(&self, password: &[u8]) {
        *self.cached.lock().expect("cache lock") = Some(self.mac(password));
    }

    fn cache_hit(&self, password: &[u8]) -> bool {
        let mac = self.mac(password);
        self.cached.lock().expect("cache lock").as_ref().is_some_and(|c| bool::from(c.ct_eq(&mac)))
    }

    /// Whether `password` is the master password, without touching masterAuth's failure
    /// counter (kill-switch recovery keeps its own, persistent one). A cache hit costs nothing;
    /// otherwise one Argon2id run, and a match primes the cache.
    pub(crate) async fn check(&self, password: &str) -> bool {
        if password.is_empty() || password.len() > 128 {
            return false;
        }
        if self.cache_hit(password.as_bytes()) {
            return true;
        }
        let _permit = self.argon.acquire().await.expect("semaphore never closed");
        self.slow.fetch_add(1, Ordering::Relaxed);
        let file = self.file.clone();
        let candidate = Zeroizing::new(password.as_bytes().to_vec());
        let valid =
            tokio::task::spawn_blocking(move || matches!(file.verify(&candidate), Ok(Some(_)))).await.unwrap_or(false);
        if valid {
            self.prime(password.as_bytes());
        }
        valid
    }

    /// Checks a header value at daemon time `now`.
    pub(crate) async fn verify(&self, header: Option<&str>, now: u64) -> MasterOutcome {
        let seen = self.counter().await;
        if let Some(until) = seen.lockout_until.filter(|u| *u > now) {
            return MasterOutcome::Locked { retry_after: until - now };
        }
        let Some(pw) = header.filter(|h| !h.is_empty()) else { return MasterOutcome::Required };
        let valid = self.check(pw).await;
        let locked_now = match &self.failures {
            Counter::Memory(m) => {
                let mut f = m.lock().expect("failures lock");
                if valid {
                    f.count = 0;
                    f.lockout_until = None;
                    false
                } else {
                    f.count += 1;
                    let locked_now = f.count >= MAX_FAILURES;
                    if locked_now {
                        f.count = 0;
                        f.lockout_until = Some(now + LOCKOUT_SECS);
                    }
                    locked_now
                }
            }
            #[cfg(feature = "postgres")]
            Counter::Shared(db) => {
                let r = match (valid, seen.dirty) {
                    (true, false) => Ok(false),
                    (true, true) => {
                        db.call(move |s| s.require_postgres()?.master_auth_reset(now)).await.map(|()| false)
                    }
                    (false, _) => db
                        .call(move |s| s.require_postgres()?.master_auth_failure(now, MAX_FAILURES, LOCKOUT_SECS))
                        .await
                        .map(|f| f.locked_now),
                };
                // The database is gone: nothing else works either; the count resumes with it.
                r.unwrap_or_else(|e| {
                    tracing::warn!("cannot count the masterAuth result in the database: {e}");
                    false
                })
            }
        };
        if valid { MasterOutcome::Ok } else { MasterOutcome::Invalid { locked_now } }
    }

    /// The failure count and lockout as they stand (under postgres: one read).
    async fn counter(&self) -> Seen {
        match &self.failures {
            Counter::Memory(m) => {
                let f = m.lock().expect("failures lock");
                Seen { lockout_until: f.lockout_until, dirty: f.count > 0 || f.lockout_until.is_some() }
            }
            #[cfg(feature = "postgres")]
            Counter::Shared(db) => match db.call(|s| s.require_postgres()?.master_auth_state()).await {
                Ok(st) => Seen { lockout_until: st.lockout_until, dirty: st.dirty() },
                Err(e) => {
                    tracing::warn!("cannot read the masterAuth lockout: {e}");
                    Seen::default()
                }
            },
        }
    }
}

/// The counter as one request found it.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
struct Seen {
    lockout_until: Option<u64>,
    dirty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use waiaas_backends::keystore::kdf::{KdfParams, argon2_runs};

    fn auth() -> MasterAuth {
        let (file, _) =
            MasterFile::create(b"correct password", KdfParams { memory_kib: 8, time: 1, parallelism: 1 }).unwrap();
        MasterAuth::new(file)
    }

    #[tokio::test]
    async fn cache_hits_cost_no_argon2_and_lockout_engages_after_five() {
        let a = auth();
        assert_eq!(a.verify(None, 0).await, MasterOutcome::Required);
        assert_eq!(a.verify(Some("correct password"), 0).await, MasterOutcome::Ok);
        let runs = argon2_runs();
        for _ in 0..100 {
            assert_eq!(a.verify(Some("correct password"), 0).await, MasterOutcome::Ok);
        }
        // Other tests may run Argon2id concurrently in this process; ours added none.
        assert!(argon2_runs() - runs < 100);

        for i in 1..=4 {
            assert_eq!(a.verify(Some("wrong"), 10).await, MasterOutcome::Invalid { locked_now: false }, "{i}");
        }
        // The right password resets the counter before the fifth failure.
        assert_eq!(a.verify(Some("correct password"), 10).await, MasterOutcome::Ok);
        for _ in 1..=4 {
            a.verify(Some("wrong"), 10).await;
        }
        assert_eq!(a.verify(Some("wrong"), 10).await, MasterOutcome::Invalid { locked_now: true });
        assert_eq!(a.verify(Some("correct password"), 11).await, MasterOutcome::Locked { retry_after: 1799 });
        assert_eq!(a.verify(Some("correct password"), 10 + LOCKOUT_SECS).await, MasterOutcome::Ok);
    }
}
