//! `keystore/<agent-id>.json`, the "waiaas-keystore v1" key file (03-keys.md §4).
//!
//! The plaintext (Ed25519 seed ‖ public key for Solana, the secp256k1 secret for EVM) is sealed
//! with AES-256-GCM under a file key derived from the KEK with a fresh 32-byte HKDF salt, with a
//! fresh 96-bit nonce, and the agent id, chain, network and public key bound in as additional
//! authenticated data. Every encryption draws new salt and nonce, so each file key encrypts
//! exactly one plaintext. Decryption checks the version first, field lengths exactly, then the
//! tag, then that the decrypted key derives the stored public key; anything wrong is an error,
//! never a panic and never a partial key.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::fsutil;
use crate::keystore::KeystoreError;
use crate::keystore::guarded::Guarded;
use crate::keystore::kdf::{self, KdfBlock, Key32};
use crate::seam::ChainKind;

/// The HKDF block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HkdfBlock {
    /// `hkdf-sha256`.
    pub algorithm: String,
    /// 32 bytes as 64 hex characters.
    pub salt: String,
    /// `waiaas/v1/keyfile`.
    pub info: String,
}

/// The cipher block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CipherBlock {
    /// `aes-256-gcm`.
    pub algorithm: String,
    /// 12 bytes as 24 hex characters.
    pub nonce: String,
    /// Hex; 128 characters (Solana) or 64 (EVM).
    pub ciphertext: String,
    /// 16 bytes as 32 hex characters.
    pub tag: String,
}

/// Free-form metadata kept with the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyMetadata {
    /// Agent name at creation.
    pub name: String,
    /// ISO-8601.
    pub created_at: String,
    /// Set on exported copies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exported_at: Option<String>,
}

/// A parsed key file. Holds only ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyFile {
    /// `waiaas-keystore`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// UUID v4 of this file.
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// `solana` or `ethereum`.
    pub chain: String,
    /// `mainnet`, `devnet` or `testnet`.
    pub network: String,
    /// Base58 public key or EIP-55 address.
    pub public_key: String,
    /// Argon2id block of the KEK that encrypted this file.
    pub kdf: KdfBlock,
    /// HKDF parameters.
    pub hkdf: HkdfBlock,
    /// Ciphertext.
    pub cipher: CipherBlock,
    /// Metadata.
    pub metadata: KeyMetadata,
}

/// A decrypted key in guarded memory.
pub enum SecretKey {
    /// secp256k1 secret.
    Evm(Guarded<32>),
    /// Ed25519 seed ‖ public key.
    Solana(Guarded<64>),
}

impl SecretKey {
    /// The chain family.
    pub fn chain(&self) -> ChainKind {
        match self {
            SecretKey::Evm(_) => ChainKind::Ethereum,
            SecretKey::Solana(_) => ChainKind::Solana,
        }
    }

    /// Derives the address / public key string from the secret.
    pub fn public_key(&self) -> Result<String, KeystoreError> {
        match self {
            SecretKey::Evm(g) => g.with(evm_address),
            SecretKey::Solana(g) => g.with(|b| {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&b[..32]);
                let pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                seed.zeroize();
                if pk != b[32..] {
                    return Err(KeystoreError::DecryptFailed);
                }
                Ok(bs58::encode(pk).into_string())
            }),
        }
    }

    /// Copies the plaintext out (for re-encryption) in a zeroizing buffer.
    pub(crate) fn plaintext(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SecretKey::Evm(g) => g.with(|b| Zeroizing::new(b.to_vec())),
            SecretKey::Solana(g) => g.with(|b| Zeroizing::new(b.to_vec())),
        }
    }

    /// Builds a secret from plaintext bytes of the right length for `chain`, zeroizing them.
    pub fn from_plaintext(chain: ChainKind, bytes: &mut [u8]) -> Result<SecretKey, KeystoreError> {
        let alloc = |_| KeystoreError::Malformed { reason: "cannot allocate guarded memory".into() };
        let out = match (chain, bytes.len()) {
            (ChainKind::Ethereum, 32) => {
                let mut a = [0u8; 32];
                a.copy_from_slice(bytes);
                Guarded::new(&mut a).map(SecretKey::Evm).map_err(alloc)
            }
            (ChainKind::Solana, 64) => {
                let mut a = [0u8; 64];
                a.copy_from_slice(bytes);
                Guarded::new(&mut a).map(SecretKey::Solana).map_err(alloc)
            }
            _ => Err(KeystoreError::DecryptFailed),
        };
        bytes.zeroize();
        out
    }

    /// Generates a fresh key from the OS CSPRNG (03-keys.md §4.4).
    pub fn generate(chain: ChainKind) -> Result<SecretKey, KeystoreError> {
        match chain {
            ChainKind::Ethereum => loop {
                let mut b = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(b.as_mut());
                // A uniformly random 32-byte string is a valid secp256k1 scalar except with
                // negligible probability; retry on the rare invalid value.
                if k256::ecdsa::SigningKey::from_bytes(b.as_ref().into()).is_ok() {
                    return SecretKey::from_plaintext(chain, b.as_mut());
                }
            },
            ChainKind::Solana => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(seed.as_mut());
                let pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                let mut full = Zeroizing::new([0u8; 64]);
                full[..32].copy_from_slice(seed.as_ref());
                full[32..].copy_from_slice(&pk);
                SecretKey::from_plaintext(chain, full.as_mut())
            }
        }
    }
}

