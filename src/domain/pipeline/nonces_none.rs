//! A build without PostgreSQL has no nonce table: EVM builds use the adapter's tracker
//! (`nonces.rs` is the PostgreSQL version).

use std::sync::Arc;

use waiaas_storage::{AgentRecord, StoreError, TransactionRecord};

use super::{Pipeline, Precheck};
use crate::adapters::chains::types::Nonces;

/// Nothing to keep up without a nonce table.
#[derive(Default)]
pub(crate) struct NonceUpkeep;

impl Pipeline {
    /// Without a nonce table every account is in sync.
    pub(crate) async fn nonces_ready(&self, _: &AgentRecord) -> Result<(), Precheck> {
        Ok(())
    }
}

/// Never constructed without PostgreSQL.
pub(crate) enum DbNonces {}

impl DbNonces {
    pub(crate) fn for_execution(_: &Pipeline, _: &AgentRecord, _: &TransactionRecord) -> Option<Arc<DbNonces>> {
        None
    }

    pub(crate) fn source(self: &Arc<Self>) -> Nonces {
        match **self {}
    }

    pub(crate) fn take_error(&self) -> Option<StoreError> {
        match *self {}
    }

    pub(crate) async fn release(&self, _: bool) {
        match *self {}
    }
}
