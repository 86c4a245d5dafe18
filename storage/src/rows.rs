//! Typed row access inside a transaction, including index maintenance.
//!
//! These helpers are the only code that writes record tables together with their indexes, so
//! an index can never disagree with its row. Each takes the caller's transaction: composing
//! them inside one `RedbStore::write` keeps a whole business operation atomic.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::codec::{decode, encode};
use crate::enums::{Tier, TxStatus};
use crate::error::StoreError;
use crate::records::*;
use crate::tables::*;

/// Reads one JSON row by `u128` key from any readable table.
pub(crate) fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    name: &'static str,
    key: Uuid,
) -> Result<Option<T>, StoreError> {
    match table.get(key.as_u128())? {
        Some(v) => Ok(Some(decode(name, v.value())?)),
        None => Ok(None),
    }
}

/// Reads one row or fails with `NotFound`.
pub(crate) fn must_get<T: DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    name: &'static str,
    key: Uuid,
) -> Result<T, StoreError> {
    get(table, name, key)?.ok_or_else(|| StoreError::not_found(name, key))
}

/// Writes one JSON row by `u128` key.
pub(crate) fn put<T: Serialize>(
    tx: &WriteTransaction,
    def: TableDefinition<'_, u128, &[u8]>,
    name: &'static str,
    key: Uuid,
    value: &T,
) -> Result<(), StoreError> {
    tx.open_table(def)?.insert(key.as_u128(), encode(name, value)?.as_slice())?;
    Ok(())
}

pub(crate) fn get_agent(tx: &WriteTransaction, id: Uuid) -> Result<AgentRecord, StoreError> {
    must_get(&tx.open_table(AGENTS)?, "agents", id)
}

/// Writes an agent row after checking its invariants. Index changes are the caller's job
/// because they depend on what changed (see `agents.rs`).
pub(crate) fn put_agent(tx: &WriteTransaction, rec: &AgentRecord) -> Result<(), StoreError> {
    rec.check()?;
    put(tx, AGENTS, "agents", rec.id, rec)
}

pub(crate) fn get_session(tx: &WriteTransaction, id: Uuid) -> Result<SessionRecord, StoreError> {
    must_get(&tx.open_table(SESSIONS)?, "sessions", id)
}

/// Rewrites a session row, moving its expiry and revocation index entries to match `new`.
pub(crate) fn update_session(
    tx: &WriteTransaction,
    old: &SessionRecord,
    new: &SessionRecord,
) -> Result<(), StoreError> {
    new.check()?;
    let key = new.id.as_u128();
    if old.expires_at != new.expires_at {
        let mut idx = tx.open_table(IDX_SESSION_EXPIRY)?;
        idx.remove((old.expires_at, key))?;
        idx.insert((new.expires_at, key), ())?;
    }
    if old.revoked_at != new.revoked_at {
        let mut idx = tx.open_table(IDX_SESSION_REVOKED)?;
        if let Some(t) = old.revoked_at {
            idx.remove((t, key))?;
        }
        if let Some(t) = new.revoked_at {
            idx.insert((t, key), ())?;
        }
    }
    if old.token_hash != new.token_hash {
        let mut idx = tx.open_table(IDX_SESSION_TOKEN)?;
        if idx.get(new.token_hash.0.as_slice())?.is_some() {
            return Err(StoreError::Unique { index: "idx_session_token" });
        }
        idx.remove(old.token_hash.0.as_slice())?;
        idx.insert(new.token_hash.0.as_slice(), key)?;
    }
    put(tx, SESSIONS, "sessions", new.id, new)
}

pub(crate) fn get_tx(tx: &WriteTransaction, id: Uuid) -> Result<TransactionRecord, StoreError> {
    must_get(&tx.open_table(TRANSACTIONS)?, "transactions", id)
}

fn queue_key(rec: &TransactionRecord) -> Option<(&'static str, u64)> {
    match (rec.status, rec.tier, rec.queue_expires_at) {
        (TxStatus::Queued, Some(t @ (Tier::Delay | Tier::Approval)), Some(due)) if rec.is_top_level() => {
            Some((t.as_str(), due))
        }
        _ => None,
    }
}

/// Inserts a new transaction row with all of its index entries and its rate count.
pub(crate) fn insert_tx(tx: &WriteTransaction, rec: &TransactionRecord) -> Result<(), StoreError> {
    rec.check()?;
    let key = rec.id.as_u128();
    if tx.open_table(TRANSACTIONS)?.get(key)?.is_some() {
        return Err(StoreError::Unique { index: "transactions" });
    }
    if let Some(sid) = rec.session_id {
        tx.open_table(IDX_TX_SESSION)?.insert((sid.as_u128(), key), ())?;
    }
    match (rec.parent_id, rec.batch_index) {
        (Some(parent), Some(i)) => {
            tx.open_table(IDX_TX_CHILDREN)?.insert((parent.as_u128(), i), key)?;
        }
        _ => {
            tx.open_table(IDX_TX_AGENT)?.insert((rec.agent_id.as_u128(), key), ())?;
            if rec.status.is_active() {
                tx.open_table(IDX_TX_ACTIVE)?.insert((rec.agent_id.as_u128(), key), ())?;
            }
            if let Some(hash) = &rec.tx_hash {
                claim_hash(tx, hash, rec.id)?;
            }
        }
    }
    if let Some((tier, due)) = queue_key(rec) {
        tx.open_table(IDX_TX_QUEUE)?.insert((tier, due, key), ())?;
    }
    crate::rate::on_write(tx, None, rec)?;
    crate::autostop_counts::on_write(tx, None, rec)?;
    put(tx, TRANSACTIONS, "transactions", rec.id, rec)
}