/// EIP-55 address of a secp256k1 secret.
pub(crate) fn evm_address(secret: &[u8; 32]) -> Result<String, KeystoreError> {
    let sk = k256::ecdsa::SigningKey::from_bytes(secret.into()).map_err(|_| KeystoreError::DecryptFailed)?;
    Ok(alloy::primitives::Address::from_private_key(&sk).to_checksum(None))
}

fn chain_str(c: ChainKind) -> &'static str {
    match c {
        ChainKind::Solana => "solana",
        ChainKind::Ethereum => "ethereum",
    }
}

/// Parses a chain string.
pub fn parse_chain(s: &str) -> Option<ChainKind> {
    match s {
        "solana" => Some(ChainKind::Solana),
        "ethereum" => Some(ChainKind::Ethereum),
        _ => None,
    }
}

fn aad(agent_id: Uuid, chain: &str, network: &str, public_key: &str) -> Vec<u8> {
    format!("waiaas-keystore|1|{agent_id}|{chain}|{network}|{public_key}").into_bytes()
}

fn hex_exact<const N: usize>(field: &str, s: &str) -> Result<[u8; N], KeystoreError> {
    let mut out = [0u8; N];
    if s.len() != N * 2 {
        return Err(KeystoreError::Malformed { reason: format!("{field} must be {} hex characters", N * 2) });
    }
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| KeystoreError::Malformed { reason: format!("{field} is not hex") })?;
    Ok(out)
}

/// Identity and metadata of a file to write.
#[derive(Debug, Clone)]
pub struct KeyFileIdentity {
    /// The file's own UUID v4.
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// Network string.
    pub network: String,
    /// Metadata.
    pub metadata: KeyMetadata,
}

