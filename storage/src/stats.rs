//! What the store counts about itself, for the operator's metrics (12-operations.md §3): commits
//! and fsyncs, how long commits take, and how many transactions reached each terminal status.
//!
//! The terminal tally is taken at commit, not at the transition: `transition_in` notes each
//! top-level row that reaches a terminal status in a per-thread list while the write runs (redb
//! runs a write transaction on the calling thread), and [`RedbStore::write`](crate::RedbStore) adds the
//! list to the tally only once the commit succeeded. An aborted write counts nothing, so the
//! tally always agrees with the rows the database holds (since this store was opened).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::enums::{Chain, Network, Tier, TxStatus, TxType};
use crate::records::TransactionRecord;

/// The labels of one terminal-transaction count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminalKey {
    /// The row's chain.
    pub chain: Chain,
    /// The row's network.
    pub network: Network,
    /// The request type.
    pub tx_type: TxType,
    /// The tier, when one was decided (a row denied at the decision has none).
    pub tier: Option<Tier>,
    /// CONFIRMED, FAILED, CANCELLED or EXPIRED.
    pub status: TxStatus,
}

/// Upper bounds (seconds) of the commit-duration histogram's buckets.
pub const COMMIT_BUCKETS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0];

/// Commit durations as a cumulative histogram.
#[derive(Debug, Default)]
struct CommitTimes {
    /// Per bucket of [`COMMIT_BUCKETS`], plus one for above the last bound.
    counts: [AtomicU64; 11],
    sum_nanos: AtomicU64,
}

/// A snapshot of [`StoreStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Write transactions committed.
    pub commits: u64,
    /// Of which made durable with an fsync.
    pub fsyncs: u64,
    /// Commits per bucket of [`COMMIT_BUCKETS`] (upper bound, count in that bucket alone),
    /// then the bucket above the last bound (+Inf).
    pub commit_buckets: Vec<(f64, u64)>,
    /// Total seconds spent committing.
    pub commit_seconds: f64,
    /// Terminal transitions by labels.
    pub terminal: Vec<(TerminalKey, u64)>,
    /// The commit sequence: commits made, and the last one known durable (every commit up to
    /// it is). Their difference is what a power cut now would lose.
    pub committed_seq: u64,
    /// See `committed_seq`.
    pub durable_seq: u64,
}

/// The store's counters.
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    commits: AtomicU64,
    fsyncs: AtomicU64,
    times: CommitTimes,
    terminal: Mutex<HashMap<TerminalKey, u64>>,
}

thread_local! {
    /// Terminal transitions made by the write transaction running on this thread.
    static PENDING: RefCell<Vec<TerminalKey>> = const { RefCell::new(Vec::new()) };
}

/// Notes that `rec` reached a terminal status in the running write (see the module docs).
pub(crate) fn note_terminal(rec: &TransactionRecord) {
    if rec.status.is_terminal() && rec.is_top_level() {
        let key = TerminalKey {
            chain: rec.chain,
            network: rec.network,
            tx_type: rec.tx_type,
            tier: rec.tier,
            status: rec.status,
        };
        PENDING.with(|p| p.borrow_mut().push(key));
    }
}

/// Forgets what an earlier, aborted write on this thread noted.
pub(crate) fn begin_write() {
    PENDING.with(|p| p.borrow_mut().clear());
}

impl StoreStats {
    /// A committed write: its duration, whether it was durable, and the terminal rows it wrote.
    pub(crate) fn committed(&self, took: Duration, durable: bool) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let i = COMMIT_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(COMMIT_BUCKETS.len());
        self.times.counts[i].fetch_add(1, Ordering::Relaxed);
        self.times.sum_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if !pending.is_empty() {
            let mut t = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
            for k in pending {
                *t.entry(k).or_default() += 1;
            }
        }
    }

    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let mut commit_buckets: Vec<(f64, u64)> = COMMIT_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, bound)| (*bound, self.times.counts[i].load(Ordering::Relaxed)))
            .collect();
        commit_buckets.push((f64::INFINITY, self.times.counts[COMMIT_BUCKETS.len()].load(Ordering::Relaxed)));
        StatsSnapshot {
            commits: self.commits(),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            commit_buckets,
            commit_seconds: self.times.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            terminal: self.terminal.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect(),
            committed_seq: 0,
            durable_seq: 0,
        }
    }
}
