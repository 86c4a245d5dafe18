//! Reads of transaction rows: one row, a BATCH's children, an agent's page, the due queue, the
//! rows in a status and the operator's counts. Read transactions only.

use redb::ReadableTable;
use uuid::Uuid;

use crate::codec::decode;
use crate::db::RedbStore;
use crate::enums::{Tier, TxStatus};
use crate::error::StoreError;
use crate::records::*;
use crate::rows::{self};
use crate::tables::*;

/// Counts for `GET /v1/admin/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Non-terminal top-level rows by status.
    pub pending: u64,
    /// QUEUED rows.
    pub queued: u64,
    /// EXECUTING rows.
    pub executing: u64,
    /// SUBMITTED rows.
    pub submitted: u64,
    /// The newest top-level transaction: id, status, created_at.
    pub last: Option<(Uuid, TxStatus, u64)>,
    /// Live sessions.
    pub active_sessions: u64,
}

impl RedbStore {
    /// Up to `limit` non-terminal top-level rows in `status` (e.g. SUBMITTED for the
    /// confirmation worker), oldest first.
    pub fn active_in_status(&self, status: TxStatus, limit: usize) -> Result<Vec<TransactionRecord>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_ACTIVE)?;
            let table = tx.open_table(TRANSACTIONS)?;
            let mut out = Vec::new();
            for r in idx.iter()? {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&table, "transactions", Uuid::from_u128(k.value().1))?;
                if rec.status == status && rec.is_top_level() {
                    out.push(rec);
                }
            }
            out.sort_by_key(|r| r.id);
            out.truncate(limit);
            Ok(out)
        })
    }

    /// Reads one transaction.
    pub fn get_transaction(&self, id: Uuid) -> Result<Option<TransactionRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(TRANSACTIONS)?, "transactions", id))
    }

    /// Children of a BATCH parent, by index.
    pub fn batch_children(&self, parent: Uuid) -> Result<Vec<TransactionRecord>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_CHILDREN)?;
            let rows_t = tx.open_table(TRANSACTIONS)?;
            let p = parent.as_u128();
            let mut out = Vec::new();
            for r in idx.range((p, 0u32)..=(p, u32::MAX))? {
                let (_, v) = r?;
                out.push(rows::must_get(&rows_t, "transactions", Uuid::from_u128(v.value()))?);
            }
            Ok(out)
        })
    }

    /// A page of an agent's top-level transactions, newest first when `desc`. `cursor` is the
    /// last id of the previous page; returns the rows and whether more exist.
    pub fn list_transactions(
        &self,
        agent: Uuid,
        status: Option<TxStatus>,
        cursor: Option<Uuid>,
        limit: usize,
        desc: bool,
    ) -> Result<(Vec<TransactionRecord>, bool), StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let rows_t = tx.open_table(TRANSACTIONS)?;
            let a = agent.as_u128();
            let (lo, hi) = match (cursor, desc) {
                (Some(c), true) => ((a, 0u128), (a, c.as_u128().saturating_sub(1))),
                (Some(c), false) => ((a, c.as_u128().saturating_add(1)), (a, u128::MAX)),
                (None, _) => ((a, 0u128), (a, u128::MAX)),
            };
            let range = idx.range(lo..=hi)?;
            let iter: Box<dyn Iterator<Item = _>> = if desc { Box::new(range.rev()) } else { Box::new(range) };
            let mut out = Vec::new();
            for r in iter {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&rows_t, "transactions", Uuid::from_u128(k.value().1))?;
                if status.is_some_and(|s| s != rec.status) {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(rec);
            }
            Ok((out, false))
        })
    }

    /// Whether `agent` has a CONFIRMED top-level row to `to` created before `before` (an
    /// earlier id): the console's "new recipient" badge is its negation. EVM addresses compare
    /// case-insensitively.
    pub fn confirmed_to_before(&self, agent: Uuid, to: &str, before: Uuid) -> Result<bool, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let rows_t = tx.open_table(TRANSACTIONS)?;
            let a = agent.as_u128();
            for r in idx.range((a, 0u128)..(a, before.as_u128()))? {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&rows_t, "transactions", Uuid::from_u128(k.value().1))?;
                if rec.status == TxStatus::Confirmed
                    && rec.to_address.as_deref().is_some_and(|t| owner_key(rec.chain, t) == owner_key(rec.chain, to))
                {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// How many rows wait in the DELAY and in the APPROVAL queue (index keys only).
    pub fn queued_by_tier(&self) -> Result<[(Tier, u64); 2], StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_QUEUE)?;
            let count = |t: Tier| -> Result<u64, StoreError> {
                let t = t.as_str();
                Ok(idx.range((t, 0u64, 0u128)..=(t, u64::MAX, u128::MAX))?.count() as u64)
            };
            Ok([(Tier::Delay, count(Tier::Delay)?), (Tier::Approval, count(Tier::Approval)?)])
        })
    }

    /// Up to `limit` QUEUED rows of `tier` due at or before `now`, oldest first (read-only).
    pub fn due_rows(&self, tier: Tier, now: u64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_QUEUE)?;
            let t = tier.as_str();
            idx.range((t, 0u64, 0u128)..=(t, now, u128::MAX))?
                .take(limit)
                .map(|r| r.map(|(k, _)| Uuid::from_u128(k.value().2)).map_err(StoreError::from))
                .collect()
        })
    }

    /// Transaction and session counts at `now` for the operator status view.
    pub fn status_counts(&self, now: u64) -> Result<StatusCounts, StoreError> {
        self.read(|tx| {
            let mut c = StatusCounts::default();
            let rows_t = tx.open_table(TRANSACTIONS)?;
            for r in tx.open_table(IDX_TX_ACTIVE)?.iter()? {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&rows_t, "transactions", Uuid::from_u128(k.value().1))?;
                match rec.status {
                    TxStatus::Pending => c.pending += 1,
                    TxStatus::Queued => c.queued += 1,
                    TxStatus::Executing => c.executing += 1,
                    TxStatus::Submitted => c.submitted += 1,
                    _ => {}
                }
            }
            for r in rows_t.iter()?.rev() {
                let (_, v) = r?;
                let rec: TransactionRecord = decode("transactions", v.value())?;
                if rec.is_top_level() {
                    c.last = Some((rec.id, rec.status, rec.created_at));
                    break;
                }
            }
            for r in tx.open_table(SESSIONS)?.iter()? {
                let (_, v) = r?;
                let s: SessionRecord = decode("sessions", v.value())?;
                c.active_sessions += u64::from(s.is_live(now));
            }
            Ok(c)
        })
    }
}
