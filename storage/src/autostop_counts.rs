//! What AutoStop's DAILY_LIMIT_THRESHOLD and ANOMALY_PATTERN rules measure (08-killswitch-
//! autostop.md §6.2), kept as counters next to the rows so that evaluating a confirmation costs
//! the same whatever the agent's history (schema v3; before it, each confirmation decoded every
//! row the agent had written since midnight).
//!
//! A row *counts* when it is a top-level transaction that is CONFIRMED and ran without an
//! owner's approval (`owner_sanctioned` is false). Two tables follow the counted rows:
//!
//! - `AUTOSTOP_DAILY`, `(agent, UTC day of creation) → native amount`: the day's autonomous
//!   confirmed volume, one read;
//! - `AUTOSTOP_TO`, `(agent, to-address, created_at, tx) → ()`: one key per counted transfer, so
//!   "how many to this address created since t" is a range count capped at the rule's threshold.
//!
//! `rows::insert_tx` and `rows::update_tx` — the only writers of transaction rows — call
//! [`on_write`] inside the caller's write transaction (as they do for the RATE_LIMIT counters in
//! `rate.rs`), so the counters cannot disagree with the rows. Entries older than two days are
//! pruned when the agent's next counted row arrives.

use alloy_primitives::U256;
use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::amount::Amount;
use crate::enums::TxStatus;
use crate::error::StoreError;
use crate::records::TransactionRecord;
use crate::rows::{self, Crossing};
use crate::tables::{AUTOSTOP_DAILY, AUTOSTOP_TO};

/// How long entries are kept: past the longest window (the UTC day, or the last hour).
const KEEP: u64 = 2 * 86_400;

/// The UTC day (its first second) that `at` falls in.
pub(crate) fn day_of(at: u64) -> u64 {
    at - at % 86_400
}

/// Whether a row counts toward the two rules.
fn counted(rec: &TransactionRecord) -> bool {
    rec.is_top_level() && rec.status == TxStatus::Confirmed && !rec.owner_sanctioned()
}

fn read_amount(bytes: &[u8]) -> Amount {
    let mut b = [0u8; 32];
    let n = bytes.len().min(32);
    b[32 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    Amount(U256::from_be_bytes(b))
}

fn apply(tx: &WriteTransaction, rec: &TransactionRecord, add: bool) -> Result<(), StoreError> {
    let a = rec.agent_id.as_u128();
    let day = day_of(rec.created_at);
    {
        let mut t = tx.open_table(AUTOSTOP_DAILY)?;
        let old = t.get((a, day))?.map(|v| read_amount(v.value())).unwrap_or(Amount::ZERO);
        let new = if add { old.saturating_add(rec.native_amount) } else { old.saturating_sub(rec.native_amount) };
        if new.is_zero() {
            t.remove((a, day))?;
        } else {
            t.insert((a, day), new.0.to_be_bytes::<32>().as_slice())?;
        }
        if add && day >= KEEP {
            t.retain_in((a, 0)..(a, day - KEEP), |_, _| false)?;
        }
    }
    if let Some(to) = rec.to_address.as_deref() {
        let mut t = tx.open_table(AUTOSTOP_TO)?;
        let key = (a, to, rec.created_at, rec.id.as_u128());
        if add {
            t.insert(key, ())?;
            let cutoff = rec.created_at.saturating_sub(KEEP);
            t.retain_in((a, to, 0, 0)..(a, to, cutoff, 0), |_, _| false)?;
        } else {
            t.remove(key)?;
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
        Some(Crossing::Enters(r)) => apply(tx, r, true),
        Some(Crossing::Leaves(r)) => apply(tx, r, false),
        None => Ok(()),
    }
}

/// The agent's autonomous confirmed volume over the rows created on the UTC day `day`.
pub(crate) fn daily_volume(
    t: &impl ReadableTable<(u128, u64), &'static [u8]>,
    agent: Uuid,
    day: u64,
) -> Result<Amount, StoreError> {
    Ok(t.get((agent.as_u128(), day_of(day)))?.map(|v| read_amount(v.value())).unwrap_or(Amount::ZERO))
}

/// How many of the agent's counted transfers to `to` were created at or after `since`, up to
/// `cap`.
pub(crate) fn to_address_since(
    t: &impl ReadableTable<(u128, &'static str, u64, u128), ()>,
    agent: Uuid,
    to: &str,
    since: u64,
    cap: u64,
) -> Result<u64, StoreError> {
    let a = agent.as_u128();
    let mut n = 0;
    for r in t.range((a, to, since, 0u128)..=(a, to, u64::MAX, u128::MAX))? {
        r?;
        n += 1;
        if n >= cap {
            break;
        }
    }
    Ok(n)
}

/// Builds both tables from every transaction row (the v2 → v3 upgrade).
pub(crate) fn rebuild(tx: &WriteTransaction) -> Result<(), StoreError> {
    let counted_rows = rows::counted_transactions(tx, counted)?;
    tx.open_table(AUTOSTOP_DAILY)?.retain(|_, _| false)?;
    tx.open_table(AUTOSTOP_TO)?.retain(|_, _| false)?;
    for rec in &counted_rows {
        apply(tx, rec, true)?;
    }
    Ok(())
}
