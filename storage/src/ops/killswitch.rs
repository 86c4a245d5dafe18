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
use crate::audit_events::AuditEventType;
use crate::codec::decode;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AgentStatus, AuditSeverity, KillSwitchActor, KillSwitchStatus, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{end_many, get_state, mark_owner_verified_in, revoke_agent_sessions, set_state, status_in};
use crate::records::*;
use crate::rows;
use crate::tables::*;

/// Counts from [`RedbStore::activate_kill_switch`].
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

impl RedbStore {
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
            let status = status_in(&tx.open_table(SYSTEM_STATE)?)?;
            if status != KillSwitchStatus::Normal {
                return Err(StoreError::conflict(KillSwitchStatus::Normal, status));
            }
            let now = ctx.now;
            for (key, value) in activation_state(reason, actor, now) {
                set_state(tx, key, value, now)?;
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
                if let Some(s) = ks_suspended(a, reason, now) {
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
            self.audit(tx, activated_event(reason, actor, &report, ctx), ctx)?;
            Ok(report)
        })
    }
}

/// The whole kill-switch and recovery state (08-killswitch-autostop.md §3–4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitchState {
    /// NORMAL, ACTIVATED or RECOVERING.
    pub status: KillSwitchStatus,
    /// When it was activated.
    pub activated_at: Option<u64>,
    /// Why.
    pub reason: Option<String>,
    /// Who (`admin`, `owner`, `auto_stop`, `system`).
    pub actor: Option<String>,
    /// RECOVERING: when step 2 may run.
    pub recovery_eligible_at: Option<u64>,
    /// RECOVERING: the wait chosen at step 1.
    pub recovery_wait_seconds: Option<u64>,
    /// RECOVERING: whether an owner signed step 1.
    pub recovery_has_owner: Option<bool>,
    /// Consecutive wrong recovery passwords.
    pub failed_attempts: u32,
    /// Recovery refused until then.
    pub lockout_until: Option<u64>,
}

/// What a wrong recovery password did (§4 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryFailure {
    /// Consecutive failures now (0 after a lockout started).
    pub failed_attempts: u32,
    /// Set when this failure was the fifth.
    pub lockout_until: Option<u64>,
    /// A RECOVERING state went back to ACTIVATED.
    pub rolled_back: bool,
}

/// Consecutive wrong passwords before the recovery lockout, and its length.
pub const RECOVERY_MAX_FAILURES: u32 = 5;
/// Seconds the recovery is refused after the fifth wrong password.
pub const RECOVERY_LOCKOUT_SECS: u64 = 1800;

/// `system_state` changes, applied in order by every engine.
type StateChanges = Vec<(&'static str, Value)>;

const RECOVERY_KEYS: [&str; 3] = ["recovery_eligible_at", "recovery_wait_seconds", "recovery_has_owner"];

fn status_value(s: KillSwitchStatus) -> Value {
    Value::String(s.as_str().into())
}

/// NORMAL → ACTIVATED.
pub(crate) fn activation_state(reason: &str, actor: KillSwitchActor, now: u64) -> StateChanges {
    let mut c = vec![
        ("kill_switch_status", status_value(KillSwitchStatus::Activated)),
        ("kill_switch_activated_at", Value::from(now)),
        ("kill_switch_reason", Value::String(reason.into())),
        ("kill_switch_actor", Value::String(actor.as_str().into())),
    ];
    c.extend(RECOVERY_KEYS.map(|k| (k, Value::Null)));
    c
}

/// An ACTIVE agent suspended by the kill switch (`None` for any other status).
pub(crate) fn ks_suspended(a: &AgentRecord, reason: &str, now: u64) -> Option<AgentRecord> {
    (a.status == AgentStatus::Active).then(|| {
        let mut s = a.clone();
        s.status = AgentStatus::Suspended;
        s.suspended_at = Some(now);
        s.suspension_reason = Some(format!("KILL_SWITCH: {reason}"));
        s.updated_at = now;
        s
    })
}

pub(crate) fn activated_event(reason: &str, actor: KillSwitchActor, r: &ActivationReport, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::KillSwitchActivated, ctx.actor.clone())
        .severity(AuditSeverity::Critical)
        .detail("reason", reason)
        .detail("actor", actor.as_str())
        .detail("sessionsRevoked", r.sessions_revoked)
        .detail("transactionsCancelled", r.transactions_cancelled)
        .detail("agentsSuspended", r.agents_suspended)
        .detail("cascadeDurationMs", r.cascade_duration_ms)
}

