//! Transaction rows from request to outcome (02-storage.md §6, 06-pipeline.md §3): recording
//! the request, the claim, the signed checkpoint, the broadcast, the chain's outcome and the
//! failures. Every status change is a compare-and-swap read and written in one write transaction
//! (`in_tx::transition_in`): two racing writers cannot both win, whatever the interleaving.

use redb::{ReadableTable, WriteTransaction};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::codec::{decode, encode};
use crate::db::{Commit, OpCtx, RedbStore};
use crate::enums::{AuditSeverity, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{IdempotencyClaim, TxFailure, TxPatch, require_normal, transition_in, tx_event};
use crate::records::meta;
use crate::records::*;
use crate::rows::{self, get_tx, insert_tx, update_tx};
use crate::tables::*;

pub use crate::in_tx::RecordOutcome;

/// What the chain said about a SUBMITTED transaction (the inline wait or the confirmation
/// worker). Storage turns it into the row's final status, its error string and its audit row,
/// so every path that learns an on-chain outcome records it the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainOutcome {
    /// Not final yet: stays SUBMITTED.
    Pending,
    /// Confirmed: CONFIRMED with the fee and block.
    Confirmed {
        /// Fee paid.
        fee: Option<Amount>,
        /// Block (or slot) of inclusion.
        block: u64,
    },
    /// Failed on chain: FAILED with `ONCHAIN_FAILURE: <code>`.
    Failed {
        /// The chain error code.
        code: String,
        /// The node's explanation.
        message: String,
    },
    /// The Solana blockhash passed without inclusion: EXPIRED with `BLOCKHASH_EXPIRED`.
    Expired,
}

/// A transaction handed to the node (or possibly handed: `uncertain`).
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The hash it has (or will have) on chain.
    pub hash: String,
    /// The submit's outcome is unknown; the confirmation worker resolves it.
    pub uncertain: bool,
    /// Execution facts kept with the row (`methodSignature`, `retryCount`).
    pub metadata: Map<String, Value>,
}

/// Signed bytes the pipeline is about to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// The row's own transaction and the hash it will have on chain: what start-up recovery
    /// rebroadcasts (`metadata.signedTx`, `metadata.expectedHash`).
    Transaction {
        /// Encoded as the chain encodes it.
        bytes: String,
        /// Its hash (EVM) or signature (Solana).
        expected_hash: String,
    },
    /// An EVM approve's allowance reset, submitted and confirmed before the approve itself
    /// (`metadata.resetSignedTx`).
    ApproveReset {
        /// The signed reset.
        bytes: String,
    },
}

/// What a stage-5 checkpoint writes on an EXECUTING row ([`RedbStore::checkpoint`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// Signed bytes about to be submitted, if any; refused once the kill switch is on.
    pub signed: Option<Signed>,
    /// Execution facts merged into the metadata (nonce, blockhash, fee estimate, a reset's
    /// hash): never signed bytes.
    pub facts: Map<String, Value>,
}

impl Checkpoint {
    /// The row's own signed transaction, with no further facts.
    pub fn signed(bytes: impl Into<String>, expected_hash: impl Into<String>) -> Checkpoint {
        Checkpoint {
            signed: Some(Signed::Transaction { bytes: bytes.into(), expected_hash: expected_hash.into() }),
            facts: Map::new(),
        }
    }

    /// Facts only, nothing signed.
    pub fn facts(facts: Map<String, Value>) -> Checkpoint {
        Checkpoint { signed: None, facts }
    }
}

/// Result of [`RedbStore::claim_for_execution`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// QUEUED → EXECUTING.
    Claimed(Box<TransactionRecord>),
    /// The agent was not ACTIVE: the row went QUEUED → FAILED with this error code.
    AgentInactive(&'static str),
}