static KEY_DECRYPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many key-file decryptions (AES-256-GCM opens) this process has attempted: the daemon
/// reports it in `/v1/admin/status` so a restricted start can be shown to decrypt nothing.
pub fn key_decryptions() -> u64 {
    KEY_DECRYPTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

impl KeyFile {
    /// Encrypts `secret` under `kek` (whose Argon2id block is `kdf`) with a fresh salt and nonce.
    pub fn seal(
        secret: &SecretKey,
        kek: &Key32,
        kdf: &KdfBlock,
        who: KeyFileIdentity,
    ) -> Result<KeyFile, KeystoreError> {
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        KeyFile::seal_with(secret, kek, kdf, who, salt, nonce)
    }

    /// As [`seal`](Self::seal) with given salt and nonce (test vectors only).
    pub fn seal_with(
        secret: &SecretKey,
        kek: &Key32,
        kdf: &KdfBlock,
        who: KeyFileIdentity,
        salt: [u8; 32],
        nonce: [u8; 12],
    ) -> Result<KeyFile, KeystoreError> {
        let public_key = secret.public_key()?;
        let chain = chain_str(secret.chain());
        let file_key = kdf::file_key(kek, &salt);
        let cipher = Aes256Gcm::new_from_slice(file_key.expose()).expect("32-byte key");
        let plaintext = secret.plaintext();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload { msg: &plaintext, aad: &aad(who.agent_id, chain, &who.network, &public_key) },
            )
            .map_err(|_| KeystoreError::Malformed { reason: "encryption failed".into() })?;
        let (ct, tag) = sealed.split_at(sealed.len() - 16);
        Ok(KeyFile {
            format: "waiaas-keystore".into(),
            version: 1,
            id: who.id,
            agent_id: who.agent_id,
            chain: chain.into(),
            network: who.network,
            public_key,
            kdf: kdf.clone(),
            hkdf: HkdfBlock {
                algorithm: "hkdf-sha256".into(),
                salt: hex::encode(salt),
                info: "waiaas/v1/keyfile".into(),
            },
            cipher: CipherBlock {
                algorithm: "aes-256-gcm".into(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ct),
                tag: hex::encode(tag),
            },
            metadata: who.metadata,
        })
    }

    /// Parses JSON: `format` and `version` are checked before anything else, so a file of
    /// another version is reported as such rather than as malformed.
    pub fn from_json(bytes: &[u8]) -> Result<KeyFile, KeystoreError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| KeystoreError::Malformed { reason: format!("not JSON: {e}") })?;
        if value.get("format").and_then(|f| f.as_str()) != Some("waiaas-keystore") {
            return Err(KeystoreError::Malformed { reason: "format must be waiaas-keystore".into() });
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(1) => {}
            Some(v) => return Err(KeystoreError::UnsupportedVersion { found: v as u32 }),
            None => return Err(KeystoreError::Malformed { reason: "version is missing".into() }),
        }
        let file: KeyFile =
            serde_json::from_value(value).map_err(|e| KeystoreError::Malformed { reason: e.to_string() })?;
        file.check_shape()?;
        Ok(file)
    }

    fn check_shape(&self) -> Result<(), KeystoreError> {
        let chain = parse_chain(&self.chain).ok_or_else(|| KeystoreError::Malformed { reason: "chain".into() })?;
        if !matches!(self.network.as_str(), "mainnet" | "devnet" | "testnet") {
            return Err(KeystoreError::Malformed { reason: "network".into() });
        }
        if self.hkdf.algorithm != "hkdf-sha256"
            || self.hkdf.info != "waiaas/v1/keyfile"
            || self.cipher.algorithm != "aes-256-gcm"
        {
            return Err(KeystoreError::Malformed { reason: "unsupported algorithms".into() });
        }
        hex_exact::<32>("hkdf.salt", &self.hkdf.salt)?;
        hex_exact::<12>("cipher.nonce", &self.cipher.nonce)?;
        hex_exact::<16>("cipher.tag", &self.cipher.tag)?;
        let expected = match chain {
            ChainKind::Solana => 128,
            ChainKind::Ethereum => 64,
        };
        if self.cipher.ciphertext.len() != expected || hex::decode(&self.cipher.ciphertext).is_err() {
            return Err(KeystoreError::Malformed {
                reason: format!("cipher.ciphertext must be {expected} hex characters"),
            });
        }
        Ok(())
    }

    /// Reads a key file: a regular file (not a symlink) with mode 0600.
    pub fn load(path: &Path) -> Result<KeyFile, KeystoreError> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| KeystoreError::io(path, e))?;
        if !meta.file_type().is_file() {
            return Err(KeystoreError::Malformed { reason: format!("{} is not a regular file", path.display()) });
        }
        let mode = fsutil::mode_of(path).map_err(|e| KeystoreError::io(path, e))?;
        if mode & 0o077 != 0 {
            return Err(KeystoreError::PermissionsTooOpen { path: path.display().to_string(), mode });
        }
        let bytes = fsutil::read_nofollow(path).map_err(|e| KeystoreError::io(path, e))?;
        KeyFile::from_json(&bytes)
    }

    /// Writes the file atomically, mode 0600, pretty JSON with a 2-space indent.
    pub fn save(&self, path: &Path) -> Result<(), KeystoreError> {
        fsutil::write_atomic(path, &self.to_json(), 0o600).map_err(|e| KeystoreError::io(path, e))
    }

    /// The file's bytes: pretty JSON with a 2-space indent and a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("serialisable");
        json.push(b'\n');
        json
    }

    /// The chain family.
    pub fn chain_kind(&self) -> Result<ChainKind, KeystoreError> {
        parse_chain(&self.chain).ok_or_else(|| KeystoreError::Malformed { reason: "chain".into() })
    }

    /// Decrypts with a KEK for this file's `kdf` block. A wrong KEK, a flipped byte anywhere in
    /// the ciphertext, tag or bound fields, or a key that does not derive `publicKey` all give
    /// `DecryptFailed`.
    pub fn open(&self, kek: &Key32) -> Result<SecretKey, KeystoreError> {
        self.check_shape()?;
        KEY_DECRYPTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let salt = hex_exact::<32>("hkdf.salt", &self.hkdf.salt)?;
        let nonce = hex_exact::<12>("cipher.nonce", &self.cipher.nonce)?;
        let mut sealed = hex::decode(&self.cipher.ciphertext).map_err(|_| KeystoreError::DecryptFailed)?;
        sealed.extend_from_slice(&hex_exact::<16>("cipher.tag", &self.cipher.tag)?);
        let file_key = kdf::file_key(kek, &salt);
        let cipher = Aes256Gcm::new_from_slice(file_key.expose()).expect("32-byte key");
        let mut plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload { msg: &sealed, aad: &aad(self.agent_id, &self.chain, &self.network, &self.public_key) },
                )
                .map_err(|_| KeystoreError::DecryptFailed)?,
        );
        let secret = SecretKey::from_plaintext(self.chain_kind()?, plain.as_mut_slice())?;
        if secret.public_key()? != self.public_key {
            return Err(KeystoreError::DecryptFailed);
        }
        Ok(secret)
    }

    /// Decrypts with the password alone, deriving the KEK from this file's own `kdf` block.
    pub fn open_with_password(&self, password: &[u8]) -> Result<SecretKey, KeystoreError> {
        let root = kdf::derive_root(password, &self.kdf)?;
        self.open(&kdf::kek_from_root(&root))
    }
}