/// ACTIVATED → RECOVERING.
pub(crate) fn recovery_start_state(wait: u64, has_owner: bool, now: u64) -> StateChanges {
    vec![
        ("kill_switch_status", status_value(KillSwitchStatus::Recovering)),
        ("recovery_eligible_at", Value::from(now + wait)),
        ("recovery_wait_seconds", Value::from(wait)),
        ("recovery_has_owner", Value::Bool(has_owner)),
        ("recovery_failed_attempts", Value::from(0u32)),
    ]
}

pub(crate) fn recovery_started_event(wait: u64, eligible: u64, has_owner: bool, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::KillSwitchRecoveryStarted, ctx.actor.clone())
        .severity(AuditSeverity::Warning)
        .detail("waitSeconds", wait)
        .detail("recoveryEligibleAt", eligible)
        .detail("hasOwner", has_owner)
}

/// A wrong recovery password in `status` after `failed` consecutive ones.
pub(crate) fn recovery_failed(status: KillSwitchStatus, failed: u32, now: u64) -> (StateChanges, RecoveryFailure) {
    let mut c = Vec::new();
    let rolled_back = status == KillSwitchStatus::Recovering;
    if rolled_back {
        c.push(("kill_switch_status", status_value(KillSwitchStatus::Activated)));
        c.extend(RECOVERY_KEYS.map(|k| (k, Value::Null)));
    }
    let mut failed = failed + 1;
    let mut lockout = None;
    if failed >= RECOVERY_MAX_FAILURES {
        lockout = Some(now + RECOVERY_LOCKOUT_SECS);
        c.push(("recovery_lockout_until", Value::from(now + RECOVERY_LOCKOUT_SECS)));
        failed = 0;
    }
    c.push(("recovery_failed_attempts", Value::from(failed)));
    (c, RecoveryFailure { failed_attempts: failed, lockout_until: lockout, rolled_back })
}

pub(crate) fn recovery_failed_event(f: &RecoveryFailure, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::KillSwitchRecoveryFailed, ctx.actor.clone())
        .severity(AuditSeverity::Critical)
        .detail("rolledBack", f.rolled_back)
        .detail("failedAttempts", f.failed_attempts)
        .detail("lockoutUntil", f.lockout_until)
}

/// RECOVERING → NORMAL: every kill-switch and recovery key cleared.
pub(crate) fn recovered_state() -> StateChanges {
    let mut c = vec![("kill_switch_status", status_value(KillSwitchStatus::Normal))];
    for k in ["kill_switch_activated_at", "kill_switch_reason", "kill_switch_actor", "recovery_lockout_until"] {
        c.push((k, Value::Null));
    }
    c.extend(RECOVERY_KEYS.map(|k| (k, Value::Null)));
    c.push(("recovery_failed_attempts", Value::from(0u32)));
    c
}

/// An agent the kill switch suspended, active again (`None` for any other).
pub(crate) fn ks_reactivated(a: &AgentRecord, now: u64) -> Option<AgentRecord> {
    (a.status == AgentStatus::Suspended && a.suspension_reason.as_deref().is_some_and(|r| r.starts_with("KILL_SWITCH")))
        .then(|| {
            let mut s = a.clone();
            s.status = AgentStatus::Active;
            s.suspended_at = None;
            s.suspension_reason = None;
            s.updated_at = now;
            s
        })
}

pub(crate) fn recovered_event(reactivated: u64, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::KillSwitchRecovered, ctx.actor.clone())
        .severity(AuditSeverity::Warning)
        .detail("agentsReactivated", reactivated)
}

/// The state from its `system_state` keys, read through `get` on any engine.
pub(crate) fn state_from(
    get: impl Fn(&str) -> Result<Option<Value>, StoreError>,
) -> Result<KillSwitchState, StoreError> {
    Ok(KillSwitchState {
        status: match get("kill_switch_status")? {
            Some(Value::String(s)) => s.parse().map_err(|_| StoreError::Invariant("invalid kill_switch_status"))?,
            _ => KillSwitchStatus::Normal,
        },
        activated_at: get("kill_switch_activated_at")?.and_then(|v| v.as_u64()),
        reason: get("kill_switch_reason")?.and_then(|v| v.as_str().map(str::to_string)),
        actor: get("kill_switch_actor")?.and_then(|v| v.as_str().map(str::to_string)),
        recovery_eligible_at: get("recovery_eligible_at")?.and_then(|v| v.as_u64()),
        recovery_wait_seconds: get("recovery_wait_seconds")?.and_then(|v| v.as_u64()),
        recovery_has_owner: get("recovery_has_owner")?.and_then(|v| v.as_bool()),
        failed_attempts: get("recovery_failed_attempts")?.and_then(|v| v.as_u64()).unwrap_or(0) as u32,
        lockout_until: get("recovery_lockout_until")?.and_then(|v| v.as_u64()),
    })
}

