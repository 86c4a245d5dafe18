//! Raw row access for integration tests that simulate offline tampering (feature `test-util`).
//! The daemon never enables this feature.

use uuid::Uuid;

use crate::db::RedbStore;
use crate::error::StoreError;
use crate::tables::*;

impl RedbStore {
    /// Overwrites the stored bytes of an agent row.
    pub fn raw_put_agent(&self, id: Uuid, json: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(AGENTS)?.insert(id.as_u128(), json)?;
            Ok(())
        })
    }

    /// The stored bytes of an audit row.
    pub fn raw_get_audit(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| Ok(tx.open_table(AUDIT_LOG)?.get(seq)?.map(|v| v.value().to_vec())))
    }

    /// Overwrites the stored bytes of an audit row.
    pub fn raw_put_audit(&self, seq: u64, json: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(AUDIT_LOG)?.insert(seq, json)?;
            Ok(())
        })
    }

    /// Overwrites a `meta` value (e.g. `schema_version`).
    pub fn raw_put_meta(&self, key: &str, json: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(META)?.insert(key, json)?;
            Ok(())
        })
    }

    /// Overwrites a `system_state` value (simulates time passing across a restart).
    pub fn raw_put_state(&self, key: &str, value: serde_json::Value) -> Result<(), StoreError> {
        self.write(|tx| crate::in_tx::set_state(tx, key, value, 0))
    }
}

impl RedbStore {
    /// Inserts many transaction rows in one write transaction, through the same row writer as
    /// every operation (indexes and rate counters included): for building long histories in
    /// benchmarks without paying one durable commit per row.
    pub fn raw_insert_transactions(&self, rows: &[crate::records::TransactionRecord]) -> Result<(), StoreError> {
        self.write(|tx| {
            for r in rows {
                crate::rows::insert_tx(tx, r)?;
            }
            Ok(())
        })
    }
}
