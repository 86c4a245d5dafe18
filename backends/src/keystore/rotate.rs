//! Master password change with crash-safe staging (03-keys.md §6).
//!
//! Everything new is first written into `keystore/.password-change/`: a new master.json and every
//! key file re-encrypted under the new KEK with fresh salts and nonces. Only then is a `COMMIT`
//! marker written and the directory fsync-ed; after that the staged files are renamed over the
//! originals, master.json last. Opening a keystore finishes a committed change (roll forward) or
//! deletes an uncommitted one (roll back), so at every instant exactly one password works.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::fsutil;
use crate::keystore::kdf::{KdfParams, derive_root, kek_from_root};
use crate::keystore::keyfile::{KeyFile, KeyFileIdentity};
use crate::keystore::master::MasterFile;
use crate::keystore::{KeystoreError, LockedKeystore};

const STAGING: &str = ".password-change";
const COMMIT: &str = "COMMIT";

fn staging_dir(dir: &Path) -> PathBuf {
    dir.join(STAGING)
}

/// A staged, not yet committed change.
pub struct StagedChange {
    dir: PathBuf,
    /// Key files re-encrypted.
    pub files: usize,
}

/// A committed change whose files are not all in place yet.
pub struct CommittedChange {
    dir: PathBuf,
}

/// Every `<uuid>.json` key file in `dir`.
pub fn key_files(dir: &Path) -> Result<Vec<(Uuid, PathBuf)>, KeystoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| KeystoreError::io(dir, e))? {
        let entry = entry.map_err(|e| KeystoreError::io(dir, e))?;
        let path = entry.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if path.extension().and_then(|e| e.to_str()) == Some("json")
            && let Ok(id) = Uuid::parse_str(stem)
        {
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Stages a change from `old` to `new`: verifies `old`, writes the new master.json and every key
/// file re-encrypted under the new KEK into the staging directory, each fsync-ed. Nothing in
/// `keystore/` itself changes. Any key file that does not decrypt aborts the change.
pub fn stage(ks: &LockedKeystore, old: &[u8], new: &[u8], params: KdfParams) -> Result<StagedChange, KeystoreError> {
    let old_kek = ks.verify(old)?.ok_or(KeystoreError::WrongPassword)?;
    let dir = ks.dir().ok_or(KeystoreError::Unsupported { operation: "changing the password", store: "database" })?;
    let staging = staging_dir(dir);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
    }
    fsutil::create_private_dir(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
    let (mut master, new_kek) = MasterFile::create(new, params)?;
    master.created_at = ks.master().created_at.clone();
    let mut files = 0;
    for (id, path) in key_files(dir)? {
        let file = KeyFile::load(&path)?;
        let secret = if file.kdf == ks.master().kdf {
            file.open(&old_kek)
        } else {
            file.open(&kek_from_root(&derive_root(old, &file.kdf)?))
        }
        .map_err(|e| KeystoreError::Agent { agent_id: id, source: Box::new(e) })?;
        let who = KeyFileIdentity {
            id: file.id,
            agent_id: file.agent_id,
            network: file.network.clone(),
            metadata: file.metadata.clone(),
        };
        let staged = KeyFile::seal(&secret, &new_kek, &master.kdf, who)?;
        staged.save(&staging.join(path.file_name().expect("file name")))?;
        files += 1;
    }
    master.save(&staging.join("master.json"))?;
    fsutil::sync_dir(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
    Ok(StagedChange { dir: dir.to_path_buf(), files })
}

impl StagedChange {
    /// Writes and fsyncs the `COMMIT` marker: from here on the change will complete.
    pub fn commit(self) -> Result<CommittedChange, KeystoreError> {
        let staging = staging_dir(&self.dir);
        fsutil::write_atomic(&staging.join(COMMIT), b"1", 0o600).map_err(|e| KeystoreError::io(&staging, e))?;
        fsutil::sync_dir(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
        Ok(CommittedChange { dir: self.dir })
    }
}

impl CommittedChange {
    /// Moves the staged files into place (master.json last), fsyncs `keystore/` and removes the
    /// staging directory.
    pub fn apply(self) -> Result<(), KeystoreError> {
        roll_forward(&self.dir)
    }
}

fn roll_forward(dir: &Path) -> Result<(), KeystoreError> {
    let staging = staging_dir(dir);
    for (_, path) in key_files(&staging)? {
        let target = dir.join(path.file_name().expect("file name"));
        std::fs::rename(&path, &target).map_err(|e| KeystoreError::io(&target, e))?;
    }
    let staged_master = staging.join("master.json");
    if staged_master.exists() {
        std::fs::rename(&staged_master, dir.join("master.json")).map_err(|e| KeystoreError::io(&staged_master, e))?;
    }
    fsutil::sync_dir(dir).map_err(|e| KeystoreError::io(dir, e))?;
    std::fs::remove_dir_all(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
    fsutil::sync_dir(dir).map_err(|e| KeystoreError::io(dir, e))
}

/// Finishes a committed change or discards an uncommitted one; called whenever a keystore opens.
pub(crate) fn recover(dir: &Path) -> Result<(), KeystoreError> {
    let staging = staging_dir(dir);
    if !staging.exists() {
        return Ok(());
    }
    if staging.join(COMMIT).exists() {
        tracing::warn!("finishing an interrupted master password change");
        roll_forward(dir)
    } else {
        tracing::warn!("discarding an uncommitted master password change");
        std::fs::remove_dir_all(&staging).map_err(|e| KeystoreError::io(&staging, e))?;
        fsutil::sync_dir(dir).map_err(|e| KeystoreError::io(dir, e))
    }
}
