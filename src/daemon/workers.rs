//! Background workers (01-daemon.md §7): one task each, runs never overlap, a failing or
//! panicking run is logged and retried at the next interval. Workers also wake when the dev
//! clock is advanced so due work is picked up at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::App;
use crate::clock::iso;

#[derive(Debug, Clone, Default)]
struct State {
    running: bool,
    last_run_at: Option<u64>,
    last_error: Option<String>,
}

/// The running workers and their last results.
pub(crate) struct Registry {
    states: Mutex<BTreeMap<&'static str, State>>,
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { states: Mutex::new(BTreeMap::new()), stop: watch::channel(false).0, handles: Mutex::new(Vec::new()) }
    }
}

impl Registry {
    fn set(&self, name: &'static str, f: impl FnOnce(&mut State)) {
        f(self.states.lock().expect("worker states").entry(name).or_default());
    }

    /// Starts `job` every `interval` (first run right away when `at_start`).
    pub(crate) fn spawn<F, Fut>(&self, app: &Arc<App>, name: &'static str, interval: Duration, at_start: bool, job: F)
    where
        F: Fn(Arc<App>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.set(name, |_| {});
        let mut stop = self.stop.subscribe();
        let app = app.clone();
        let job = Arc::new(job);
        let handle = tokio::spawn(async move {
            let mut first = at_start;
            loop {
                if !first {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = app.clock.advanced() => {}
                        _ = stop.changed() => return,
                    }
                }
                first = false;
                if *stop.borrow() {
                    return;
                }
                app.workers.set(name, |s| s.running = true);
                let run = tokio::spawn((job)(app.clone()));
                let result = match run.await {
                    Ok(r) => r,
                    Err(e) => Err(format!("panicked: {e}")),
                };
                let now = app.clock.now();
                if let Err(e) = &result {
                    tracing::warn!("worker {name} failed: {e}");
                }
                app.workers.set(name, |s| {
                    s.running = false;
                    s.last_run_at = Some(now);
                    s.last_error = result.err();
                });
            }
        });
        self.handles.lock().expect("worker handles").push(handle);
    }

    pub(crate) fn count(&self) -> usize {
        self.handles.lock().expect("worker handles").len()
    }

    /// Stops every worker and waits for runs in progress.
    pub(crate) async fn stop_all(&self) {
        let _ = self.stop.send(true);
        let handles = std::mem::take(&mut *self.handles.lock().expect("worker handles"));
        for h in handles {
            let _ = h.await;
        }
    }

    /// `{name: {running, lastRunAt, lastError}}` for the admin status.
    pub(crate) fn snapshot(&self) -> Value {
        let states = self.states.lock().expect("worker states");
        Value::Object(
            states
                .iter()
                .map(|(k, s)| {
                    (
                        k.to_string(),
                        json!({"running": s.running, "lastRunAt": s.last_run_at.map(iso), "lastError": s.last_error}),
                    )
                })
                .collect(),
        )
    }
}

/// Starts the workers of this scope. In restricted mode only those marked "yes" in §7.
pub(crate) fn start_all(app: &Arc<App>) {
    let w = &app.workers;
    w.spawn(app, "session-cleanup", Duration::from_secs(60), false, |app| async move {
        let now = app.clock.now();
        app.db(move |s| s.cleanup_sessions(now)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    w.spawn(app, "zombie-sweep", Duration::from_secs(300), true, |app| async move {
        let now = app.clock.now();
        app.db(move |s| s.sweep_pending(now, 900)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    if app.config().security.nonce_storage_redb {
        w.spawn(app, "nonce-cleanup", Duration::from_secs(300), false, |app| async move {
            let now = app.clock.now();
            app.db(move |s| s.cleanup_nonces(now)).await.map(|_| ()).map_err(|e| e.to_string())
        });
    }
    w.spawn(app, "idempotency-cleanup", Duration::from_secs(3600), false, |app| async move {
        let before = app.clock.now().saturating_sub(86_400);
        app.db(move |s| s.cleanup_idempotency(before)).await.map(|_| ()).map_err(|e| e.to_string())
    });
    let interval = app.config().security.integrity_check_interval;
    if interval > 0 && !app.is_restricted() {
        w.spawn(app, "integrity-check", Duration::from_secs(interval), false, |app| async move {
            integrity_check(&app).await
        });
    }
    let backup_interval = app.config().database.backup_interval;
    if backup_interval > 0 {
        w.spawn(app, "backup", Duration::from_secs(backup_interval), false, |app| async move {
            automatic_backup(&app).await
        });
    }
    w.spawn(app, "confirmation", Duration::from_secs(10), false, |app| async move {
        crate::pipeline::confirmation_pass(&app).await
    });
    w.spawn(app, "adapter-reconnect", Duration::from_secs(30), false, |app| async move {
        app.adapters.reconnect(app.clock.now()).await;
        Ok(())
    });
    w.spawn(app, "status-log", Duration::from_secs(300), false, |app| async move {
        if app.config().daemon.log_level <= crate::config::LogLevel::Debug {
            tracing::debug!("status: uptime {}s, workers {}", app.uptime(), app.workers.count());
        }
        Ok(())
    });
}

/// 03-keys.md §10: every key file of a non-terminated keystore agent must still be what the
/// database says; any failure activates the kill switch (actor `system`). Skipped once the kill
/// switch is on (restricted mode).
async fn integrity_check(app: &Arc<App>) -> Result<(), String> {
    if app.is_restricted() {
        return Ok(());
    }
    let agents = app.db(|s| s.list_agents()).await.map_err(|e| e.to_string())?;
    let infos: Vec<_> = agents
        .iter()
        .filter(|a| {
            a.status != waiaas_storage::AgentStatus::Terminated && a.backend == waiaas_storage::Backend::Keystore
        })
        .map(crate::agents::key_info)
        .collect();
    let problem = app
        .keystore
        .with(|ks| infos.iter().find_map(|a| ks.check_integrity(a).err().map(|p| format!("agent {}: {p}", a.agent_id))))
        .await
        .map_err(|e| e.to_string())?;
    let Some(problem) = problem else { return Ok(()) };
    let reason = format!("INTEGRITY_CHECK_FAILED: {problem}");
    tracing::error!("{reason}");
    let ctx = waiaas_storage::OpCtx::new("system", app.clock.now());
    match crate::killswitch::activate(app, reason, waiaas_storage::KillSwitchActor::System, ctx).await {
        Ok(_) | Err(waiaas_storage::StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// An automatic backup archive, keeping `backup_keep` of them.
async fn automatic_backup(app: &Arc<App>) -> Result<(), String> {
    let created = crate::http::handlers::create_backup(app, true, "system").await.map_err(|e| e.message)?;
    let keep = app.config().database.backup_keep;
    let layout = app.layout.clone();
    tokio::task::spawn_blocking(move || crate::backup::prune(&layout, true, keep))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!("automatic backup {}", created.path.display());
    Ok(())
}
