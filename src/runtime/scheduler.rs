//! Background workers (01-daemon.md §7): one task each, runs never overlap, a failing or
//! panicking run is logged and retried at the next interval. Workers also wake when the dev
//! clock is advanced, so due work is picked up at once.
//!
//! The registry only schedules; what each worker does lives in the domain module it belongs to
//! (the app wires them in `app::workers`). Workers can be stopped one by one — the kill
//! switch stops the execution workers and recovery starts them again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::base::clock::Clock;

/// What the status views show about one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkerState {
    /// A run is in progress.
    pub(crate) running: bool,
    /// The worker is scheduled (not stopped).
    pub(crate) scheduled: bool,
    pub(crate) last_run_at: Option<u64>,
    pub(crate) last_error: Option<String>,
}

struct Task {
    name: &'static str,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

struct Inner {
    clock: Clock,
    states: Mutex<BTreeMap<&'static str, WorkerState>>,
    tasks: Mutex<Vec<Task>>,
}

/// The running workers and their last results.
#[derive(Clone)]
pub(crate) struct Registry(Arc<Inner>);

impl Registry {
    pub(crate) fn new(clock: Clock) -> Registry {
        Registry(Arc::new(Inner { clock, states: Mutex::default(), tasks: Mutex::default() }))
    }

    fn set(&self, name: &'static str, f: impl FnOnce(&mut WorkerState)) {
        f(self.0.states.lock().expect("worker states").entry(name).or_default());
    }

    /// Starts `job` every `interval` (first run right away when `at_start`). A worker of the
    /// same name that is already scheduled is left alone.
    pub(crate) fn spawn<F, Fut>(&self, name: &'static str, interval: Duration, at_start: bool, job: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let mut tasks = self.0.tasks.lock().expect("worker tasks");
        if tasks.iter().any(|t| t.name == name) {
            return;
        }
        self.set(name, |s| s.scheduled = true);
        let (stop_tx, mut stop) = watch::channel(false);
        let me = self.clone();
        let handle = tokio::spawn(async move {
            let mut first = at_start;
            let mut advances = me.0.clock.advances();
            loop {
                if !first {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        Ok(()) = advances.changed() => {}
                        _ = stop.changed() => return,
                    }
                }
                first = false;
                if *stop.borrow() {
                    return;
                }
                me.set(name, |s| s.running = true);
                let result = match tokio::spawn(job()).await {
                    Ok(r) => r,
                    Err(e) => Err(format!("panicked: {e}")),
                };
                if let Err(e) = &result {
                    tracing::warn!("worker {name} failed: {e}");
                }
                let now = me.0.clock.now();
                me.set(name, |s| {
                    s.running = false;
                    s.last_run_at = Some(now);
                    s.last_error = result.err();
                });
            }
        });
        tasks.push(Task { name, stop: stop_tx, handle });
    }

    /// Stops the named workers and waits for runs in progress; they can be spawned again.
    pub(crate) async fn stop(&self, names: &[&str]) {
        let stopped: Vec<Task> = {
            let mut tasks = self.0.tasks.lock().expect("worker tasks");
            let (stop, keep) = std::mem::take(&mut *tasks).into_iter().partition(|t| names.contains(&t.name));
            *tasks = keep;
            stop
        };
        for t in stopped {
            let _ = t.stop.send(true);
            let _ = t.handle.await;
            self.set(t.name, |s| s.scheduled = false);
        }
    }

    /// Stops every worker and waits for runs in progress.
    pub(crate) async fn stop_all(&self) {
        let names: Vec<&str> = self.0.tasks.lock().expect("worker tasks").iter().map(|t| t.name).collect();
        self.stop(&names).await;
    }

    /// How many workers are scheduled.
    pub(crate) fn count(&self) -> usize {
        self.0.tasks.lock().expect("worker tasks").len()
    }

    /// Every worker ever scheduled, by name.
    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, WorkerState> {
        self.0.states.lock().expect("worker states").clone()
    }
}
