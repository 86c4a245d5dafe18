//! `keystore/master.json`: the Argon2id parameters, salt and password verifier (03-keys.md §2).
//!
//! Verifying a password means deriving the root with the stored block and comparing the derived
//! verifier in constant time. That is the only password check the daemon makes, at start (exit 4
//! on mismatch) and for masterAuth. A successful verification also yields the KEK, so unlocking
//! right after costs no second Argon2id run.

use std::path::Path;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::fsutil;
use crate::keystore::KeystoreError;
use crate::keystore::kdf::{self, KdfBlock, KdfParams, Key32};

/// Parsed `master.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MasterFile {
    /// `waiaas-master`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// Argon2id block.
    pub kdf: KdfBlock,
    /// 64 hex characters.
    pub verifier: String,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601.
    pub updated_at: String,
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl MasterFile {
    /// Derives a new master file for `password` (one Argon2id run with a fresh salt) and returns
    /// it with the KEK.
    pub fn create(password: &[u8], params: KdfParams) -> Result<(MasterFile, Key32), KeystoreError> {
        Self::create_with(password, KdfBlock::fresh(params))
    }

    /// As [`create`](Self::create) with a given block (test vectors).
    pub fn create_with(password: &[u8], kdf: KdfBlock) -> Result<(MasterFile, Key32), KeystoreError> {
        let root = kdf::derive_root(password, &kdf)?;
        let verifier = hex::encode(kdf::verifier_from_root(&root));
        let now = now_iso();
        let file = MasterFile {
            format: "waiaas-master".into(),
            version: 1,
            kdf,
            verifier,
            created_at: now.clone(),
            updated_at: now,
        };
        Ok((file, kdf::kek_from_root(&root)))
    }

    /// Reads and validates `path` (symlinks refused).
    pub fn load(path: &Path) -> Result<MasterFile, KeystoreError> {
        let bytes = fsutil::read_nofollow(path).map_err(|e| KeystoreError::io(path, e))?;
        MasterFile::from_json(&bytes).map_err(|e| match e {
            KeystoreError::Malformed { reason } => {
                KeystoreError::Malformed { reason: format!("{}: {reason}", path.display()) }
            }
            other => other,
        })
    }

    /// Parses and validates the file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<MasterFile, KeystoreError> {
        let file: MasterFile =
            serde_json::from_slice(bytes).map_err(|e| KeystoreError::Malformed { reason: e.to_string() })?;
        if file.format != "waiaas-master" {
            return Err(KeystoreError::Malformed { reason: "format must be waiaas-master".into() });
        }
        if file.version != 1 {
            return Err(KeystoreError::UnsupportedVersion { found: file.version });
        }
        if file.verifier.len() != 64 || hex::decode(&file.verifier).is_err() {
            return Err(KeystoreError::Malformed { reason: "verifier must be 64 hex characters".into() });
        }
        Ok(file)
    }

    /// Writes pretty JSON (2-space indent), mode 0600, atomically.
    pub fn save(&self, path: &Path) -> Result<(), KeystoreError> {
        fsutil::write_atomic(path, &self.to_json(), 0o600).map_err(|e| KeystoreError::io(path, e))
    }

    /// The file's bytes: pretty JSON (2-space indent) and a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("serialisable");
        json.push(b'\n');
        json
    }

    /// Verifies `password`; on success returns the KEK. One Argon2id run.
    pub fn verify(&self, password: &[u8]) -> Result<Option<Key32>, KeystoreError> {
        let root = kdf::derive_root(password, &self.kdf)?;
        let expected =
            hex::decode(&self.verifier).map_err(|_| KeystoreError::Malformed { reason: "verifier".into() })?;
        let actual = kdf::verifier_from_root(&root);
        if bool::from(actual.as_slice().ct_eq(&expected)) { Ok(Some(kdf::kek_from_root(&root))) } else { Ok(None) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: KdfParams = KdfParams { memory_kib: 8, time: 1, parallelism: 1 };

    #[test]
    fn verifies_only_the_right_password_and_round_trips_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.json");
        let (m, _) = MasterFile::create(b"correct horse battery", LOW).unwrap();
        m.save(&path).unwrap();
        let loaded = MasterFile::load(&path).unwrap();
        assert_eq!(loaded, m);
        assert!(loaded.verify(b"correct horse battery").unwrap().is_some());
        assert!(loaded.verify(b"wrong password!!").unwrap().is_none());
        assert_eq!(fsutil::mode_of(&path).unwrap(), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"format\": \"waiaas-master\""), "{text}");
    }

    #[test]
    fn fresh_salts_differ() {
        let (a, _) = MasterFile::create(b"pw", LOW).unwrap();
        let (b, _) = MasterFile::create(b"pw", LOW).unwrap();
        assert_ne!(a.kdf.salt, b.kdf.salt);
        assert_ne!(a.verifier, b.verifier);
    }
}
