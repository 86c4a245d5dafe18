//! Where the keystore's files live (13-postgres-ha.md §3). The keystore reads and writes
//! master.json and the per-agent key files only through [`KeyFileStore`]: [`KeyDir`] is today's
//! `keystore/` directory (one replica, redb), and the daemon implements the trait over its
//! database for PostgreSQL replicas, so every replica decrypts the same bytes and a key created
//! on one is there for the next leader. This crate still depends on no other crate of ours.
//!
//! The bytes are the same either way: a key file in the database is exactly the JSON the
//! directory would hold, so `db copy` moves files byte for byte and an export is the same file.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::keyfile::KeyFile;
use super::master::MasterFile;
use super::{KeystoreError, key_path};

/// Storage of master.json and the key files. Calls block (file or database I/O): callers run
/// them on blocking threads, as they always did for the files.
pub trait KeyFileStore: Send + Sync {
    /// Finishes what a crash interrupted before anything is read (the directory: a password
    /// change half done, 03-keys.md §6). Nothing by default.
    fn prepare(&self) -> Result<(), KeystoreError> {
        Ok(())
    }

    /// master.json.
    fn master(&self) -> Result<MasterFile, KeystoreError>;

    /// An agent's key file; `NotFound` when it has none.
    fn load(&self, agent_id: Uuid) -> Result<KeyFile, KeystoreError>;

    /// Writes (or replaces) an agent's key file.
    fn save(&self, agent_id: Uuid, file: &KeyFile) -> Result<(), KeystoreError>;

    /// Deletes an agent's key file; a missing one is not an error.
    fn delete(&self, agent_id: Uuid) -> Result<(), KeystoreError>;

    /// The directory, when the files are files (password changes and backups work on it).
    fn dir(&self) -> Option<&Path> {
        None
    }
}

/// The `keystore/` directory.
#[derive(Debug, Clone)]
pub struct KeyDir(PathBuf);

impl KeyDir {
    /// The directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir(dir.into())
    }
}

impl KeyFileStore for KeyDir {
    fn prepare(&self) -> Result<(), KeystoreError> {
        super::rotate::recover(&self.0)
    }

    fn master(&self) -> Result<MasterFile, KeystoreError> {
        MasterFile::load(&self.0.join("master.json"))
    }

    fn load(&self, agent_id: Uuid) -> Result<KeyFile, KeystoreError> {
        let path = key_path(&self.0, agent_id);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeystoreError::NotFound(agent_id)),
            _ => KeyFile::load(&path),
        }
    }

    fn save(&self, agent_id: Uuid, file: &KeyFile) -> Result<(), KeystoreError> {
        file.save(&key_path(&self.0, agent_id))
    }

    fn delete(&self, agent_id: Uuid) -> Result<(), KeystoreError> {
        let path = key_path(&self.0, agent_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(KeystoreError::io(&path, e)),
        }
    }

    fn dir(&self) -> Option<&Path> {
        Some(&self.0)
    }
}
