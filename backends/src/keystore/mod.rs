//! The encrypted file keystore (03-keys.md §2–§10).
//!
//! `master.json` holds the Argon2id parameters and a password verifier; each keystore-backed
//! agent has one AES-256-GCM encrypted key file. The master password is stretched once per
//! unlock into the key-encryption key (KEK); per-file keys are derived from it with HKDF, so
//! unlocking a thousand keys costs one Argon2id run.
//!
//! Locked and unlocked keystores are different types: [`LockedKeystore`] can only verify a
//! password and unlock; [`UnlockedKeystore`] holds the KEK and decrypted keys in guarded memory
//! and is the only thing that can sign. [`KeystoreBackend`] wraps an `Option<UnlockedKeystore>`
//! behind an async `RwLock`: signing holds the read side, locking takes the write side (waiting
//! at most 10 s for in-flight signatures) and drops the keys, zeroizing them.

pub mod files;
pub mod guarded;
pub mod import;
pub mod kdf;
pub mod keyfile;
pub mod master;
pub mod rotate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::seam::{
    self, BackendKind, ChainKind, KeyRef, SignContext, SignIntent, SignOutput, SignerBackend, SignerError,
};
pub use files::{KeyDir, KeyFileStore};
use guarded::Guarded;
use kdf::{KdfBlock, KdfParams, Key32};
use keyfile::{KeyFile, KeyFileIdentity, KeyMetadata, SecretKey};
use master::MasterFile;

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
    /// The master password does not match master.json.
    #[error("invalid master password")]
    WrongPassword,
    /// A key file needed for unlock failed; names the agent.
    #[error("agent {agent_id}: {source}")]
    Agent {
        /// The agent.
        agent_id: Uuid,
        /// What failed.
        source: Box<KeystoreError>,
    },
    /// No key for this agent.
    #[error("no key for agent {0}")]
    NotFound(Uuid),
    /// Not possible where the key files are kept (a password change of key files in the
    /// database).
    #[error("{operation} is not supported where the key files are kept ({store})")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// Where the files are.
        store: &'static str,
    },
    /// The database holding the key files failed.
    #[error("key store: {0}")]
    Store(String),
}

impl KeystoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> KeystoreError {
        KeystoreError::Io { path: path.display().to_string(), source }
    }

    fn agent(agent_id: Uuid, e: KeystoreError) -> KeystoreError {
        KeystoreError::Agent { agent_id, source: Box::new(e) }
    }
}

/// What the keystore needs to know about a keystore-backed agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKeyInfo {
    /// The agent.
    pub agent_id: Uuid,
    /// Chain family.
    pub chain: ChainKind,
    /// Network string.
    pub network: String,
    /// Stored public key / address.
    pub public_key: String,
}

