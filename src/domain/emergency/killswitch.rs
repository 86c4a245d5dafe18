//! The kill switch on the daemon side (08-killswitch-autostop.md): the in-memory guard state the
//! HTTP layer checks on every request, activation — the storage cascade commits first, then the
//! guard switches on, the keystore is locked and the execution workers stop — and the two-step
//! recovery with its own persistent failure counter and lockout.
//!
//! Every state change is one storage compare-and-swap (`waiaas_storage::ops::killswitch`); this
//! module adds what happens around it in memory (the guard, the keystore, the workers) and the
//! checks of §4 in the spec's order, so the first failing check decides the answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use waiaas_storage::{
    ActivationReport, AgentStatus, AuditEvent, AuditEventType, KillSwitchActor, KillSwitchState, KillSwitchStatus,
    OpCtx, StoreError,
};

use crate::adapters::notify::{Message, Notifier};
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::domain::auth::master::MasterAuth;
use crate::domain::auth::owner::{Owner, OwnerAction, OwnerAuth, OwnerAuthError, Target};
use crate::runtime::{Db, Settings, Signers};

/// The work that must not run while the kill switch holds (01-daemon.md §7 "runs in restricted
/// mode: no"). The service says *when* — at activation and at the end of recovery, whoever
/// caused them — and the composition root says *what* (`app::workers`).
pub(crate) trait ExecutionControl: Send + Sync {
    /// Stops it without waiting: the caller may itself be one of those workers (the integrity
    /// check activates the kill switch).
    fn stop(&self);
    /// Starts it again.
    fn start(&self);
}

/// In-memory mirror of the kill-switch state for the HTTP guard (08-killswitch-autostop.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KillSwitchView {
    pub(crate) status: KillSwitchStatus,
    pub(crate) activated_at: Option<u64>,
    pub(crate) reason: Option<String>,
}

/// An owner who can sign recovery step 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoverySigner {
    pub(crate) address: String,
    pub(crate) chain: waiaas_storage::Chain,
    /// Decimal chain ids (Ethereum) or network names (Solana) of that owner's agents.
    pub(crate) chain_ids: Vec<String>,
}

