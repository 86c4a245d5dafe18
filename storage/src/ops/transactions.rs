//! Transaction rows: recording, compare-and-swap transitions, confirmation and the recovery
//! sweeps (02-storage.md §6, 06-pipeline.md §3, §10).
//!
//! Every status change is a CAS: the current status is read **inside** the write transaction
//! that writes the new one, and a mismatch aborts with `Conflict` having written nothing. Two
//! racing writers therefore cannot both win, whatever the interleaving.

use redb::{ReadableTable, WriteTransaction};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::codec::{decode, encode};
use crate::db::{OpCtx, Store};
use crate::enums::{AuditSeverity, Tier, TxStatus};
use crate::error::StoreError;
use crate::records::*;
use crate::rows::{self, get_tx, insert_tx, sync_children, update_tx};
use crate::tables::*;

/// Field changes applied together with a status transition. Crate-private on purpose: outside
/// this crate every change goes through a purpose-named operation, so no caller can set a tier
/// or a reservation by hand.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TxPatch {
    /// New tier.
    pub(crate) tier: Option<Tier>,
    /// New chain hash.
    pub(crate) tx_hash: Option<String>,
    /// New error string.
    pub(crate) error: Option<String>,
    /// Queue time.
    pub(crate) queued_at: Option<u64>,
    /// DELAY execute-at / APPROVAL deadline.
    pub(crate) queue_expires_at: Option<u64>,
    /// Time of CONFIRMED.
    pub(crate) executed_at: Option<u64>,
    /// New reservation (`Some(None)` clears it).
    pub(crate) reserved_amount: Option<Option<Amount>>,
    /// Keys merged into `metadata`.
    pub(crate) metadata: Map<String, Value>,
}

impl TxPatch {
    /// A patch setting only the error string.
    pub(crate) fn error(e: impl Into<String>) -> TxPatch {
        TxPatch { error: Some(e.into()), ..TxPatch::default() }
    }

    fn apply(self, rec: &mut TransactionRecord) {
        if let Some(t) = self.tier {
            rec.tier = Some(t);
        }
        if let Some(h) = self.tx_hash {
            rec.tx_hash = Some(h);
        }
        if let Some(e) = self.error {
            rec.error = Some(e);
        }
        if let Some(q) = self.queued_at {
            rec.queued_at = Some(q);
        }
        if let Some(q) = self.queue_expires_at {
            rec.queue_expires_at = Some(q);
        }
        if let Some(x) = self.executed_at {
            rec.executed_at = Some(x);
        }
        if let Some(r) = self.reserved_amount {
            rec.reserved_amount = r;
        }
        for (k, v) in self.metadata {
            rec.metadata.insert(k, v);
        }
    }
}

/// An idempotency key presented with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The `Idempotency-Key` header.
    pub key: String,
    /// SHA-256 of the canonical request JSON.
    pub request_hash: Hash32,
}

/// Result of [`Store::record_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// The row was inserted as PENDING.
    Recorded,
    /// The idempotency key already had a record; nothing was written.
    Existing(IdempotencyRecord),
}

/// Counts from [`Store::startup_recovery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// PENDING → EXPIRED.
    pub pending_expired: u64,
    /// QUEUED INSTANT/NOTIFY → FAILED.
    pub queued_failed: u64,
    /// EXECUTING with a signed checkpoint → SUBMITTED (uncertain broadcast).
    pub resubmitted: u64,
    /// EXECUTING without a checkpoint → FAILED.
    pub executing_failed: u64,
    /// EXECUTING DELAY/APPROVAL rows without a signed checkpoint, kept EXECUTING: claimed by
    /// the DELAY worker or an owner's approval but never signed, so the daemon executes them
    /// again (nothing was broadcast).
    pub resume: Vec<Uuid>,
}

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

/// Why a transaction failed, as stored and audited. `TX_FAILED` rows are built only from this,
/// in one place ([`TxFailure::event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFailure {
    /// `transactions.error` (06-pipeline.md §3.3), e.g. `EVM_REVERT` or `STAGE5_TIMEOUT (812)`.
    pub error: String,
    /// The retry category (`PERMANENT`, `TRANSIENT`, `STALE`) when a chain or signer step failed.
    pub category: Option<String>,
    /// The stage-5 step that failed, or `claim`.
    pub step: Option<String>,
    /// Retries spent before failing.
    pub retry_count: Option<u32>,
}

impl TxFailure {
    /// A failure with just its error string.
    pub fn new(error: impl Into<String>) -> TxFailure {
        TxFailure { error: error.into(), category: None, step: None, retry_count: None }
    }

