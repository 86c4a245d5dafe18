//! Kill-switch state changes (08-killswitch-autostop.md §2, §4).
//!
//! Activation is one write transaction whose **first** read/write is the CAS NORMAL → ACTIVATED:
//! of two racing activations exactly one proceeds, and the loser changes nothing. The cascade —
//! revoke every live session, cancel every PENDING/QUEUED top-level transaction, suspend every
//! ACTIVE agent, audit with counts — commits with it or not at all. EXECUTING and SUBMITTED
//! transactions are never touched.

use std::time::Instant;

use redb::ReadableTable;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::codec::decode;
use crate::db::{OpCtx, Store};
use crate::enums::{AgentStatus, AuditSeverity, KillSwitchActor, KillSwitchStatus, TxStatus};
use crate::error::StoreError;
use crate::ops::agents::revoke_agent_sessions;
use crate::ops::system::{get_state, set_state};
use crate::ops::transactions::end_many;
use crate::records::*;
use crate::rows;
use crate::tables::*;

/// Counts from [`Store::activate_kill_switch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationReport {
    /// Live sessions revoked.
    pub sessions_revoked: u64,
    /// PENDING/QUEUED transactions cancelled.
    pub transactions_cancelled: u64,
    /// ACTIVE agents suspended.
    pub agents_suspended: u64,
    /// Time spent inside the transaction.
    pub cascade_duration_ms: u64,
}

impl Store {
    /// Activates the kill switch with its whole cascade in one write transaction (module docs).
    /// `Conflict` (nothing written) when the state is not NORMAL.
    pub fn activate_kill_switch(
        &self,
        reason: &str,
        actor: KillSwitchActor,
        ctx: &OpCtx,
    ) -> Result<ActivationReport, StoreError> {
        let started = Instant::now();
        self.write(|tx| {
            let status = match get_state(&tx.open_table(SYSTEM_STATE)?, "kill_switch_status")? {
                Some(Value::String(s)) => {
                    s.parse::<KillSwitchStatus>().map_err(|_| StoreError::Invariant("invalid kill_switch_status"))?
                }
                _ => KillSwitchStatus::Normal,
            };
            if status != KillSwitchStatus::Normal {
                return Err(StoreError::conflict(KillSwitchStatus::Normal, status));
            }
            let now = ctx.now;
            set_state(tx, "kill_switch_status", Value::String(KillSwitchStatus::Activated.as_str().into()), now)?;
            set_state(tx, "kill_switch_activated_at", Value::from(now), now)?;
            set_state(tx, "kill_switch_reason", Value::String(reason.into()), now)?;
            set_state(tx, "kill_switch_actor", Value::String(actor.as_str().into()), now)?;
            for key in ["recovery_eligible_at", "recovery_wait_seconds", "recovery_has_owner"] {
                set_state(tx, key, Value::Null, now)?;
            }
            let agents: Vec<AgentRecord> = {
                let t = tx.open_table(AGENTS)?;
                t.iter()?
                    .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("agents", v.value())))
                    .collect::<Result<_, _>>()?
            };
            let (mut sessions, mut cancelled, mut suspended) = (0, 0, 0);
            for a in &agents {
                sessions += revoke_agent_sessions(tx, a.id, "kill_switch", now)?;
                let ids: Vec<Uuid> = rows::active_tx_ids(tx, a.id)?;
                cancelled += end_many(
                    tx,
                    &ids,
                    &[TxStatus::Pending, TxStatus::Queued],
                    TxStatus::Cancelled,
                    "KILL_SWITCH",
                    |_| true,
                    now,
                )?;
                if a.status == AgentStatus::Active {
                    let mut s = a.clone();
                    s.status = AgentStatus::Suspended;
                    s.suspended_at = Some(now);
                    s.suspension_reason = Some(format!("KILL_SWITCH: {reason}"));
                    s.updated_at = now;
                    rows::put_agent(tx, &s)?;
                    suspended += 1;
                }
            }
            let report = ActivationReport {
                sessions_revoked: sessions,
                transactions_cancelled: cancelled,
                agents_suspended: suspended,
                cascade_duration_ms: started.elapsed().as_millis() as u64,
            };
            let ev = AuditEvent::new("KILL_SWITCH_ACTIVATED", ctx.actor.clone())
                .severity(AuditSeverity::Critical)
                .detail("reason", reason)
                .detail("actor", actor.as_str())
                .detail("sessionsRevoked", report.sessions_revoked)
                .detail("transactionsCancelled", report.transactions_cancelled)
                .detail("agentsSuspended", report.agents_suspended)
                .detail("cascadeDurationMs", report.cascade_duration_ms);
            self.audit(tx, ev, ctx)?;
            Ok(report)
        })
    }
}