/// Why an activation or a recovery step did not happen (nothing changed, except where noted).
#[derive(Debug, thiserror::Error)]
pub(crate) enum KillSwitchError {
    /// Not NORMAL (a concurrent activation won): nothing changed.
    #[error("The kill switch is already active")]
    AlreadyActive,
    #[error("The kill switch is not active")]
    NotActive,
    #[error("Too many wrong recovery passwords; retry in {0} s")]
    LockedOut(u64),
    #[error("The master password is required")]
    PasswordRequired,
    /// Counted: the failure counter went up (and a RECOVERING state rolled back).
    #[error("Invalid master password")]
    WrongPassword,
    #[error(transparent)]
    Owner(OwnerAuthError),
    #[error("Recovery was already started")]
    AlreadyStarted,
    #[error("Recovery is possible at {eligible_at} ({remaining} s from now)")]
    WaitRequired { eligible_at: u64, remaining: u64 },
    #[error("The kill switch is not recovering")]
    InvalidState,
    #[error("Cannot unlock the keystore: {0}")]
    Unlock(#[source] waiaas_backends::keystore::KeystoreError),
    #[error(transparent)]
    Store(StoreError),
}

impl Coded for KillSwitchError {
    fn code(&self) -> ErrorCode {
        match self {
            KillSwitchError::AlreadyActive => ErrorCode::KillSwitchActive,
            KillSwitchError::NotActive => ErrorCode::KillSwitchNotActive,
            KillSwitchError::LockedOut(_) => ErrorCode::TooManyAttempts,
            KillSwitchError::PasswordRequired => ErrorCode::MasterPasswordRequired,
            KillSwitchError::WrongPassword => ErrorCode::InvalidMasterPassword,
            KillSwitchError::Owner(e) => e.code(),
            KillSwitchError::AlreadyStarted => ErrorCode::RecoveryAlreadyStarted,
            KillSwitchError::WaitRequired { .. } => ErrorCode::RecoveryWaitRequired,
            KillSwitchError::InvalidState => ErrorCode::InvalidRecoveryState,
            KillSwitchError::Unlock(e) => e.code(),
            KillSwitchError::Store(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            KillSwitchError::WaitRequired { eligible_at, remaining } => details([
                ("recoveryEligibleAt", crate::base::clock::iso(*eligible_at).into()),
                ("remainingSeconds", (*remaining).into()),
            ]),
            KillSwitchError::LockedOut(s) => details([("retryAfter", (*s).into())]),
            KillSwitchError::Owner(e) => e.details(),
            _ => Map::new(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            KillSwitchError::LockedOut(s) => Some(*s),
            KillSwitchError::WaitRequired { remaining, .. } => Some(*remaining),
            _ => None,
        }
    }
}

/// What a recovery request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Step 1: RECOVERING until `eligible_at`.
    Started { eligible_at: u64, wait: u64, has_owner: bool },
    /// Step 2: NORMAL again.
    Completed { agents_reactivated: u64, at: u64 },
}

/// The kill-switch service.
pub(crate) struct KillSwitch {
    db: Db,
    clock: Clock,
    signers: Signers,
    execution: Arc<dyn ExecutionControl>,
    notifier: Arc<Notifier>,
    view: RwLock<KillSwitchView>,
    /// Restricted mode: no key is decrypted and the execution workers do not run.
    restricted: AtomicBool,
    settings: Settings,
    master: Arc<MasterAuth>,
    owner_auth: Arc<OwnerAuth>,
}

impl KillSwitch {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        clock: Clock,
        signers: Signers,
        execution: Arc<dyn ExecutionControl>,
        notifier: Arc<Notifier>,
        view: KillSwitchView,
        settings: Settings,
        master: Arc<MasterAuth>,
        owner_auth: Arc<OwnerAuth>,
    ) -> KillSwitch {
        let restricted = AtomicBool::new(view.status != KillSwitchStatus::Normal);
        KillSwitch {
            db,
            clock,
            signers,
            execution,
            notifier,
            view: RwLock::new(view),
            restricted,
            settings,
            master,
            owner_auth,
        }
    }

    /// The stored state with the recovery counters (`GET /v1/admin/kill-switch`).
    pub(crate) async fn state(&self) -> Result<KillSwitchState, StoreError> {
        self.db.call(|s| s.kill_switch_state()).await
    }

    /// Whether some non-terminated agent has an owner (recovery then needs the owner's
    /// signature and waits the shorter time).
    pub(crate) async fn has_owner(&self) -> Result<bool, StoreError> {
        Ok(!self.signers_for_recovery().await?.is_empty())
    }

    /// The owners who can sign recovery step 1: one entry per (address, chain) over the live
    /// agents, with the chain ids (Ethereum) or networks (Solana) their messages may name.
    pub(crate) async fn signers_for_recovery(&self) -> Result<Vec<RecoverySigner>, StoreError> {
        let agents = self.db.call(|s| s.list_agents()).await?;
        let mut out: Vec<RecoverySigner> = Vec::new();
        for a in agents.iter().filter(|a| a.status != AgentStatus::Terminated) {
            let Some(address) = a.owner_address.clone() else { continue };
            let id = crate::domain::auth::owner::chain_id_of(a);
            match out.iter_mut().find(|o| o.address == address && o.chain == a.chain) {
                Some(o) if !o.chain_ids.contains(&id) => o.chain_ids.push(id),
                Some(_) => {}
                None => out.push(RecoverySigner { address, chain: a.chain, chain_ids: vec![id] }),
            }
        }
        Ok(out)
    }

