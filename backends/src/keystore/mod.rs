//! The encrypted file keystore (03-keys.md §2–§10).
//!
//! `master.json` holds the Argon2id parameters and a password verifier; each keystore-backed
//! agent has one AES-256-GCM encrypted key file. The master password is stretched once per
//! unlock into the key-encryption key (KEK); per-file keys are derived from the KEK with HKDF.

pub mod kdf;
pub mod master;

use std::path::Path;

/// Keystore failures. Callers map them to API codes (`KEYSTORE_DECRYPT_FAILED`, …).
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Wrong password, tampered ciphertext/tag/AAD, or a public key that does not match.
    #[error("Invalid password or corrupted keystore file")]
    DecryptFailed,
    /// A `version` this binary does not read.
    #[error("unsupported keystore version {found}")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// Structurally invalid file.
    #[error("malformed keystore file: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A key file readable by others.
    #[error("{path}: mode {mode:o} is too open (expected 600)")]
    PermissionsTooOpen {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Filesystem failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl KeystoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> KeystoreError {
        KeystoreError::Io { path: path.display().to_string(), source }
    }
}
