//! EVM nonces from the database under PostgreSQL (13-postgres-ha.md §5, §6.2 step 4). An
//! execution hands the EVM build a [`DbNonces`] for its transaction: the nonce table gives each
//! of the transaction's slots one nonce, the same one on every rebuild, and never the same one
//! to two transactions. A failure before the node accepted the transaction gives the nonce back.
//!
//! The upkeep is here too. A new leader resyncs each account from the chain; a send of an
//! account whose node could not be read then waits (503 `ADAPTER_NOT_AVAILABLE`) until a resync
//! succeeds. A free nonce below a claimed one (a *gap*, which holds every later transaction
//! back in the node) gets a NOOP: at takeover, and after a release that left one.
//!
//! Under redb there is one process and the adapter's in-memory tracker stays (05-chains.md §2.2).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use uuid::Uuid;
use waiaas_storage::pg::{NonceAccount, NonceSlot};
use waiaas_storage::{AgentRecord, AgentStatus, Chain, OpCtx, StoreError, TransactionRecord};

use super::{Pipeline, Precheck, confirm, execute};
use crate::adapters::chains::ChainAdapter;
use crate::adapters::chains::error::ChainError;
use crate::adapters::chains::types::{NonceSource, NonceUse, Nonces};
use crate::base::error::{Coded, ErrorCode};
use crate::runtime::Db;

/// The accounts that need the leader's attention, by agent id.
#[derive(Default)]
pub(crate) struct NonceUpkeep {
    /// Accounts whose node could not be read at the last resync: their sends wait.
    unsynced: Mutex<HashSet<Uuid>>,
    /// Accounts where a release left a gap, for the next [`Pipeline::nonce_upkeep_pass`].
    gaps: Mutex<HashSet<Uuid>>,
}

impl NonceUpkeep {
    fn mark(set: &Mutex<HashSet<Uuid>>, agent: Uuid, on: bool) {
        let mut set = set.lock().expect("nonce upkeep");
        if on {
            set.insert(agent);
        } else {
            set.remove(&agent);
        }
    }

    fn take(set: &Mutex<HashSet<Uuid>>) -> Vec<Uuid> {
        set.lock().expect("nonce upkeep").drain().collect()
    }

    /// Unsynced accounts stay marked until a resync succeeds: a send in between must still wait.
    fn unsynced_now(&self) -> Vec<Uuid> {
        self.unsynced.lock().expect("nonce upkeep").iter().copied().collect()
    }

    fn unsynced(&self, agent: Uuid) -> bool {
        self.unsynced.lock().expect("nonce upkeep").contains(&agent)
    }
}

fn slot(used_for: NonceUse) -> NonceSlot {
    match used_for {
        NonceUse::Main => NonceSlot::Main,
        NonceUse::Reset => NonceSlot::Reset,
    }
}

fn account(agent: &AgentRecord) -> Option<NonceAccount> {
    Some(NonceAccount { chain_id: agent.chain_id?, address: agent.public_key.clone(), agent: agent.id })
}

/// The nonce table for one transaction's execution.
pub(crate) struct DbNonces {
    db: Db,
    account: NonceAccount,
    tx: Uuid,
    /// A NOOP fill: it builds with the nonce it was recorded with, or not at all.
    fill: bool,
    upkeep: Arc<NonceUpkeep>,
    /// The storage error behind the last failed assignment: the build reports a `ChainError`,
    /// and the execution turns it back into a database failure (left to recovery).
    failed: Mutex<Option<StoreError>>,
}

impl DbNonces {
    /// The source for `row` of `agent`, under PostgreSQL and for EVM agents only.
    pub(crate) fn for_execution(p: &Pipeline, agent: &AgentRecord, row: &TransactionRecord) -> Option<Arc<DbNonces>> {
        if agent.chain != Chain::Ethereum || p.db.store().postgres().is_none() {
            return None;
        }
        Some(Arc::new(DbNonces {
            db: p.db.clone(),
            account: account(agent)?,
            tx: row.id,
            fill: row.is_nonce_fill(),
            upkeep: p.nonce_upkeep.clone(),
            failed: Mutex::new(None),
        }))
    }

    /// As the build takes it.
    pub(crate) fn source(self: &Arc<Self>) -> Nonces {
        Nonces(self.clone())
    }

    /// The storage error of a failed assignment, once.
    pub(crate) fn take_error(&self) -> Option<StoreError> {
        self.failed.lock().expect("nonce error").take()
    }

