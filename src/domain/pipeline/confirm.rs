//! Stage 6 (06-pipeline.md §9): confirmation. Inline after a broadcast within what is left of
//! the budget, and in the background by the confirmation worker for every SUBMITTED row. Both
//! turn what the chain says into a storage [`ChainOutcome`] the same way ([`outcome`]).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use waiaas_storage::{AgentRecord, Broadcast, ChainOutcome, OpCtx, StoreError, TransactionRecord, TxStatus};

use super::Pipeline;
use super::execute::{Timing, decode_signed};
use crate::adapters::chains::ChainAdapter;
use crate::adapters::chains::error::ChainError;
use crate::adapters::chains::types::{ChainTxStatus, StatusContext};

/// What a chain status means for the row.
pub(crate) fn outcome(status: Result<ChainTxStatus, ChainError>) -> ChainOutcome {
    match status {
        Ok(ChainTxStatus::Confirmed { block, fee, .. } | ChainTxStatus::Finalized { block, fee }) => {
            ChainOutcome::Confirmed { fee, block }
        }
        Ok(ChainTxStatus::Failed { error, .. }) => {
            ChainOutcome::Failed { code: error.code.as_str().to_string(), message: error.message }
        }
        Ok(ChainTxStatus::Expired) => ChainOutcome::Expired,
        Ok(ChainTxStatus::NotFound | ChainTxStatus::Pending) => ChainOutcome::Pending,
        Err(e) => {
            tracing::debug!("confirmation check failed: {e}");
            ChainOutcome::Pending
        }
    }
}

/// What the status lookups of a row need.
pub(crate) fn status_context(rec: &TransactionRecord, agent: &AgentRecord) -> StatusContext {
    StatusContext {
        last_valid_block_height: rec.metadata.get("lastValidBlockHeight").and_then(Value::as_u64),
        nonce: rec.metadata.get("nonce").and_then(Value::as_u64),
        from: Some(agent.public_key.clone()),
    }
}

/// Stage 6 for a fresh broadcast: waits for confirmation until `deadline`, then records the
/// broadcast and whatever the wait learned in one write transaction. Returns the row as it
/// ends up, or why it could not be recorded (the signed checkpoint then lets the next recovery
/// finish it).
pub(crate) async fn finish(
    p: &Pipeline,
    adapter: &Arc<dyn ChainAdapter>,
    rec: &TransactionRecord,
    agent: &AgentRecord,
    broadcast: Broadcast,
    deadline: Instant,
    timing: &mut Timing,
) -> Result<TransactionRecord, StoreError> {
    let mut row = rec.clone();
    row.metadata.extend(broadcast.metadata.clone());
    let ctx = status_context(&row, agent);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let t0 = Instant::now();
    let status = adapter.wait_for_confirmation(&broadcast.hash, &ctx, remaining).await;
    timing.chain += t0.elapsed();
    let (id, octx) = (rec.id, OpCtx::new("system", p.clock.now()));
    let outcome = outcome(status);
    match p.db.lazy(move |s| s.record_broadcast(id, broadcast, outcome, &octx)).await {
        Ok(row) => {
            crate::base::failpoint::pass(crate::base::failpoint::Point::OutcomeRecorded);
            p.notify_outcome(&row, agent);
            Ok(row)
        }
        Err(e) => {
            tracing::error!("tx {id}: cannot record the broadcast: {e}");
            Err(e)
        }
    }
}

/// Records a final on-chain status of a SUBMITTED row. A concurrent writer may have won the
/// compare-and-swap; then the row as it is now is returned.
pub(crate) async fn apply(
    p: &Pipeline,
    rec: &TransactionRecord,
    agent: &AgentRecord,
    outcome: ChainOutcome,
) -> Option<TransactionRecord> {
    if outcome == ChainOutcome::Pending {
        return None;
    }
    let (id, ctx) = (rec.id, OpCtx::new("system", p.clock.now()));
    match p.db.lazy(move |s| s.record_chain_outcome(id, outcome, &ctx)).await {
        Ok(rec) => {
            p.notify_outcome(&rec, agent);
            Some(rec)
        }
        Err(StoreError::Conflict { .. }) => p.db.call(move |s| s.get_transaction(id)).await.ok().flatten(),
        Err(e) => {
            tracing::error!("tx {id}: cannot record the on-chain status: {e}");
            None
        }
    }
}

impl Pipeline {
    /// The confirmation worker's pass: every SUBMITTED row whose adapter is available is looked
    /// up; a final status is recorded, and a row the node does not know is rebroadcast from its
    /// checkpoint (same bytes, same hash).
    pub(crate) async fn confirmation_pass(&self) -> Result<(), StoreError> {
        let rows = self.db.call(|s| s.active_in_status(TxStatus::Submitted, 200)).await?;
        for rec in rows {
            let agent_id = rec.agent_id;
            let Some(agent) = self.db.call(move |s| s.get_agent(agent_id)).await? else { continue };
            let Ok(adapter) = self.chains.for_agent(&agent).await else { continue };
            let Some(hash) = rec.tx_hash.clone() else { continue };
            let ctx = status_context(&rec, &agent);
            match adapter.get_transaction_status(&hash, &ctx).await {
                Ok(ChainTxStatus::NotFound) => rebroadcast(&adapter, &rec).await,
                Ok(ChainTxStatus::Pending) => {}
                status => {
                    apply(self, &rec, &agent, outcome(status)).await;
                }
            }
        }
        Ok(())
    }
}

async fn rebroadcast(adapter: &Arc<dyn ChainAdapter>, rec: &TransactionRecord) {
    let (Some(signed), Some(hash)) = (rec.signed_tx(), rec.tx_hash.as_deref()) else {
        return;
    };
    if let Some(tx) = decode_signed(rec.chain, signed, hash) {
        let outcome = adapter.submit(&tx).await;
        tracing::info!("tx {}: rebroadcast {hash}: {outcome:?}", rec.id);
    }
}