    /// The same failure at a stage-5 step.
    pub fn at(mut self, step: impl Into<String>) -> TxFailure {
        self.step = Some(step.into());
        self
    }

    /// The same failure with its retry category and the retries spent.
    pub fn retried(mut self, category: impl Into<String>, retry_count: u32) -> TxFailure {
        self.category = Some(category.into());
        self.retry_count = Some(retry_count);
        self
    }

    /// The `TX_FAILED` audit row for `rec`.
    pub(crate) fn event(&self, rec: &TransactionRecord, actor: &str) -> AuditEvent {
        // `ONCHAIN_FAILURE: EVM_REVERT` audits the chain's code; `STAGE5_TIMEOUT (812)` its name.
        let bare = self.error.strip_prefix("ONCHAIN_FAILURE: ").unwrap_or(&self.error);
        let code = bare.split(' ').next().unwrap_or(bare).to_string();
        let mut ev = AuditEvent::new("TX_FAILED", actor.to_string())
            .agent(rec.agent_id)
            .session(rec.session_id)
            .tx(rec.id)
            .severity(AuditSeverity::Warning)
            .detail("code", code)
            .detail("error", self.error.clone());
        if let Some(c) = &self.category {
            ev = ev.detail("category", c.clone());
        }
        if let Some(s) = &self.step {
            ev = ev.detail("step", s.clone());
        }
        if let Some(n) = self.retry_count {
            ev = ev.detail("retryCount", n);
        }
        ev
    }
}

/// Result of [`Store::claim_for_execution`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// QUEUED → EXECUTING.
    Claimed(Box<TransactionRecord>),
    /// The agent was not ACTIVE: the row went QUEUED → FAILED with this error code.
    AgentInactive(&'static str),
}