impl RedbStore {
    /// The kill-switch state and the recovery counters.
    pub fn kill_switch_state(&self) -> Result<KillSwitchState, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(SYSTEM_STATE)?;
            state_from(|k| get_state(&t, k))
        })
    }

    /// Recovery step 1 (§4.6) in one write transaction: CAS ACTIVATED → RECOVERING (`Conflict`
    /// otherwise), eligibility `now + wait`, the failure counter reset, the signer's GRACE agents
    /// LOCKED, audit `KILL_SWITCH_RECOVERY_STARTED`. Returns the eligible time.
    pub fn recovery_start(
        &self,
        wait: u64,
        signer: Option<(crate::enums::Chain, String)>,
        ctx: &OpCtx,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let status = status_in(&tx.open_table(SYSTEM_STATE)?)?;
            if status != KillSwitchStatus::Activated {
                return Err(StoreError::conflict(KillSwitchStatus::Activated, status));
            }
            let now = ctx.now;
            let eligible = now + wait;
            for (key, value) in recovery_start_state(wait, signer.is_some(), now) {
                set_state(tx, key, value, now)?;
            }
            if let Some((chain, address)) = &signer {
                let agents: Vec<AgentRecord> = {
                    let t = tx.open_table(AGENTS)?;
                    t.iter()?
                        .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("agents", v.value())))
                        .collect::<Result<_, _>>()?
                };
                for a in agents.iter().filter(|a| a.chain == *chain && a.status != AgentStatus::Terminated) {
                    mark_owner_verified_in(self, tx, a.id, address, ctx)?;
                }
            }
            self.audit(tx, recovery_started_event(wait, eligible, signer.is_some(), ctx), ctx)?;
            Ok(eligible)
        })
    }

    /// A wrong recovery password (§4 step 3), one write transaction: the counter + 1, RECOVERING
    /// rolled back to ACTIVATED, the fifth consecutive failure starts a 1,800 s lockout (and
    /// resets the counter); audit `KILL_SWITCH_RECOVERY_FAILED`.
    pub fn recovery_fail(&self, ctx: &OpCtx) -> Result<RecoveryFailure, StoreError> {
        self.write(|tx| {
            let now = ctx.now;
            let (status, failed) = {
                let t = tx.open_table(SYSTEM_STATE)?;
                (
                    status_in(&t)?,
                    get_state(&t, "recovery_failed_attempts")?.and_then(|v| v.as_u64()).unwrap_or(0) as u32,
                )
            };
            let (changes, failure) = recovery_failed(status, failed, now);
            for (key, value) in changes {
                set_state(tx, key, value, now)?;
            }
            self.audit(tx, recovery_failed_event(&failure, ctx), ctx)?;
            Ok(failure)
        })
    }

    /// Recovery step 2 (§4.6) in one write transaction: CAS RECOVERING → NORMAL (`Conflict`
    /// otherwise), the kill-switch and recovery keys cleared, every agent suspended by the kill
    /// switch (reason starting `KILL_SWITCH`) ACTIVE again, audit `KILL_SWITCH_RECOVERED`.
    /// Returns how many agents were reactivated.
    pub fn recovery_complete(&self, ctx: &OpCtx) -> Result<u64, StoreError> {
        self.write(|tx| {
            let status = status_in(&tx.open_table(SYSTEM_STATE)?)?;
            if status != KillSwitchStatus::Recovering {
                return Err(StoreError::conflict(KillSwitchStatus::Recovering, status));
            }
            let now = ctx.now;
            for (key, value) in recovered_state() {
                set_state(tx, key, value, now)?;
            }
            let agents: Vec<AgentRecord> = {
                let t = tx.open_table(AGENTS)?;
                t.iter()?
                    .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("agents", v.value())))
                    .collect::<Result<_, _>>()?
            };
            let mut reactivated = 0u64;
            for a in agents {
                if let Some(s) = ks_reactivated(&a, now) {
                    rows::put_agent(tx, &s)?;
                    reactivated += 1;
                }
            }
            self.audit(tx, recovered_event(reactivated, ctx), ctx)?;
            Ok(reactivated)
        })
    }
}
