//! The running daemon: shared state, the start sequence (01-daemon.md §6), workers and shutdown.
//!
//! [`App`] is the one value every request handler and worker shares. Storage calls go through
//! [`App::db`], which runs them on a blocking thread so no redb transaction ever spans an
//! `.await`.

pub(crate) mod lock;
pub(crate) mod logging;
pub(crate) mod shutdown;
mod start;
pub(crate) mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use waiaas_backends::keystore::KeystoreBackend;
use waiaas_backends::ledger::device::{LedgerBackend, LedgerDevice};
use waiaas_backends::seam::SignerBackend;
use waiaas_storage::{Backend, KillSwitchStatus, Store, StoreError};

use crate::auth::jwt::JwtKeys;
use crate::auth::master::MasterAuth;
use crate::auth::nonce::NonceStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::datadir::Layout;
use crate::error::ApiError;
use crate::http::ratelimit::RateLimiter;

pub(crate) use start::{StartOptions, run};

/// In-memory mirror of the kill-switch state for the HTTP guard (08-killswitch-autostop.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KillSwitchView {
    pub(crate) status: KillSwitchStatus,
    pub(crate) activated_at: Option<u64>,
    pub(crate) reason: Option<String>,
}

/// State shared by every handler and worker.
pub(crate) struct App {
    pub(crate) config: RwLock<Arc<Config>>,
    pub(crate) layout: Layout,
    pub(crate) store: Arc<Store>,
    pub(crate) clock: Clock,
    pub(crate) started_at: u64,
    pub(crate) dev_mode: bool,
    pub(crate) port: u16,
    pub(crate) restricted: AtomicBool,
    pub(crate) kill_switch: RwLock<KillSwitchView>,
    pub(crate) shutdown: shutdown::Shutdown,
    pub(crate) limiter: RateLimiter,
    pub(crate) master: MasterAuth,
    pub(crate) nonces: NonceStore,
    pub(crate) jwt: RwLock<JwtKeys>,
    pub(crate) workers: workers::Registry,
    pub(crate) logging: logging::Handle,
    /// The encrypted keystore backend (locked while the kill switch is active).
    pub(crate) keystore: Arc<KeystoreBackend>,
    /// The process's one Ledger device, opened lazily; `None` when no transport is available.
    pub(crate) ledger: Option<Arc<LedgerBackend>>,
    /// Chain adapters, one per (chain, network).
    pub(crate) adapters: crate::chains::Registry,
    /// Per-agent execution locks (EVM nonces are used in order, 06-pipeline.md §6.4).
    pub(crate) agent_locks: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl App {
    /// The current configuration (replaced on SIGHUP).
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// Runs a storage call on a blocking thread.
    pub(crate) async fn db<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Invariant("storage task cancelled")),
        }
    }

    /// As [`db`](Self::db), mapping any storage failure to a logged 500.
    pub(crate) async fn db_api<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.db(f).await.map_err(|e| {
            tracing::error!(error = %e, "storage failure");
            ApiError::internal()
        })
    }

    pub(crate) fn kill_switch(&self) -> KillSwitchView {
        self.kill_switch.read().expect("kill switch lock").clone()
    }

    pub(crate) fn is_restricted(&self) -> bool {
        self.restricted.load(Ordering::Relaxed)
    }

    /// The signer backend of an agent's key.
    pub(crate) fn signer(&self, backend: Backend) -> Option<&dyn SignerBackend> {
        match backend {
            Backend::Keystore => Some(self.keystore.as_ref()),
            Backend::Ledger => self.ledger.as_deref().map(|l| l as &dyn SignerBackend),
        }
    }

    /// The execution lock of one agent.
    pub(crate) fn agent_lock(&self, agent: uuid::Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.agent_locks.lock().expect("agent locks").entry(agent).or_default().clone()
    }

    /// The Ledger device, when configured.
    pub(crate) fn ledger_device(&self) -> Option<&Arc<LedgerDevice>> {
        self.ledger.as_ref().map(|l| l.device())
    }

    /// Uptime in seconds of daemon time.
    pub(crate) fn uptime(&self) -> u64 {
        self.clock.now().saturating_sub(self.started_at)
    }
}