/// `fail_transaction` is for rows that have not reached the chain.
pub(crate) fn check_failable(from: TxStatus) -> Result<(), StoreError> {
    if !matches!(from, TxStatus::Pending | TxStatus::Queued | TxStatus::Executing) {
        return Err(StoreError::Invariant("fail_transaction is for rows that have not reached the chain"));
    }
    Ok(())
}

/// What a new request must look like: PENDING, its children pointing at it.
pub(crate) fn check_request(rec: &TransactionRecord, children: &[TransactionRecord]) -> Result<(), StoreError> {
    if rec.status != TxStatus::Pending || children.iter().any(|c| c.parent_id != Some(rec.id)) {
        return Err(StoreError::Invariant("a new request is PENDING and children point at it"));
    }
    Ok(())
}

/// The idempotency record a new request leaves under its key (incomplete until the answer).
pub(crate) fn new_idempotency(claim: &IdempotencyClaim, rec: &TransactionRecord, now: u64) -> IdempotencyRecord {
    IdempotencyRecord {
        request_hash: claim.request_hash,
        tx_id: Some(rec.id),
        created_at: now,
        completed_at: None,
        response_status: None,
        response_body: None,
    }
}

pub(crate) fn requested_event(rec: &TransactionRecord, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::TxRequested, ctx.actor.clone())
        .agent(rec.agent_id)
        .session(rec.session_id)
        .tx(rec.id)
        .detail("type", rec.tx_type.as_str())
        .detail("amount", rec.amount.to_string())
        .detail("to", rec.to_address.clone())
}

/// SUBMITTED → FAILED or EXPIRED for a chain's failure or expiry: the target and its patch.
pub(crate) fn chain_end(outcome: &ChainOutcome) -> (TxStatus, TxPatch) {
    match outcome {
        ChainOutcome::Failed { code, .. } => (TxStatus::Failed, TxPatch::error(format!("ONCHAIN_FAILURE: {code}"))),
        _ => (TxStatus::Expired, TxPatch::error("BLOCKHASH_EXPIRED")),
    }
}

pub(crate) fn chain_end_event(rec: &TransactionRecord, outcome: &ChainOutcome, ctx: &OpCtx) -> AuditEvent {
    match outcome {
        ChainOutcome::Failed { message, .. } => TxFailure::new(rec.error.clone().unwrap_or_default())
            .event(rec, &ctx.actor)
            .detail("message", message.clone()),
        _ => tx_event(AuditEventType::TxExpired, rec, "system")
            .severity(AuditSeverity::Warning)
            .detail("error", "BLOCKHASH_EXPIRED"),
    }
}

pub(crate) fn confirm_patch(fee: Option<Amount>, block: Option<u64>, ctx: &OpCtx) -> TxPatch {
    let mut patch = TxPatch { executed_at: Some(ctx.now), reserved_amount: Some(None), ..TxPatch::default() };
    if let Some(fee) = fee {
        patch.metadata.insert("fee".into(), Value::String(fee.to_string()));
    }
    if let Some(b) = block {
        patch.metadata.insert("blockNumber".into(), Value::from(b));
    }
    patch
}

/// The session after a confirmed row: one more transaction, its native amount added.
pub(crate) fn with_usage(old: &SessionRecord, rec: &TransactionRecord, now: u64) -> Result<SessionRecord, StoreError> {
    let mut new = old.clone();
    new.usage.total_tx += 1;
    new.usage.total_amount =
        new.usage.total_amount.checked_add(rec.native_amount).map_err(|_| StoreError::Invariant("usage overflow"))?;
    new.usage.last_tx_at = Some(now);
    Ok(new)
}

pub(crate) fn confirmed_event(rec: &TransactionRecord, fee: Option<Amount>, block: Option<u64>) -> AuditEvent {
    tx_event(AuditEventType::TxConfirmed, rec, "system")
        .detail("txHash", rec.tx_hash.clone())
        .detail("fee", fee.map(|f| f.to_string()))
        .detail("blockNumber", block)
}

