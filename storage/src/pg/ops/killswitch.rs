//! The kill switch on PostgreSQL (§5): every state change holds G exclusively, so it waits out
//! each fenced write in flight and none starts until it commits — the activation's cascade sees
//! a still world, and a signed checkpoint (which reads the status under G shared) cannot slip
//! in after it.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use super::super::rows::{self, set_state};
use super::super::store::{Global, PgStore};
use super::super::txrows::{active_tx_ids, end_many};
use super::agent_cascades::revoke_agent_sessions;
use super::agents::put_agent;
use super::system::status_in;
use crate::db::OpCtx;
use crate::enums::{AgentStatus, Chain, KillSwitchActor, KillSwitchStatus, TxStatus};
use crate::error::StoreError;
use crate::in_tx::owner_verified;
use crate::ops::killswitch::{
    ActivationReport, KillSwitchState, RecoveryFailure, activated_event, activation_state, ks_reactivated,
    ks_suspended, recovered_event, recovered_state, recovery_failed, recovery_failed_event, recovery_start_state,
    recovery_started_event, state_from,
};
use crate::records::*;

async fn all_agents(tx: &deadpool_postgres::Transaction<'_>) -> Result<Vec<AgentRecord>, StoreError> {
    rows::query(tx, "agents", "SELECT record::text FROM agents ORDER BY id", &[]).await
}

impl PgStore {
    /// Activates the kill switch with its whole cascade (CAS NORMAL → ACTIVATED first).
    pub fn activate_kill_switch(
        &self,
        reason: &str,
        actor: KillSwitchActor,
        ctx: &OpCtx,
    ) -> Result<ActivationReport, StoreError> {
        let started = Instant::now();
        self.write(Global::Exclusive, async |tx| {
            let status = status_in(tx).await?;
            if status != KillSwitchStatus::Normal {
                return Err(StoreError::conflict(KillSwitchStatus::Normal, status));
            }
            let now = ctx.now;
            for (key, value) in activation_state(reason, actor, now) {
                set_state(tx, key, value, now).await?;
            }
            let (mut sessions, mut cancelled, mut suspended) = (0, 0, 0);
            for a in all_agents(tx).await? {
                sessions += revoke_agent_sessions(tx, a.id, "kill_switch", now).await?;
                let ids: Vec<Uuid> = active_tx_ids(tx, a.id).await?;
                cancelled += end_many(
                    tx,
                    &ids,
                    &[TxStatus::Pending, TxStatus::Queued],
                    TxStatus::Cancelled,
                    "KILL_SWITCH",
                    |_| true,
                    now,
                )
                .await?;
                if let Some(s) = ks_suspended(&a, reason, now) {
                    put_agent(tx, &s, false).await?;
                    suspended += 1;
                }
            }
            let report = ActivationReport {
                sessions_revoked: sessions,
                transactions_cancelled: cancelled,
                agents_suspended: suspended,
                cascade_duration_ms: started.elapsed().as_millis() as u64,
            };
            self.audit(tx, activated_event(reason, actor, &report, ctx), ctx).await?;
            Ok(report)
        })
    }

    /// The kill-switch state and the recovery counters, from one snapshot.
    pub fn kill_switch_state(&self) -> Result<KillSwitchState, StoreError> {
        self.read(async |tx| {
            let all: HashMap<String, Value> = super::super::rows::all(tx, "SELECT key, value FROM system_state", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            state_from(|k| Ok(all.get(k).cloned()))
        })
    }

    /// Recovery step 1: ACTIVATED → RECOVERING; the signer's GRACE agents become LOCKED.
    pub fn recovery_start(&self, wait: u64, signer: Option<(Chain, String)>, ctx: &OpCtx) -> Result<u64, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let status = status_in(tx).await?;
            if status != KillSwitchStatus::Activated {
                return Err(StoreError::conflict(KillSwitchStatus::Activated, status));
            }
            let now = ctx.now;
            let eligible = now + wait;
            for (key, value) in recovery_start_state(wait, signer.is_some(), now) {
                set_state(tx, key, value, now).await?;
            }
            if let Some((chain, address)) = &signer {
                for a in
                    all_agents(tx).await?.iter().filter(|a| a.chain == *chain && a.status != AgentStatus::Terminated)
                {
                    if let Some((new, ev)) = owner_verified(a, address, ctx) {
                        put_agent(tx, &new, false).await?;
                        self.audit(tx, ev, ctx).await?;
                    }
                }
            }
            self.audit(tx, recovery_started_event(wait, eligible, signer.is_some(), ctx), ctx).await?;
            Ok(eligible)
        })
    }

    /// A wrong recovery password.
    pub fn recovery_fail(&self, ctx: &OpCtx) -> Result<RecoveryFailure, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let now = ctx.now;
            let status = status_in(tx).await?;
            let failed =
                rows::get_state(tx, "recovery_failed_attempts").await?.and_then(|v| v.as_u64()).unwrap_or(0) as u32;
            let (changes, failure) = recovery_failed(status, failed, now);
            for (key, value) in changes {
                set_state(tx, key, value, now).await?;
            }
            self.audit(tx, recovery_failed_event(&failure, ctx), ctx).await?;
            Ok(failure)
        })
    }

    /// Recovery step 2: RECOVERING → NORMAL; the agents the kill switch suspended come back.
    pub fn recovery_complete(&self, ctx: &OpCtx) -> Result<u64, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let status = status_in(tx).await?;
            if status != KillSwitchStatus::Recovering {
                return Err(StoreError::conflict(KillSwitchStatus::Recovering, status));
            }
            let now = ctx.now;
            for (key, value) in recovered_state() {
                set_state(tx, key, value, now).await?;
            }
            let mut reactivated = 0u64;
            for a in all_agents(tx).await? {
                if let Some(s) = ks_reactivated(&a, now) {
                    put_agent(tx, &s, false).await?;
                    reactivated += 1;
                }
            }
            self.audit(tx, recovered_event(reactivated, ctx), ctx).await?;
            Ok(reactivated)
        })
    }
}
