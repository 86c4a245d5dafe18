//! Per-channel token buckets and the deduplication cache (10-notifications-clients.md §2, §4).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use waiaas_storage::ChannelType;

/// A token bucket: `burst` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
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
        TokenBucket { tokens: burst, burst, per_sec, at: Instant::now() }
    }

    /// Takes a token if one is there.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
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
        assert!((0..5).all(|_| b.take(t0)), "burst of 5");
        assert!(!b.take(t0), "the sixth in the same instant is refused");
        assert!(b.take(t0 + Duration::from_millis(1001)), "one more after a second");
        assert!(!b.take(t0 + Duration::from_millis(1002)));
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