/// EXECUTING → SUBMITTED: the patch, and the `TX_SUBMITTED` row for the moved record.
pub(crate) fn broadcast_change(b: &Broadcast) -> (TxPatch, impl Fn(&TransactionRecord) -> AuditEvent + '_) {
    let mut patch = TxPatch { tx_hash: Some(b.hash.clone()), metadata: b.metadata.clone(), ..TxPatch::default() };
    if b.uncertain {
        patch.metadata.insert("broadcastUncertain".into(), Value::Bool(true));
    }
    let ev = move |rec: &TransactionRecord| {
        tx_event(AuditEventType::TxSubmitted, rec, "system")
            .detail("txHash", b.hash.clone())
            .detail("broadcastUncertain", b.uncertain)
    };
    (patch, ev)
}

/// Signed bytes travel only as [`Signed`], never as loose facts.
pub(crate) fn check_checkpoint(c: &Checkpoint) -> Result<(), StoreError> {
    if [meta::SIGNED_TX, meta::EXPECTED_HASH, meta::RESET_SIGNED_TX].iter().any(|k| c.facts.contains_key(*k)) {
        return Err(StoreError::Invariant("signed bytes go in Checkpoint::signed, never in its facts"));
    }
    Ok(())
}

/// An EXECUTING row with the checkpoint merged into its metadata.
pub(crate) fn checkpointed(old: &TransactionRecord, c: Checkpoint, now: u64) -> Result<TransactionRecord, StoreError> {
    if old.status != TxStatus::Executing {
        return Err(StoreError::conflict(TxStatus::Executing, old.status));
    }
    let mut new = old.clone();
    match c.signed {
        Some(Signed::Transaction { bytes, expected_hash }) => {
            new.metadata.insert(meta::SIGNED_TX.into(), Value::String(bytes));
            new.metadata.insert(meta::EXPECTED_HASH.into(), Value::String(expected_hash));
        }
        Some(Signed::ApproveReset { bytes }) => {
            new.metadata.insert(meta::RESET_SIGNED_TX.into(), Value::String(bytes));
        }
        None => {}
    }
    new.metadata.extend(c.facts);
    new.updated_at = now;
    Ok(new)
}

/// Why a claim fails the row instead: the agent is no longer ACTIVE.
pub(crate) fn inactive_code(status: crate::enums::AgentStatus) -> Option<&'static str> {
    match status {
        crate::enums::AgentStatus::Active => None,
        crate::enums::AgentStatus::Suspended => Some("AGENT_SUSPENDED"),
        crate::enums::AgentStatus::Terminated => Some("AGENT_TERMINATED"),
    }
}

impl RedbStore {
    /// Stage 1 (06-pipeline.md §2): in one write transaction, return an existing idempotency
    /// record untouched, or insert the PENDING row (+ BATCH children) with its indexes, the
    /// idempotency record and the `TX_REQUESTED` audit row.
    pub fn record_request(
        &self,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
    ) -> Result<RecordOutcome, StoreError> {
        self.write(|tx| self.record_in(tx, rec, children, idempotency, ctx))
    }

    /// [`record_request`](Self::record_request) inside `tx`.
    pub(crate) fn record_in(
        &self,
        tx: &redb::WriteTransaction,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
    ) -> Result<RecordOutcome, StoreError> {
        check_request(rec, children)?;
        {
            if let Some(claim) = idempotency {
                let table = tx.open_table(IDEMPOTENCY)?;
                if let Some(v) = table.get((rec.agent_id.as_u128(), claim.key.as_str()))? {
                    return Ok(RecordOutcome::Existing(decode("idempotency", v.value())?));
                }
            }
            insert_tx(tx, rec)?;
            for child in children {
                insert_tx(tx, child)?;
            }
            if let Some(claim) = idempotency {
                let record = new_idempotency(claim, rec, ctx.now);
                let key = (rec.agent_id.as_u128(), claim.key.as_str());
                tx.open_table(IDEMPOTENCY)?.insert(key, encode("idempotency", &record)?.as_slice())?;
                tx.open_table(IDX_IDEMPOTENCY_TIME)?
                    .insert((ctx.now, rec.agent_id.as_u128(), claim.key.as_str()), ())?;
            }
            self.audit(tx, requested_event(rec, ctx), ctx)?;
            Ok(RecordOutcome::Recorded)
        }
    }

