//! Per-channel token buckets and the deduplication cache (10-notifications-clients.md §2, §4).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use waiaas_storage::ChannelType;

/// A token bucket: `burst` tokens, refilled at `per_sec`, of which `reserve` only urgent
/// messages may take (issue #22): a burst of INFO events (sessions created, TX_NOTIFY) can
/// never leave an approval request or a WARNING/CRITICAL event without a token.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    reserve: f64,
    at: Instant,
}

impl TokenBucket {
    /// The bucket of a channel kind (§2).
    pub(crate) fn for_kind(kind: ChannelType) -> TokenBucket {
        let (burst, per_sec) = match kind {
            ChannelType::Telegram => (30.0, 30.0),
            ChannelType::Discord => (5.0, 1.0),
            ChannelType::Ntfy => (10.0, 10.0),
            ChannelType::Slack | ChannelType::Webhook => (5.0, 1.0),
        };
        // A third of the burst, rounded up: 2 of 5, 4 of 10, 10 of 30.
        let reserve = (burst / 3.0_f64).ceil();
        TokenBucket { tokens: burst, burst, per_sec, reserve, at: Instant::now() }
    }

    /// Takes a token for an ordinary (`urgent = false`) or an urgent message. `Err(wait)`: none
    /// may be taken now; one will be after `wait` if nobody else takes it first.
    pub(crate) fn take(&mut self, now: Instant, urgent: bool) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.at = now;
        let floor = if urgent { 1.0 } else { 1.0 + self.reserve };
        if self.tokens >= floor {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // Rounded up by a microsecond so that waiting exactly this long is enough.
            Err(Duration::from_secs_f64((floor - self.tokens) / self.per_sec) + Duration::from_micros(1))
        }
    }
}

/// An LRU of `<event>:<referenceId>` keys with a time to live: a key seen within the TTL is a
/// duplicate.
pub(crate) struct Dedup {
    seen: LruCache<String, Instant>,
}

impl Dedup {
    /// 500 keys (§4).
    pub(crate) fn new() -> Dedup {
        Dedup { seen: LruCache::new(NonZeroUsize::new(500).expect("non-zero")) }
    }

    /// Records `key`; false when it was already seen within `ttl` (skip the message).
    pub(crate) fn first(&mut self, key: &str, ttl: Duration, now: Instant) -> bool {
        if let Some(at) = self.seen.get(key)
            && now.saturating_duration_since(*at) < ttl
        {
            return false;
        }
        self.seen.put(key.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_the_burst_then_the_refill_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::for_kind(ChannelType::Discord);
        assert!((0..5).all(|_| b.take(t0, true).is_ok()), "burst of 5");
        assert!(b.take(t0, true).is_err(), "the sixth in the same instant is refused");
        assert!(b.take(t0 + Duration::from_millis(1001), true).is_ok(), "one more after a second");
        assert!(b.take(t0 + Duration::from_millis(1002), true).is_err());
    }

    // Issue #22: a flood of ordinary messages leaves the reserve to urgent ones, and says when
    // the next urgent token comes.
    #[test]
    fn ordinary_messages_never_take_the_urgent_reserve() {
        let t0 = Instant::now();
        for (kind, burst, reserve) in
            [(ChannelType::Webhook, 5, 2), (ChannelType::Ntfy, 10, 4), (ChannelType::Telegram, 30, 10)]
        {
            let mut b = TokenBucket::for_kind(kind);
            let ordinary = (0..100).filter(|_| b.take(t0, false).is_ok()).count();
            assert_eq!(ordinary, burst - reserve, "{kind:?}");
            let urgent = (0..100).filter(|_| b.take(t0, true).is_ok()).count();
            assert_eq!(urgent, reserve, "{kind:?}: the reserve is there for urgent messages");
            let wait = b.take(t0, true).unwrap_err();
            assert!(wait > Duration::ZERO && wait <= Duration::from_millis(1001), "{kind:?}: {wait:?}");
            assert!(b.take(t0 + wait, true).is_ok(), "{kind:?}: a token after the wait");
        }
        // Under a steady ordinary flood the level stays above the reserve.
        let mut b = TokenBucket::for_kind(ChannelType::Webhook);
        for ms in 0..10_000u64 {
            let _ = b.take(t0 + Duration::from_millis(ms), false);
        }
        let later = t0 + Duration::from_millis(10_000);
        assert!(b.take(later, true).is_ok() && b.take(later, true).is_ok(), "two urgent tokens kept");
    }

    #[test]
    fn dedup_skips_a_key_within_its_ttl() {
        let t0 = Instant::now();
        let mut d = Dedup::new();
        assert!(d.first("TX_FAILED:a", Duration::from_secs(300), t0));
        assert!(!d.first("TX_FAILED:a", Duration::from_secs(300), t0 + Duration::from_secs(299)));
        assert!(d.first("TX_FAILED:b", Duration::from_secs(300), t0));
        assert!(d.first("TX_FAILED:a", Duration::from_secs(300), t0 + Duration::from_secs(301)));
    }
}
