//! Shutdown state shared by the HTTP layer, the signal handlers and the start task
//! (01-daemon.md §9): a one-shot trigger and a count of in-flight requests.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// Trigger and in-flight counter.
pub(crate) struct Shutdown {
    trigger: watch::Sender<Option<String>>,
    in_flight: AtomicUsize,
}

/// Counts one request as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { trigger: watch::channel(None).0, in_flight: AtomicUsize::new(0) }
    }
}

impl Shutdown {
    /// Starts shutdown; only the first trigger counts (returns whether this one did).
    pub(crate) fn trigger(&self, by: &str) -> bool {
        self.trigger.send_if_modified(|v| {
            if v.is_some() {
                return false;
            }
            *v = Some(by.to_string());
            true
        })
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.trigger.borrow().is_some()
    }

    /// Waits for the trigger and returns what fired it.
    pub(crate) async fn triggered(&self) -> String {
        let mut rx = self.trigger.subscribe();
        loop {
            if let Some(by) = rx.borrow_and_update().clone() {
                return by;
            }
            if rx.changed().await.is_err() {
                return "closed".into();
            }
        }
    }

    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}