/// Path of an agent's key file.
pub fn key_path(dir: &Path, agent_id: Uuid) -> PathBuf {
    dir.join(format!("{agent_id}.json"))
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A keystore whose keys are not decrypted.
pub struct LockedKeystore {
    files: Arc<dyn KeyFileStore>,
    master: MasterFile,
}

impl LockedKeystore {
    /// Opens `dir` (the `keystore/` directory): finishes or rolls back an interrupted password
    /// change first (03-keys.md §6), then reads master.json.
    pub fn open(dir: &Path) -> Result<LockedKeystore, KeystoreError> {
        LockedKeystore::open_in(Arc::new(KeyDir::new(dir)))
    }

    /// Opens the keystore whose files `files` holds.
    pub fn open_in(files: Arc<dyn KeyFileStore>) -> Result<LockedKeystore, KeystoreError> {
        files.prepare()?;
        let master = files.master()?;
        Ok(LockedKeystore { files, master })
    }

    /// The master file.
    pub fn master(&self) -> &MasterFile {
        &self.master
    }

    /// The directory, when the files are a directory.
    pub fn dir(&self) -> Option<&Path> {
        self.files.dir()
    }

    /// Verifies `password` (one Argon2id run) and returns the KEK on success.
    pub fn verify(&self, password: &[u8]) -> Result<Option<Key32>, KeystoreError> {
        self.master.verify(password)
    }

    /// Verifies the password and decrypts every listed agent's key (one Argon2id run for
    /// master.json's block, plus one per distinct other block). Any missing or undecryptable
    /// file fails the whole unlock, naming the agent.
    pub fn unlock(self, password: &[u8], agents: &[AgentKeyInfo]) -> Result<UnlockedKeystore, KeystoreError> {
        let kek = self.verify(password)?.ok_or(KeystoreError::WrongPassword)?;
        self.unlock_with_kek(kek, password, agents)
    }

    /// As [`unlock`](Self::unlock) with a KEK already obtained from a successful verification,
    /// so a start-up that just verified the password pays no second Argon2id run.
    pub fn unlock_with_kek(
        self,
        kek: Key32,
        password: &[u8],
        agents: &[AgentKeyInfo],
    ) -> Result<UnlockedKeystore, KeystoreError> {
        let mut other_keks: HashMap<KdfBlock, Key32> = HashMap::new();
        let mut keys = HashMap::with_capacity(agents.len());
        for a in agents {
            let secret = open_key(&*self.files, &self.master, &kek, Some(password), &mut other_keks, a)?;
            keys.insert(a.agent_id, LoadedKey { public_key: a.public_key.clone(), secret });
        }
        let kek = guard_key(kek)?;
        tracing::info!("KeyStore unlocked ({} keys loaded)", keys.len());
        Ok(UnlockedKeystore { files: self.files, master: self.master, kek, keys: RwLock::new(keys) })
    }
}

/// Reads agent `a`'s key file, checks it against the agent row and decrypts it: under the
/// master KEK, or — for a file imported under its own Argon2id block — under a KEK derived from
/// `password` (cached per block); without the password such a file cannot be opened.
fn open_key(
    files: &dyn KeyFileStore,
    master: &MasterFile,
    kek: &Key32,
    password: Option<&[u8]>,
    other_keks: &mut HashMap<KdfBlock, Key32>,
    a: &AgentKeyInfo,
) -> Result<SecretKey, KeystoreError> {
    let file = files.load(a.agent_id).map_err(|e| KeystoreError::agent(a.agent_id, e))?;
    if file.agent_id != a.agent_id
        || file.public_key != a.public_key
        || file.chain_kind().ok() != Some(a.chain)
        || file.network != a.network
    {
        return Err(KeystoreError::agent(
            a.agent_id,
            KeystoreError::Malformed { reason: "key file does not match the agent row".into() },
        ));
    }
    if file.kdf == master.kdf {
        return file.open(kek).map_err(|e| KeystoreError::agent(a.agent_id, e));
    }
    if !other_keks.contains_key(&file.kdf) {
        let password = password.ok_or_else(|| {
            KeystoreError::agent(
                a.agent_id,
                KeystoreError::Unsupported {
                    operation: "opening a key under its own KDF block without the password",
                    store: "memory",
                },
            )
        })?;
        let root = kdf::derive_root(password, &file.kdf).map_err(|e| KeystoreError::agent(a.agent_id, e))?;
        other_keks.insert(file.kdf.clone(), kdf::kek_from_root(&root));
    }
    file.open(&other_keks[&file.kdf]).map_err(|e| KeystoreError::agent(a.agent_id, e))
}

fn guard_key(k: Key32) -> Result<Guarded<32>, KeystoreError> {
    let mut bytes = *k.expose();
    Guarded::new(&mut bytes).map_err(|_| KeystoreError::Malformed { reason: "cannot allocate guarded memory".into() })
}

struct LoadedKey {
    public_key: String,
    secret: SecretKey,
}

/// The unlocked keystore: the KEK and every key in guarded memory.
pub struct UnlockedKeystore {
    files: Arc<dyn KeyFileStore>,
    master: MasterFile,
    kek: Guarded<32>,
    keys: RwLock<HashMap<Uuid, LoadedKey>>,
}

/// Result of importing a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Chain family.
    pub chain: ChainKind,
    /// Network string.
    pub network: String,
    /// Public key / address.
    pub public_key: String,
    /// Name from the file's metadata.
    pub name: Option<String>,
}

