//! The keystore's files in the shared PostgreSQL database (13-postgres-ha.md §3, §4): master.json
//! in `keystore_master`, each key file in `keys`, as exactly the bytes `keystore/` would hold.
//! Every replica decrypts the same files with the same password, so a key one replica creates is
//! the next leader's too, and `keystore/` stays empty. Under redb the keystore keeps using
//! `keystore/` ([`waiaas_backends::keystore::KeyDir`]).

use std::sync::Arc;

use uuid::Uuid;
use waiaas_backends::keystore::keyfile::KeyFile;
use waiaas_backends::keystore::master::MasterFile;
use waiaas_backends::keystore::{KeyFileStore, KeystoreError};
use waiaas_storage::{Store, StoreError};

/// `KeyFileStore` over the database.
pub(crate) struct DbKeyFiles(Arc<Store>);

impl DbKeyFiles {
    /// Over `store`, which must be the PostgreSQL engine.
    pub(crate) fn new(store: Arc<Store>) -> DbKeyFiles {
        DbKeyFiles(store)
    }

    /// Runs a blocking store call; on a runtime worker it first tells the runtime so (the
    /// keystore calls from both blocking threads and async code).
    fn call<R>(
        &self,
        f: impl FnOnce(&waiaas_storage::pg::PgStore) -> Result<R, StoreError>,
    ) -> Result<R, KeystoreError> {
        let pg = self.0.postgres().ok_or(KeystoreError::Unsupported { operation: "key files", store: "redb" })?;
        let run = || f(pg).map_err(|e| KeystoreError::Store(e.to_string()));
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }
}

impl KeyFileStore for DbKeyFiles {
    fn master(&self) -> Result<MasterFile, KeystoreError> {
        let bytes = self.call(|s| s.keystore_master())?.ok_or_else(|| KeystoreError::Malformed {
            reason: "the database holds no master.json; run 'waiaas init'".into(),
        })?;
        MasterFile::from_json(&bytes)
    }

    fn load(&self, agent_id: Uuid) -> Result<KeyFile, KeystoreError> {
        let bytes = self.call(|s| s.key_file(agent_id))?.ok_or(KeystoreError::NotFound(agent_id))?;
        KeyFile::from_json(&bytes)
    }

    fn save(&self, agent_id: Uuid, file: &KeyFile) -> Result<(), KeystoreError> {
        let bytes = file.to_json();
        self.call(|s| s.put_key_file(agent_id, &bytes))
    }

    fn delete(&self, agent_id: Uuid) -> Result<(), KeystoreError> {
        self.call(|s| s.delete_key_file(agent_id))
    }
}
