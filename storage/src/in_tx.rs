//! What the operations share, private to the crate: in-transaction steps (each runs inside the
//! caller's write transaction and never commits on its own) and the value types several
//! operations pass around. It sits beside `ops/`, not in it: the files of `ops/` never import
//! each other, only this module, `rows` and the tables (`scripts/check-layers.sh` checks it).

use redb::{ReadableTable, WriteTransaction};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::codec::{decode, encode};
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AuditSeverity, KillSwitchStatus, Tier, TxStatus};
use crate::error::StoreError;
use crate::records::*;
use crate::rows::{self, get_agent, get_tx, put_agent, sync_children, update_tx};
use crate::tables::*;

/// Result of `RedbStore::record_request` (and the decision operation, which records first).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// The row was inserted as PENDING.
    Recorded,
    /// The idempotency key already had a record; nothing was written.
    Existing(IdempotencyRecord),
}

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

    pub(crate) fn apply(self, rec: &mut TransactionRecord) {
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
        let mut ev = AuditEvent::new(AuditEventType::TxFailed, actor.to_string())
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
    let mut new = transitioned(&old, from, to, patch, now)?;
    update_tx(tx, &old, &mut new)?;
    sync_children(tx, &new, now)?;
    crate::stats::note_terminal(&new);
    if let Some(outcome) = approval_settled_by(from, to) {
        settle_approval(tx, id, outcome, now)?;
    }
    Ok(new)
}

/// The status compare-and-swap every engine applies to a top-level row: `old` must be in
/// `from`, the move legal (06-pipeline.md §3.2); returns the row after the move and `patch`.
pub(crate) fn transitioned(
    old: &TransactionRecord,
    from: TxStatus,
    to: TxStatus,
    patch: TxPatch,
    now: u64,
) -> Result<TransactionRecord, StoreError> {
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
    Ok(new)
}

/// Which settlement a move gives the row's pending approval (if it has one): leaving QUEUED
/// for a final status other than CONFIRMED.
pub(crate) fn approval_settled_by(from: TxStatus, to: TxStatus) -> Option<ApprovalOutcome> {
    (to.is_terminal() && to != TxStatus::Confirmed && from == TxStatus::Queued).then_some(if to == TxStatus::Expired {
        ApprovalOutcome::Expired
    } else {
        ApprovalOutcome::Rejected
    })
}

/// A BATCH child after its parent changed: it carries the parent's status, hash, tier, error
/// and execution time, and no reservation of its own.
pub(crate) fn child_follows(old: &TransactionRecord, parent: &TransactionRecord, now: u64) -> TransactionRecord {
    let mut new = old.clone();
    new.status = parent.status;
    new.tx_hash = parent.tx_hash.clone();
    new.tier = parent.tier;
    new.error = parent.error.clone();
    new.executed_at = parent.executed_at;
    new.reserved_amount = None;
    new.updated_at = now;
    new
}

/// What every engine does to a row it is about to write: a failed, cancelled or expired row
/// holds no reservation; then the record's own invariants.
pub(crate) fn finalize_tx(new: &mut TransactionRecord) -> Result<(), StoreError> {
    if matches!(new.status, TxStatus::Failed | TxStatus::Cancelled | TxStatus::Expired) {
        new.reserved_amount = None;
    }
    new.check()
}