/// One in-transaction transition used by every status change: CAS, patch, index maintenance,
/// BATCH children, approval row. Returns the updated record.
pub(crate) fn transition_in(
    tx: &WriteTransaction,
    id: Uuid,
    from: TxStatus,
    to: TxStatus,
    patch: TxPatch,
    now: u64,
) -> Result<TransactionRecord, StoreError> {
    let old = get_tx(tx, id)?;
    if old.status != from {
        return Err(StoreError::conflict(from, old.status));
    }
    if !from.can_transition_to(to) {
        return Err(StoreError::conflict(format!("a legal transition from {from}"), to));
    }
    if !old.is_top_level() {
        return Err(StoreError::Invariant("BATCH children change only with their parent"));
    }
    let mut new = old.clone();
    new.status = to;
    new.updated_at = now;
    patch.apply(&mut new);
    update_tx(tx, &old, &mut new)?;
    sync_children(tx, &new, now)?;
    if to.is_terminal() && to != TxStatus::Confirmed && from == TxStatus::Queued {
        let outcome = if to == TxStatus::Expired { ApprovalOutcome::Expired } else { ApprovalOutcome::Rejected };
        settle_approval(tx, id, outcome, now)?;
    }
    Ok(new)
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ApprovalOutcome {
    Rejected,
    Expired,
}

/// Marks a pending approval rejected or expired, once; absent rows are fine (non-APPROVAL tiers).
pub(crate) fn settle_approval(
    tx: &WriteTransaction,
    id: Uuid,
    outcome: ApprovalOutcome,
    now: u64,
) -> Result<(), StoreError> {
    let mut table = tx.open_table(PENDING_APPROVALS)?;
    let Some(mut rec): Option<ApprovalRecord> = rows::get(&table, "pending_approvals", id)? else {
        return Ok(());
    };
    if rec.is_settled() {
        return Ok(());
    }
    match outcome {
        ApprovalOutcome::Rejected => rec.rejected_at = Some(now),
        ApprovalOutcome::Expired => rec.expired_at = Some(now),
    }
    table.insert(id.as_u128(), encode("pending_approvals", &rec)?.as_slice())?;
    Ok(())
}

/// Cancels (or expires) every listed top-level row whose status is in `from`, without per-row
/// audit (bulk operations write one summary row). Returns how many changed.
pub(crate) fn end_many(
    tx: &WriteTransaction,
    ids: &[Uuid],
    from: &[TxStatus],
    to: TxStatus,
    error: &str,
    filter: impl Fn(&TransactionRecord) -> bool,
    now: u64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for id in ids {
        let rec = get_tx(tx, *id)?;
        if from.contains(&rec.status) && filter(&rec) {
            transition_in(tx, *id, rec.status, to, TxPatch::error(error), now)?;
            n += 1;
        }
    }
    Ok(n)
}

fn tx_event(name: &str, rec: &TransactionRecord) -> AuditEvent {
    AuditEvent::new(name, "system").agent(rec.agent_id).session(rec.session_id).tx(rec.id)
}

impl Store {
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
        if rec.status != TxStatus::Pending || children.iter().any(|c| c.parent_id != Some(rec.id)) {
            return Err(StoreError::Invariant("a new request is PENDING and children point at it"));
        }
        self.write(|tx| {
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
                let record = IdempotencyRecord {
                    request_hash: claim.request_hash,
                    tx_id: Some(rec.id),
                    created_at: ctx.now,
                    completed_at: None,
                    response_status: None,
                    response_body: None,
                };
                let key = (rec.agent_id.as_u128(), claim.key.as_str());
                tx.open_table(IDEMPOTENCY)?.insert(key, encode("idempotency", &record)?.as_slice())?;
                tx.open_table(IDX_IDEMPOTENCY_TIME)?
                    .insert((ctx.now, rec.agent_id.as_u128(), claim.key.as_str()), ())?;
            }
            let ev = AuditEvent::new("TX_REQUESTED", ctx.actor.clone())
                .agent(rec.agent_id)
                .session(rec.session_id)
                .tx(rec.id)
                .detail("type", rec.tx_type.as_str())
                .detail("amount", rec.amount.to_string())
                .detail("to", rec.to_address.clone());
            self.audit(tx, ev, ctx)?;
            Ok(RecordOutcome::Recorded)
        })
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
        if !matches!(from, TxStatus::Pending | TxStatus::Queued | TxStatus::Executing) {
            return Err(StoreError::Invariant("fail_transaction is for rows that have not reached the chain"));
        }
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
        self.write(|tx| self.chain_outcome_in(tx, id, outcome, ctx))
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
            ChainOutcome::Failed { code, message } => {
                let error = format!("ONCHAIN_FAILURE: {code}");
                let rec = transition_in(tx, id, TxStatus::Submitted, TxStatus::Failed, TxPatch::error(error), ctx.now)?;
                let ev = TxFailure::new(rec.error.clone().unwrap_or_default()).event(&rec, &ctx.actor);
                self.audit(tx, ev.detail("message", message), ctx)?;
                Ok(rec)
            }
            ChainOutcome::Expired => {
                let rec = transition_in(
                    tx,
                    id,
                    TxStatus::Submitted,
                    TxStatus::Expired,
                    TxPatch::error("BLOCKHASH_EXPIRED"),
                    ctx.now,
                )?;
                let ev =
                    tx_event("TX_EXPIRED", &rec).severity(AuditSeverity::Warning).detail("error", "BLOCKHASH_EXPIRED");
                self.audit(tx, ev, ctx)?;
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
        let mut patch = TxPatch { executed_at: Some(ctx.now), reserved_amount: Some(None), ..TxPatch::default() };
        if let Some(fee) = fee {
            patch.metadata.insert("fee".into(), Value::String(fee.to_string()));
        }
        if let Some(b) = block {
            patch.metadata.insert("blockNumber".into(), Value::from(b));
        }
        let rec = transition_in(tx, id, TxStatus::Submitted, TxStatus::Confirmed, patch, ctx.now)?;
        if let Some(sid) = rec.session_id {
            let table = tx.open_table(SESSIONS)?;
            let existing: Option<SessionRecord> = rows::get(&table, "sessions", sid)?;
            drop(table);
            if let Some(old) = existing {
                let mut new = old.clone();
                new.usage.total_tx += 1;
                new.usage.total_amount = new
                    .usage
                    .total_amount
                    .checked_add(rec.native_amount)
                    .map_err(|_| StoreError::Invariant("usage overflow"))?;
                new.usage.last_tx_at = Some(ctx.now);
                rows::update_session(tx, &old, &new)?;
            }
        }
        let ev = tx_event("TX_CONFIRMED", &rec)
            .detail("txHash", rec.tx_hash.clone())
            .detail("fee", fee.map(|f| f.to_string()))
            .detail("blockNumber", block);
        self.audit(tx, ev, ctx)?;
        Ok(rec)
    }

    /// Records a broadcast (EXECUTING → SUBMITTED with the hash, `TX_SUBMITTED`) together with
    /// what the inline confirmation wait already learned, in one write transaction: a row whose
    /// transaction confirmed during the wait goes on to CONFIRMED (usage, audit) in the same
    /// commit. Until this commit the signed checkpoint is what makes a crash recoverable.
    pub fn record_broadcast(
        &self,
        id: Uuid,
        broadcast: Broadcast,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write(|tx| {
            let mut patch =
                TxPatch { tx_hash: Some(broadcast.hash.clone()), metadata: broadcast.metadata, ..TxPatch::default() };
            if broadcast.uncertain {
                patch.metadata.insert("broadcastUncertain".into(), Value::Bool(true));
            }
            let rec = transition_in(tx, id, TxStatus::Executing, TxStatus::Submitted, patch, ctx.now)?;
            let ev = tx_event("TX_SUBMITTED", &rec)
                .detail("txHash", broadcast.hash)
                .detail("broadcastUncertain", broadcast.uncertain);
            self.audit(tx, ev, ctx)?;
            self.chain_outcome_in(tx, id, outcome, ctx)
        })
    }

    /// Stage 5 checkpoint: stores the signed transaction and its expected hash on the EXECUTING
    /// row so a crash after broadcast can be recovered (06-pipeline.md §6.2 (h)).
    pub fn checkpoint_signed(&self, id: Uuid, signed: &str, expected_hash: &str, now: u64) -> Result<(), StoreError> {
        self.checkpoint(id, &[("signedTx", signed.into()), ("expectedHash", expected_hash.into())], now)
    }

    /// Merges execution facts into an EXECUTING row's metadata in one write transaction (the
    /// signed checkpoint with its nonce / blockhash, an approve reset's hash). Refused
    /// (`Conflict`) once the row has left EXECUTING. Signed bytes are refused (`Restricted`)
    /// once the kill switch is on, in the same transaction: nothing signed after its activation
    /// commits is ever broadcast (08-killswitch-autostop.md §2.2).
    pub fn checkpoint(&self, id: Uuid, entries: &[(&str, Value)], now: u64) -> Result<(), StoreError> {
        self.write(|tx| {
            if entries.iter().any(|(k, _)| matches!(*k, "signedTx" | "resetSignedTx")) {
                crate::ops::killswitch::require_normal(tx)?;
            }
            let old = get_tx(tx, id)?;
            if old.status != TxStatus::Executing {
                return Err(StoreError::conflict(TxStatus::Executing, old.status));
            }
            let mut new = old.clone();
            for (k, v) in entries {
                new.metadata.insert((*k).to_string(), v.clone());
            }
            new.updated_at = now;
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
            let code = match agent.status {
                crate::enums::AgentStatus::Active => None,
                crate::enums::AgentStatus::Suspended => Some("AGENT_SUSPENDED"),
                crate::enums::AgentStatus::Terminated => Some("AGENT_TERMINATED"),
            };
            match code {
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

    /// Zombie sweep: PENDING top-level rows created at or before `now − min_age` become EXPIRED
    /// (`RESERVATION_TIMEOUT`), 500 rows per write transaction. Returns how many.
    pub fn sweep_pending(&self, now: u64, min_age: u64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(min_age);
        self.sweep(now, |rec| {
            (rec.status == TxStatus::Pending && rec.created_at <= cutoff)
                .then(|| (TxStatus::Expired, TxPatch::error("RESERVATION_TIMEOUT"), "TX_EXPIRED"))
        })
        .map(|r| r.pending_expired)
    }

    /// Startup recovery (06-pipeline.md §10), 500 rows per write transaction: PENDING → EXPIRED;
    /// QUEUED INSTANT/NOTIFY → FAILED; EXECUTING with a signed checkpoint → SUBMITTED with
    /// `broadcastUncertain`; EXECUTING without: INSTANT/NOTIFY → FAILED (their request died with
    /// the process), DELAY/APPROVAL kept and listed in `resume` (the owner's approval or the
    /// cooldown still stands; issue #13). QUEUED DELAY/APPROVAL rows are kept.
    pub fn startup_recovery(&self, now: u64) -> Result<RecoveryReport, StoreError> {
        let resumable = |rec: &TransactionRecord| {
            rec.status == TxStatus::Executing
                && matches!(rec.tier, Some(Tier::Delay | Tier::Approval))
                && !rec.metadata.contains_key("signedTx")
        };
        let mut report = self.sweep(now, |rec| match rec.status {
            _ if resumable(rec) => None,
            TxStatus::Pending => Some((TxStatus::Expired, TxPatch::error("RESERVATION_TIMEOUT"), "TX_EXPIRED")),
            TxStatus::Queued if matches!(rec.tier, Some(Tier::Instant | Tier::Notify)) => {
                Some((TxStatus::Failed, TxPatch::error("DAEMON_RESTARTED"), "TX_FAILED"))
            }
            TxStatus::Executing => match (rec.metadata.get("signedTx"), rec.metadata.get("expectedHash")) {
                (Some(_), Some(Value::String(hash))) => {
                    let mut patch = TxPatch { tx_hash: Some(hash.clone()), ..TxPatch::default() };
                    patch.metadata.insert("broadcastUncertain".into(), Value::Bool(true));
                    Some((TxStatus::Submitted, patch, "TX_SUBMITTED"))
                }
                _ => Some((TxStatus::Failed, TxPatch::error("DAEMON_RESTARTED"), "TX_FAILED")),
            },
            _ => None,
        })?;
        report.resume = self
            .active_in_status(TxStatus::Executing, usize::MAX)?
            .iter()
            .filter(|r| resumable(r))
            .map(|r| r.id)
            .collect();
        Ok(report)
    }

    /// Walks every active top-level row and applies `decide`, in batches of 500 rows per write
    /// transaction, each changed row audited.
    fn sweep(
        &self,
        now: u64,
        decide: impl Fn(&TransactionRecord) -> Option<(TxStatus, TxPatch, &'static str)>,
    ) -> Result<RecoveryReport, StoreError> {
        const BATCH: usize = 500;
        let mut report = RecoveryReport::default();
        let ctx = OpCtx::new("system", now);
        let mut after: Option<(u128, u128)> = None;
        loop {
            let (done, last) = self.write(|tx| {
                let keys: Vec<(u128, u128)> = {
                    let idx = tx.open_table(IDX_TX_ACTIVE)?;
                    let range = match after {
                        Some(k) => idx.range(k..)?,
                        None => idx.range::<(u128, u128)>(..)?,
                    };
                    range
                        .map(|r| r.map(|(k, _)| k.value()))
                        .filter(|k| k.as_ref().map(|k| Some(*k) != after).unwrap_or(true))
                        .take(BATCH)
                        .collect::<Result<_, _>>()?
                };
                for (_, id) in &keys {
                    let id = Uuid::from_u128(*id);
                    let rec = get_tx(tx, id)?;
                    if let Some((to, patch, event)) = decide(&rec) {
                        let from = rec.status;
                        let new = transition_in(tx, id, from, to, patch, now)?;
                        let ev = match event {
                            "TX_FAILED" => TxFailure::new(new.error.clone().unwrap_or_default()).event(&new, "system"),
                            "TX_SUBMITTED" => tx_event(event, &new),
                            _ => tx_event(event, &new)
                                .severity(AuditSeverity::Warning)
                                .detail("error", new.error.clone()),
                        }
                        .detail("from", from.as_str());
                        self.audit(tx, ev, &ctx)?;
                        match (from, to) {
                            (TxStatus::Pending, _) => report.pending_expired += 1,
                            (TxStatus::Queued, _) => report.queued_failed += 1,
                            (TxStatus::Executing, TxStatus::Submitted) => report.resubmitted += 1,
                            _ => report.executing_failed += 1,
                        }
                    }
                }
                Ok((keys.len() < BATCH, keys.last().copied()))
            })?;
            if done {
                return Ok(report);
            }
            after = last;
        }
    }

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

    /// Stores the final HTTP response of an idempotent request so replays return it unchanged.
    pub fn complete_idempotency(
        &self,
        agent: Uuid,
        key: &str,
        status: u16,
        body: &Value,
        now: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(IDEMPOTENCY)?;
            let k = (agent.as_u128(), key);
            let Some(existing) = table.get(k)?.map(|v| decode::<IdempotencyRecord>("idempotency", v.value())) else {
                return Err(StoreError::not_found("idempotency", key));
            };
            let mut rec = existing?;
            rec.completed_at = Some(now);
            rec.response_status = Some(status);
            rec.response_body = Some(body.clone());
            table.insert(k, encode("idempotency", &rec)?.as_slice())?;
            Ok(())
        })
    }

    /// Deletes idempotency records created before `before` (worker, hourly). Returns the count.
    pub fn cleanup_idempotency(&self, before: u64) -> Result<u64, StoreError> {
        self.write(|tx| {
            let keys: Vec<(u64, u128, String)> = {
                let idx = tx.open_table(IDX_IDEMPOTENCY_TIME)?;
                idx.range((0u64, 0u128, "")..(before, 0u128, ""))?
                    .map(|r| {
                        r.map(|(k, _)| {
                            let (t, a, s) = k.value();
                            (t, a, s.to_string())
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let mut idx = tx.open_table(IDX_IDEMPOTENCY_TIME)?;
            let mut table = tx.open_table(IDEMPOTENCY)?;
            for (t, a, s) in &keys {
                idx.remove((*t, *a, s.as_str()))?;
                table.remove((*a, s.as_str()))?;
            }
            Ok(keys.len() as u64)
        })
    }
}

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

impl Store {
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
