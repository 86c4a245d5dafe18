//! Transaction rows from request to outcome on PostgreSQL, and the idempotency records. Each
//! status change is `txrows::transition_in` (a CAS on the status); claim and confirm take the
//! agent's lock first (§5), checkpoints carrying signed bytes check the kill switch under G.

use serde_json::Value;
use uuid::Uuid;

use super::super::codec::{from_text, to_json};
use super::super::rows::{self, lock_agent};
use super::super::store::{Global, PgStore};
use super::super::txrows::{agent_of, get_tx, insert_tx, transition_in, update_tx};
use super::system::status_in;
use crate::amount::Amount;
use crate::db::OpCtx;
use crate::enums::{KillSwitchStatus, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{IdempotencyClaim, RecordOutcome, TxFailure, TxPatch};
use crate::ops::tx_lifecycle::{
    Broadcast, ChainOutcome, Checkpoint, ClaimOutcome, broadcast_change, chain_end, chain_end_event, check_checkpoint,
    check_failable, check_request, checkpointed, confirm_patch, confirmed_event, inactive_code, new_idempotency,
    requested_event, with_usage,
};
use crate::records::*;

/// `Restricted` unless the kill switch is NORMAL (checked under G, which activation takes
/// exclusively).
pub(crate) async fn require_normal(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    if status_in(tx).await? != KillSwitchStatus::Normal {
        return Err(StoreError::Restricted { reason: "the kill switch is active" });
    }
    Ok(())
}

impl PgStore {
    /// Stage 1: the idempotency key first (`INSERT … ON CONFLICT DO NOTHING RETURNING`; a
    /// conflict returns the existing record and writes nothing), then the PENDING row, its
    /// children and `TX_REQUESTED`.
    pub fn record_request(
        &self,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
    ) -> Result<RecordOutcome, StoreError> {
        self.write(Global::Shared, async |tx| self.record_in(tx, rec, children, idempotency, ctx).await)
    }

    pub(crate) async fn record_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
    ) -> Result<RecordOutcome, StoreError> {
        check_request(rec, children)?;
        if let Some(claim) = idempotency {
            let record = to_json("idempotency", &new_idempotency(claim, rec, ctx.now))?;
            let inserted = super::super::rows::opt(
                tx,
                "INSERT INTO idempotency (agent_id, key, record) VALUES ($1, $2, $3)
                     ON CONFLICT (agent_id, key) DO NOTHING RETURNING 1",
                &[&rec.agent_id, &claim.key, &record],
            )
            .await?;
            if inserted.is_none() {
                let row = super::super::rows::one(
                    tx,
                    "SELECT record::text FROM idempotency WHERE agent_id = $1 AND key = $2",
                    &[&rec.agent_id, &claim.key],
                )
                .await?;
                return Ok(RecordOutcome::Existing(from_text("idempotency", row.get(0))?));
            }
        }
        insert_tx(tx, rec).await?;
        for child in children {
            insert_tx(tx, child).await?;
        }
        self.audit(tx, requested_event(rec, ctx), ctx).await?;
        Ok(RecordOutcome::Recorded)
    }

    /// Fails a transaction that has not reached the chain.
    pub fn fail_transaction(
        &self,
        id: Uuid,
        from: TxStatus,
        failure: &TxFailure,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        check_failable(from)?;
        self.write(Global::Shared, async |tx| {
            let rec =
                transition_in(tx, id, from, TxStatus::Failed, TxPatch::error(failure.error.clone()), ctx.now).await?;
            self.audit(tx, failure.event(&rec, &ctx.actor), ctx).await?;
            Ok(rec)
        })
    }

    /// Records what the chain said about a SUBMITTED row.
    pub fn record_chain_outcome(
        &self,
        id: Uuid,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        if outcome == ChainOutcome::Pending {
            return self.get_transaction(id)?.ok_or_else(|| StoreError::not_found("transactions", id));
        }
        self.write(Global::Shared, async |tx| {
            // A confirmation writes the session's usage: agent lock first (§5), before any row
            // or audit-head lock this transaction takes.
            lock_agent(tx, agent_of(tx, id).await?).await?;
            self.chain_outcome_in(tx, id, outcome.clone(), ctx).await
        })
    }

    async fn chain_outcome_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: Uuid,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        match outcome {
            ChainOutcome::Pending => get_tx(tx, id).await,
            ChainOutcome::Confirmed { fee, block } => self.confirm_in(tx, id, fee, Some(block), ctx).await,
            ChainOutcome::Failed { .. } | ChainOutcome::Expired => {
                let (to, patch) = chain_end(&outcome);
                let rec = transition_in(tx, id, TxStatus::Submitted, to, patch, ctx.now).await?;
                self.audit(tx, chain_end_event(&rec, &outcome, ctx), ctx).await?;
                Ok(rec)
            }
        }
    }

    /// Stage 6: SUBMITTED → CONFIRMED with the session's usage, under the agent's lock.
    pub fn confirm_transaction(
        &self,
        id: Uuid,
        fee: Option<Amount>,
        block: Option<u64>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, agent_of(tx, id).await?).await?;
            self.confirm_in(tx, id, fee, block, ctx).await
        })
    }

    async fn confirm_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: Uuid,
        fee: Option<Amount>,
        block: Option<u64>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        // The caller holds the agent's lock.
        let rec =
            transition_in(tx, id, TxStatus::Submitted, TxStatus::Confirmed, confirm_patch(fee, block, ctx), ctx.now)
                .await?;
        if let Some(sid) = rec.session_id
            && let Some(old) = rows::get::<SessionRecord>(tx, "sessions", sid).await?
        {
            rows::update(tx, "sessions", sid, &with_usage(&old, &rec, ctx.now)?).await?;
        }
        self.audit(tx, confirmed_event(&rec, fee, block), ctx).await?;
        Ok(rec)
    }

    /// EXECUTING → SUBMITTED with what the inline wait learned, in one transaction.
    pub fn record_broadcast(
        &self,
        id: Uuid,
        broadcast: Broadcast,
        outcome: ChainOutcome,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        self.write(Global::Shared, async |tx| {
            // The inline outcome may be a confirmation (session usage): agent lock first.
            lock_agent(tx, agent_of(tx, id).await?).await?;
            let (patch, ev) = broadcast_change(&broadcast);
            let rec = transition_in(tx, id, TxStatus::Executing, TxStatus::Submitted, patch, ctx.now).await?;
            self.audit(tx, ev(&rec), ctx).await?;
            self.chain_outcome_in(tx, id, outcome.clone(), ctx).await
        })
    }

    /// Stage 5 checkpoint; signed bytes are refused once the kill switch is on.
    pub fn checkpoint(&self, id: Uuid, checkpoint: Checkpoint, now: u64) -> Result<(), StoreError> {
        check_checkpoint(&checkpoint)?;
        self.write(Global::Shared, async |tx| {
            if checkpoint.signed.is_some() {
                require_normal(tx).await?;
            }
            let old = get_tx(tx, id).await?;
            let mut new = checkpointed(&old, checkpoint.clone(), now)?;
            update_tx(tx, &old, &mut new).await
        })
    }

    /// Claim: QUEUED → EXECUTING, or → FAILED when the agent is no longer ACTIVE.
    pub fn claim_for_execution(&self, id: Uuid, ctx: &OpCtx) -> Result<ClaimOutcome, StoreError> {
        self.write(Global::Shared, async |tx| {
            let agent_id = agent_of(tx, id).await?;
            lock_agent(tx, agent_id).await?;
            let agent = rows::get_agent(tx, agent_id).await?;
            match inactive_code(agent.status) {
                None => {
                    let rec = transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now)
                        .await?;
                    Ok(ClaimOutcome::Claimed(Box::new(rec)))
                }
                Some(code) => {
                    let rec = transition_in(tx, id, TxStatus::Queued, TxStatus::Failed, TxPatch::error(code), ctx.now)
                        .await?;
                    self.audit(tx, TxFailure::new(code).at("claim").event(&rec, &ctx.actor), ctx).await?;
                    Ok(ClaimOutcome::AgentInactive(code))
                }
            }
        })
    }

    /// Stores the final response of an idempotent request.
    pub fn complete_idempotency(
        &self,
        agent: Uuid,
        key: &str,
        status: u16,
        body: &Value,
        now: u64,
    ) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            let row = super::super::rows::opt(
                tx,
                "SELECT record::text FROM idempotency WHERE agent_id = $1 AND key = $2 FOR UPDATE",
                &[&agent, &key],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("idempotency", key))?;
            let mut rec: IdempotencyRecord = from_text("idempotency", row.get(0))?;
            rec.completed_at = Some(now);
            rec.response_status = Some(status);
            rec.response_body = Some(body.clone());
            super::super::rows::exec(
                tx,
                "UPDATE idempotency SET record = $3 WHERE agent_id = $1 AND key = $2",
                &[&agent, &key, &to_json("idempotency", &rec)?],
            )
            .await?;
            Ok(())
        })
    }

    /// Deletes idempotency records created before `before`.
    pub fn cleanup_idempotency(&self, before: u64) -> Result<u64, StoreError> {
        self.write(Global::Shared, async |tx| {
            super::super::rows::exec(tx, "DELETE FROM idempotency WHERE created_at < $1", &[&(before as i64)]).await
        })
    }
}