    /// The wait step 1 starts: `kill_switch_recovery_wait_owner` when an owner exists, else
    /// `…_no_owner` (§4 step 5).
    pub(crate) fn recovery_wait(&self, has_owner: bool) -> u64 {
        let s = &self.settings.get().security;
        if has_owner { s.kill_switch_recovery_wait_owner } else { s.kill_switch_recovery_wait_no_owner }
    }

    /// `POST /v1/admin/recover` (§4): `password` from the header or the body, `owner` the
    /// bearer value carrying a `recover` signature when there is one.
    pub(crate) async fn recover(
        &self,
        password: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Recovery, KillSwitchError> {
        let now = self.clock.now();
        let state = self.state().await.map_err(KillSwitchError::Store)?;
        // 1. NORMAL.
        if state.status == KillSwitchStatus::Normal {
            return Err(KillSwitchError::NotActive);
        }
        // 2. Lockout.
        if let Some(until) = state.lockout_until.filter(|u| *u > now) {
            return Err(KillSwitchError::LockedOut(until - now));
        }
        // 3. The password, with its own persistent counter.
        let password = password.filter(|p| !p.is_empty()).ok_or(KillSwitchError::PasswordRequired)?;
        if !self.master.check(password).await {
            let ctx = OpCtx::new("admin", now);
            let failure = self.db.call(move |s| s.recovery_fail(&ctx)).await.map_err(KillSwitchError::Store)?;
            if failure.rolled_back {
                self.set_view(KillSwitchStatus::Activated);
            }
            tracing::error!("kill-switch recovery: wrong master password ({failure:?})");
            return Err(KillSwitchError::WrongPassword);
        }
        match state.status {
            KillSwitchStatus::Activated => self.recovery_step_one(owner, now).await,
            _ => self.recovery_step_two(password, &state, now).await,
        }
    }

    async fn recovery_step_one(&self, owner: Option<&str>, now: u64) -> Result<Recovery, KillSwitchError> {
        let has_owner = self.has_owner().await.map_err(KillSwitchError::Store)?;
        let signer: Option<Owner> = if has_owner {
            let raw = owner.ok_or(KillSwitchError::Owner(OwnerAuthError::Required))?;
            let target = Target { action: OwnerAction::Recover, target: "system".into(), agent: None, summary: None };
            Some(self.owner_auth.verify(raw, &target).await.map_err(KillSwitchError::Owner)?)
        } else {
            None
        };
        let wait = self.recovery_wait(has_owner);
        let actor = match &signer {
            Some(o) => format!("owner:{}+admin", o.address),
            None => "admin".into(),
        };
        let ctx = OpCtx::new(actor, now);
        let who = signer.as_ref().map(|o| (o.chain, o.address.clone()));
        let eligible_at = match self.db.call(move |s| s.recovery_start(wait, who, &ctx)).await {
            Ok(e) => e,
            Err(StoreError::Conflict { .. }) => return Err(KillSwitchError::AlreadyStarted),
            Err(e) => return Err(KillSwitchError::Store(e)),
        };
        self.set_view(KillSwitchStatus::Recovering);
        Ok(Recovery::Started { eligible_at, wait, has_owner })
    }

    async fn recovery_step_two(
        &self,
        password: &str,
        state: &KillSwitchState,
        now: u64,
    ) -> Result<Recovery, KillSwitchError> {
        let eligible_at = state.recovery_eligible_at.unwrap_or(now);
        if now < eligible_at {
            return Err(KillSwitchError::WaitRequired { eligible_at, remaining: eligible_at - now });
        }
        // Decrypt every keystore agent's key with the supplied password before the state changes:
        // a failure leaves the kill switch RECOVERING.
        let agents = self.db.call(|s| s.list_agents()).await.map_err(KillSwitchError::Store)?;
        let infos = crate::domain::agents::keystore_keys(&agents);
        let candidate = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let unlocked =
            self.signers.keystore.decrypt_from_disk(candidate, infos).await.map_err(KillSwitchError::Unlock)?;
        let ctx = OpCtx::new("admin", now);
        let reactivated = match self.db.call(move |s| s.recovery_complete(&ctx)).await {
            Ok(n) => n,
            Err(StoreError::Conflict { .. }) => return Err(KillSwitchError::InvalidState),
            Err(e) => return Err(KillSwitchError::Store(e)),
        };
        self.signers.keystore.install(unlocked).await;
        let ev = AuditEvent::new(AuditEventType::KeystoreUnlocked, "system").detail("reason", "kill_switch_recovery");
        if let Err(e) = self.db.call(move |s| s.append_audit(ev, &OpCtx::new("system", now))).await {
            tracing::warn!("cannot audit the keystore unlock: {e}");
        }
        *self.view.write().expect("kill switch lock") =
            KillSwitchView { status: KillSwitchStatus::Normal, activated_at: None, reason: None };
        self.restricted.store(false, Ordering::SeqCst);
        self.execution.start();
        tracing::warn!("kill switch recovered; {reactivated} agents active again");
        self.notifier.emit(Message::kill_switch_recovered(reactivated, now));
        Ok(Recovery::Completed { agents_reactivated: reactivated, at: now })
    }

    fn set_view(&self, status: KillSwitchStatus) {
        self.view.write().expect("kill switch lock").status = status;
    }

    /// Takes the stored state as the in-memory one (a takeover, 13-postgres-ha.md §6.2 step 5:
    /// another replica may have activated or recovered meanwhile). Workers are the caller's.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn adopt(&self, view: KillSwitchView) {
        self.restricted.store(view.status != KillSwitchStatus::Normal, Ordering::SeqCst);
        *self.view.write().expect("kill switch lock") = view;
    }

