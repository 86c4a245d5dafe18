//! The daemon's clock.
//!
//! Every time read in the daemon goes through [`Clock`]: timestamps, expiries, cooldowns, JWT
//! checks and worker schedules. In dev mode `POST /v1/admin/dev/clock` moves it forward by a
//! process-wide offset (01-daemon.md §3.4), which is how tests and demos cross DELAY cooldowns
//! and approval deadlines without waiting. Outside dev mode the offset is always zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use uuid::Uuid;

/// Wall clock plus a forward-only offset.
#[derive(Clone)]
pub(crate) struct Clock {
    offset: Arc<AtomicU64>,
    /// Bumped on every advance. A watch rather than a `Notify`: a worker busy with a run when
    /// the clock moves still sees the change when it next waits, instead of losing the wake-up.
    advanced: Arc<watch::Sender<u64>>,
    /// One UUID v7 counter for the process, so ids made in the same millisecond still sort in
    /// the order they were made (key order is time order for every table keyed by id).
    ids: Arc<std::sync::Mutex<uuid::ContextV7>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("offset", &self.offset).finish_non_exhaustive()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            offset: Arc::default(),
            advanced: Arc::new(watch::channel(0).0),
            ids: Arc::new(std::sync::Mutex::new(uuid::ContextV7::new())),
        }
    }
}

impl Clock {
    /// Milliseconds since the epoch, offset applied.
    pub(crate) fn now_ms(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        real + self.offset.load(Ordering::Relaxed) * 1000
    }

    /// Unix seconds, offset applied (storage timestamps are whole seconds).
    pub(crate) fn now(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves the clock forward and wakes workers so they re-check due work.
    pub(crate) fn advance(&self, secs: u64) -> u64 {
        let total = self.offset.fetch_add(secs, Ordering::Relaxed) + secs;
        self.advanced.send_modify(|g| *g += 1);
        total
    }

    /// A receiver whose `changed()` resolves once per batch of advances made since it last
    /// looked, including advances made while its owner was busy.
    pub(crate) fn advances(&self) -> watch::Receiver<u64> {
        self.advanced.subscribe()
    }

    /// A UUID v7 stamped with this clock, so time-range scans over ids agree with the offset.
    pub(crate) fn new_id(&self) -> Uuid {
        let ctx = self.ids.lock().expect("id context");
        let ms = self.now_ms();
        Uuid::new_v7(uuid::Timestamp::from_unix(&*ctx, ms / 1000, ((ms % 1000) * 1_000_000) as u32))
    }
}

/// 00:00 UTC of the day `secs` falls in ("today" for daily volumes).
pub(crate) fn day_start(secs: u64) -> u64 {
    secs - secs % 86_400
}

/// ISO-8601 UTC with second precision (`2025-01-31T12:00:00Z`).
pub(crate) fn iso(secs: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_and_ids() {
        let c = Clock::default();
        let before = c.now();
        c.advance(400);
        assert!(c.now() >= before + 400);
        let id = c.new_id();
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert!(secs >= before + 400);
        let ids: Vec<Uuid> = (0..1000).map(|_| c.new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids made in one millisecond keep their order");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }
}
