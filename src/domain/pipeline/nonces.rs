//! EVM nonces from the database under PostgreSQL (13-postgres-ha.md §5, §6.2 step 4). An
//! execution hands the EVM build a [`DbNonces`] for its transaction: the nonce table gives each
//! of the transaction's slots one nonce, the same one on every rebuild, and never the same one
//! to two transactions. A failure before the node accepted the transaction gives the nonce back;
//! a new leader resyncs each account from the chain. Under redb there is one process and the
//! adapter's in-memory tracker stays (05-chains.md §2.2).

use std::sync::{Arc, Mutex};

use uuid::Uuid;
use waiaas_storage::pg::{NonceAccount, NonceSlot};
use waiaas_storage::{AgentRecord, AgentStatus, Chain, StoreError};

use super::Pipeline;
use crate::adapters::chains::error::ChainError;
use crate::adapters::chains::types::{NonceSource, NonceUse, Nonces};
use crate::base::error::Coded;
use crate::runtime::Db;

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
    /// The storage error behind the last failed assignment: the build reports a `ChainError`,
    /// and the execution turns it back into a database failure (left to recovery).
    failed: Mutex<Option<StoreError>>,
}

impl DbNonces {
    /// The source for `tx` of `agent`, under PostgreSQL and for EVM agents only.
    pub(crate) fn for_execution(p: &Pipeline, agent: &AgentRecord, tx: Uuid) -> Option<Arc<DbNonces>> {
        if agent.chain != Chain::Ethereum || p.db.store().postgres().is_none() {
            return None;
        }
        Some(Arc::new(DbNonces { db: p.db.clone(), account: account(agent)?, tx, failed: Mutex::new(None) }))
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
    pub(crate) async fn release(&self, rewind: bool) {
        let slots: &[NonceSlot] = if rewind { &[NonceSlot::Main, NonceSlot::Reset] } else { &[NonceSlot::Main] };
        for &s in slots {
            let (account, tx) = (self.account.clone(), self.tx);
            if let Err(e) =
                self.db.call(move |st| st.require_postgres()?.release_evm_nonce(&account, tx, s, rewind)).await
            {
                tracing::warn!("tx {tx}: cannot release its nonce ({e}); the next leader's resync will");
            }
        }
    }
}

#[async_trait::async_trait]
impl NonceSource for DbNonces {
    async fn assign(&self, used_for: NonceUse, pending: u64) -> Result<u64, ChainError> {
        let (account, tx, s) = (self.account.clone(), self.tx, slot(used_for));
        self.db.call(move |st| st.require_postgres()?.assign_evm_nonce(&account, tx, s, pending)).await.map_err(|e| {
            let err = ChainError::new(e.code(), format!("nonce assignment: {e}"));
            *self.failed.lock().expect("nonce error") = Some(e);
            err
        })
    }
}

impl Pipeline {
    /// A new leader's nonce resync (§6.2 step 4), after recovery: each live EVM agent's account
    /// from the chain's mined and pending counts, all accounts at once (the takeover waits for
    /// the slowest, not the sum). An account whose node cannot be read is skipped (logged); its
    /// claims stay until a later takeover. Returns how many changed.
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
        let counts = match self.chains.for_agent(agent).await {
            Ok(adapter) => match adapter.as_evm() {
                Some(evm) => evm.nonce_counts(&agent.public_key).await,
                None => return false,
            },
            Err(e) => Err(e),
        };
        let (mined, pending) = match counts {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("nonce resync of agent {}: the node cannot be read ({e})", agent.id);
                return false;
            }
        };
        match self.db.call(move |s| s.require_postgres()?.resync_evm_nonces(&acct, mined, pending)).await {
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