    /// The state the guard checks.
    pub(crate) fn view(&self) -> KillSwitchView {
        self.view.read().expect("kill switch lock").clone()
    }

    /// Whether the daemon runs restricted (kill switch not NORMAL).
    pub(crate) fn is_restricted(&self) -> bool {
        self.restricted.load(Ordering::Relaxed)
    }

    /// Activates the kill switch (§2.2): the cascade in one write transaction, then — in this
    /// order — the guard on, the keystore locked, the execution workers stopped, the
    /// `KILL_SWITCH_ACTIVATED` broadcast queued.
    pub(crate) async fn activate(
        self: &Arc<Self>,
        reason: String,
        actor: KillSwitchActor,
        ctx: OpCtx,
    ) -> Result<ActivationReport, KillSwitchError> {
        let (r, c) = (reason.clone(), ctx.clone());
        let report = self.db.call(move |s| s.activate_kill_switch(&r, actor, &c)).await.map_err(|e| match e {
            StoreError::Conflict { .. } => KillSwitchError::AlreadyActive,
            other => KillSwitchError::Store(other),
        })?;
        crate::base::failpoint::pass(crate::base::failpoint::Point::KillSwitchActivated);
        *self.view.write().expect("kill switch lock") = KillSwitchView {
            status: KillSwitchStatus::Activated,
            activated_at: Some(ctx.now),
            reason: Some(reason.clone()),
        };
        self.restricted.store(true, Ordering::SeqCst);
        tracing::error!("kill switch activated by {}: {reason}", actor.as_str());
        if !self.signers.keystore.lock().await {
            tracing::warn!("keystore lock waited 10 s for in-flight signatures");
        }
        let ev = AuditEvent::new(AuditEventType::KeystoreLocked, "system").detail("reason", "kill_switch");
        let now = self.clock.now();
        if let Err(e) = self.db.call(move |s| s.append_audit(ev, &OpCtx::new("system", now))).await {
            tracing::warn!("cannot audit the keystore lock: {e}");
        }
        self.execution.stop();
        // Broadcast after the response path is clear: `emit` only queues.
        self.notifier.emit(Message::kill_switch_activated(&reason, actor.as_str(), ctx.now));
        Ok(report)
    }
}