/// An approval marked rejected or expired at `now`, once (`None` if already settled).
pub(crate) fn approval_settled(mut rec: ApprovalRecord, outcome: ApprovalOutcome, now: u64) -> Option<ApprovalRecord> {
    if rec.is_settled() {
        return None;
    }
    match outcome {
        ApprovalOutcome::Rejected => rec.rejected_at = Some(now),
        ApprovalOutcome::Expired => rec.expired_at = Some(now),
    }
    Some(rec)
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
    let Some(rec): Option<ApprovalRecord> = rows::get(&table, "pending_approvals", id)? else {
        return Ok(());
    };
    if let Some(rec) = approval_settled(rec, outcome, now) {
        table.insert(id.as_u128(), encode("pending_approvals", &rec)?.as_slice())?;
    }
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

/// An audit row about transaction `rec` by `actor`.
pub(crate) fn tx_event(name: AuditEventType, rec: &TransactionRecord, actor: &str) -> AuditEvent {
    AuditEvent::new(name, actor.to_string()).agent(rec.agent_id).session(rec.session_id).tx(rec.id)
}

/// GRACE → LOCKED inside `tx` when `address` is still the owner; returns whether it changed.
pub(crate) fn mark_owner_verified_in(
    store: &RedbStore,
    tx: &WriteTransaction,
    agent_id: Uuid,
    address: &str,
    ctx: &OpCtx,
) -> Result<bool, StoreError> {
    let old = get_agent(tx, agent_id)?;
    let Some((new, ev)) = owner_verified(&old, address, ctx) else { return Ok(false) };
    put_agent(tx, &new)?;
    store.audit(tx, ev, ctx)?;
    Ok(true)
}

/// GRACE → LOCKED for `old` when `address` is its owner and not yet verified: the new row and
/// its `OWNER_VERIFIED` event; `None` when nothing changes.
pub(crate) fn owner_verified(old: &AgentRecord, address: &str, ctx: &OpCtx) -> Option<(AgentRecord, AuditEvent)> {
    let matches = old.owner_key().as_deref() == Some(owner_key(old.chain, address).as_str());
    if old.owner_verified || !matches {
        return None;
    }
    let mut new = old.clone();
    new.owner_verified = true;
    new.owner_verified_at = Some(ctx.now);
    new.updated_at = ctx.now;
    let ev = AuditEvent::new(AuditEventType::OwnerVerified, ctx.actor.clone())
        .agent(old.id)
        .detail("address", old.owner_address.clone());
    Some((new, ev))
}

/// Revokes every live session of `agent` with `trigger`; returns the count.
pub(crate) fn revoke_agent_sessions(
    tx: &WriteTransaction,
    agent: Uuid,
    trigger: &str,
    now: u64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for sid in rows::session_ids_of(tx, agent)? {
        let old = rows::get_session(tx, sid)?;
        if old.is_live(now) {
            let mut new = old.clone();
            new.revoked_at = Some(now);
            new.revoke_trigger = Some(trigger.to_string());
            rows::update_session(tx, &old, &new)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes a session row and its index entries, nulling `session_id` on its transactions.
pub(crate) fn delete_session_in(tx: &WriteTransaction, id: Uuid) -> Result<(), StoreError> {
    let s = rows::get_session(tx, id)?;
    let key = id.as_u128();
    tx.open_table(IDX_SESSION_TOKEN)?.remove(s.token_hash.0.as_slice())?;
    tx.open_table(IDX_SESSION_AGENT)?.remove((s.agent_id.as_u128(), key))?;
    tx.open_table(IDX_SESSION_EXPIRY)?.remove((s.expires_at, key))?;
    if let Some(t) = s.revoked_at {
        tx.open_table(IDX_SESSION_REVOKED)?.remove((t, key))?;
    }
    // sessions → transactions: set null (02-storage.md §4).
    let tx_ids: Vec<u128> = tx
        .open_table(IDX_TX_SESSION)?
        .range((key, 0u128)..=(key, u128::MAX))?
        .map(|r| r.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for t in tx_ids {
        tx.open_table(IDX_TX_SESSION)?.remove((key, t))?;
        let mut rec = rows::get_tx(tx, Uuid::from_u128(t))?;
        rec.session_id = None;
        rows::put(tx, TRANSACTIONS, "transactions", rec.id, &rec)?;
    }
    tx.open_table(SESSIONS)?.remove(key)?;
    Ok(())
}

/// UUID v7 ids sort by creation time: the smallest id created at unix second `t`.
pub fn min_uuid_v7_at(t: u64) -> u128 {
    ((t as u128) * 1000) << 80
}

/// The stored kill-switch status (NORMAL when absent), read in the caller's transaction.
pub(crate) fn status_in(t: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<KillSwitchStatus, StoreError> {
    match get_state(t, "kill_switch_status")? {
        Some(Value::String(s)) => s.parse().map_err(|_| StoreError::Invariant("invalid kill_switch_status")),
        _ => Ok(KillSwitchStatus::Normal),
    }
}

/// `Conflict` unless the kill switch is NORMAL: checked inside write transactions that must not
/// commit once it is on (the signed checkpoint).
pub(crate) fn require_normal(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let status = status_in(&tx.open_table(SYSTEM_STATE)?)?;
    if status != KillSwitchStatus::Normal {
        return Err(StoreError::Restricted { reason: "the kill switch is active" });
    }
    Ok(())
}

pub(crate) fn get_state(
    tx: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Value>, StoreError> {
    match tx.get(key)? {
        Some(v) => Ok(Some(decode::<SystemStateEntry>("system_state", v.value())?.value)),
        None => Ok(None),
    }
}

pub(crate) fn set_state(tx: &WriteTransaction, key: &str, value: Value, now: u64) -> Result<(), StoreError> {
    let entry = SystemStateEntry { value, updated_at: now };
    tx.open_table(SYSTEM_STATE)?.insert(key, encode("system_state", &entry)?.as_slice())?;
    Ok(())
}

pub(crate) fn scope(agent: Option<Uuid>) -> u128 {
    agent.map(|a| a.as_u128()).unwrap_or(0)
}

pub(crate) fn insert_policy_in(tx: &WriteTransaction, p: &PolicyRecord) -> Result<(), StoreError> {
    p.check()?;
    if let Some(agent) = p.agent_id {
        let a = rows::get_agent(tx, agent)?;
        if p.chain.is_some_and(|c| c != a.chain) {
            return Err(StoreError::Invariant("an agent policy's chain must be the agent's chain"));
        }
    }
    if tx.open_table(POLICIES)?.get(p.id.as_u128())?.is_some() {
        return Err(StoreError::Unique { index: "policies" });
    }
    rows::put(tx, POLICIES, "policies", p.id, p)?;
    tx.open_table(IDX_POLICY_SCOPE)?.insert((scope(p.agent_id), p.id.as_u128()), ())?;
    Ok(())
}

pub(crate) fn insert_rule_in(tx: &WriteTransaction, r: &AutoStopRuleRecord) -> Result<(), StoreError> {
    if !r.config.is_object() {
        return Err(StoreError::Invariant("AutoStop config must be a JSON object"));
    }
    if let Some(agent) = r.agent_id {
        rows::get_agent(tx, agent)?;
    }
    let mut idx = tx.open_table(IDX_AUTO_STOP_SCOPE)?;
    let key = (scope(r.agent_id), r.rule_type.as_str());
    if idx.get(key)?.is_some() {
        return Err(StoreError::Unique { index: "idx_auto_stop_scope" });
    }
    idx.insert(key, r.id.as_u128())?;
    drop(idx);
    rows::put(tx, AUTO_STOP_RULES, "auto_stop_rules", r.id, r)
}
