//! Rate limits (01-daemon.md §8.5): in-memory sliding windows of 60 s, reset on restart.
//! Stage 1 keys on the client IP (LRU of 1000 keys), stage 2 on the session, `master` or owner
//! (LRU of 10000 keys). A refused request does not count against the window.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

const WINDOW_MS: u64 = 60_000;

/// Which limiter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Global,
    Session,
    /// `POST /v1/owner/message`'s per-IP bucket (kept with the stage-2 keys).
    OwnerMessage,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Global => "global",
            Stage::Session => "session",
            Stage::OwnerMessage => "owner_message",
        }
    }
}

/// The outcome of one check, with the values for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) allowed: bool,
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Epoch seconds of now + 60.
    pub(crate) reset: u64,
    /// Seconds until a slot frees (refusals only).
    pub(crate) retry_after: u64,
    /// True for the first refusal of this key in a minute (audit at most once per minute).
    pub(crate) audit: bool,
}

#[derive(Debug, Default)]
struct Window {
    hits: VecDeque<u64>,
    last_audit_ms: Option<u64>,
}

/// Both limiter stages.
pub(crate) struct RateLimiter {
    global: Mutex<LruCache<String, Window>>,
    session: Mutex<LruCache<String, Window>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            global: Mutex::new(LruCache::new(NonZeroUsize::new(1000).expect("non-zero"))),
            session: Mutex::new(LruCache::new(NonZeroUsize::new(10_000).expect("non-zero"))),
        }
    }
}

impl RateLimiter {
    /// Counts one request for `key` at `now_ms` against `limit` per minute.
    pub(crate) fn check(&self, stage: Stage, key: &str, limit: u32, now_ms: u64) -> Verdict {
        let cache = match stage {
            Stage::Global => &self.global,
            Stage::Session | Stage::OwnerMessage => &self.session,
        };
        let mut cache = cache.lock().expect("rate limiter lock");
        let w = cache.get_or_insert_mut(key.to_string(), Window::default);
        while w.hits.front().is_some_and(|t| *t + WINDOW_MS <= now_ms) {
            w.hits.pop_front();
        }
        let reset = now_ms / 1000 + 60;
        if w.hits.len() as u32 >= limit {
            let oldest = *w.hits.front().expect("a full window is not empty");
            let retry_after = (oldest + WINDOW_MS - now_ms).div_ceil(1000).max(1);
            let audit = w.last_audit_ms.is_none_or(|t| t + WINDOW_MS <= now_ms);
            if audit {
                w.last_audit_ms = Some(now_ms);
            }
            return Verdict { allowed: false, limit, remaining: 0, reset, retry_after, audit };
        }
        w.hits.push_back(now_ms);
        Verdict { allowed: true, limit, remaining: limit - w.hits.len() as u32, reset, retry_after: 0, audit: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_refuses_without_counting_and_frees_up() {
        let l = RateLimiter::default();
        for i in 0..3 {
            let v = l.check(Stage::Session, "k", 3, 1_000 + i);
            assert!(v.allowed);
            assert_eq!(v.remaining, 2 - i as u32);
        }
        let refused = l.check(Stage::Session, "k", 3, 30_000);
        assert!(!refused.allowed && refused.audit);
        assert_eq!(refused.retry_after, 31); // the oldest hit (1.000 s) leaves the window at 61.000 s
        assert!(!l.check(Stage::Session, "k", 3, 30_001).audit, "audited once per minute");
        assert!(l.check(Stage::Session, "other", 3, 30_000).allowed);
        assert!(l.check(Stage::Session, "k", 3, 61_000).allowed);
    }
}
