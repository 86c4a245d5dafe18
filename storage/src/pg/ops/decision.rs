//! The decision on PostgreSQL (§5): under the agent's lock, CAS the row out of PENDING, read the
//! snapshot, call the pure `evaluate`, write the plan — one transaction. The lock makes the
//! snapshot's sums (session reservations, queued rows, rate windows) stable until the
//! reservation is written, so N concurrent requests never reserve past a cap.

use std::cell::Cell;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::super::rows::{self, lock_agent};
use super::super::store::{Global, PgStore};
use super::super::txrows::{get_tx, put_approval, transition_in};
use super::tx_lifecycle::require_normal;
use crate::db::OpCtx;
use crate::enums::{PolicyType, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{IdempotencyClaim, RecordOutcome, TxPatch};
use crate::ops::decision::{DecisionOutcome, DecisionSnapshot, InFlight, Plan, Recorded, plan};
use crate::rate::Window;
use crate::records::*;

type Evaluate<'a> = Box<dyn FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError> + 'a>;

/// The agent's counted rows (top-level, not CANCELLED/EXPIRED) created at or after `from`,
/// other than `exclude`, and the oldest creation time among them — answered by the index on
/// the rows themselves (redb keeps bucket counters instead; the two agree by definition).
async fn window(tx: &Transaction<'_>, agent: Uuid, from: u64, exclude: Uuid) -> Result<Window, StoreError> {
    let row = super::super::rows::one(
        tx,
        concat!(
            "SELECT count(*), min(created_at) FROM transactions
             WHERE agent_id = $1 AND parent_id IS NULL AND status NOT IN ('CANCELLED', 'EXPIRED')
               AND created_at >= $2 AND id <> $3 AND ",
            super::nonces::not_a_fill!()
        ),
        &[&agent, &(from as i64), &exclude],
    )
    .await?;
    Ok(Window { count: row.get::<_, i64>(0) as u64, oldest: row.get::<_, Option<i64>>(1).map(|t| t as u64) })
}

/// The snapshot of `rec` (stored or not) at `now`.
async fn snapshot_in(tx: &Transaction<'_>, rec: TransactionRecord, now: u64) -> Result<DecisionSnapshot, StoreError> {
    let agent = rows::get_agent(tx, rec.agent_id).await?;
    let children: Vec<TransactionRecord> = rows::query(
        tx,
        "transactions",
        "SELECT record::text FROM transactions WHERE parent_id = $1 ORDER BY batch_index",
        &[&rec.id],
    )
    .await?;
    let session = match rec.session_id {
        Some(sid) => rows::get(tx, "sessions", sid).await?,
        None => None,
    };
    let candidates: Vec<PolicyRecord> = rows::query(
        tx,
        "policies",
        "SELECT record::text FROM policies WHERE agent_id = $1 OR agent_id IS NULL ORDER BY (agent_id IS NULL), id",
        &[&agent.id],
    )
    .await?;
    let policies = crate::scope::keep_effective(&agent, candidates);
    let active: Vec<TransactionRecord> = rows::query(
        tx,
        "transactions",
        "SELECT record::text FROM transactions WHERE agent_id = $1 AND parent_id IS NULL AND id <> $2
           AND status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED') ORDER BY id",
        &[&agent.id, &rec.id],
    )
    .await?;
    let mut figures = InFlight::default();
    for t in &active {
        figures.add(&rec, t)?;
    }
    let InFlight { in_flight, reserved, queued_pending, queued_ends_at } = figures;
    let (rate_1h, rate_24h) = if policies.iter().any(|p| p.policy_type == PolicyType::RateLimit) {
        (
            window(tx, agent.id, now.saturating_sub(3600), rec.id).await?,
            window(tx, agent.id, now.saturating_sub(86_400), rec.id).await?,
        )
    } else {
        Default::default()
    };
    let enabled: i64 = super::super::rows::one(
        tx,
        "SELECT count(*) FROM notification_channels WHERE (record->>'enabled')::boolean",
        &[],
    )
    .await?
    .get(0);
    Ok(DecisionSnapshot {
        now,
        tx: rec,
        children,
        agent,
        session,
        session_in_flight: in_flight,
        session_reserved: reserved,
        policies,
        rate_1h,
        rate_24h,
        queued_pending,
        queued_ends_at,
        enabled_channels: enabled as u64,
    })
}

impl PgStore {
    /// Decides a PENDING transaction (see the module docs).
    pub fn decide_transaction(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        self.decide_inner(id, ctx, false, Box::new(evaluate))
    }

    /// Decides and, for INSTANT/NOTIFY, claims in the same transaction.
    pub fn decide_and_claim(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        self.decide_inner(id, ctx, true, Box::new(evaluate))
    }

    /// The request, its decision and an inline claim in one transaction; refused while the
    /// kill switch is on.
    pub fn record_and_decide(
        &self,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<Recorded, StoreError> {
        let evaluate: Cell<Option<Evaluate<'_>>> = Cell::new(Some(Box::new(evaluate)));
        self.write(Global::Shared, async |tx| {
            require_normal(tx).await?;
            lock_agent(tx, rec.agent_id).await?;
            if let RecordOutcome::Existing(existing) = self.record_in(tx, rec, children, idempotency, ctx).await? {
                return Ok(Recorded::Existing(existing));
            }
            let eval = evaluate.take().ok_or(StoreError::Invariant("a decision is evaluated once"))?;
            let (row, outcome) = self.decide_in(tx, rec.id, ctx, claim_inline, eval).await?;
            Ok(Recorded::Decided(Box::new(row), outcome))
        })
    }

    fn decide_inner(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: Evaluate<'_>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        let evaluate = Cell::new(Some(evaluate));
        self.write(Global::Shared, async |tx| {
            let agent = super::super::txrows::agent_of(tx, id).await?;
            lock_agent(tx, agent).await?;
            let eval = evaluate.take().ok_or(StoreError::Invariant("a decision is evaluated once"))?;
            self.decide_in(tx, id, ctx, claim_inline, eval).await
        })
    }

    async fn decide_in(
        &self,
        tx: &Transaction<'_>,
        id: Uuid,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: Evaluate<'_>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        let rec = get_tx(tx, id).await?;
        if rec.status != TxStatus::Pending {
            return Err(StoreError::conflict(TxStatus::Pending, rec.status));
        }
        let snapshot = snapshot_in(tx, rec, ctx.now).await?;
        let outcome = evaluate(&snapshot)?;
        let rec = snapshot.tx;
        let updated = match plan(&rec, &outcome, claim_inline, ctx.now)? {
            Plan::Cancel(patch) => {
                transition_in(tx, id, TxStatus::Pending, TxStatus::Cancelled, patch, ctx.now).await?
            }
            Plan::Queue { patch, approval, claim } => {
                let new = transition_in(tx, id, TxStatus::Pending, TxStatus::Queued, patch, ctx.now).await?;
                if let Some(approval) = &approval {
                    put_approval(tx, approval).await?;
                }
                if claim {
                    transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now).await?
                } else {
                    new
                }
            }
        };
        for ev in outcome.audits() {
            self.audit(tx, ev.clone(), ctx).await?;
        }
        Ok((updated, outcome))
    }

    /// The snapshot the dry-run endpoints evaluate, from one consistent read.
    pub fn dry_run_snapshot(&self, tx_rec: TransactionRecord, now: u64) -> Result<DecisionSnapshot, StoreError> {
        self.read(async |tx| snapshot_in(tx, tx_rec, now).await)
    }
}