impl UnlockedKeystore {
    fn with_kek<R>(&self, f: impl FnOnce(&Key32) -> R) -> R {
        self.kek.with(|b| f(&Key32(zeroize::Zeroizing::new(*b))))
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.keys.read().expect("keys lock").len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a key is loaded for `agent_id`.
    pub fn contains(&self, agent_id: Uuid) -> bool {
        self.keys.read().expect("keys lock").contains_key(&agent_id)
    }

    fn write_new(&self, agent_id: Uuid, network: &str, name: &str, secret: SecretKey) -> Result<String, KeystoreError> {
        let who = KeyFileIdentity {
            id: Uuid::new_v4(),
            agent_id,
            network: network.to_string(),
            metadata: KeyMetadata { name: name.to_string(), created_at: now_iso(), exported_at: None },
        };
        let file = self.with_kek(|kek| KeyFile::seal(&secret, kek, &self.master.kdf, who))?;
        self.files.save(agent_id, &file)?;
        let public_key = file.public_key.clone();
        self.keys.write().expect("keys lock").insert(agent_id, LoadedKey { public_key: public_key.clone(), secret });
        Ok(public_key)
    }

    /// Generates a key for a new agent, writes its file (0600, atomic) and keeps it loaded.
    /// Returns the public key. The caller inserts the agent row and calls [`remove`] if that
    /// fails (03-keys.md §4.4).
    ///
    /// [`remove`]: Self::remove
    pub fn generate(
        &self,
        agent_id: Uuid,
        chain: ChainKind,
        network: &str,
        name: &str,
    ) -> Result<String, KeystoreError> {
        self.write_new(agent_id, network, name, SecretKey::generate(chain)?)
    }

    /// Forgets (zeroizes) an agent's key and deletes its file.
    pub fn remove(&self, agent_id: Uuid) -> Result<(), KeystoreError> {
        self.keys.write().expect("keys lock").remove(&agent_id);
        self.files.delete(agent_id)
    }

    /// Decrypts, under the KEK this keystore holds, the keys of `agents` it has not loaded yet:
    /// a replica that takes over loads the keys another replica created meanwhile (13-postgres-
    /// ha.md §6.2 step 5). Returns how many it loaded and, per agent, why a key did not load (a
    /// file under another Argon2id block needs the password); one bad file stops no other.
    pub fn load_missing(&self, agents: &[AgentKeyInfo]) -> (usize, Vec<KeystoreError>) {
        let missing: Vec<&AgentKeyInfo> = {
            let keys = self.keys.read().expect("keys lock");
            agents.iter().filter(|a| !keys.contains_key(&a.agent_id)).collect()
        };
        let (mut loaded, mut failed) = (Vec::with_capacity(missing.len()), Vec::new());
        for a in missing {
            match self.with_kek(|kek| open_key(&*self.files, &self.master, kek, None, &mut HashMap::new(), a)) {
                Ok(secret) => loaded.push((a.agent_id, LoadedKey { public_key: a.public_key.clone(), secret })),
                Err(e) => failed.push(e),
            }
        }
        let n = loaded.len();
        self.keys.write().expect("keys lock").extend(loaded);
        (n, failed)
    }

    /// Exports an agent's key as a v1 file that only `password` opens: a fresh Argon2id block
    /// (one run) with `params`, fresh HKDF salt and nonce, `exportedAt` in the metadata.
    pub fn export(&self, agent_id: Uuid, password: &[u8], params: KdfParams) -> Result<KeyFile, KeystoreError> {
        let original = self.files.load(agent_id)?;
        let keys = self.keys.read().expect("keys lock");
        let key = keys.get(&agent_id).ok_or(KeystoreError::NotFound(agent_id))?;
        let block = KdfBlock::fresh(params);
        let root = kdf::derive_root(password, &block)?;
        let kek = kdf::kek_from_root(&root);
        let mut metadata = original.metadata.clone();
        metadata.exported_at = Some(now_iso());
        let who = KeyFileIdentity { id: original.id, agent_id, network: original.network.clone(), metadata };
        KeyFile::seal(&key.secret, &kek, &block, who)
    }

    /// Imports a decrypted key for a new agent: re-encrypts it under the master KEK into
    /// `keystore/<new id>.json` and keeps it loaded.
    pub fn adopt(&self, agent_id: Uuid, network: &str, name: &str, secret: SecretKey) -> Result<String, KeystoreError> {
        self.write_new(agent_id, network, name, secret)
    }

    /// Signs `intent` with the agent's key. Read in place from guarded memory. Crate-private:
    /// signatures leave the crate only through `seam::sign_verified`.
    pub(crate) fn sign(&self, agent_id: Uuid, intent: &SignIntent) -> Result<SignOutput, SignerError> {
        let keys = self.keys.read().expect("keys lock");
        let key = keys.get(&agent_id).ok_or(SignerError::KeyNotFound)?;
        sign_with(&key.secret, intent)
    }

    /// The integrity check of 03-keys.md §10 for one agent: the file exists, is a regular 0600
    /// file, parses, matches the agent row, decrypts with the in-memory KEK and derives the stored
    /// public key; the in-memory key derives it too. Returns the problem found.
    pub fn check_integrity(&self, agent: &AgentKeyInfo) -> Result<(), String> {
        let file = self.files.load(agent.agent_id).map_err(|e| e.to_string())?;
        if file.agent_id != agent.agent_id
            || file.public_key != agent.public_key
            || file.network != agent.network
            || file.chain_kind().ok() != Some(agent.chain)
        {
            return Err("key file fields do not match the database".into());
        }
        if file.kdf != self.master.kdf {
            return Err("key file is not encrypted under the master key".into());
        }
        let decrypted = self.with_kek(|kek| file.open(kek)).map_err(|e| e.to_string())?;
        if decrypted.public_key().map_err(|e| e.to_string())? != agent.public_key {
            return Err("decrypted key does not derive the stored public key".into());
        }
        drop(decrypted);
        let keys = self.keys.read().expect("keys lock");
        let loaded = keys.get(&agent.agent_id).ok_or("key not loaded in memory")?;
        if loaded.public_key != agent.public_key
            || loaded.secret.public_key().ok().as_deref() != Some(agent.public_key.as_str())
        {
            return Err("in-memory key does not derive the stored public key".into());
        }
        Ok(())
    }
}

/// Signs with a raw secret (keystore keys). Ed25519 keys refuse EVM intents and vice versa.
pub(crate) fn sign_with(secret: &SecretKey, intent: &SignIntent) -> Result<SignOutput, SignerError> {
    match (secret, intent.chain()) {
        (SecretKey::Evm(g), ChainKind::Ethereum) => {
            let hash = seam::evm_signing_hash(intent)?;
            // Straight from the scalar in guarded memory: no public key re-derived per send.
            g.with(|b| {
                let (r, s, y_parity) =
                    crate::secp::sign(b, &hash).ok_or_else(|| SignerError::Internal("invalid secp256k1 key".into()))?;
                Ok(SignOutput::Secp256k1 { r, s, y_parity })
            })
        }
        (SecretKey::Solana(g), ChainKind::Solana) => g.with(|b| {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            seed.copy_from_slice(&b[..32]);
            let pk: [u8; 32] = b[32..].try_into().expect("32 bytes");
            let msg = seam::solana_signing_bytes(intent, &pk)?;
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            Ok(SignOutput::Ed25519(ed25519_dalek::Signer::sign(&sk, &msg).to_bytes()))
        }),
        _ => Err(SignerError::Unsupported { intent: intent.name() }),
    }
}

/// The keystore as a signer backend: locked or unlocked at run time.
pub struct KeystoreBackend {
    files: Arc<dyn KeyFileStore>,
    state: tokio::sync::RwLock<Option<UnlockedKeystore>>,
}

impl KeystoreBackend {
    /// A backend over the keystore directory `dir` holding `unlocked` (or locked when `None`).
    pub fn new(dir: PathBuf, unlocked: Option<UnlockedKeystore>) -> KeystoreBackend {
        KeystoreBackend::over(Arc::new(KeyDir::new(dir)), unlocked)
    }

