//! What AutoStop reads and writes (08-killswitch-autostop.md §6): bounded reads of an agent's
//! recent history, and the suspension action in one write transaction.

use uuid::Uuid;

use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::autostop_counts;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AgentStatus, AuditSeverity, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{min_uuid_v7_at, revoke_agent_sessions};
use crate::records::TransactionRecord;
use crate::rows;
use crate::tables::*;

/// `a` suspended by AutoStop at `now`.
pub(crate) fn auto_suspended(a: &crate::records::AgentRecord, reason: &str, now: u64) -> crate::records::AgentRecord {
    let mut s = a.clone();
    s.status = AgentStatus::Suspended;
    s.suspended_at = Some(now);
    s.suspension_reason = Some(reason.to_string());
    s.updated_at = now;
    s
}

pub(crate) fn auto_suspend_event(agent: Uuid, rule: Uuid, reason: &str, revoked: u64, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::AutoStopSuspend, ctx.actor.clone())
        .severity(AuditSeverity::Warning)
        .agent(agent)
        .detail("ruleId", rule.to_string())
        .detail("reason", reason)
        .detail("sessionsRevoked", revoked)
}

impl RedbStore {
    /// The agent's FAILED top-level transactions since its most recent CONFIRMED one (CANCELLED,
    /// EXPIRED and non-terminal rows skipped), counted newest first and at most `cap`.
    pub fn consecutive_failures(&self, agent: Uuid, cap: u64) -> Result<u64, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let table = tx.open_table(TRANSACTIONS)?;
            let a = agent.as_u128();
            let mut n = 0;
            for r in idx.range((a, 0u128)..=(a, u128::MAX))?.rev() {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&table, "transactions", Uuid::from_u128(k.value().1))?;
                match rec.status {
                    TxStatus::Confirmed => break,
                    TxStatus::Failed => {
                        n += 1;
                        if n >= cap {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            Ok(n)
        })
    }

    /// How many top-level transactions (any status) the agent created at or after `since`,
    /// counted up to `cap` (index keys only: ids are time-ordered UUID v7).
    pub fn created_since(&self, agent: Uuid, since: u64, cap: u64) -> Result<u64, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let a = agent.as_u128();
            let mut n = 0;
            for r in idx.range((a, min_uuid_v7_at(since))..=(a, u128::MAX))? {
                r?;
                n += 1;
                if n >= cap {
                    break;
                }
            }
            Ok(n)
        })
    }

    /// The sum of `native_amount` over the agent's CONFIRMED top-level transactions created at
    /// or after `since` (saturating): the dashboard's volume. A scan of the window; AutoStop
    /// reads the counters below instead.
    pub fn confirmed_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let table = tx.open_table(TRANSACTIONS)?;
            let a = agent.as_u128();
            let mut sum = Amount::ZERO;
            for r in idx.range((a, min_uuid_v7_at(since))..=(a, u128::MAX))? {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&table, "transactions", Uuid::from_u128(k.value().1))?;
                if rec.status == TxStatus::Confirmed && rec.created_at >= since {
                    sum = sum.saturating_add(rec.native_amount);
                }
            }
            Ok(sum)
        })
    }

    /// DAILY_LIMIT_THRESHOLD's measure (§6.2): the native amount of the agent's CONFIRMED
    /// top-level transactions created on the UTC day of `day` that ran without an owner's
    /// approval (a transfer the owner signed for never counts). One counter read, whatever the
    /// day's history (`autostop_counts.rs`).
    pub fn autonomous_volume_on_day(&self, agent: Uuid, day: u64) -> Result<Amount, StoreError> {
        self.read(|tx| autostop_counts::daily_volume(&tx.open_table(AUTOSTOP_DAILY)?, agent, day))
    }

    /// ANOMALY_PATTERN's measure (§6.2): how many of the agent's CONFIRMED top-level transfers
    /// to `to`, created at or after `since` and run without an owner's approval, exist — counted
    /// up to `cap` (so the cost is bounded by the rule's threshold, not the history).
    pub fn autonomous_transfers_to_since(
        &self,
        agent: Uuid,
        to: &str,
        since: u64,
        cap: u64,
    ) -> Result<u64, StoreError> {
        self.read(|tx| autostop_counts::to_address_since(&tx.open_table(AUTOSTOP_TO)?, agent, to, since, cap))
    }

    /// AutoStop's SUSPEND_AGENT (§6.3) in one write transaction: ACTIVE → SUSPENDED with
    /// `reason`, the agent's live sessions revoked (trigger `auto_stop`), audit
    /// `AUTO_STOP_SUSPEND`. Returns false (nothing written) when the agent is not ACTIVE.
    pub fn auto_stop_suspend(&self, agent: Uuid, reason: &str, rule: Uuid, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(|tx| {
            let a = rows::get_agent(tx, agent)?;
            if a.status != AgentStatus::Active {
                return Ok(false);
            }
            rows::put_agent(tx, &auto_suspended(&a, reason, ctx.now))?;
            let revoked = revoke_agent_sessions(tx, agent, "auto_stop", ctx.now)?;
            self.audit(tx, auto_suspend_event(agent, rule, reason, revoked, ctx), ctx)?;
            Ok(true)
        })
    }
}
