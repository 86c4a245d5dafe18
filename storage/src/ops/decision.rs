//! The decision write transaction (02-storage.md §6 `decide_transaction`, 06-pipeline.md §4).
//!
//! **Snapshot, evaluation and reservation happen in one write transaction — never split.**
//! redb admits one writer at a time, so the snapshot handed to the pure `evaluate` closure
//! (usage, in-flight reservations, rate counts, queued count) cannot change before the
//! reservation it leads to is written. N concurrent requests against a cap therefore never
//! reserve more than the cap. If `evaluate` fails, the whole transaction aborts: the row stays
//! PENDING with no reservation and no audit row.

use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;
use uuid::Uuid;

use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::db::{Commit, OpCtx, RedbStore};
use crate::enums::{PolicyType, Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::IdempotencyClaim;
use crate::in_tx::RecordOutcome;
use crate::in_tx::{TxPatch, transition_in};
use crate::records::*;
use crate::rows;
use crate::tables::*;

/// Everything the policy engine may look at, read inside the decision transaction.
#[derive(Debug, Clone)]
pub struct DecisionSnapshot {
    /// Decision time.
    pub now: u64,
    /// The PENDING row.
    pub tx: TransactionRecord,
    /// Its BATCH children.
    pub children: Vec<TransactionRecord>,
    /// The agent.
    pub agent: AgentRecord,
    /// The session that sent it, if it still exists.
    pub session: Option<SessionRecord>,
    /// The session's other non-terminal transactions.
    pub session_in_flight: u64,
    /// Their reserved native amounts.
    pub session_reserved: Amount,
    /// The effective policies after scope resolution (07-policy.md §2, [`crate::scope`]),
    /// highest priority first.
    pub policies: Vec<PolicyRecord>,
    /// The agent's counted transactions (top-level, not CANCELLED/EXPIRED, not this one)
    /// created in the last 3600 s, with the oldest creation time among them. Read from the
    /// rate counters (a bounded number of reads whatever the history), and only when
    /// `policies` holds a RATE_LIMIT policy; otherwise empty.
    pub rate_1h: crate::rate::Window,
    /// The same over 86400 s.
    pub rate_24h: crate::rate::Window,
    /// The agent's QUEUED DELAY/APPROVAL transactions.
    pub queued_pending: u64,
    /// The earliest `queue_expires_at` among them: when a queued slot frees at the latest (a
    /// DELAY row runs, an APPROVAL row is decided or expires). `None` with nothing queued.
    pub queued_ends_at: Option<u64>,
    /// Enabled notification channels.
    pub enabled_channels: u64,
}

/// What the snapshot adds up over the agent's other active rows (every engine).
#[derive(Default)]
pub(crate) struct InFlight {
    /// The session's other non-terminal rows.
    pub(crate) in_flight: u64,
    /// Their reservations.
    pub(crate) reserved: Amount,
    /// The agent's QUEUED DELAY/APPROVAL rows.
    pub(crate) queued_pending: u64,
    /// The earliest `queue_expires_at` among them.
    pub(crate) queued_ends_at: Option<u64>,
}

impl InFlight {
    /// Counts `t`, an active row of the agent of `rec` other than `rec` itself.
    pub(crate) fn add(&mut self, rec: &TransactionRecord, t: &TransactionRecord) -> Result<(), StoreError> {
        if rec.session_id.is_some() && t.session_id == rec.session_id {
            self.in_flight += 1;
            if let Some(r) = t.reserved_amount {
                self.reserved =
                    self.reserved.checked_add(r).map_err(|_| StoreError::Invariant("reservation overflow"))?;
            }
        }
        if t.status == TxStatus::Queued && matches!(t.tier, Some(Tier::Delay | Tier::Approval)) {
            self.queued_pending += 1;
            if let Some(end) = t.queue_expires_at {
                self.queued_ends_at = Some(self.queued_ends_at.map_or(end, |e| e.min(end)));
            }
        }
        Ok(())
    }
}

/// What [`RedbStore::record_and_decide`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The idempotency key already had a record; nothing was written.
    Existing(IdempotencyRecord),
    /// The row was recorded and decided (and claimed when asked and allowed inline).
    Decided(Box<TransactionRecord>, DecisionOutcome),
}

/// What the evaluation decided.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionOutcome {
    /// Allowed: QUEUED with a tier and a reservation of the native amount.
    Queue {
        /// Final tier.
        tier: Tier,
        /// DELAY execute-at or APPROVAL deadline.
        queue_expires_at: Option<u64>,
        /// Stored as `metadata.decision`.
        decision: Value,
        /// Owner address for the pending-approval row (APPROVAL only).
        approval_owner: Option<String>,
        /// Audit rows (`TX_QUEUED`, `TX_DOWNGRADED`).
        audits: Vec<AuditEvent>,
    },
    /// Denied: CANCELLED with an error string.
    Cancel {
        /// `transactions.error`.
        error: String,
        /// Stored as `metadata.denial`.
        denial: Option<Value>,
        /// Audit rows (`TX_SESSION_CHECK`, `POLICY_VIOLATION`, `TX_CANCELLED`).
        audits: Vec<AuditEvent>,
    },
}

