//! The key hierarchy (03-keys.md §2):
//!
//! ```text
//! password ──Argon2id(salt, m, t, p)──▶ root
//! root ──HKDF-SHA256(info "waiaas/v1/kek")──────▶ KEK
//! root ──HKDF-SHA256(info "waiaas/v1/verifier")─▶ verifier key ──HMAC-SHA256(label)──▶ verifier
//! KEK ──HKDF-SHA256(salt = file salt, info "waiaas/v1/keyfile")──▶ file key (AES-256-GCM)
//! ```
//!
//! The password is stretched once per unlock; everything below the root is cheap, so a
//! keystore of a thousand key files still costs one Argon2id run.

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keystore::KeystoreError;

static ARGON2_RUNS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many Argon2id derivations this process has run (tests and benchmarks count them).
pub fn argon2_runs() -> u64 {
    ARGON2_RUNS.load(Ordering::Relaxed)
}

/// How many ran on the calling thread: exact even while other threads derive keys (tests
/// running in parallel).
pub fn argon2_runs_on_this_thread() -> u64 {
    THREAD_RUNS.with(|c| c.get())
}

/// Argon2id cost parameters (`[keystore]` in config.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub time: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams { memory_kib: 65_536, time: 3, parallelism: 4 }
    }
}

/// The largest Argon2id memory a file may ask for (1 GiB, `[keystore].argon2_memory`'s maximum).
pub const MAX_MEMORY_KIB: u32 = 1_048_576;
/// The most Argon2id iterations (`argon2_time`'s maximum).
pub const MAX_TIME: u32 = 20;
/// The most Argon2id lanes (`argon2_parallelism`'s maximum).
pub const MAX_LANES: u32 = 16;

/// The Argon2id block stored in master.json and in every key file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KdfBlock {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Argon2 version, always 19 (0x13).
    pub version: u32,
    /// KiB.
    pub memory_cost: u32,
    /// Iterations.
    pub time_cost: u32,
    /// Lanes.
    pub parallelism: u32,
    /// 16 random bytes as 32 hex characters.
    pub salt: String,
}

impl KdfBlock {
    /// A block with a fresh random salt.
    pub fn fresh(params: KdfParams) -> KdfBlock {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        KdfBlock::with_salt(params, salt)
    }

    /// A block with a given salt (test vectors).
    pub fn with_salt(params: KdfParams, salt: [u8; 16]) -> KdfBlock {
        KdfBlock {
            algorithm: "argon2id".into(),
            version: 19,
            memory_cost: params.memory_kib,
            time_cost: params.time,
            parallelism: params.parallelism,
            salt: hex::encode(salt),
        }
    }

    fn check(&self) -> Result<(Params, [u8; 16]), KeystoreError> {
        if self.algorithm != "argon2id" || self.version != 19 {
            return Err(KeystoreError::Malformed { reason: "kdf must be argon2id version 19".into() });
        }
        // A file's cost is read before the password is tried: bound it by what waiaas itself
        // writes (`[keystore]` argon2_*), so a crafted file cannot ask for terabytes or days.
        if !(8..=MAX_MEMORY_KIB).contains(&self.memory_cost)
            || !(1..=MAX_TIME).contains(&self.time_cost)
            || !(1..=MAX_LANES).contains(&self.parallelism)
        {
            return Err(KeystoreError::Malformed {
                reason: format!(
                    "kdf parameters out of range (memoryCost ≤ {MAX_MEMORY_KIB} KiB, timeCost ≤ {MAX_TIME}, \
                     parallelism ≤ {MAX_LANES})"
                ),
            });
        }
        let mut salt = [0u8; 16];
        hex::decode_to_slice(&self.salt, &mut salt)
            .map_err(|_| KeystoreError::Malformed { reason: "kdf.salt must be 32 hex characters".into() })?;
        let params = Params::new(self.memory_cost, self.time_cost, self.parallelism, Some(32))
            .map_err(|e| KeystoreError::Malformed { reason: format!("kdf parameters: {e}") })?;
        Ok((params, salt))
    }
}

/// 32 bytes of key material that is zeroized on drop and never printed.
pub struct Key32(pub(crate) Zeroizing<[u8; 32]>);

impl Key32 {
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Stretches `password` with the block's Argon2id parameters. CPU-heavy: call it from a blocking
/// thread.
pub fn derive_root(password: &[u8], block: &KdfBlock) -> Result<Key32, KeystoreError> {
    let (params, salt) = block.check()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut root = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, &salt, root.as_mut())
        .map_err(|e| KeystoreError::Malformed { reason: format!("argon2id: {e}") })?;
    ARGON2_RUNS.fetch_add(1, Ordering::Relaxed);
    THREAD_RUNS.with(|c| c.set(c.get() + 1));
    Ok(Key32(root))
}

fn hkdf(salt: Option<&[u8]>, ikm: &[u8; 32], info: &[u8]) -> Key32 {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm).expand(info, out.as_mut()).expect("32 bytes is a valid HKDF-SHA256 length");
    Key32(out)
}

/// KEK = HKDF-SHA256(root, empty salt, "waiaas/v1/kek").
pub fn kek_from_root(root: &Key32) -> Key32 {
    hkdf(None, root.expose(), b"waiaas/v1/kek")
}

/// Verifier = HMAC-SHA256(HKDF-SHA256(root, "waiaas/v1/verifier"), label).
pub fn verifier_from_root(root: &Key32) -> [u8; 32] {
    let key = hkdf(None, root.expose(), b"waiaas/v1/verifier");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("any key length works for HMAC");
    mac.update(b"waiaas master password verifier");
    mac.finalize().into_bytes().into()
}

/// File key = HKDF-SHA256(KEK, file salt, "waiaas/v1/keyfile").
pub fn file_key(kek: &Key32, file_salt: &[u8; 32]) -> Key32 {
    hkdf(Some(file_salt), kek.expose(), b"waiaas/v1/keyfile")
}