    /// Gives back what this transaction holds (it never reached the node). `rewind`: false
    /// after `EVM_NONCE_TOO_LOW`, which never rewinds; that case releases the main slot only.
    /// A release that leaves a gap marks the account for a NOOP, unless this was the NOOP: a
    /// fill that failed leaves its gap to the account's next send or the next takeover, so a
    /// node that refuses NOOPs never meets an endless retry.
    pub(crate) async fn release(&self, rewind: bool) {
        let slots: &[NonceSlot] = if rewind { &[NonceSlot::Main, NonceSlot::Reset] } else { &[NonceSlot::Main] };
        for &s in slots {
            let (account, tx) = (self.account.clone(), self.tx);
            match self.db.call(move |st| st.require_postgres()?.release_evm_nonce(&account, tx, s, rewind)).await {
                Ok(Some(r)) if r.gap && !self.fill => NonceUpkeep::mark(&self.upkeep.gaps, self.account.agent, true),
                Ok(_) => {}
                Err(e) => tracing::warn!("tx {tx}: cannot release its nonce ({e}); the next leader's resync will"),
            }
        }
    }
}

#[async_trait::async_trait]
impl NonceSource for DbNonces {
    async fn assign(&self, used_for: NonceUse, pending: u64) -> Result<u64, ChainError> {
        let (account, tx, s) = (self.account.clone(), self.tx, slot(used_for));
        let fill = self.fill;
        let held = self
            .db
            .call(move |st| {
                let pg = st.require_postgres()?;
                if fill { pg.held_evm_nonce(tx, s) } else { pg.assign_evm_nonce(&account, tx, s, pending).map(Some) }
            })
            .await
            .map_err(|e| {
                let err = ChainError::new(e.code(), format!("nonce assignment: {e}"));
                *self.failed.lock().expect("nonce error") = Some(e);
                err
            })?;
        // A fill whose nonce the chain passed (EVM_NONCE_TOO_LOW released it): nothing to fill.
        held.ok_or_else(|| ChainError::new(ErrorCode::TransactionFailed, "the nonce gap was filled meanwhile"))
    }
}

impl Pipeline {
    /// A new leader's nonce resync (§6.2 step 4), after recovery: each live EVM agent's account
    /// from the chain's mined and pending counts, all accounts at once (the takeover waits for
    /// the slowest, not the sum). An account whose node cannot be read is marked unsynced: its
    /// sends get 503 `ADAPTER_NOT_AVAILABLE` until a resync succeeds (at a send, or in the
    /// upkeep pass). Returns how many changed.
    pub(crate) async fn resync_nonces(&self, agents: &[AgentRecord]) -> usize {
        if self.db.store().postgres().is_none() {
            return 0;
        }
        let live = agents.iter().filter(|a| a.status != AgentStatus::Terminated);
        let changed = futures_util::future::join_all(live.map(|agent| self.resync_account(agent))).await;
        changed.into_iter().filter(|c| *c).count()
    }

    /// One account of [`resync_nonces`](Self::resync_nonces); whether it changed.
    async fn resync_account(&self, agent: &AgentRecord) -> bool {
        let Some(acct) = account(agent) else { return false };
        let (mined, pending) = match self.nonce_counts(agent).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("nonce resync of agent {}: the node cannot be read ({e}); its sends wait", agent.id);
                NonceUpkeep::mark(&self.nonce_upkeep.unsynced, agent.id, true);
                return false;
            }
        };
        let ctx = OpCtx::new("system", self.clock.now());
        let resynced =
            self.db.call(move |s| s.require_postgres()?.resync_evm_nonces(&acct, mined, pending, &ctx)).await;
        NonceUpkeep::mark(&self.nonce_upkeep.unsynced, agent.id, resynced.is_err());
        match resynced {
            Ok(Some(r)) => {
                tracing::warn!(
                    "nonce resync of agent {}: next {} → {} ({} claim(s) dropped)",
                    agent.id,
                    r.before,
                    r.after,
                    r.dropped
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!("nonce resync of agent {}: {e}", agent.id);
                false
            }
        }
    }
}

impl Pipeline {
    /// The node's mined and pending counts of an EVM agent's address.
    async fn nonce_counts(&self, agent: &AgentRecord) -> Result<(u64, u64), ChainError> {
        let adapter = self.chains.for_agent(agent).await?;
        match adapter.as_evm() {
            Some(evm) => evm.nonce_counts(&agent.public_key).await,
            None => Err(ChainError::new(ErrorCode::AdapterNotAvailable, "not an EVM adapter")),
        }
    }