impl DecisionOutcome {
    /// The audit rows the decision writes.
    pub(crate) fn audits(&self) -> &[AuditEvent] {
        match self {
            DecisionOutcome::Queue { audits, .. } | DecisionOutcome::Cancel { audits, .. } => audits,
        }
    }
}

/// What a decision writes, whatever the engine.
pub(crate) enum Plan {
    /// PENDING → CANCELLED with this patch.
    Cancel(TxPatch),
    /// PENDING → QUEUED with this patch (tier, queue times, the reservation — recorded in the
    /// same transaction, never split), the pending-approval row for APPROVAL, and whether the
    /// row is claimed (QUEUED → EXECUTING) in the same transaction.
    Queue { patch: TxPatch, approval: Option<ApprovalRecord>, claim: bool },
}

/// The writes of `outcome` for the PENDING row `rec`.
pub(crate) fn plan(
    rec: &TransactionRecord,
    outcome: &DecisionOutcome,
    claim_inline: bool,
    now: u64,
) -> Result<Plan, StoreError> {
    Ok(match outcome {
        DecisionOutcome::Cancel { error, denial, .. } => {
            let mut patch = TxPatch::error(error.clone());
            if let Some(d) = denial {
                patch.metadata.insert("denial".into(), d.clone());
            }
            Plan::Cancel(patch)
        }
        DecisionOutcome::Queue { tier, queue_expires_at, decision, approval_owner, .. } => {
            let mut patch = TxPatch {
                tier: Some(*tier),
                queued_at: Some(now),
                queue_expires_at: *queue_expires_at,
                reserved_amount: Some(Some(rec.native_amount)),
                ..TxPatch::default()
            };
            patch.metadata.insert("decision".into(), decision.clone());
            let approval = if *tier == Tier::Approval {
                let owner = approval_owner.clone().ok_or(StoreError::Invariant("APPROVAL needs an owner"))?;
                let deadline = queue_expires_at.ok_or(StoreError::Invariant("APPROVAL needs a deadline"))?;
                Some(ApprovalRecord {
                    tx_id: rec.id,
                    agent_id: rec.agent_id,
                    owner_address: owner,
                    expires_at: deadline,
                    approved_at: None,
                    approved_by: None,
                    owner_payload: None,
                    rejected_at: None,
                    expired_at: None,
                    created_at: now,
                })
            } else {
                None
            };
            Plan::Queue { patch, approval, claim: claim_inline && matches!(tier, Tier::Instant | Tier::Notify) }
        }
    })
}

impl RedbStore {
    /// Decides a PENDING transaction in one write transaction (see the module docs): CAS the row
    /// out of PENDING, build the [`DecisionSnapshot`], call the pure `evaluate`, then write
    /// either CANCELLED (+ error, denial, audits) or QUEUED (+ tier, `queued_at`, reservation,
    /// `queue_expires_at`, decision, pending-approval row, audits).
    ///
    /// `Conflict` when the row is no longer PENDING (e.g. the kill switch cancelled it).
    pub fn decide_transaction(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        self.decide_inner(id, ctx, false, evaluate)
    }

    /// [`decide_transaction`](Self::decide_transaction) for an inline execution: when the
    /// outcome is INSTANT or NOTIFY the row is also claimed (QUEUED → EXECUTING) in the same
    /// write transaction, so the request pays one commit for decision and claim. The agent's
    /// status was checked by `evaluate` inside this transaction, which is what a separate claim
    /// would re-check. Other tiers stay QUEUED.
    pub fn decide_and_claim(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        self.decide_inner(id, ctx, true, evaluate)
    }

    /// The send path's first write (issue #21): the request (or its idempotent replay), the
    /// decision and, for an inline INSTANT/NOTIFY execution, the claim — one **lazy** commit.
    /// Nothing outside the daemon has seen any of it yet: a crash before the signed checkpoint
    /// (the first durable commit after it) loses a request nobody was answered about. A caller
    /// that answers a refusal or a queued row first calls [`RedbStore::sync`]. Refused while the
    /// kill switch is on (`Restricted`), in the same transaction.
    pub fn record_and_decide(
        &self,
        rec: &TransactionRecord,
        children: &[TransactionRecord],
        idempotency: Option<&IdempotencyClaim>,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<Recorded, StoreError> {
        self.write_with(Commit::Lazy, |tx| {
            crate::in_tx::require_normal(tx)?;
            if let RecordOutcome::Existing(existing) = self.record_in(tx, rec, children, idempotency, ctx)? {
                return Ok(Recorded::Existing(existing));
            }
            let (row, outcome) = self.decide_in(tx, rec.id, ctx, claim_inline, evaluate)?;
            Ok(Recorded::Decided(Box::new(row), outcome))
        })
    }

    fn decide_inner(
        &self,
        id: Uuid,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        self.write(|tx| self.decide_in(tx, id, ctx, claim_inline, evaluate))
    }

    fn decide_in(
        &self,
        tx: &WriteTransaction,
        id: Uuid,
        ctx: &OpCtx,
        claim_inline: bool,
        evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>,
    ) -> Result<(TransactionRecord, DecisionOutcome), StoreError> {
        {
            let rec = rows::get_tx(tx, id)?;
            if rec.status != TxStatus::Pending {
                return Err(StoreError::conflict(TxStatus::Pending, rec.status));
            }
            let snapshot = self.snapshot_in(tx, rec, ctx.now, true)?;
            let outcome = evaluate(&snapshot)?;
            let rec = snapshot.tx;
            let updated = match plan(&rec, &outcome, claim_inline, ctx.now)? {
                Plan::Cancel(patch) => transition_in(tx, id, TxStatus::Pending, TxStatus::Cancelled, patch, ctx.now)?,
                Plan::Queue { patch, approval, claim } => {
                    let new = transition_in(tx, id, TxStatus::Pending, TxStatus::Queued, patch, ctx.now)?;
                    if let Some(approval) = &approval {
                        rows::put(tx, PENDING_APPROVALS, "pending_approvals", id, approval)?;
                    }
                    if claim {
                        transition_in(tx, id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), ctx.now)?
                    } else {
                        new
                    }
                }
            };
            for ev in outcome.audits() {
                self.audit(tx, ev.clone(), ctx)?;
            }
            Ok((updated, outcome))
        }
    }

