//! Transaction rows inside a PostgreSQL transaction: the counterpart of the transaction half of
//! `rows.rs` and `in_tx.rs`. Every write of an existing row is a compare-and-swap on the status
//! it was read with (`UPDATE … WHERE id = $1 AND status = $2`), so a writer that lost a race
//! gets `Conflict` whatever locks it holds; the shared rules (`transitioned`, `finalize_tx`,
//! `child_follows`, `approval_settled`) decide what the row becomes.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::codec::to_json;
use super::{map_err, rows};
use crate::enums::TxStatus;
use crate::error::StoreError;
use crate::in_tx::{
    ApprovalOutcome, TxPatch, approval_settled, approval_settled_by, child_follows, finalize_tx, transitioned,
};
use crate::records::*;

/// A transaction; `NotFound` when absent.
pub(crate) async fn get_tx(tx: &Transaction<'_>, id: Uuid) -> Result<TransactionRecord, StoreError> {
    rows::must_get(tx, "transactions", id).await
}

/// `Unique { idx_tx_hash }` when another top-level row holds `hash`.
async fn check_hash(tx: &Transaction<'_>, hash: &str, id: Uuid) -> Result<(), StoreError> {
    let taken = super::rows::opt(
        tx,
        "SELECT 1 FROM transactions WHERE tx_hash = $1 AND parent_id IS NULL AND id <> $2",
        &[&hash, &id],
    )
    .await?;
    if taken.is_some() { Err(StoreError::Unique { index: "idx_tx_hash" }) } else { Ok(()) }
}

/// Inserts a new transaction row.
pub(crate) async fn insert_tx(tx: &Transaction<'_>, rec: &TransactionRecord) -> Result<(), StoreError> {
    rec.check()?;
    if rows::exists(tx, "transactions", rec.id).await? {
        return Err(StoreError::Unique { index: "transactions" });
    }
    if rec.is_top_level()
        && let Some(h) = &rec.tx_hash
    {
        check_hash(tx, h, rec.id).await?;
    }
    rows::insert(tx, "transactions", rec.id, rec).await
}

/// Rewrites a row read as `old`: CAS on its status.
pub(crate) async fn update_tx(
    tx: &Transaction<'_>,
    old: &TransactionRecord,
    new: &mut TransactionRecord,
) -> Result<(), StoreError> {
    finalize_tx(new)?;
    if new.is_top_level()
        && old.tx_hash != new.tx_hash
        && let Some(h) = &new.tx_hash
    {
        check_hash(tx, h, new.id).await?;
    }
    let stmt = tx
        .prepare_cached("UPDATE transactions SET record = $2 WHERE id = $1 AND status = $3")
        .await
        .map_err(map_err)?;
    let n =
        tx.execute(&stmt, &[&new.id, &to_json("transactions", &*new)?, &old.status.as_str()]).await.map_err(map_err)?;
    if n == 0 {
        let now: TransactionRecord = get_tx(tx, new.id).await?;
        return Err(StoreError::conflict(old.status, now.status));
    }
    Ok(())
}

/// BATCH children follow their parent.
pub(crate) async fn sync_children(
    tx: &Transaction<'_>,
    parent: &TransactionRecord,
    now: u64,
) -> Result<(), StoreError> {
    // Only a BATCH has children: any other row skips the round trip.
    if parent.tx_type != crate::enums::TxType::Batch {
        return Ok(());
    }
    let children: Vec<TransactionRecord> = rows::query(
        tx,
        "transactions",
        "SELECT record::text FROM transactions WHERE parent_id = $1 ORDER BY batch_index",
        &[&parent.id],
    )
    .await?;
    for old in children {
        let mut new = child_follows(&old, parent, now);
        update_tx(tx, &old, &mut new).await?;
    }
    Ok(())
}

/// The one status transition: CAS, patch, children, approval settlement.
pub(crate) async fn transition_in(
    tx: &Transaction<'_>,
    id: Uuid,
    from: TxStatus,
    to: TxStatus,
    patch: TxPatch,
    now: u64,
) -> Result<TransactionRecord, StoreError> {
    let old = get_tx(tx, id).await?;
    let mut new = transitioned(&old, from, to, patch, now)?;
    update_tx(tx, &old, &mut new).await?;
    sync_children(tx, &new, now).await?;
    if let Some(outcome) = approval_settled_by(from, to) {
        settle_approval(tx, id, outcome, now).await?;
    }
    Ok(new)
}

/// Marks a pending approval rejected or expired, once.
pub(crate) async fn settle_approval(
    tx: &Transaction<'_>,
    id: Uuid,
    outcome: ApprovalOutcome,
    now: u64,
) -> Result<(), StoreError> {
    let Some(rec) = get_approval(tx, id).await? else { return Ok(()) };
    if let Some(rec) = approval_settled(rec, outcome, now) {
        put_approval(tx, &rec).await?;
    }
    Ok(())
}

/// One pending-approval row.
pub(crate) async fn get_approval(tx: &Transaction<'_>, id: Uuid) -> Result<Option<ApprovalRecord>, StoreError> {
    Ok(rows::query(tx, "pending_approvals", "SELECT record::text FROM pending_approvals WHERE tx_id = $1", &[&id])
        .await?
        .pop())
}

/// Writes a pending-approval row (insert or replace).
pub(crate) async fn put_approval(tx: &Transaction<'_>, rec: &ApprovalRecord) -> Result<(), StoreError> {
    rec.check()?;
    super::rows::exec(
        tx,
        "INSERT INTO pending_approvals (tx_id, record) VALUES ($1, $2)
         ON CONFLICT (tx_id) DO UPDATE SET record = EXCLUDED.record",
        &[&rec.tx_id, &to_json("pending_approvals", rec)?],
    )
    .await?;
    Ok(())
}

/// Ends every listed row whose status is in `from` (and that `filter` accepts); returns how many.
pub(crate) async fn end_many(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    from: &[TxStatus],
    to: TxStatus,
    error: &str,
    filter: impl Fn(&TransactionRecord) -> bool,
    now: u64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for id in ids {
        let rec = get_tx(tx, *id).await?;
        if from.contains(&rec.status) && filter(&rec) {
            transition_in(tx, *id, rec.status, to, TxPatch::error(error), now).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Ids of `agent`'s top-level non-terminal transactions, by id.
pub(crate) async fn active_tx_ids(tx: &Transaction<'_>, agent: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let rows = super::rows::all(
        tx,
        "SELECT id FROM transactions WHERE agent_id = $1 AND parent_id IS NULL
               AND status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED') ORDER BY id",
        &[&agent],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The agent of a transaction, without decoding it (to take the agent lock first).
pub(crate) async fn agent_of(tx: &Transaction<'_>, id: Uuid) -> Result<Uuid, StoreError> {
    super::rows::opt(tx, "SELECT agent_id FROM transactions WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::not_found("transactions", id))
}
