//! Ledger agents under PostgreSQL are pinned to the replica whose host has the device
//! (13-postgres-ha.md §6.4): the one that created the agent. Another replica leading refuses
//! the agent's sends, approvals and withdrawals with 503 `SIGNER_UNAVAILABLE` before changing
//! anything, and leaves its due DELAY rows QUEUED until the pinned replica leads again. Under
//! redb there is one host and nothing is pinned.

use std::collections::HashSet;

use uuid::Uuid;
#[cfg(feature = "postgres")]
use waiaas_storage::Backend;
use waiaas_storage::{AgentRecord, StoreError};

use crate::runtime::Db;

/// Pins a new Ledger agent to this replica; under redb, nothing. Done before the agent's row
/// exists, so no moment sees the agent unpinned.
#[cfg(not(feature = "postgres"))]
pub(crate) async fn pin_new(_: &Db, _: Uuid) -> Result<(), StoreError> {
    Ok(())
}

/// See above.
#[cfg(feature = "postgres")]
pub(crate) async fn pin_new(db: &Db, agent: Uuid) -> Result<(), StoreError> {
    if db.store().postgres().is_none() {
        return Ok(());
    }
    db.call(move |s| s.require_postgres()?.pin_ledger(agent)).await
}

/// The other replica `agent` is pinned to, when it is a Ledger agent and that is not this one.
#[cfg(not(feature = "postgres"))]
pub(crate) async fn elsewhere(_: &Db, _: &AgentRecord) -> Result<Option<String>, StoreError> {
    Ok(None)
}

/// See above.
#[cfg(feature = "postgres")]
pub(crate) async fn elsewhere(db: &Db, agent: &AgentRecord) -> Result<Option<String>, StoreError> {
    if agent.backend != Backend::Ledger || db.store().postgres().is_none() {
        return Ok(None);
    }
    let id = agent.id;
    db.call(move |s| {
        let pg = s.require_postgres()?;
        Ok(pg.ledger_pin(id)?.filter(|r| r != pg.replica_id()))
    })
    .await
}

/// The agents pinned to another replica (the delay worker leaves their rows alone).
#[cfg(not(feature = "postgres"))]
pub(crate) async fn pinned_elsewhere(_: &Db) -> Result<HashSet<Uuid>, StoreError> {
    Ok(HashSet::new())
}

/// See above.
#[cfg(feature = "postgres")]
pub(crate) async fn pinned_elsewhere(db: &Db) -> Result<HashSet<Uuid>, StoreError> {
    if db.store().postgres().is_none() {
        return Ok(HashSet::new());
    }
    db.call(|s| s.require_postgres()?.pinned_elsewhere()).await.map(HashSet::from_iter)
}