    /// Test-only generic CAS change, for setting up rows in a given state.
    #[cfg(test)]
    pub(crate) fn transition(
        &self,
        id: Uuid,
        from: TxStatus,
        to: TxStatus,
        patch: TxPatch,
        audit: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write(|tx| {
            let rec = transition_in(tx, id, from, to, patch, ctx.now)?;
            if let Some(ev) = audit {
                self.audit(tx, ev, ctx)?;
            }
            Ok(rec)
        })
    }

    /// Fails a transaction that has not reached the chain: CAS `from` → FAILED (`from` is
    /// PENDING, QUEUED or EXECUTING) with the failure's error string, the reservation released
    /// and its `TX_FAILED` audit row, in one write transaction. `Conflict` when the row is no
    /// longer in `from` (another writer won; nothing is written).
    pub fn fail_transaction(
        &self,
        id: Uuid,
        from: TxStatus,
        failure: &TxFailure,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        check_failable(from)?;
        self.write(|tx| {
            let rec = transition_in(tx, id, from, TxStatus::Failed, TxPatch::error(failure.error.clone()), ctx.now)?;
            self.audit(tx, failure.event(&rec, &ctx.actor), ctx)?;
            Ok(rec)
        })
    }

    /// Records what the chain said about a SUBMITTED row (the confirmation worker): CONFIRMED
    /// (with usage, as [`confirm_transaction`](Self::confirm_transaction)), FAILED or EXPIRED,
    /// each with its audit row, in one write transaction. `Pending` writes nothing and returns
    /// the row unchanged. `Conflict` when the row is no longer SUBMITTED.
    pub fn record_chain_outcome(
        &self,
        id: Uuid,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        if outcome == ChainOutcome::Pending {
            return self.get_transaction(id)?.ok_or_else(|| StoreError::not_found("transactions", id));
        }
        // Lazy (issue #21): the chain holds the outcome; a crash before the next durable commit
        // leaves the row SUBMITTED with its signed bytes, and the confirmation worker reads the
        // outcome again.
        self.write_with(Commit::Lazy, |tx| self.chain_outcome_in(tx, id, outcome, ctx))
    }

    /// The SUBMITTED → final part of [`record_chain_outcome`](Self::record_chain_outcome) and
    /// [`record_broadcast`](Self::record_broadcast), inside the caller's transaction.
    fn chain_outcome_in(
        &self,
        tx: &WriteTransaction,
        id: Uuid,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        match outcome {
            ChainOutcome::Pending => get_tx(tx, id),
            ChainOutcome::Confirmed { fee, block } => self.confirm_in(tx, id, fee, Some(block), ctx),
            ChainOutcome::Failed { .. } | ChainOutcome::Expired => {
                let (to, patch) = chain_end(&outcome);
                let rec = transition_in(tx, id, TxStatus::Submitted, to, patch, ctx.now)?;
                self.audit(tx, chain_end_event(&rec, &outcome, ctx), ctx)?;
                Ok(rec)
            }
        }
    }

    /// Stage 6: CAS SUBMITTED → CONFIRMED, and in the same write transaction add the row to its
    /// session's usage (`total_tx + 1`, `total_amount + native_amount`, `last_tx_at`), clear the
    /// reservation and audit `TX_CONFIRMED`.
    pub fn confirm_transaction(
        &self,
        id: Uuid,
        fee: Option<Amount>,
        block: Option<u64>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write(|tx| self.confirm_in(tx, id, fee, block, ctx))
    }

