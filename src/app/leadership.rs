//! Who leads (13-postgres-ha.md §6). On redb there is one process and it always leads. Under
//! PostgreSQL every replica starts as a standby: it serves `/health`, `/ready` and `/doc` and
//! answers everything else 503 `NOT_LEADER`, while its election loop polls the leader lock.
//! The replica that gets the lock takes over (§6.2): a new epoch under G exclusive (which fences
//! the old leader's writes), start-up recovery, the EVM nonce resync, the in-memory state
//! reloaded (with the keys other replicas created meanwhile), the workers started — and only
//! then does it take traffic.
//!
//! Losing leadership (§6.4) — a failed or slow heartbeat, a lost election connection, a takeover
//! that could not finish — makes the replica a standby in memory at once: every later write is
//! refused before it reaches the database, and the leader guard answers `NOT_LEADER`. Then the
//! election connection is dropped (which frees the leader lock if the server still holds it),
//! the workers stop, and the loop reconnects and waits as a standby. The process never exits
//! for it, so a replica that lost the database comes back by itself when the database does.
//! Its unfinished rows are the next leader's recovery's job; nothing it signed without a
//! committed checkpoint can reach the chain, because the checkpoint is fenced.

// Without PostgreSQL only `Single` exists: the election half is compiled out.
#![cfg_attr(not(feature = "postgres"), allow(unused_imports, dead_code))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waiaas_storage::{AuditEvent, AuditEventType, OpCtx};

use crate::app::App;

/// This process's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// redb: the only process.
    Single,
    /// PostgreSQL, leading at this epoch.
    Leader { epoch: u64 },
    /// PostgreSQL, waiting; the leader the database names, if any.
    Standby { leader: Option<String>, epoch: u64 },
}

/// The role, shared by the HTTP guard, `/ready`, `/health` and the election loop.
#[derive(Debug)]
pub(crate) struct Leadership {
    replica_id: Option<String>,
    standby: AtomicBool,
    role: Mutex<Role>,
    first_takeover_done: AtomicBool,
    /// The election connection while there is one (PostgreSQL), for the release at a graceful
    /// shutdown.
    #[cfg(feature = "postgres")]
    election: Mutex<Option<Arc<waiaas_storage::pg::election::Election>>>,
}

impl Leadership {
    /// redb: always the leader.
    pub(crate) fn single() -> Leadership {
        Leadership {
            replica_id: None,
            standby: AtomicBool::new(false),
            role: Mutex::new(Role::Single),
            first_takeover_done: AtomicBool::new(true),
            #[cfg(feature = "postgres")]
            election: Mutex::new(None),
        }
    }

    /// PostgreSQL: a standby until it takes over.
    pub(crate) fn standby(replica_id: String) -> Leadership {
        Leadership {
            replica_id: Some(replica_id),
            standby: AtomicBool::new(true),
            role: Mutex::new(Role::Standby { leader: None, epoch: 0 }),
            first_takeover_done: AtomicBool::new(false),
            #[cfg(feature = "postgres")]
            election: Mutex::new(None),
        }
    }

    /// Whether requests other than the probes must be refused with `NOT_LEADER`.
    pub(crate) fn is_standby(&self) -> bool {
        self.standby.load(Ordering::SeqCst)
    }

    /// The role now.
    pub(crate) fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// This replica's id (PostgreSQL).
    pub(crate) fn replica_id(&self) -> Option<&str> {
        self.replica_id.as_deref()
    }

    fn set(&self, role: Role) {
        self.standby.store(matches!(role, Role::Standby { .. }), Ordering::SeqCst);
        *self.role.lock().unwrap_or_else(|e| e.into_inner()) = role;
    }