    /// A backend over the key files `files` holds.
    pub fn over(files: Arc<dyn KeyFileStore>, unlocked: Option<UnlockedKeystore>) -> KeystoreBackend {
        KeystoreBackend { files, state: tokio::sync::RwLock::new(unlocked) }
    }

    /// Forgets an agent's key and deletes its file, locked or not: a terminated agent's key must
    /// not survive a kill switch that happened to be active at the time.
    pub async fn delete_key(&self, agent_id: Uuid) -> Result<(), KeystoreError> {
        let guard = self.state.read().await;
        if let Some(ks) = guard.as_ref() {
            return ks.remove(agent_id);
        }
        self.files.delete(agent_id)
    }

    /// Runs `f` with the unlocked keystore, or fails with `KeystoreLocked`.
    pub async fn with<R>(&self, f: impl FnOnce(&UnlockedKeystore) -> R) -> Result<R, SignerError> {
        let guard = self.state.read().await;
        guard.as_ref().map(f).ok_or(SignerError::KeystoreLocked)
    }

    /// Whether the keystore is unlocked.
    pub async fn is_unlocked(&self) -> bool {
        self.state.read().await.is_some()
    }

    /// Keys loaded (0 when locked).
    pub async fn keys_loaded(&self) -> usize {
        self.state.read().await.as_ref().map(UnlockedKeystore::len).unwrap_or(0)
    }