    fn confirm_in(
        &self,
        tx: &WriteTransaction,
        id: Uuid,
        fee: Option<Amount>,
        block: Option<u64>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        let rec =
            transition_in(tx, id, TxStatus::Submitted, TxStatus::Confirmed, confirm_patch(fee, block, ctx), ctx.now)?;
        if let Some(sid) = rec.session_id {
            let table = tx.open_table(SESSIONS)?;
            let existing: Option<SessionRecord> = rows::get(&table, "sessions", sid)?;
            drop(table);
            if let Some(old) = existing {
                rows::update_session(tx, &old, &with_usage(&old, &rec, ctx.now)?)?;
            }
        }
        self.audit(tx, confirmed_event(&rec, fee, block), ctx)?;
        Ok(rec)
    }

    /// Records a broadcast (EXECUTING → SUBMITTED with the hash, `TX_SUBMITTED`) together with
    /// what the inline confirmation wait already learned, in one write transaction: a row whose
    /// transaction confirmed during the wait goes on to CONFIRMED (usage, audit) in the same
    /// commit. Until this commit the signed checkpoint is what makes a crash recoverable.
    ///
    /// Lazy (issue #21): start-up recovery rebuilds it from the durable checkpoint (it
    /// rebroadcasts the same signed bytes, which the node accepts once), so it need not wait
    /// for an fsync.
    pub fn record_broadcast(
        &self,
        id: Uuid,
        broadcast: Broadcast,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write_with(Commit::Lazy, |tx| {
            let (patch, ev) = broadcast_change(&broadcast);
            let rec = transition_in(tx, id, TxStatus::Executing, TxStatus::Submitted, patch, ctx.now)?;
            self.audit(tx, ev(&rec), ctx)?;
            self.chain_outcome_in(tx, id, outcome, ctx)
        })
    }

    /// Stage 5 checkpoint (06-pipeline.md §6.2 (h)): merges the checkpoint into an EXECUTING
    /// row's metadata in one write transaction. Refused (`Conflict`) once the row has left
    /// EXECUTING. A checkpoint carrying signed bytes is refused (`Restricted`) once the kill
    /// switch is on, in the same transaction: nothing signed after its activation commits is
    /// ever broadcast (08-killswitch-autostop.md §2.2). The rule keys on the type — any
    /// [`Signed`] value — not on metadata key names.
    pub fn checkpoint(&self, id: Uuid, checkpoint: Checkpoint, now: u64) -> Result<(), StoreError> {
        check_checkpoint(&checkpoint)?;
        self.write(|tx| {
            if checkpoint.signed.is_some() {
                require_normal(tx)?;
            }
            let old = get_tx(tx, id)?;
            let mut new = checkpointed(&old, checkpoint, now)?;
            update_tx(tx, &old, &mut new)
        })
    }

    /// Claim: CAS QUEUED → EXECUTING; when the agent is no longer ACTIVE the row goes QUEUED →
    /// FAILED (`AGENT_SUSPENDED` / `AGENT_TERMINATED`, reservation released, audit `TX_FAILED`)
    /// instead. One write transaction either way.
    pub fn claim_for_execution(&self, id: Uuid, ctx: &OpCtx) -> Result<ClaimOutcome, StoreError> {
        self.write(|tx| {
            let rec = get_tx(tx, id)?;
            let agent = rows::get_agent(tx, rec.agent_id)?;
            match inactive_code(agent.status) {
                None => {
                    let rec =
                        transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now)?;
                    Ok(ClaimOutcome::Claimed(Box::new(rec)))
                }
                Some(code) => {
                    let rec = transition_in(tx, id, TxStatus::Queued, TxStatus::Failed, TxPatch::error(code), ctx.now)?;
                    self.audit(tx, TxFailure::new(code).at("claim").event(&rec, &ctx.actor), ctx)?;
                    Ok(ClaimOutcome::AgentInactive(code))
                }
            }
        })
    }
}
