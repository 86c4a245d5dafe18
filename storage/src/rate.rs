//! Per-agent transaction counters for RATE_LIMIT (07-policy.md §3): how many of an agent's
//! top-level transactions were created in the last hour and day, and when the oldest of them was
//! created, at a cost that does not grow with the agent's history.
//!
//! A row is *counted* from its creation until it becomes CANCELLED or EXPIRED (those never
//! count). `rows::insert_tx` and `rows::update_tx` — the only writers of transaction rows —
//! keep the counters in step, inside the caller's write transaction, so a counter can never
//! disagree with the rows.
//!
//! Counters are buckets at three widths (second, minute, hour), keyed
//! `(agent, width level, bucket start)`. A window `[from, ∞)` is the whole hours from the first
//! hour boundary at or after `from`, the whole minutes before that boundary, and the seconds
//! before the first minute boundary: at most 25 + 59 + 59 bucket reads, exact to the second
//! (storage timestamps are whole seconds). The oldest counted creation time is one seek in the
//! second buckets. Buckets more than two days old are pruned when the agent next inserts.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::enums::TxStatus;
use crate::error::StoreError;
use crate::records::TransactionRecord;
use crate::rows::{self, Crossing};
use crate::tables::RATE_COUNTS;

/// Bucket widths in seconds, by level.
const WIDTHS: [u64; 3] = [1, 60, 3600];
/// How long buckets are kept: comfortably past the longest window (one day).
const KEEP: u64 = 2 * 86_400;

/// Whether a row counts towards RATE_LIMIT.
pub(crate) fn counted(rec: &TransactionRecord) -> bool {
    rec.is_top_level() && !matches!(rec.status, TxStatus::Cancelled | TxStatus::Expired)
}

/// Adds `delta` (±1) to the agent's buckets at `at`, pruning its old buckets when adding.
pub(crate) fn add(tx: &WriteTransaction, agent: Uuid, at: u64, delta: i64) -> Result<(), StoreError> {
    let mut t = tx.open_table(RATE_COUNTS)?;
    let a = agent.as_u128();
    for (level, width) in WIDTHS.iter().enumerate() {
        let level = level as u8;
        let key = (a, level, at - at % width);
        let old = t.get(key)?.map(|v| v.value()).unwrap_or(0);
        let new = (old as i64 + delta).max(0) as u64;
        if new == 0 {
            t.remove(key)?;
        } else {
            t.insert(key, new)?;
        }
        if delta > 0 && old == 0 {
            // A new bucket: drop this level's buckets older than KEEP.
            let cutoff = at.saturating_sub(KEEP);
            t.retain_in((a, level, 0)..(a, level, cutoff), |_, _| false)?;
        }
    }
    Ok(())
}

/// A row was written: adjust the counters for the change from `old` (None = new row) to `new`.
pub(crate) fn on_write(
    tx: &WriteTransaction,
    old: Option<&TransactionRecord>,
    new: &TransactionRecord,
) -> Result<(), StoreError> {
    match rows::crossing(old, new, counted) {
        Some(Crossing::Enters(r)) => add(tx, r.agent_id, r.created_at, 1),
        Some(Crossing::Leaves(r)) => add(tx, r.agent_id, r.created_at, -1),
        None => Ok(()),
    }
}

/// Counted transactions created at or after `from`, and the oldest creation time among them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How many.
    pub count: u64,
    /// The oldest creation time among them.
    pub oldest: Option<u64>,
}

fn ceil(t: u64, width: u64) -> u64 {
    t.div_ceil(width) * width
}

fn sum(t: &impl ReadableTable<(u128, u8, u64), u64>, a: u128, level: u8, lo: u64, hi: u64) -> Result<u64, StoreError> {
    let mut n = 0;
    if lo < hi {
        for r in t.range((a, level, lo)..(a, level, hi))? {
            n += r?.1.value();
        }
    }
    Ok(n)
}

/// The agent's counted transactions created at or after `from`. `exclude` is the creation time
/// of one counted row to leave out (the request being decided).
pub(crate) fn window(
    t: &impl ReadableTable<(u128, u8, u64), u64>,
    agent: Uuid,
    from: u64,
    exclude: Option<u64>,
) -> Result<Window, StoreError> {
    let a = agent.as_u128();
    let (m0, h0) = (ceil(from, 60), ceil(from, 3600));
    let mut count = sum(t, a, 2, h0, u64::MAX)? + sum(t, a, 1, m0, h0)? + sum(t, a, 0, from, m0)?;
    let mut oldest = None;
    for r in t.range((a, 0u8, from)..=(a, 0u8, u64::MAX))? {
        let (k, v) = r?;
        let (second, n) = (k.value().2, v.value());
        if exclude == Some(second) && n == 1 {
            continue; // that bucket holds only the excluded row
        }
        oldest = Some(second);
        break;
    }
    if let Some(at) = exclude
        && at >= from
    {
        count = count.saturating_sub(1);
    }
    Ok(Window { count, oldest })
}

/// Builds the counters from every transaction row (the v1 → v2 upgrade).
pub(crate) fn rebuild(tx: &WriteTransaction) -> Result<(), StoreError> {
    let counted_rows = rows::counted_transactions(tx, counted)?;
    let mut t = tx.open_table(RATE_COUNTS)?;
    t.retain(|_, _| false)?;
    for rec in &counted_rows {
        for (level, width) in WIDTHS.iter().enumerate() {
            let key = (rec.agent_id.as_u128(), level as u8, rec.created_at - rec.created_at % width);
            let old = t.get(key)?.map(|v| v.value()).unwrap_or(0);
            t.insert(key, old + 1)?;
        }
    }
    Ok(())
}
