//! Rate limits (01-daemon.md §8.5): in-memory sliding windows of 60 s, reset on restart.
//! Stage 1 keys on the client IP (LRU of 1000 keys), stage 2 on the session, `master` or owner
//! (LRU of 10000 keys). A refused request does not count against the window.
//!
//! A window is 60 one-second buckets, not a log of every hit: its size is fixed (~150 bytes)
//! whatever the limit, so the worst case — every LRU slot full at its limit — is about 1.7 MB in
//! all, where a log of 8-byte times grew to 4 KiB per session key (300 hits round up to a
//! 512-slot deque) and 41 MB over 10,000 churned sessions. A hit leaves the window at the end of
//! the 60th second after its own, up to 1 s sooner than an exact log would let it.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

const WINDOW_MS: u64 = 60_000;
const BUCKETS: u64 = 60;

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

/// Hits per second over the last 60 seconds.
#[derive(Debug)]
struct Window {
    /// `counts[s % 60]` is the number of hits in second `s`, for `s` in `newest-59 ..= newest`.
    counts: [u16; BUCKETS as usize],
    newest: u64,
    total: u32,
    last_audit_ms: Option<u64>,
}

impl Window {
    fn new(now_s: u64) -> Window {
        Window { counts: [0; BUCKETS as usize], newest: now_s, total: 0, last_audit_ms: None }
    }

    /// Moves the window to end at `now_s`, dropping the seconds that left it.
    fn advance(&mut self, now_s: u64) {
        if now_s <= self.newest {
            return;
        }
        let gone = (now_s - self.newest).min(BUCKETS);
        for s in self.newest + 1..=self.newest + gone {
            let slot = &mut self.counts[(s % BUCKETS) as usize];
            self.total -= u32::from(*slot);
            *slot = 0;
        }
        self.newest = now_s;
    }

    /// The second of the oldest hit still in the window.
    fn oldest(&self) -> Option<u64> {
        (self.newest.saturating_sub(BUCKETS - 1)..=self.newest).find(|s| self.counts[(s % BUCKETS) as usize] > 0)
    }
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
        let now_s = now_ms / 1000;
        let w = cache.get_or_insert_mut(key.to_string(), || Window::new(now_s));
        w.advance(now_s);
        let reset = now_s + 60;
        if w.total >= limit {
            let oldest = w.oldest().expect("a full window is not empty");
            // The oldest second leaves the window when second `oldest + 60` starts.
            let retry_after = (oldest + BUCKETS).saturating_sub(now_s).max(1);
            let audit = w.last_audit_ms.is_none_or(|t| t + WINDOW_MS <= now_ms);
            if audit {
                w.last_audit_ms = Some(now_ms);
            }
            return Verdict { allowed: false, limit, remaining: 0, reset, retry_after, audit };
        }
        // A second holds at most `limit` hits (≤ 10,000), so a u16 bucket cannot overflow.
        let slot = &mut w.counts[(now_s % BUCKETS) as usize];
        *slot = slot.saturating_add(1);
        w.total += 1;
        Verdict { allowed: true, limit, remaining: limit - w.total, reset, retry_after: 0, audit: false }
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

    /// The window slides second by second, including across gaps longer than the window, and
    /// its memory does not depend on the limit.
    #[test]
    fn buckets_slide_and_stay_small() {
        let l = RateLimiter::default();
        for t in 0..120u64 {
            // One hit a second at limit 60: always allowed, the window holds the last 60.
            let v = l.check(Stage::Global, "ip", 60, t * 1000 + 500);
            assert!(v.allowed, "second {t}");
        }
        let refused = l.check(Stage::Global, "ip", 60, 119_900);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1, "second 60's hit leaves at 120.000");
        assert!(l.check(Stage::Global, "ip", 60, 120_000).allowed);
        // 10,000 hits in one second at the largest limit, then a gap of 5 minutes empties it.
        for _ in 0..10_000 {
            assert!(l.check(Stage::Global, "burst", 10_000, 7_000).allowed);
        }
        assert!(!l.check(Stage::Global, "burst", 10_000, 7_500).allowed);
        assert_eq!(l.check(Stage::Global, "burst", 10_000, 367_000).remaining, 9_999);
        assert!(std::mem::size_of::<Window>() <= 160, "{}", std::mem::size_of::<Window>());
    }
}
