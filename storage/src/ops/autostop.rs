//! What AutoStop reads and writes (08-killswitch-autostop.md §6): bounded reads of an agent's
//! recent history, and the suspension action in one write transaction.

use uuid::Uuid;

use super::shared::{min_uuid_v7_at, revoke_agent_sessions};
use crate::amount::Amount;
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::{OpCtx, Store};
use crate::enums::{AgentStatus, AuditSeverity, TxStatus};
use crate::error::StoreError;
use crate::records::TransactionRecord;
use crate::rows;
use crate::tables::*;

impl Store {
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

    /// The agent's CONFIRMED top-level transactions created at or after `since`.
    pub fn confirmed_since(&self, agent: Uuid, since: u64) -> Result<Vec<TransactionRecord>, StoreError> {
        self.confirmed_since_where(agent, since, |_| true)
    }

    /// The agent's CONFIRMED top-level transactions created at or after `since` that ran without
    /// an owner's approval (tier INSTANT, NOTIFY or DELAY): what ANOMALY_PATTERN counts (§6.2).
    pub fn autonomous_confirmed_since(&self, agent: Uuid, since: u64) -> Result<Vec<TransactionRecord>, StoreError> {
        self.confirmed_since_where(agent, since, |r| !r.owner_sanctioned())
    }

    fn confirmed_since_where(
        &self,
        agent: Uuid,
        since: u64,
        keep: impl Fn(&TransactionRecord) -> bool,
    ) -> Result<Vec<TransactionRecord>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_TX_AGENT)?;
            let table = tx.open_table(TRANSACTIONS)?;
            let a = agent.as_u128();
            let mut out = Vec::new();
            for r in idx.range((a, min_uuid_v7_at(since))..=(a, u128::MAX))? {
                let (k, _) = r?;
                let rec: TransactionRecord = rows::must_get(&table, "transactions", Uuid::from_u128(k.value().1))?;
                if rec.status == TxStatus::Confirmed && rec.created_at >= since && keep(&rec) {
                    out.push(rec);
                }
            }
            Ok(out)
        })
    }

    /// The sum of `native_amount` over the agent's CONFIRMED top-level transactions created at
    /// or after `since` (saturating): the dashboard's volume.
    pub fn confirmed_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError> {
        Ok(volume(&self.confirmed_since(agent, since)?))
    }

    /// The same sum over the rows that ran without an owner's approval: DAILY_LIMIT_THRESHOLD's
    /// measure (§6.2). A transfer the owner signed for never counts toward it.
    pub fn autonomous_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError> {
        Ok(volume(&self.autonomous_confirmed_since(agent, since)?))
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
            let mut s = a.clone();
            s.status = AgentStatus::Suspended;
            s.suspended_at = Some(ctx.now);
            s.suspension_reason = Some(reason.to_string());
            s.updated_at = ctx.now;
            rows::put_agent(tx, &s)?;
            let revoked = revoke_agent_sessions(tx, agent, "auto_stop", ctx.now)?;
            let ev = AuditEvent::new(AuditEventType::AutoStopSuspend, ctx.actor.clone())
                .severity(AuditSeverity::Warning)
                .agent(agent)
                .detail("ruleId", rule.to_string())
                .detail("reason", reason)
                .detail("sessionsRevoked", revoked);
            self.audit(tx, ev, ctx)?;
            Ok(true)
        })
    }
}

fn volume(rows: &[TransactionRecord]) -> Amount {
    rows.iter().fold(Amount::ZERO, |sum, r| sum.saturating_add(r.native_amount))
}