    /// Before a send records anything: an account the last resync could not read is resynced
    /// now, or the send is refused with 503 `ADAPTER_NOT_AVAILABLE` (§6.2 step 4).
    pub(crate) async fn nonces_ready(&self, agent: &AgentRecord) -> Result<(), Precheck> {
        if !self.nonce_upkeep.unsynced(agent.id) {
            return Ok(());
        }
        self.resync_account(agent).await;
        if self.nonce_upkeep.unsynced(agent.id) {
            return Err(Precheck::Adapter(ChainError::new(
                ErrorCode::AdapterNotAvailable,
                "This agent's nonces wait for a resync with its node, which cannot be read now",
            )));
        }
        Ok(())
    }

    /// §6.2 step 4's NOOPs, once the keys are loaded: every gap of every live EVM account this
    /// replica can sign for, accounts at once. Returns how many NOOPs were sent.
    pub(crate) async fn fill_nonce_gaps(&self, agents: &[AgentRecord]) -> usize {
        if self.db.store().postgres().is_none() {
            return 0;
        }
        let live = agents.iter().filter(|a| a.status != AgentStatus::Terminated && a.chain == Chain::Ethereum);
        futures_util::future::join_all(live.map(|agent| self.fill_account(agent))).await.into_iter().sum()
    }

    /// The leader's upkeep worker: retries the resync of unsynced accounts, and fills the gaps
    /// releases left since the last pass.
    pub(crate) async fn nonce_upkeep_pass(&self) -> Result<(), StoreError> {
        let unsynced = self.nonce_upkeep.unsynced_now();
        let gaps = NonceUpkeep::take(&self.nonce_upkeep.gaps);
        for id in unsynced.iter().chain(&gaps).copied().collect::<HashSet<_>>() {
            let Some(agent) = self.db.call(move |s| s.get_agent(id)).await? else { continue };
            if agent.status == AgentStatus::Terminated {
                continue;
            }
            if unsynced.contains(&id) {
                self.resync_account(&agent).await;
            }
            if !self.nonce_upkeep.unsynced(id) {
                self.fill_account(&agent).await;
            }
        }
        Ok(())
    }

    /// The gaps of one account; how many NOOPs were sent. A Ledger agent pinned to another
    /// replica, or a locked keystore, leaves them for later.
    async fn fill_account(&self, agent: &AgentRecord) -> usize {
        let Some(acct) = account(agent) else { return 0 };
        if !matches!(crate::domain::ledger_pins::elsewhere(&self.db, agent).await, Ok(None))
            || !self.signers.ready(agent.backend).await
        {
            return 0;
        }
        let (adapter, pending) = match (self.chains.for_agent(agent).await, self.nonce_counts(agent).await) {
            (Ok(adapter), Ok((_, pending))) => (adapter, pending),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("nonce gaps of agent {}: the node cannot be read ({e})", agent.id);
                return 0;
            }
        };
        let gaps = match self.db.call(move |s| s.require_postgres()?.evm_nonce_gaps(&acct, pending)).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("nonce gaps of agent {}: {e}", agent.id);
                return 0;
            }
        };
        let mut sent = 0;
        for nonce in gaps {
            sent += usize::from(self.fill_gap(agent, &adapter, nonce).await);
        }
        sent
    }

    /// One NOOP: recorded with its claim, then signed and sent like any claimed row; the
    /// confirmation worker confirms it. Whether it was broadcast.
    async fn fill_gap(&self, agent: &AgentRecord, adapter: &Arc<dyn ChainAdapter>, nonce: u64) -> bool {
        let Some(acct) = account(agent) else { return false };
        let now = self.clock.now();
        let row = TransactionRecord::nonce_fill(self.clock.new_id(), agent, nonce, now);
        let (rec, ctx) = (row.clone(), OpCtx::new("system", now));
        match self.db.call(move |s| s.require_postgres()?.record_nonce_fill(&acct, &rec, nonce, &ctx)).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::error!("nonce gap {nonce} of agent {}: cannot record the NOOP: {e}", agent.id);
                return false;
            }
        }
        tracing::warn!("nonce gap {nonce} of agent {}: sending a NOOP (tx {})", agent.id, row.id);
        let claimed = Instant::now();
        let deadline = claimed + execute::budget(&self.settings.get(), agent, false);
        let mut timing = execute::Timing::default();
        // A failure is recorded inside `execute`.
        let Ok(executed) = execute::execute(self, &row, agent, adapter.clone(), claimed, deadline, &mut timing).await
        else {
            return false;
        };
        // Recorded as soon as the node took it (no wait: a takeover must not block on blocks).
        confirm::finish(self, adapter, &row, agent, executed.broadcast, Instant::now(), &mut timing).await.is_ok()
    }
}
