//! The owner's side of the DELAY and APPROVAL queues (06-pipeline.md §7–8): approve, reject,
//! the approval timeout, and the listing of what waits.
//!
//! Every way out of QUEUED is a compare-and-swap in one write transaction — the approval (with
//! the consumption of its `pending_approvals` row, the owner's GRACE → LOCKED and the audit
//! row), the reject, the timeout, the DELAY worker's claim and the kill switch — so whichever
//! commits first wins and every other sees a status it refuses.

use uuid::Uuid;

use crate::audit_events::AuditEventType;
use crate::codec::encode;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AgentStatus, AuditSeverity, Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{TxPatch, mark_owner_verified_in, transition_in, tx_event};
use crate::records::{ApprovalRecord, TransactionRecord};
use crate::rows::{self, get_tx};
use crate::tables::*;

/// What an approval did (06-pipeline.md §8.2). Only `Approved` changed the row to EXECUTING;
/// `Expired` may have written the expiry (a row found past its deadline).
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalResult {
    /// QUEUED → EXECUTING; the approval is consumed.
    Approved(Box<TransactionRecord>),
    /// Past the deadline (now EXPIRED, `APPROVAL_TIMEOUT`), or expired before.
    Expired,
    /// Not an APPROVAL-tier transaction.
    NotPendingApproval,
    /// Already out of QUEUED (approved, rejected, cancelled, executed…).
    AlreadyProcessed(TxStatus),
    /// The agent is not ACTIVE; nothing was written.
    AgentInactive(AgentStatus),
}

/// What a reject did (06-pipeline.md §8.3).
#[derive(Debug, Clone, PartialEq)]
pub enum RejectResult {
    /// QUEUED → CANCELLED (`REJECTED: <reason>`).
    Rejected(Box<TransactionRecord>),
    /// Not a DELAY or APPROVAL transaction.
    NotPendingApproval,
    /// No longer QUEUED.
    AlreadyProcessed(TxStatus),
}

/// What an approval does with the row it read (shared by every engine).
pub(crate) enum Gate {
    /// Answer without writing.
    Answer(ApprovalResult),
    /// Past its deadline: expire it (`APPROVAL_TIMEOUT`).
    Expire,
    /// QUEUED, in time, agent ACTIVE: approve.
    Approve,
}

pub(crate) fn approval_gate(rec: &TransactionRecord, agent: &crate::records::AgentRecord, now: u64) -> Gate {
    if agent.status != AgentStatus::Active {
        return Gate::Answer(ApprovalResult::AgentInactive(agent.status));
    }
    if rec.tier != Some(Tier::Approval) {
        return Gate::Answer(ApprovalResult::NotPendingApproval);
    }
    match rec.status {
        TxStatus::Queued if rec.queue_expires_at.is_some_and(|due| now >= due) => Gate::Expire,
        TxStatus::Queued => Gate::Approve,
        TxStatus::Expired => Gate::Answer(ApprovalResult::Expired),
        other => Gate::Answer(ApprovalResult::AlreadyProcessed(other)),
    }
}

pub(crate) fn timeout_patch() -> TxPatch {
    TxPatch::error("APPROVAL_TIMEOUT")
}

pub(crate) fn timeout_event(new: &TransactionRecord) -> crate::audit::AuditEvent {
    tx_event(AuditEventType::TxExpired, new, "system")
        .severity(AuditSeverity::Warning)
        .detail("error", "APPROVAL_TIMEOUT")
}

/// The pending approval consumed by `owner`, once.
pub(crate) fn approval_consumed(
    mut a: ApprovalRecord,
    owner: &str,
    payload: Option<serde_json::Value>,
    now: u64,
) -> Result<ApprovalRecord, StoreError> {
    if a.is_settled() {
        // The status CAS before it makes this unreachable; never consume twice.
        return Err(StoreError::Invariant("an approval settled while its row was QUEUED"));
    }
    a.approved_at = Some(now);
    a.approved_by = Some(owner.to_string());
    a.owner_payload = payload;
    Ok(a)
}

pub(crate) fn approved_event(new: &TransactionRecord, owner: &str, ctx: &OpCtx) -> crate::audit::AuditEvent {
    tx_event(AuditEventType::TxApproved, new, &ctx.actor).detail("approvedBy", owner)
}

/// A reject's answer without writing, if any.
pub(crate) fn reject_gate(rec: &TransactionRecord) -> Option<RejectResult> {
    if !matches!(rec.tier, Some(Tier::Delay | Tier::Approval)) {
        return Some(RejectResult::NotPendingApproval);
    }
    (rec.status != TxStatus::Queued).then_some(RejectResult::AlreadyProcessed(rec.status))
}

pub(crate) fn reject_patch(reason: &str) -> TxPatch {
    TxPatch::error(format!("REJECTED: {reason}"))
}

pub(crate) fn rejected_event(
    new: &TransactionRecord,
    reason: &str,
    owner: Option<&str>,
    ctx: &OpCtx,
) -> crate::audit::AuditEvent {
    let mut ev = tx_event(AuditEventType::TxCancelled, new, &ctx.actor)
        .detail("error", new.error.clone())
        .detail("reason", reason);
    if let Some(owner) = owner {
        ev = ev.detail("rejectedBy", owner);
    }
    ev
}

