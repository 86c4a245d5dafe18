//! The kill switch on the daemon side (08-killswitch-autostop.md): the in-memory guard state the
//! HTTP layer checks on every request, and activation — the storage cascade commits first, then
//! the guard switches on, the keystore is locked and the execution workers stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use waiaas_storage::{ActivationReport, AuditEvent, KillSwitchActor, KillSwitchStatus, OpCtx, StoreError};

use crate::clock::Clock;
use crate::error::{Coded, ErrorCode};
use crate::notify::{Message, Notifier};
use crate::runtime::workers::Registry;
use crate::runtime::{Db, Signers};

/// Workers that act on transactions or keys: they do not run while the kill switch is active
/// (01-daemon.md §7 "runs in restricted mode: no").
pub(crate) const EXECUTION_WORKERS: &[&str] =
    &["delay-queue", "approval-timeout", "integrity-check", "auto-stop-reload"];

/// In-memory mirror of the kill-switch state for the HTTP guard (08-killswitch-autostop.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KillSwitchView {
    pub(crate) status: KillSwitchStatus,
    pub(crate) activated_at: Option<u64>,
    pub(crate) reason: Option<String>,
}

/// Why an activation did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KillSwitchError {
    /// Not NORMAL (a concurrent activation won): nothing changed.
    #[error("The kill switch is already active")]
    AlreadyActive,
    #[error(transparent)]
    Store(StoreError),
}

impl Coded for KillSwitchError {
    fn code(&self) -> ErrorCode {
        match self {
            KillSwitchError::AlreadyActive => ErrorCode::KillSwitchActive,
            KillSwitchError::Store(_) => ErrorCode::InternalError,
        }
    }
}

/// The kill-switch service.
pub(crate) struct KillSwitch {
    db: Db,
    clock: Clock,
    signers: Signers,
    workers: Registry,
    notifier: Arc<Notifier>,
    view: RwLock<KillSwitchView>,
    /// Restricted mode: no key is decrypted and the execution workers do not run.
    restricted: AtomicBool,
}

impl KillSwitch {
    pub(crate) fn new(
        db: Db,
        clock: Clock,
        signers: Signers,
        workers: Registry,
        notifier: Arc<Notifier>,
        view: KillSwitchView,
    ) -> KillSwitch {
        let restricted = AtomicBool::new(view.status != KillSwitchStatus::Normal);
        KillSwitch { db, clock, signers, workers, notifier, view: RwLock::new(view), restricted }
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
        let ev = AuditEvent::new("KEYSTORE_LOCKED", "system").detail("reason", "kill_switch");
        let now = self.clock.now();
        if let Err(e) = self.db.call(move |s| s.append_audit(ev, &OpCtx::new("system", now))).await {
            tracing::warn!("cannot audit the keystore lock: {e}");
        }
        // A worker may be the caller (the integrity check): stop the others from a task so
        // this one is not waiting on itself.
        let workers = self.workers.clone();
        tokio::spawn(async move { workers.stop(EXECUTION_WORKERS).await });
        // Broadcast after the response path is clear: `emit` only queues.
        self.notifier.emit(Message::kill_switch_activated(&reason, actor.as_str(), ctx.now));
        Ok(report)
    }
}
