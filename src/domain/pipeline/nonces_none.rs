//! A build without PostgreSQL has no nonce table: EVM builds use the adapter's tracker
//! (`nonces.rs` is the PostgreSQL version).

use std::sync::Arc;

use uuid::Uuid;
use waiaas_storage::{AgentRecord, StoreError};

use super::Pipeline;
use crate::adapters::chains::types::Nonces;

/// Never constructed without PostgreSQL.
pub(crate) enum DbNonces {}

impl DbNonces {
    pub(crate) fn for_execution(_: &Pipeline, _: &AgentRecord, _: Uuid) -> Option<Arc<DbNonces>> {
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
