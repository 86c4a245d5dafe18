//! The background workers (01-daemon.md §7): which exist and what each does. The schedule and
//! the bookkeeping live in `runtime::scheduler`; every job here calls a domain service or storage
//! operation — never an HTTP handler.
//!
//! The execution set ([`EXECUTION_WORKERS`]) does not run while the kill switch holds. This is
//! the one place that stops and starts it: the kill-switch service calls [`ExecutionWorkers`] at
//! activation and at the end of recovery, whatever caused them (an operator, the owner, AutoStop
//! or the integrity check).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::app::App;
use crate::domain::emergency::killswitch::ExecutionControl;

/// Workers that act on transactions or keys: they do not run while the kill switch is active.
pub(crate) const EXECUTION_WORKERS: &[&str] =
    &["delay-queue", "approval-timeout", "integrity-check", "auto-stop-reload", "nonce-upkeep"];

/// The execution set as the kill-switch service sees it.
pub(crate) struct ExecutionWorkers(pub(crate) Weak<App>);

impl ExecutionControl for ExecutionWorkers {
    fn stop(&self) {
        if let Some(app) = self.0.upgrade() {
            // From a task: the caller may be one of these workers, and must not wait on itself.
            tokio::spawn(async move { app.workers.stop(EXECUTION_WORKERS).await });
        }
    }

    fn start(&self) {
        if let Some(app) = self.0.upgrade() {
            start_execution_workers(&app);
        }
    }
}

/// Registers a job that gets the app.
fn every<F, Fut>(app: &Arc<App>, name: &'static str, interval: Duration, at_start: bool, job: F)
where
    F: Fn(Arc<App>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let a = app.clone();
    app.workers.spawn(name, interval, at_start, move || job(a.clone()));
}

/// Starts the workers. In restricted mode only those marked "yes" in §7.
pub(crate) fn start_all(app: &Arc<App>) {
    every(app, "session-cleanup", Duration::from_secs(60), false, |app| async move {
        let now = app.clock.now();
        app.db.call(move |s| s.cleanup_sessions(now)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    every(app, "zombie-sweep", Duration::from_secs(300), true, |app| async move {
        let now = app.clock.now();
        app.db.call(move |s| s.sweep_pending(now, 900)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    if app.nonces.persistent() {
        every(app, "nonce-cleanup", Duration::from_secs(300), false, |app| async move {
            let now = app.clock.now();
            app.db.call(move |s| s.cleanup_nonces(now)).await.map(|_| ()).map_err(|e| e.to_string())
        });
    }
    every(app, "idempotency-cleanup", Duration::from_secs(3600), false, |app| async move {
        let before = app.clock.now().saturating_sub(86_400);
        app.db.call(move |s| s.cleanup_idempotency(before)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    if !app.kill_switch.is_restricted() {
        start_execution_workers(app);
    }
    let backup_interval = app.settings.get().database.backup_interval;
    if backup_interval > 0 {
        every(app, "backup", Duration::from_secs(backup_interval), false, |app| async move {
            let keep = app.settings.get().database.backup_keep;
            let created =
                crate::domain::backup::create_running(&app.db, &app.layout, app.clock.now(), true, keep, "system")
                    .await
                    .map_err(|e| e.to_string())?;
            tracing::info!("automatic backup {}", created.path.display());
            Ok(())
        });
    }
    every(app, "confirmation", Duration::from_secs(10), false, |app| async move {
        app.pipeline.confirmation_pass().await.map_err(|e| e.to_string())
    });
    let health = app.settings.get().notifications.health_check_interval;
    every(app, "channel-health", Duration::from_secs(health), false, |app| async move {
        app.notifier.health_pass().await.map_err(|e| e.to_string())
    });
    every(app, "notification-retention", Duration::from_secs(86_400), false, |app| async move {
        let n = app.notifier.retention_pass().await.map_err(|e| e.to_string())?;
        if n > 0 {
            tracing::info!("notification log: {n} rows past retention deleted");
        }
        Ok(())
    });
    every(app, "adapter-reconnect", Duration::from_secs(30), false, |app| async move {
        app.chains.reconnect().await;
        Ok(())
    });
    every(app, "status-log", Duration::from_secs(300), false, |app| async move {
        if app.settings.get().daemon.log_level <= crate::runtime::config::LogLevel::Debug {
            tracing::debug!("status: uptime {}s, workers {}", app.uptime(), app.workers.count());
        }
        Ok(())
    });
}

/// The workers of [`EXECUTION_WORKERS`].
fn start_execution_workers(app: &Arc<App>) {
    every(app, "delay-queue", Duration::from_secs(10), true, |app| async move {
        app.pipeline.delay_pass().await.map_err(|e| e.to_string())
    });
    every(app, "approval-timeout", Duration::from_secs(30), true, |app| async move {
        app.pipeline.approval_timeout_pass().await.map_err(|e| e.to_string())
    });
    every(app, "auto-stop-reload", Duration::from_secs(300), true, |app| async move {
        app.autostop.reload().await.map_err(|e| e.to_string())
    });
    // PostgreSQL: unsynced EVM accounts and the gaps releases left (13-postgres-ha.md §6.2).
    #[cfg(feature = "postgres")]
    if app.db.store().postgres().is_some() {
        every(app, "nonce-upkeep", Duration::from_secs(5), false, |app| async move {
            app.pipeline.nonce_upkeep_pass().await.map_err(|e| e.to_string())
        });
    }
    let interval = app.settings.get().security.integrity_check_interval;
    if interval > 0 {
        every(app, "integrity-check", Duration::from_secs(interval), false, |app| async move {
            integrity_check(&app).await
        });
    }
}

/// 03-keys.md §10: every key file of a non-terminated keystore agent must still be what the
/// database says; any failure activates the kill switch (actor `system`).
async fn integrity_check(app: &Arc<App>) -> Result<(), String> {
    if app.kill_switch.is_restricted() {
        return Ok(());
    }
    let agents = app.db.call(|s| s.list_agents()).await.map_err(|e| e.to_string())?;
    let infos = crate::domain::agents::keystore_keys(&agents);
    let problem = app
        .signers
        .keystore
        .with(|ks| infos.iter().find_map(|a| ks.check_integrity(a).err().map(|p| format!("agent {}: {p}", a.agent_id))))
        .await
        .map_err(|e| e.to_string())?;
    let Some(problem) = problem else { return Ok(()) };
    let reason = format!("INTEGRITY_CHECK_FAILED: {problem}");
    tracing::error!("{reason}");
    let ctx = waiaas_storage::OpCtx::new("system", app.clock.now());
    match app.kill_switch.activate(reason, waiaas_storage::KillSwitchActor::System, ctx).await {
        Ok(_) | Err(crate::domain::emergency::killswitch::KillSwitchError::AlreadyActive) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