    /// Locks: waits at most 10 s for in-flight signatures (the read side), then drops every key
    /// and the KEK, zeroizing them. Returns false if the wait timed out (the keys are then
    /// dropped as soon as the last signature finishes).
    pub async fn lock(&self) -> bool {
        match tokio::time::timeout(Duration::from_secs(10), self.state.write()).await {
            Ok(mut guard) => {
                guard.take();
                true
            }
            Err(_) => false,
        }
    }

    /// Decrypts the keys of `agents` from their files with `password` (one Argon2id run, on a
    /// blocking thread) without touching this backend: recovery installs the result; a withdraw
    /// during the kill switch signs with it through [`KeystoreBackend::sibling`] and drops it.
    pub async fn decrypt_from_disk(
        &self,
        password: Zeroizing<Vec<u8>>,
        agents: Vec<AgentKeyInfo>,
    ) -> Result<UnlockedKeystore, KeystoreError> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || LockedKeystore::open_in(files)?.unlock(&password, &agents))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Another backend over the same directory holding `unlocked`, leaving this one as it is.
    pub fn sibling(&self, unlocked: UnlockedKeystore) -> KeystoreBackend {
        KeystoreBackend::over(self.files.clone(), Some(unlocked))
    }

    /// Installs a freshly unlocked keystore (recovery).
    pub async fn install(&self, unlocked: UnlockedKeystore) {
        *self.state.write().await = Some(unlocked);
    }
}

impl SignerBackend for KeystoreBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Keystore
    }

    fn supports(&self, key: &KeyRef, intent: &SignIntent) -> bool {
        key.backend == BackendKind::Keystore && key.chain == intent.chain()
    }
}

#[async_trait]
impl crate::seam::raw::RawSigner for KeystoreBackend {
    async fn sign(&self, key: &KeyRef, intent: &SignIntent, _ctx: &SignContext) -> Result<SignOutput, SignerError> {
        let agent = key.agent_id.ok_or(SignerError::KeyNotFound)?;
        self.with(|ks| ks.sign(agent, intent)).await?
    }
}

#[cfg(test)]
mod tests;