    /// What a standby tells a client: the leader it knows and its epoch.
    pub(crate) fn leader_hint(&self) -> (Option<String>, u64) {
        match self.role() {
            Role::Standby { leader, epoch } => (leader, epoch),
            Role::Leader { epoch } => (self.replica_id.clone(), epoch),
            Role::Single => (None, 0),
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use waiaas_storage::pg::election::Election;

    /// §6.2 steps 2–6 on `app`, once this process holds the leader lock.
    async fn take_over(app: &Arc<App>, started: Instant) -> Result<u64, String> {
        let now = app.clock.now();
        let epoch = app
            .db
            .call(move |s| s.require_postgres()?.take_epoch(now))
            .await
            .map_err(|e| format!("cannot take the epoch: {e}"))?;
        let report = app.db.call(move |s| s.startup_recovery(now)).await.map_err(|e| format!("recovery: {e}"))?;
        if report != Default::default() {
            tracing::info!("takeover recovery: {report:?}");
        }
        // Step 4: each EVM account's nonce row from the chain, now that recovery has settled
        // which transactions will be sent.
        let agents = app.db.call(|s| s.list_agents()).await.map_err(|e| format!("agents: {e}"))?;
        app.pipeline.resync_nonces(&agents).await;
        // Step 5: what start read may have changed while another replica led.
        let secrets = app.db.call(|s| s.jwt_secrets()).await.map_err(|e| e.to_string())?;
        if let Some(keys) = secrets.as_ref().and_then(crate::domain::auth::jwt::JwtKeys::from_secrets) {
            app.tokens.replace(keys);
        }
        load_new_keys(app, &agents).await;
        let ks = app.db.call(|s| s.kill_switch_state()).await.map_err(|e| e.to_string())?;
        app.kill_switch.adopt(crate::domain::emergency::killswitch::KillSwitchView {
            status: ks.status,
            activated_at: ks.activated_at,
            reason: ks.reason,
        });
        // Step 4's NOOPs sign, so they wait for step 5's keys; under the kill switch the keys
        // are locked and the gaps wait for its recovery.
        if !app.kill_switch.is_restricted() {
            let filled = app.pipeline.fill_nonce_gaps(&agents).await;
            if filled > 0 {
                tracing::warn!("takeover: {filled} nonce gap(s) filled with NOOPs");
            }
        }
        // Step 6: rebroadcast what recovery moved to SUBMITTED, then the workers, then traffic.
        if let Err(e) = app.pipeline.confirmation_pass().await {
            tracing::warn!("rebroadcast of recovered transactions: {e}");
        }
        crate::app::workers::start_all(app);
        if !app.kill_switch.is_restricted()
            && let Err(e) = app.pipeline.resume_claimed().await
        {
            tracing::error!("cannot resume claimed transactions: {e}");
        }
        let lead = &app.leadership;
        if !lead.first_takeover_done.swap(true, Ordering::SeqCst) {
            let ev = AuditEvent::new(AuditEventType::DaemonStarted, "system")
                .detail("version", env!("CARGO_PKG_VERSION"))
                .detail("port", app.settings.port)
                .detail("pid", std::process::id())
                .detail("replicaId", lead.replica_id.clone())
                .detail("epoch", epoch);
            let ctx = OpCtx::new("system", app.clock.now());
            app.db.call(move |s| s.append_audit(ev, &ctx)).await.map_err(|e| e.to_string())?;
        }
        lead.set(Role::Leader { epoch });
        let ms = started.elapsed().as_millis() as u64;
        tracing::warn!("Leader (epoch {epoch}) after {ms} ms");
        println!("Leader (epoch {epoch}) after {ms} ms");
        Ok(epoch)
    }

    /// Step 5's keys: decrypts, with the KEK kept from start, the key files other replicas
    /// created while this one stood by. A key that does not open is logged, not fatal: that
    /// agent's sends fail `KEY_NOT_FOUND` while every other agent works.
    async fn load_new_keys(app: &Arc<App>, agents: &[waiaas_storage::AgentRecord]) {
        let infos = crate::domain::agents::keystore_keys(agents);
        // Locked (restricted mode): recovery decrypts every key with the password later.
        if let Ok((n, failed)) = app.signers.keystore.with(|ks| ks.load_missing(&infos)).await {
            if n > 0 {
                tracing::info!("takeover: {n} key(s) created on another replica decrypted");
            }
            for e in failed {
                tracing::error!("takeover: a key created on another replica does not open: {e}");
            }
        }
    }

    /// Graceful shutdown of a leader (§6.4): audit `LEADER_RELEASED`, stop writing, and give the
    /// leader lock back, so a standby takes over at its next poll instead of waiting for the
    /// connection to be noticed gone. A standby has nothing to release.
    pub(crate) async fn release(app: &Arc<App>) {
        let Some(election) = app.leadership.election() else { return };
        let Role::Leader { epoch } = app.leadership.role() else { return };
        let ev = AuditEvent::new(AuditEventType::LeaderReleased, "system")
            .severity(waiaas_storage::AuditSeverity::Warning)
            .detail("replicaId", app.leadership.replica_id.clone())
            .detail("epoch", epoch);
        let ctx = OpCtx::new("system", app.clock.now());
        if let Err(e) = app.db.call(move |s| s.append_audit(ev, &ctx)).await {
            tracing::warn!("cannot audit the release of leadership: {e}");
        }
        if let Some(s) = app.db.store().postgres() {
            s.demote();
        }
        app.leadership.set(Role::Standby { leader: None, epoch });
        if let Err(e) = election.release().await {
            tracing::warn!("cannot release the leader lock (closing the connection will): {e}");
        }
    }

    impl Leadership {
        fn election(&self) -> Option<Arc<Election>> {
            self.election.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        fn set_election(&self, e: Option<Arc<Election>>) {
            *self.election.lock().unwrap_or_else(|e| e.into_inner()) = e;
        }
    }

    /// Leaves leadership (§6.4), in this order: refuse writes (store and guard) at once, drop
    /// the election connection — the server frees the leader lock with it, if it still holds
    /// it — and stop the workers. The caller's loop reconnects as a standby.
    async fn demote(app: &Arc<App>, election: &mut Option<Arc<Election>>, why: &str) {
        if let Some(s) = app.db.store().postgres() {
            s.demote();
        }
        let role = app.leadership.role();
        let epoch = match role {
            Role::Leader { epoch } | Role::Standby { epoch, .. } => epoch,
            Role::Single => 0,
        };
        app.leadership.set(Role::Standby { leader: None, epoch });
        election.take();
        app.leadership.set_election(None);
        if matches!(role, Role::Leader { .. }) {
            tracing::error!("leadership lost ({why}); standing by");
            eprintln!("Leadership lost ({why}); standing by");
        } else {
            tracing::warn!("{why}; reconnecting");
        }
        app.workers.stop_all().await;
    }

    /// What the loop needs to open a new election connection after losing one.
    pub(crate) struct Reconnect {
        pub(crate) opts: waiaas_storage::pg::PgOptions,
        pub(crate) info: waiaas_storage::pg::election::ReplicaInfo,
    }

    /// The election loop: a standby polls the leader lock; a leader pings on the same
    /// connection and demotes when a ping fails or takes longer than four periods. A lost
    /// connection is opened again (the replica lock with it) every period until it works.
    pub(crate) fn spawn(app: Arc<App>, election: Arc<Election>, reconnect: Reconnect, period: Duration) {
        app.leadership.set_election(Some(election.clone()));
        tokio::spawn(async move {
            let mut current = Some(election);
            let mut since = Instant::now();
            let mut reconnecting_since: Option<Instant> = None;
            loop {
                if app.shutdown.is_shutting_down() {
                    return;
                }
                let Some(election) = current.clone() else {
                    match Election::register(&reconnect.opts, &reconnect.info).await {
                        Ok(Some(e)) => {
                            let e = Arc::new(e);
                            app.leadership.set_election(Some(e.clone()));
                            current = Some(e);
                            tracing::warn!("election connection open again; standby");
                            reconnecting_since = None;
                        }
                        // The server has not noticed this replica's old session gone yet.
                        Ok(None) => tracing::debug!("the replica lock is still held by the old session"),
                        Err(e) => {
                            if reconnecting_since.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                                tracing::warn!("database not reachable for the election connection: {e}");
                                reconnecting_since = Some(Instant::now());
                            }
                        }
                    }
                    since = Instant::now();
                    tokio::time::sleep(period).await;
                    continue;
                };
                if app.leadership.is_standby() {
                    match election.try_lead().await {
                        Ok(true) => {
                            if let Err(e) = take_over(&app, since).await {
                                demote(&app, &mut current, &format!("takeover failed: {e}")).await;
                            }
                        }
                        Ok(false) => {
                            if let Ok(l) = election.leader().await {
                                app.leadership.set(Role::Standby { leader: l.replica_id, epoch: l.epoch });
                            }
                            since = Instant::now();
                        }
                        Err(e) => demote(&app, &mut current, &format!("election connection: {e}")).await,
                    }
                } else {
                    match tokio::time::timeout(period * 4, election.ping()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => demote(&app, &mut current, &format!("heartbeat failed: {e}")).await,
                        Err(_) => demote(&app, &mut current, "heartbeat slower than 4 periods").await,
                    }
                }
                tokio::time::sleep(period).await;
            }
        });
    }
}

#[cfg(feature = "postgres")]
pub(crate) use pg::{Reconnect, release, spawn as spawn_election};