fn claim_hash(tx: &WriteTransaction, hash: &str, id: Uuid) -> Result<(), StoreError> {
    let mut idx = tx.open_table(IDX_TX_HASH)?;
    if let Some(existing) = idx.get(hash)? {
        if existing.value() != id.as_u128() {
            return Err(StoreError::Unique { index: "idx_tx_hash" });
        }
        return Ok(());
    }
    idx.insert(hash, id.as_u128())?;
    Ok(())
}

/// Rewrites a transaction row, keeping `idx_tx_active`, `idx_tx_queue`, `idx_tx_hash` and the
/// rate counters in step with the change from `old` to `new`, and releasing the reservation on
/// FAILED, CANCELLED and EXPIRED.
pub(crate) fn update_tx(
    tx: &WriteTransaction,
    old: &TransactionRecord,
    new: &mut TransactionRecord,
) -> Result<(), StoreError> {
    crate::in_tx::finalize_tx(new)?;
    let key = new.id.as_u128();
    if new.is_top_level() {
        if old.status.is_active() && !new.status.is_active() {
            tx.open_table(IDX_TX_ACTIVE)?.remove((new.agent_id.as_u128(), key))?;
        }
        if old.tx_hash != new.tx_hash {
            if let Some(h) = &old.tx_hash {
                tx.open_table(IDX_TX_HASH)?.remove(h.as_str())?;
            }
            if let Some(h) = &new.tx_hash {
                claim_hash(tx, h, new.id)?;
            }
        }
    }
    let (oq, nq) = (queue_key(old), queue_key(new));
    if oq != nq {
        let mut idx = tx.open_table(IDX_TX_QUEUE)?;
        if let Some((t, d)) = oq {
            idx.remove((t, d, key))?;
        }
        if let Some((t, d)) = nq {
            idx.insert((t, d, key), ())?;
        }
    }
    crate::rate::on_write(tx, Some(old), new)?;
    crate::autostop_counts::on_write(tx, Some(old), new)?;
    put(tx, TRANSACTIONS, "transactions", new.id, new)
}

/// How a write moves a row across a derived counter's predicate (the RATE_LIMIT and AutoStop
/// counters, `rate.rs` and `autostop_counts.rs`): into it, out of it, or neither.
pub(crate) enum Crossing<'a> {
    /// It counts now and did not before: add the new row.
    Enters(&'a TransactionRecord),
    /// It counted before and does not now: remove the old row.
    Leaves(&'a TransactionRecord),
}

/// The crossing of `counted` by the write from `old` (None = a new row) to `new`.
pub(crate) fn crossing<'a>(
    old: Option<&'a TransactionRecord>,
    new: &'a TransactionRecord,
    counted: fn(&TransactionRecord) -> bool,
) -> Option<Crossing<'a>> {
    match (old.filter(|o| counted(o)), counted(new)) {
        (None, true) => Some(Crossing::Enters(new)),
        (Some(o), false) => Some(Crossing::Leaves(o)),
        _ => None,
    }
}

/// Every transaction row that `counted` accepts: what a counter is rebuilt from when a schema
/// upgrade introduces it.
pub(crate) fn counted_transactions(
    tx: &WriteTransaction,
    counted: fn(&TransactionRecord) -> bool,
) -> Result<Vec<TransactionRecord>, StoreError> {
    let mut out = Vec::new();
    for r in tx.open_table(TRANSACTIONS)?.iter()? {
        let rec: TransactionRecord = decode("transactions", r?.1.value())?;
        if counted(&rec) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// BATCH children carry the parent's status and hash; called after the parent changed.
pub(crate) fn sync_children(tx: &WriteTransaction, parent: &TransactionRecord, now: u64) -> Result<(), StoreError> {
    let child_ids: Vec<Uuid> = {
        let idx = tx.open_table(IDX_TX_CHILDREN)?;
        let p = parent.id.as_u128();
        idx.range((p, 0u32)..=(p, u32::MAX))?
            .map(|r| r.map(|(_, v)| Uuid::from_u128(v.value())))
            .collect::<Result<_, _>>()?
    };
    for id in child_ids {
        let old = get_tx(tx, id)?;
        let mut new = crate::in_tx::child_follows(&old, parent, now);
        update_tx(tx, &old, &mut new)?;
    }
    Ok(())
}

/// Ids of `agent`'s top-level non-terminal transactions (from `idx_tx_active`).
pub(crate) fn active_tx_ids(tx: &WriteTransaction, agent: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let idx = tx.open_table(IDX_TX_ACTIVE)?;
    let a = agent.as_u128();
    let ids = idx
        .range((a, 0u128)..=(a, u128::MAX))?
        .map(|r| r.map(|(k, _)| Uuid::from_u128(k.value().1)))
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Ids of `agent`'s sessions (from `idx_session_agent`).
pub(crate) fn session_ids_of(tx: &WriteTransaction, agent: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let idx = tx.open_table(IDX_SESSION_AGENT)?;
    let a = agent.as_u128();
    let ids = idx
        .range((a, 0u128)..=(a, u128::MAX))?
        .map(|r| r.map(|(k, _)| Uuid::from_u128(k.value().1)))
        .collect::<Result<_, _>>()?;
    Ok(ids)
}
