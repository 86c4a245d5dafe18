//! The composition root of a running daemon: the shared runtime pieces and the domain services
//! built from them, wired once at start, and the background workers (`workers`), which this
//! folder owns: it alone starts them, and stops and restarts the execution set when the kill
//! switch says so.
//!
//! The HTTP layer and the daemon hold an [`App`] and call its services; the services themselves
//! never see it — each was built with just the pieces it uses (see `runtime`). This folder may
//! call `domain` and everything below it, never `http`, `daemon` or `cli`.

pub(crate) mod leadership;
pub(crate) mod metrics;
pub(crate) mod workers;

use std::sync::{Arc, Weak};

use crate::adapters::chains::Registry;
use crate::adapters::notify::Notifier;
use crate::base::clock::Clock;
use crate::base::datadir::Layout;
use crate::domain::agents::Agents;
use crate::domain::auth::jwt::Tokens;
use crate::domain::auth::master::MasterAuth;
use crate::domain::auth::nonce::Nonces;
use crate::domain::auth::owner::OwnerAuth;
use crate::domain::emergency::killswitch::KillSwitch;
use crate::domain::pipeline::Pipeline;
use crate::domain::policy_admin::Policies;
use crate::domain::sessions::Sessions;
use crate::runtime::scheduler::Registry as Workers;
use crate::runtime::{Db, Settings, Shutdown, Signers};

/// Everything a running daemon shares.
pub(crate) struct App {
    pub(crate) settings: Settings,
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) layout: Layout,
    pub(crate) started_at: u64,
    pub(crate) signers: Signers,
    pub(crate) chains: Arc<Registry>,
    pub(crate) shutdown: Shutdown,
    pub(crate) workers: Workers,
    // Authentication state.
    pub(crate) master: Arc<MasterAuth>,
    pub(crate) tokens: Tokens,
    pub(crate) nonces: Arc<Nonces>,
    pub(crate) owner_auth: Arc<OwnerAuth>,
    // Domain services.
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) kill_switch: Arc<KillSwitch>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) agents: Agents,
    pub(crate) sessions: Sessions,
    pub(crate) policies: Policies,
    pub(crate) autostop: Arc<crate::domain::emergency::autostop::AutoStop>,
    pub(crate) withdrawals: crate::domain::emergency::withdraw::Withdrawals,
    pub(crate) console: crate::domain::owner_console::OwnerConsole,
    /// Leader, standby, or the single redb process.
    pub(crate) leadership: Arc<leadership::Leadership>,
}

/// Why a daemon is not ready for traffic (`GET /ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReady {
    KeystoreLocked,
    KillSwitch,
    ShuttingDown,
    Database,
    Standby,
}

impl NotReady {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotReady::KeystoreLocked => "keystore_locked",
            NotReady::KillSwitch => "kill_switch",
            NotReady::ShuttingDown => "shutting_down",
            NotReady::Database => "database",
            NotReady::Standby => "standby",
        }
    }
}

/// What [`App::new`] is built from: the pieces the start sequence opened.
pub(crate) struct Parts {
    pub(crate) settings: Settings,
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) layout: Layout,
    pub(crate) signers: Signers,
    pub(crate) chains: Arc<Registry>,
    pub(crate) master: MasterAuth,
    pub(crate) tokens: Tokens,
    pub(crate) nonces: crate::domain::auth::nonce::NonceStore,
    pub(crate) kill_switch: crate::domain::emergency::killswitch::KillSwitchView,
    pub(crate) leadership: Arc<leadership::Leadership>,
}

impl App {
    /// Wires the services. Nothing runs in the background until [`App::start_workers`].
    pub(crate) fn build(p: Parts) -> Arc<App> {
        Arc::new_cyclic(|me| App::new(p, me.clone()))
    }

    fn new(p: Parts, me: Weak<App>) -> App {
        let workers = Workers::new(p.clock.clone());
        let notifier = Notifier::start(p.db.clone(), p.clock.clone(), p.settings.clone());
        let nonces = Arc::new(Nonces::new(p.nonces, p.db.clone(), p.clock.clone()));
        let owner_auth = Arc::new(OwnerAuth::new(
            p.db.clone(),
            nonces.clone(),
            p.chains.clone(),
            p.clock.clone(),
            p.settings.clone(),
        ));
        let master = Arc::new(p.master);
        let kill_switch = Arc::new(KillSwitch::new(
            p.db.clone(),
            p.clock.clone(),
            p.signers.clone(),
            Arc::new(workers::ExecutionWorkers(me)),
            notifier.clone(),
            p.kill_switch,
            p.settings.clone(),
            master.clone(),
            owner_auth.clone(),
        ));
        let (feed, events) = crate::domain::emergency::autostop::AutoStopFeed::channel();
        let autostop = crate::domain::emergency::autostop::AutoStop::start(
            p.db.clone(),
            p.clock.clone(),
            notifier.clone(),
            kill_switch.clone(),
            events,
        );
        let pipeline = Arc::new(Pipeline::new(
            p.db.clone(),
            p.clock.clone(),
            p.settings.clone(),
            p.chains.clone(),
            p.signers.clone(),
            notifier.clone(),
            feed,
        ));
        let agents = Agents::new(
            p.db.clone(),
            p.clock.clone(),
            p.settings.clone(),
            p.signers.clone(),
            p.chains.clone(),
            owner_auth.clone(),
            notifier.clone(),
        );
        let sessions =
            Sessions::new(p.db.clone(), p.clock.clone(), p.settings.clone(), p.tokens.clone(), notifier.clone());
        let policies = Policies::new(p.db.clone(), p.clock.clone());
        let withdrawals = crate::domain::emergency::withdraw::Withdrawals::new(
            p.db.clone(),
            p.clock.clone(),
            p.chains.clone(),
            p.signers.clone(),
            pipeline.clone(),
        );
        let console = crate::domain::owner_console::OwnerConsole::new(
            p.db.clone(),
            p.clock.clone(),
            p.settings.clone(),
            p.tokens.clone(),
        );
        App {
            leadership: p.leadership,
            console,
            started_at: p.clock.now(),
            settings: p.settings,
            db: p.db,
            clock: p.clock,
            layout: p.layout,
            signers: p.signers,
            chains: p.chains,
            shutdown: Shutdown::default(),
            workers,
            master,
            tokens: p.tokens,
            nonces,
            owner_auth,
            notifier,
            kill_switch,
            pipeline,
            agents,
            sessions,
            policies,
            autostop,
            withdrawals,
        }
    }

    /// Whether this daemon should receive traffic (12-operations.md §4), and if not, why: every
    /// applicable reason, in the spec's order.
    pub(crate) async fn readiness(&self) -> Vec<NotReady> {
        let mut reasons = Vec::new();
        if !self.signers.keystore.is_unlocked().await {
            reasons.push(NotReady::KeystoreLocked);
        }
        if self.kill_switch.is_restricted() {
            reasons.push(NotReady::KillSwitch);
        }
        if self.shutdown.is_shutting_down() {
            reasons.push(NotReady::ShuttingDown);
        }
        if self.db.call(|s| s.kill_switch_status()).await.is_err() {
            reasons.push(NotReady::Database);
        }
        if self.leadership.is_standby() {
            reasons.push(NotReady::Standby);
        }
        reasons
    }

    /// Uptime in seconds of daemon time.
    pub(crate) fn uptime(&self) -> u64 {
        self.clock.now().saturating_sub(self.started_at)
    }
}
