//! Kill-switch activation on the daemon side (08-killswitch-autostop.md §2.2): the storage
//! cascade commits first; then the in-memory guard switches on and the keystore is locked.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use waiaas_storage::{ActivationReport, AuditEvent, KillSwitchActor, KillSwitchStatus, OpCtx, StoreError};

use crate::daemon::{App, KillSwitchView};

/// Activates the kill switch. `Conflict` when it is not NORMAL (nothing changed).
pub(crate) async fn activate(
    app: &Arc<App>,
    reason: String,
    actor: KillSwitchActor,
    ctx: OpCtx,
) -> Result<ActivationReport, StoreError> {
    let (r, c) = (reason.clone(), ctx.clone());
    let report = app.db(move |s| s.activate_kill_switch(&r, actor, &c)).await?;
    *app.kill_switch.write().expect("kill switch lock") = KillSwitchView {
        status: KillSwitchStatus::Activated,
        activated_at: Some(ctx.now),
        reason: Some(reason.clone()),
    };
    app.restricted.store(true, Ordering::SeqCst);
    tracing::error!("kill switch activated by {}: {reason}", actor.as_str());
    if !app.keystore.lock().await {
        tracing::warn!("keystore lock waited 10 s for in-flight signatures");
    }
    let ev = AuditEvent::new("KEYSTORE_LOCKED", "system").detail("reason", "kill_switch");
    let now = app.clock.now();
    if let Err(e) = app.db(move |s| s.append_audit(ev, &OpCtx::new("system", now))).await {
        tracing::warn!("cannot audit the keystore lock: {e}");
    }
    Ok(report)
}
