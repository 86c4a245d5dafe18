//! DELAY and APPROVAL after the decision (06-pipeline.md §7–8): the owner's approve and reject,
//! the delay-queue worker's pass, the approval timeout, and the background execution of a
//! claimed row.
//!
//! Every exit from QUEUED is one storage compare-and-swap (see `waiaas_storage::ops::approvals`),
//! so approve, reject, the timeout, the worker's claim and the kill switch race safely: one
//! commits, the others find a status they refuse and change nothing. A claimed row is executed
//! by exactly one task — the one whose CAS claimed it, or, after a crash before its signature
//! was checkpointed, the start-up resumption (nothing was broadcast, so nothing can land twice).

use std::time::Instant;

use serde_json::{Map, Value};
use uuid::Uuid;
use waiaas_storage::{
    AgentRecord, AgentStatus, ApprovalResult, ClaimOutcome, OpCtx, RejectResult, StoreError, Tier, TransactionRecord,
    TxFailure, TxStatus,
};

use super::{Pipeline, Precheck, confirm, execute};
use crate::adapters::notify::Message;
use crate::base::error::{Coded, ErrorCode, details};
use crate::domain::auth::owner::Owner;

/// Why an approval changed nothing (06-pipeline.md §8.2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApproveError {
    #[error("Transaction {0} not found")]
    NotFound(Uuid),
    #[error("The agent is {}", .0.as_str())]
    AgentInactive(AgentStatus),
    /// The adapter is unavailable or the keystore locked; the owner may retry before the deadline.
    #[error("{0}")]
    Precheck(Precheck),
    #[error("Transaction {0} is not waiting for an owner approval")]
    NotPendingApproval(Uuid),
    #[error("The approval deadline of {0} has passed")]
    Expired(Uuid),
    #[error("Transaction {0} is already {status}", status = .1.as_str())]
    AlreadyProcessed(Uuid, TxStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ApproveError {
    fn code(&self) -> ErrorCode {
        match self {
            ApproveError::NotFound(_) => ErrorCode::TxNotFound,
            ApproveError::AgentInactive(AgentStatus::Terminated) => ErrorCode::AgentTerminated,
            ApproveError::AgentInactive(_) => ErrorCode::AgentSuspended,
            ApproveError::Precheck(p) => p.code(),
            ApproveError::NotPendingApproval(_) => ErrorCode::TxNotPendingApproval,
            ApproveError::Expired(_) => ErrorCode::TxExpired,
            ApproveError::AlreadyProcessed(..) => ErrorCode::TxAlreadyProcessed,
            ApproveError::Store(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            ApproveError::NotFound(id) => details([("resource", "transaction".into()), ("id", id.to_string().into())]),
            ApproveError::AlreadyProcessed(id, s) => {
                details([("transactionId", id.to_string().into()), ("status", s.as_str().into())])
            }
            ApproveError::NotPendingApproval(id) | ApproveError::Expired(id) => {
                details([("transactionId", id.to_string().into())])
            }
            ApproveError::Precheck(p) => p.details(),
            _ => Map::new(),
        }
    }
}

/// Why a reject changed nothing (06-pipeline.md §8.3).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RejectError {
    #[error("Transaction {0} not found")]
    NotFound(Uuid),
    #[error("Transaction {0} is not a queued DELAY or APPROVAL transaction")]
    NotPendingApproval(Uuid),
    #[error("Transaction {0} is already {status}", status = .1.as_str())]
    AlreadyProcessed(Uuid, TxStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for RejectError {
    fn code(&self) -> ErrorCode {
        match self {
            RejectError::NotFound(_) => ErrorCode::TxNotFound,
            RejectError::NotPendingApproval(_) => ErrorCode::TxNotPendingApproval,
            RejectError::AlreadyProcessed(..) => ErrorCode::TxAlreadyProcessed,
            RejectError::Store(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            RejectError::NotFound(id) => details([("resource", "transaction".into()), ("id", id.to_string().into())]),
            RejectError::AlreadyProcessed(id, s) => {
                details([("transactionId", id.to_string().into()), ("status", s.as_str().into())])
            }
            RejectError::NotPendingApproval(id) => details([("transactionId", id.to_string().into())]),
            RejectError::Store(e) => e.details(),
        }
    }
}

impl Pipeline {
    /// A top-level row and its agent.
    async fn row_and_agent(&self, id: Uuid) -> Result<Option<(TransactionRecord, AgentRecord)>, StoreError> {
        self.db
            .call(move |s| {
                let Some(row) = s.get_transaction(id)?.filter(|r| r.is_top_level()) else { return Ok(None) };
                let agent =
                    s.get_agent(row.agent_id)?.ok_or(StoreError::Invariant("a transaction without its agent"))?;
                Ok(Some((row, agent)))
            })
            .await
    }

    /// §6.1 checks, in memory: the adapter is up and the keystore unlocked.
    async fn precheck(&self, agent: &AgentRecord) -> Result<(), Precheck> {
        if let Ok(Some(replica)) = crate::domain::ledger_pins::elsewhere(&self.db, agent).await {
            return Err(Precheck::PinnedElsewhere { replica });
        }
        self.chains.for_agent(agent).await.map_err(Precheck::Adapter)?;
        if !self.signers.ready(agent.backend).await {
            return Err(Precheck::KeystoreLocked);
        }
        Ok(())
    }

    /// `POST /v1/owner/approve/:txId` after ownerAuth (§8.2): pre-checks that change nothing,
    /// then the approval in one write transaction, then stages 5–6 in the background. Returns
    /// the EXECUTING row.
    pub(crate) async fn approve(
        self: &std::sync::Arc<Self>,
        id: Uuid,
        owner: &Owner,
        payload: Option<Value>,
        ctx: OpCtx,
    ) -> Result<TransactionRecord, ApproveError> {
        let (_, agent) = self.row_and_agent(id).await?.ok_or(ApproveError::NotFound(id))?;
        if agent.status != AgentStatus::Active {
            return Err(ApproveError::AgentInactive(agent.status));
        }
        self.precheck(&agent).await.map_err(ApproveError::Precheck)?;
        let address = owner.address.clone();
        let result = self.db.call(move |s| s.approve_transaction(id, &address, payload, &ctx)).await?;
        match result {
            ApprovalResult::Approved(row) => {
                crate::base::failpoint::pass(crate::base::failpoint::Point::Approved);
                let (p, row) = (self.clone(), *row);
                let executing = row.clone();
                tokio::spawn(async move { p.run_claimed(row, agent).await });
                Ok(executing)
            }
            ApprovalResult::Expired => {
                if let Ok(Some((row, agent))) = self.row_and_agent(id).await
                    && row.error.as_deref() == Some("APPROVAL_TIMEOUT")
                {
                    self.notifier.emit(Message::tx_approval_expired(&row, &self.party(&row, &agent), self.clock.now()));
                }
                Err(ApproveError::Expired(id))
            }
            ApprovalResult::NotPendingApproval => Err(ApproveError::NotPendingApproval(id)),
            ApprovalResult::AlreadyProcessed(s) => Err(ApproveError::AlreadyProcessed(id, s)),
            ApprovalResult::AgentInactive(s) => Err(ApproveError::AgentInactive(s)),
        }
    }

    /// `POST /v1/owner/reject/:txId` (§8.3): QUEUED → CANCELLED with `REJECTED: <reason>`.
    pub(crate) async fn reject(
        &self,
        id: Uuid,
        reason: &str,
        owner: Option<&Owner>,
        ctx: OpCtx,
    ) -> Result<TransactionRecord, RejectError> {
        let reason = reason.to_string();
        let owner = owner.map(|o| o.address.clone());
        let result = match self.db.call(move |s| s.reject_transaction(id, &reason, owner.as_deref(), &ctx)).await {
            Err(StoreError::NotFound { .. }) => return Err(RejectError::NotFound(id)),
            r => r?,
        };
        match result {
            RejectResult::Rejected(row) => {
                if let Ok(Some((_, agent))) = self.row_and_agent(id).await {
                    self.notify_outcome(&row, &agent);
                }
                Ok(*row)
            }
            RejectResult::NotPendingApproval => Err(RejectError::NotPendingApproval(id)),
            RejectResult::AlreadyProcessed(s) => Err(RejectError::AlreadyProcessed(id, s)),
        }
    }

    /// The delay-queue worker's pass (§7): due DELAY rows, oldest first, one after the other —
    /// pre-checks, the claim (a CAS, so a reject committed first wins), then stages 5–6 with a
    /// fresh build and the 60 s budget. Any failure ends FAILED; nothing is re-queued.
    pub(crate) async fn delay_pass(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let due = self.db.call(move |s| s.due_rows(Tier::Delay, now, 50)).await?;
        // PostgreSQL: a Ledger agent's rows wait for the replica its device is on (§6.4).
        let pinned = crate::domain::ledger_pins::pinned_elsewhere(&self.db).await?;
        for id in due {
            let Some((row, agent)) = self.row_and_agent(id).await? else { continue };
            if row.status != TxStatus::Queued || pinned.contains(&agent.id) {
                continue;
            }
            let ctx = OpCtx::new("system", self.clock.now());
            if let Err(cause) = self.precheck(&agent).await {
                let failure = TxFailure::new(cause.code().as_str()).at("claim");
                match self.db.call(move |s| s.fail_transaction(id, TxStatus::Queued, &failure, &ctx)).await {
                    Ok(failed) => self.notify_outcome(&failed, &agent),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            match self.db.call(move |s| s.claim_for_execution(id, &ctx)).await {
                Ok(ClaimOutcome::Claimed(row)) => {
                    self.run_claimed(*row, agent).await;
                }
                Ok(ClaimOutcome::AgentInactive(_)) => {
                    if let Ok(Some((row, agent))) = self.row_and_agent(id).await {
                        self.notify_outcome(&row, &agent);
                    }
                }
                // Rejected or cancelled between the read and the claim: the reject won.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The approval-timeout worker's pass (§8.4): due APPROVAL rows become EXPIRED; never
    /// executes anything.
    pub(crate) async fn approval_timeout_pass(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let expired = self.db.call(move |s| s.expire_due_approvals(now)).await?;
        for row in expired {
            let agent_id = row.agent_id;
            if let Some(agent) = self.db.call(move |s| s.get_agent(agent_id)).await? {
                self.notifier.emit(Message::tx_approval_expired(&row, &self.party(&row, &agent), self.clock.now()));
            }
        }
        Ok(())
    }

    /// At start, after the workers: rows an approval or the DELAY worker claimed but never
    /// signed before the daemon stopped (start-up recovery kept them EXECUTING) are executed now.
    pub(crate) async fn resume_claimed(self: &std::sync::Arc<Self>) -> Result<usize, StoreError> {
        let rows = self.db.call(|s| s.active_in_status(TxStatus::Executing, usize::MAX)).await?;
        let pinned = crate::domain::ledger_pins::pinned_elsewhere(&self.db).await?;
        let mut n = 0;
        for row in rows.into_iter().filter(|r| matches!(r.tier, Some(Tier::Delay | Tier::Approval))) {
            if row.signed_tx().is_some() || pinned.contains(&row.agent_id) {
                continue;
            }
            let agent_id = row.agent_id;
            let Some(agent) = self.db.call(move |s| s.get_agent(agent_id)).await? else { continue };
            tracing::info!(
                "tx {}: resuming the execution of a claimed {} transaction",
                row.id,
                row.tier.map_or("", Tier::as_str)
            );
            let p = self.clone();
            tokio::spawn(async move { p.run_claimed(row, agent).await });
            n += 1;
        }
        Ok(n)
    }

    /// Stages 5–6 for a row claimed in the background (DELAY worker, approval, resumption), with
    /// the 60 s budget. Returns the row as it ends (None when it could not be recorded).
    pub(crate) async fn run_claimed(&self, row: TransactionRecord, agent: AgentRecord) -> Option<TransactionRecord> {
        let id = row.id;
        let adapter = match self.precheck(&agent).await {
            Ok(()) => self.chains.for_agent(&agent).await.ok()?,
            Err(cause) => {
                let failure = TxFailure::new(cause.code().as_str()).at("claim");
                let ctx = OpCtx::new("system", self.clock.now());
                let failed = self.db.call(move |s| s.fail_transaction(id, TxStatus::Executing, &failure, &ctx)).await;
                return match failed {
                    Ok(failed) => {
                        self.notify_outcome(&failed, &agent);
                        Some(failed)
                    }
                    Err(e) => {
                        tracing::error!("tx {id}: cannot record the failed pre-check: {e}");
                        None
                    }
                };
            }
        };
        let claimed = Instant::now();
        let deadline = claimed + execute::budget(&self.settings.get(), &agent, false);
        let mut timing = execute::Timing::default();
        // A failure is recorded (and notified) inside `execute`.
        let executed =
            execute::execute(self, &row, &agent, adapter.clone(), claimed, deadline, &mut timing).await.ok()?;
        // Broadcast: the DELAY is executed (§9 "at SUBMITTED"); the confirmation follows.
        if row.tier == Some(Tier::Delay) {
            let mut sent = row.clone();
            sent.tx_hash = Some(executed.broadcast.hash.clone());
            self.notifier.emit(Message::tx_delay_executed(&sent, &self.party(&sent, &agent), self.clock.now()));
        }
        confirm::finish(self, &adapter, &row, &agent, executed.broadcast, deadline, &mut timing).await.ok()
    }
}