impl RedbStore {
    /// Approves an APPROVAL-tier transaction for `owner` in one write transaction: the agent
    /// must be ACTIVE (else nothing is written); at or past the deadline the row becomes
    /// EXPIRED instead; otherwise CAS QUEUED → EXECUTING, the pending approval is consumed
    /// (once), a GRACE owner becomes LOCKED, and `TX_APPROVED` {approvedBy} is audited.
    /// `NotFound` for an unknown id.
    pub fn approve_transaction(
        &self,
        id: Uuid,
        owner: &str,
        payload: Option<serde_json::Value>,
        ctx: &OpCtx,
    ) -> Result<ApprovalResult, StoreError> {
        self.write(|tx| {
            let rec = get_tx(tx, id)?;
            let agent = rows::get_agent(tx, rec.agent_id)?;
            match approval_gate(&rec, &agent, ctx.now) {
                Gate::Answer(r) => return Ok(r),
                Gate::Expire => {
                    let new = transition_in(tx, id, TxStatus::Queued, TxStatus::Expired, timeout_patch(), ctx.now)?;
                    self.audit(tx, timeout_event(&new), ctx)?;
                    return Ok(ApprovalResult::Expired);
                }
                Gate::Approve => {}
            }
            let new = transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now)?;
            {
                let mut table = tx.open_table(PENDING_APPROVALS)?;
                let a: ApprovalRecord = rows::must_get(&table, "pending_approvals", id)?;
                let a = approval_consumed(a, owner, payload.clone(), ctx.now)?;
                table.insert(id.as_u128(), encode("pending_approvals", &a)?.as_slice())?;
            }
            mark_owner_verified_in(self, tx, rec.agent_id, owner, ctx)?;
            self.audit(tx, approved_event(&new, owner, ctx), ctx)?;
            Ok(ApprovalResult::Approved(Box::new(new)))
        })
    }

    /// Rejects a queued DELAY or APPROVAL transaction: CAS QUEUED → CANCELLED with
    /// `REJECTED: <reason>`, reservation released, approval row marked rejected, audit
    /// `TX_CANCELLED`. One write transaction. `NotFound` for an unknown id. `owner` is the
    /// owner's address when they signed the rejection (11-owner-console.md §3.1): their GRACE →
    /// LOCKED happens in the same transaction, and the audit row names them.
    pub fn reject_transaction(
        &self,
        id: Uuid,
        reason: &str,
        owner: Option<&str>,
        ctx: &OpCtx,
    ) -> Result<RejectResult, StoreError> {
        self.write(|tx| {
            let rec = get_tx(tx, id)?;
            if let Some(r) = reject_gate(&rec) {
                return Ok(r);
            }
            let new = transition_in(tx, id, TxStatus::Queued, TxStatus::Cancelled, reject_patch(reason), ctx.now)?;
            if let Some(owner) = owner {
                mark_owner_verified_in(self, tx, rec.agent_id, owner, ctx)?;
            }
            self.audit(tx, rejected_event(&new, reason, owner, ctx), ctx)?;
            Ok(RejectResult::Rejected(Box::new(new)))
        })
    }

    /// The approval-timeout worker's pass: QUEUED APPROVAL rows due at or before `now` become
    /// EXPIRED (`APPROVAL_TIMEOUT`), reservation released, approval row expired, audit
    /// `TX_EXPIRED` each; at most 500 per write transaction. Returns the expired rows.
    pub fn expire_due_approvals(&self, now: u64) -> Result<Vec<TransactionRecord>, StoreError> {
        let mut out = Vec::new();
        let ctx = OpCtx::new("system", now);
        loop {
            let due = self.due_rows(Tier::Approval, now, 500)?;
            if due.is_empty() {
                return Ok(out);
            }
            let n = due.len();
            let expired = self.write(|tx| {
                let mut done = Vec::new();
                for id in &due {
                    let rec = get_tx(tx, *id)?;
                    if rec.status != TxStatus::Queued {
                        continue;
                    }
                    let new = transition_in(tx, *id, TxStatus::Queued, TxStatus::Expired, timeout_patch(), now)?;
                    self.audit(tx, timeout_event(&new), &ctx)?;
                    done.push(new);
                }
                Ok(done)
            })?;
            out.extend(expired);
            if n < 500 {
                return Ok(out);
            }
        }
    }

    /// The QUEUED DELAY and APPROVAL rows (of one agent, or all), oldest first.
    pub fn queued_rows(&self, agent: Option<Uuid>) -> Result<Vec<TransactionRecord>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_QUEUE)?;
            let table = tx.open_table(TRANSACTIONS)?;
            let mut out = Vec::new();
            for tier in [Tier::Delay, Tier::Approval] {
                let t = tier.as_str();
                for r in idx.range((t, 0u64, 0u128)..=(t, u64::MAX, u128::MAX))? {
                    let (k, _) = r?;
                    let rec: TransactionRecord = rows::must_get(&table, "transactions", Uuid::from_u128(k.value().2))?;
                    if agent.is_none_or(|a| a == rec.agent_id) {
                        out.push(rec);
                    }
                }
            }
            out.sort_by_key(|r| r.id);
            Ok(out)
        })
    }

    /// The pending-approval row of a transaction.
    pub fn get_approval(&self, id: Uuid) -> Result<Option<ApprovalRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(PENDING_APPROVALS)?, "pending_approvals", id))
    }
}
