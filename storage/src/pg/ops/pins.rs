//! Ledger pins (13-postgres-ha.md §6.4): a Ledger agent signs only on the replica whose host has
//! the device — the one that created it (or `db copy --pin-ledger`'s).

use uuid::Uuid;

use super::super::rows::{all, exec, opt};
use super::super::store::{Global, PgStore};
use crate::error::StoreError;

impl PgStore {
    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.opts.replica_id
    }

    /// Pins `agent` to this replica (a new Ledger agent, before its row exists).
    pub fn pin_ledger(&self, agent: Uuid) -> Result<(), StoreError> {
        let me = self.opts.replica_id.clone();
        self.write(Global::Shared, async |tx| {
            exec(
                tx,
                "INSERT INTO ledger_pins (agent_id, replica_id) VALUES ($1, $2)
                 ON CONFLICT (agent_id) DO UPDATE SET replica_id = EXCLUDED.replica_id",
                &[&agent, &me],
            )
            .await?;
            Ok(())
        })
    }

    /// The replica `agent` is pinned to, if any.
    pub fn ledger_pin(&self, agent: Uuid) -> Result<Option<String>, StoreError> {
        self.read(async |tx| {
            Ok(opt(tx, "SELECT replica_id FROM ledger_pins WHERE agent_id = $1", &[&agent]).await?.map(|r| r.get(0)))
        })
    }

    /// The agents pinned to a replica other than this one.
    pub fn pinned_elsewhere(&self) -> Result<Vec<Uuid>, StoreError> {
        let me = self.opts.replica_id.clone();
        self.read(async |tx| {
            Ok(all(tx, "SELECT agent_id FROM ledger_pins WHERE replica_id <> $1", &[&me])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }
}
