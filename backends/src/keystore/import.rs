//! Importing keys (03-keys.md §7): a waiaas v1 key file (with its password), a standard Ethereum
//! V3 keystore JSON (as written by `cast wallet new`, decrypted with alloy's keystore support) or
//! a Solana CLI keypair file (a JSON array of 64 bytes: secret seed ‖ public key).

use serde_json::Value;
use zeroize::Zeroizing;

use crate::keystore::KeystoreError;
use crate::keystore::keyfile::{KeyFile, SecretKey};
use crate::seam::ChainKind;

/// A key to import, as recognised from its JSON shape.
pub enum ImportSource {
    /// A waiaas v1 key file.
    Waiaas(Box<KeyFile>),
    /// An Ethereum V3 keystore (scrypt or pbkdf2, aes-128-ctr).
    EthereumV3(Value),
    /// A Solana CLI keypair file.
    SolanaKeypair(Zeroizing<[u8; 64]>),
}

/// A decrypted import.
pub struct DecryptedImport {
    /// The key in guarded memory.
    pub secret: SecretKey,
    /// Network from a waiaas file (other formats do not carry one).
    pub network: Option<String>,
    /// Name from a waiaas file's metadata.
    pub name: Option<String>,
}

/// The most memory a V3 file's scrypt may ask for: 1 GiB (geth's standard is 256 MiB).
const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// The most PBKDF2 rounds a V3 file may ask for (geth's light setting is 262,144).
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;

/// Refuses a V3 file whose KDF would take more than a gigabyte or minutes of CPU: its cost is
/// the file's to choose, and it is paid before the password is checked.
fn check_v3_cost(crypto: &Value) -> Result<(), KeystoreError> {
    let params = &crypto["kdfparams"];
    let num = |k: &str| params[k].as_u64();
    let too_costly = |what: String| KeystoreError::Malformed { reason: format!("V3 keystore: {what}") };
    match crypto["kdf"].as_str() {
        Some("scrypt") => {
            let (n, r, p) = (num("n").unwrap_or(0), num("r").unwrap_or(0), num("p").unwrap_or(0));
            let bytes = 128u64.saturating_mul(r).saturating_mul(n);
            if !n.is_power_of_two() || n < 2 || r == 0 || !(1..=16).contains(&p) || bytes > MAX_SCRYPT_BYTES {
                return Err(too_costly(format!(
                    "scrypt n={n} r={r} p={p} is outside what a key file needs (at most 1 GiB, p ≤ 16)"
                )));
            }
        }
        Some("pbkdf2") => {
            let c = num("c").unwrap_or(0);
            if !(1..=MAX_PBKDF2_ROUNDS).contains(&c) {
                return Err(too_costly(format!("pbkdf2 c={c} (1 to {MAX_PBKDF2_ROUNDS} rounds)")));
            }
        }
        _ => {}
    }
    Ok(())
}

impl ImportSource {
    /// Recognises the format. A waiaas file of another version is `UnsupportedVersion`;
    /// anything unrecognisable is `Malformed`.
    pub fn detect(value: &Value) -> Result<ImportSource, KeystoreError> {
        if let Some(items) = value.as_array() {
            let bytes: Option<Vec<u8>> =
                items.iter().map(|v| v.as_u64().filter(|b| *b <= 255).map(|b| b as u8)).collect();
            let bytes = bytes.filter(|b| b.len() == 64).ok_or_else(|| KeystoreError::Malformed {
                reason: "a Solana keypair file is a JSON array of 64 bytes".into(),
            })?;
            let mut out = Zeroizing::new([0u8; 64]);
            out.copy_from_slice(&bytes);
            return Ok(ImportSource::SolanaKeypair(out));
        }
        if value.get("format").is_some() {
            let bytes = serde_json::to_vec(value).expect("serialisable");
            return KeyFile::from_json(&bytes).map(|f| ImportSource::Waiaas(Box::new(f)));
        }
        let crypto = value.get("crypto").or_else(|| value.get("Crypto"));
        if value.get("version").and_then(Value::as_u64) == Some(3)
            && let Some(crypto) = crypto
        {
            check_v3_cost(crypto)?;
            return Ok(ImportSource::EthereumV3(value.clone()));
        }
        Err(KeystoreError::Malformed {
            reason: "not a waiaas key file, an Ethereum V3 keystore or a Solana keypair".into(),
        })
    }

    /// The chain family of the key.
    pub fn chain(&self) -> Result<ChainKind, KeystoreError> {
        match self {
            ImportSource::Waiaas(f) => f.chain_kind(),
            ImportSource::EthereumV3(_) => Ok(ChainKind::Ethereum),
            ImportSource::SolanaKeypair(_) => Ok(ChainKind::Solana),
        }
    }

    /// Decrypts (waiaas and V3 need the password; a Solana keypair file is plaintext).
    /// CPU-heavy for the first two (a KDF run): call it from a blocking thread.
    pub fn decrypt(self, password: &[u8]) -> Result<DecryptedImport, KeystoreError> {
        match self {
            ImportSource::Waiaas(f) => {
                let secret = f.open_with_password(password)?;
                Ok(DecryptedImport { secret, network: Some(f.network.clone()), name: Some(f.metadata.name.clone()) })
            }
            ImportSource::EthereumV3(v) => {
                let dir = tempfile_dir()?;
                let path = dir.join("v3.json");
                crate::fsutil::write_atomic(&path, &serde_json::to_vec(&v).expect("serialisable"), 0o600)
                    .map_err(|e| KeystoreError::io(&path, e))?;
                let result = alloy::signers::local::PrivateKeySigner::decrypt_keystore(&path, password);
                let _ = std::fs::remove_dir_all(&dir);
                let signer = result.map_err(|e| match e {
                    alloy::signers::local::LocalSignerError::EthKeystoreError(
                        eth_keystore::KeystoreError::MacMismatch,
                    ) => KeystoreError::DecryptFailed,
                    other => KeystoreError::Malformed { reason: format!("V3 keystore: {other}") },
                })?;
                let mut bytes = Zeroizing::new(signer.credential().to_bytes().to_vec());
                let secret = SecretKey::from_plaintext(ChainKind::Ethereum, bytes.as_mut_slice())?;
                Ok(DecryptedImport { secret, network: None, name: None })
            }
            ImportSource::SolanaKeypair(mut kp) => {
                let secret = SecretKey::from_plaintext(ChainKind::Solana, kp.as_mut())?;
                // from_plaintext keeps seed ‖ pubkey; public_key() rejects a mismatched pair.
                secret.public_key().map_err(|_| KeystoreError::Malformed {
                    reason: "the keypair's public key does not match its secret".into(),
                })?;
                Ok(DecryptedImport { secret, network: None, name: None })
            }
        }
    }
}

/// A private (0700) scratch directory for the V3 decoder, which reads from a path.
fn tempfile_dir() -> Result<std::path::PathBuf, KeystoreError> {
    use rand::RngCore;
    let dir = std::env::temp_dir().join(format!("waiaas-import-{:016x}", rand::thread_rng().next_u64()));
    crate::fsutil::create_private_dir(&dir).map_err(|e| KeystoreError::io(&dir, e))?;
    Ok(dir)
}