    /// Builds the snapshot the dry-run endpoints evaluate, from a read of the current state and
    /// a transaction that is not stored.
    pub fn dry_run_snapshot(&self, tx_rec: TransactionRecord, now: u64) -> Result<DecisionSnapshot, StoreError> {
        // A write transaction gives the same view the real decision sees; it is aborted, so
        // nothing is written and no commit is paid.
        let tx = self.begin_write_for_read()?;
        let snap = self.snapshot_in(&tx, tx_rec, now, false);
        tx.abort()?;
        snap
    }

    fn snapshot_in(
        &self,
        tx: &WriteTransaction,
        rec: TransactionRecord,
        now: u64,
        stored: bool,
    ) -> Result<DecisionSnapshot, StoreError> {
        let agent = rows::get_agent(tx, rec.agent_id)?;
        let children = {
            let idx = tx.open_table(IDX_TX_CHILDREN)?;
            let p = rec.id.as_u128();
            let ids: Vec<u128> =
                idx.range((p, 0u32)..=(p, u32::MAX))?.map(|r| r.map(|(_, v)| v.value())).collect::<Result<_, _>>()?;
            ids.into_iter().map(|i| rows::get_tx(tx, Uuid::from_u128(i))).collect::<Result<Vec<_>, _>>()?
        };
        let session = match rec.session_id {
            Some(sid) => rows::get(&tx.open_table(SESSIONS)?, "sessions", sid)?,
            None => None,
        };
        let policies = {
            // The agent's own policies and the global ones (from the scope index), resolved by
            // `scope::effective` — the same rules the daemon's views use.
            let table = tx.open_table(POLICIES)?;
            let idx = tx.open_table(IDX_POLICY_SCOPE)?;
            let mut candidates = Vec::new();
            for scope in [agent.id.as_u128(), 0u128] {
                for r in idx.range((scope, 0u128)..=(scope, u128::MAX))? {
                    let (k, _) = r?;
                    candidates.push(rows::must_get(&table, "policies", Uuid::from_u128(k.value().1))?);
                }
            }
            crate::scope::keep_effective(&agent, candidates)
        };
        // The session's in-flight rows and the agent's queued ones, from the agent's active
        // index: a few rows, however long the agent's history.
        let mut figures = InFlight::default();
        for tid in rows::active_tx_ids(tx, agent.id)? {
            if tid != rec.id {
                figures.add(&rec, &rows::get_tx(tx, tid)?)?;
            }
        }
        let InFlight { in_flight, reserved, queued_pending, queued_ends_at } = figures;
        // The request being decided is stored (and counted) unless this is a dry run.
        let exclude = stored.then_some(rec.created_at);
        let (hour, day) = if policies.iter().any(|p| p.policy_type == PolicyType::RateLimit) {
            let t = tx.open_table(RATE_COUNTS)?;
            (
                crate::rate::window(&t, agent.id, now.saturating_sub(3600), exclude)?,
                crate::rate::window(&t, agent.id, now.saturating_sub(86_400), exclude)?,
            )
        } else {
            Default::default()
        };
        let enabled_channels = {
            let table = tx.open_table(NOTIFICATION_CHANNELS)?;
            let mut n = 0;
            for r in table.iter()? {
                let (_, v) = r?;
                let c: ChannelRecord = crate::codec::decode("notification_channels", v.value())?;
                n += u64::from(c.enabled);
            }
            n
        };
        Ok(DecisionSnapshot {
            now,
            tx: rec,
            children,
            agent,
            session,
            session_in_flight: in_flight,
            session_reserved: reserved,
            policies,
            rate_1h: hour,
            rate_24h: day,
            queued_pending,
            queued_ends_at,
            enabled_channels,
        })
    }
}
