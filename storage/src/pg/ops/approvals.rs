//! The owner's side of the queues on PostgreSQL. Approve and reject take the agent's lock, then
//! move the row by CAS; the shared gates decide what a read row allows.

use uuid::Uuid;

use super::super::rows::{self, lock_agent, lock_agents};
use super::super::store::{Global, PgStore};
use super::super::txrows::{agent_of, get_approval, get_tx, put_approval, transition_in};
use super::agents::put_agent;
use crate::db::OpCtx;
use crate::enums::{Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{TxPatch, owner_verified};
use crate::ops::approvals::{
    ApprovalResult, Gate, RejectResult, approval_consumed, approval_gate, approved_event, reject_gate, reject_patch,
    rejected_event, timeout_event, timeout_patch,
};
use crate::records::*;

impl PgStore {
    async fn verify_owner_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        agent: Uuid,
        owner: &str,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let old = rows::get_agent(tx, agent).await?;
        if let Some((new, ev)) = owner_verified(&old, owner, ctx) {
            put_agent(tx, &new, false).await?;
            self.audit(tx, ev, ctx).await?;
        }
        Ok(())
    }

    /// Approves an APPROVAL-tier transaction for `owner`.
    pub fn approve_transaction(
        &self,
        id: Uuid,
        owner: &str,
        payload: Option<serde_json::Value>,
        ctx: &OpCtx,
    ) -> Result<ApprovalResult, StoreError> {
        self.write(Global::Shared, async |tx| {
            let agent_id = agent_of(tx, id).await?;
            lock_agent(tx, agent_id).await?;
            let rec = get_tx(tx, id).await?;
            let agent = rows::get_agent(tx, agent_id).await?;
            match approval_gate(&rec, &agent, ctx.now) {
                Gate::Answer(r) => return Ok(r),
                Gate::Expire => {
                    let new =
                        transition_in(tx, id, TxStatus::Queued, TxStatus::Expired, timeout_patch(), ctx.now).await?;
                    self.audit(tx, timeout_event(&new), ctx).await?;
                    return Ok(ApprovalResult::Expired);
                }
                Gate::Approve => {}
            }
            let new = transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now).await?;
            let a = get_approval(tx, id).await?.ok_or_else(|| StoreError::not_found("pending_approvals", id))?;
            put_approval(tx, &approval_consumed(a, owner, payload.clone(), ctx.now)?).await?;
            self.verify_owner_in(tx, agent_id, owner, ctx).await?;
            self.audit(tx, approved_event(&new, owner, ctx), ctx).await?;
            Ok(ApprovalResult::Approved(Box::new(new)))
        })
    }

    /// Rejects a queued DELAY or APPROVAL transaction.
    pub fn reject_transaction(
        &self,
        id: Uuid,
        reason: &str,
        owner: Option<&str>,
        ctx: &OpCtx,
    ) -> Result<RejectResult, StoreError> {
        self.write(Global::Shared, async |tx| {
            let agent_id = agent_of(tx, id).await?;
            lock_agent(tx, agent_id).await?;
            let rec = get_tx(tx, id).await?;
            if let Some(r) = reject_gate(&rec) {
                return Ok(r);
            }
            let new =
                transition_in(tx, id, TxStatus::Queued, TxStatus::Cancelled, reject_patch(reason), ctx.now).await?;
            if let Some(owner) = owner {
                self.verify_owner_in(tx, agent_id, owner, ctx).await?;
            }
            self.audit(tx, rejected_event(&new, reason, owner, ctx), ctx).await?;
            Ok(RejectResult::Rejected(Box::new(new)))
        })
    }

    /// Expires QUEUED APPROVAL rows due at or before `now`, 500 per transaction.
    pub fn expire_due_approvals(&self, now: u64) -> Result<Vec<TransactionRecord>, StoreError> {
        let mut out = Vec::new();
        let ctx = OpCtx::new("system", now);
        loop {
            let due = self.due_rows(Tier::Approval, now, 500)?;
            if due.is_empty() {
                return Ok(out);
            }
            let n = due.len();
            let expired = self.write(Global::Shared, async |tx| {
                // Approve and reject hold the agent's lock; so does this pass, in id order.
                let agents: Vec<Uuid> = super::super::rows::all(
                    tx,
                    "SELECT DISTINCT agent_id FROM transactions WHERE id = ANY($1)",
                    &[&due],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
                lock_agents(tx, &agents).await?;
                let mut done = Vec::new();
                for id in &due {
                    let rec = get_tx(tx, *id).await?;
                    if rec.status != TxStatus::Queued {
                        continue;
                    }
                    let new = transition_in(tx, *id, TxStatus::Queued, TxStatus::Expired, timeout_patch(), now).await?;
                    self.audit(tx, timeout_event(&new), &ctx).await?;
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
        self.read(async |tx| {
            rows::query(
                tx,
                "transactions",
                "SELECT record::text FROM transactions
                 WHERE status = 'QUEUED' AND tier IN ('DELAY', 'APPROVAL') AND parent_id IS NULL
                   AND queue_expires_at IS NOT NULL AND ($1::uuid IS NULL OR agent_id = $1)
                 ORDER BY id",
                &[&agent],
            )
            .await
        })
    }

    /// The pending-approval row of a transaction.
    pub fn get_approval(&self, id: Uuid) -> Result<Option<ApprovalRecord>, StoreError> {
        self.read(async |tx| get_approval(tx, id).await)
    }
}
