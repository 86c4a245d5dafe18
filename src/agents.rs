//! Agents: the link between agent rows (storage) and their keys (backends).
//!
//! Creating an agent touches two stores that cannot share a transaction — the key file and the
//! database row — so the order is fixed (03-keys.md §4.4): the key file is written first and
//! the row inserted complete in one write transaction; if the insert fails the key file is
//! deleted and the key forgotten. A crash between the two leaves an orphan key file, which the
//! start-up scan logs and never loads.

use std::sync::Arc;

use uuid::Uuid;
use waiaas_backends::keystore::keyfile::SecretKey;
use waiaas_backends::keystore::{AgentKeyInfo, KeystoreError, UnlockedKeystore};
use waiaas_backends::seam::{BackendKind, ChainKind, KeyRef, SignerError};
use waiaas_storage::{AgentRecord, AgentStatus, AuditEvent, Backend, Chain, OpCtx, Store, StoreError};

use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};

/// The backends crate's chain family for a storage chain.
pub(crate) fn chain_kind(c: Chain) -> ChainKind {
    match c {
        Chain::Solana => ChainKind::Solana,
        Chain::Ethereum => ChainKind::Ethereum,
    }
}

/// What the keystore needs to know about a keystore-backed agent.
pub(crate) fn key_info(a: &AgentRecord) -> AgentKeyInfo {
    AgentKeyInfo {
        agent_id: a.id,
        chain: chain_kind(a.chain),
        network: a.network.as_str().into(),
        public_key: a.public_key.clone(),
    }
}

/// The signer-seam reference to an agent's key.
pub(crate) fn key_ref(a: &AgentRecord) -> KeyRef {
    KeyRef {
        agent_id: Some(a.id),
        chain: chain_kind(a.chain),
        public_key: a.public_key.clone(),
        backend: match a.backend {
            Backend::Keystore => BackendKind::Keystore,
            Backend::Ledger => BackendKind::Ledger,
        },
        derivation_path: a.derivation_path.clone(),
    }
}

/// 404 `AGENT_NOT_FOUND` for `id`.
pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::AgentNotFound, format!("Agent {id} not found"))
        .detail("resource", "agent")
        .detail("id", id.to_string())
}

/// The agent a path parameter names (a UUID; anything else is not found).
pub(crate) async fn load(app: &Arc<App>, raw: &str) -> Result<AgentRecord, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| not_found(raw))?;
    app.db_api(move |s| s.get_agent(id)).await?.ok_or_else(|| not_found(raw))
}

/// 410 for a terminated agent.
pub(crate) fn not_terminated(a: &AgentRecord) -> Result<(), ApiError> {
    if a.status == AgentStatus::Terminated {
        return Err(ApiError::new(ErrorCode::AgentTerminated, format!("Agent {} is terminated", a.id)));
    }
    Ok(())
}

/// The first of `agent-01`, `agent-02`, … not used by a non-terminated agent.
pub(crate) fn free_name(agents: &[AgentRecord]) -> String {
    let taken = |n: &str| agents.iter().any(|a| a.status != AgentStatus::Terminated && a.name.eq_ignore_ascii_case(n));
    (1..).map(|i| format!("agent-{i:02}")).find(|n| !taken(n)).expect("an unbounded range has a free name")
}

/// An owner address for `chain`, normalised as stored (EIP-55 / base58), or the spec's 400.
pub(crate) fn owner_address(chain: Chain, address: &str) -> Result<String, ApiError> {
    crate::auth::owner::normalize_address(chain, address).ok_or_else(|| {
        ApiError::validation(
            "owner",
            "invalid_string",
            "Invalid owner address format. Expected Solana base58 or EVM 0x address.",
        )
    })
}

/// API mapping of signer failures (03-keys.md §3).
pub(crate) fn signer_error(e: SignerError) -> ApiError {
    match e {
        SignerError::KeystoreLocked | SignerError::KeyNotFound => {
            ApiError::new(ErrorCode::KeystoreLocked, "The keystore is locked")
        }
        SignerError::Unsupported { intent } => {
            ApiError::new(ErrorCode::SignerRefused, format!("This key cannot sign a {intent} request"))
        }
        SignerError::UserRejected => {
            ApiError::new(ErrorCode::SigningRejected, "The request was rejected on the device")
        }
        SignerError::Timeout => {
            ApiError::new(ErrorCode::SignerTimeout, "No answer from the device before the deadline")
        }
        SignerError::DeviceUnavailable { reason } => {
            ApiError::new(ErrorCode::SignerUnavailable, format!("Ledger unavailable: {reason}"))
                .detail("reason", reason)
        }
        SignerError::Refused { status_word, hint } => {
            ApiError::new(ErrorCode::SignerRefused, format!("The device refused the request (0x{status_word:04X})"))
                .detail("hint", hint)
        }
        SignerError::Internal(m) => {
            tracing::error!("signer internal error: {m}");
            ApiError::internal()
        }
    }
}

/// API mapping of keystore failures.
pub(crate) fn keystore_error(e: KeystoreError) -> ApiError {
    match e {
        KeystoreError::DecryptFailed | KeystoreError::WrongPassword => {
            ApiError::new(ErrorCode::KeystoreDecryptFailed, "Invalid password or corrupted keystore file")
        }
        KeystoreError::UnsupportedVersion { found } => {
            ApiError::new(ErrorCode::UnsupportedKeystoreVersion, format!("Unsupported keystore version {found}"))
        }
        KeystoreError::Malformed { reason } => {
            ApiError::new(ErrorCode::KeystoreImportFailed, format!("Cannot import the key: {reason}"))
        }
        KeystoreError::Agent { source, .. } => keystore_error(*source),
        KeystoreError::NotFound(_) => ApiError::new(ErrorCode::KeystoreLocked, "The agent's key is not loaded"),
        other => {
            tracing::error!("keystore failure: {other}");
            ApiError::internal()
        }
    }
}

/// Insert failures after the key was created.
pub(crate) fn insert_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unique { index: "idx_agent_name" } => {
            ApiError::new(ErrorCode::DuplicateResource, "An agent with this name already exists")
                .detail("field", "name")
        }
        StoreError::Unique { index: "idx_agent_public_key" } => {
            ApiError::new(ErrorCode::DuplicateResource, "An active agent already uses this key")
                .detail("field", "publicKey")
        }
        StoreError::Invariant(what) => ApiError::validation("", "invalid_value", what),
        other => {
            tracing::error!("cannot insert an agent: {other}");
            ApiError::internal()
        }
    }
}

/// Where a keystore agent's key comes from.
pub(crate) enum KeySource {
    Generate,
    Import(SecretKey),
}

/// Writes the key file for `rec` (public key still empty), inserts the row with `extra` audited
/// in the same transaction, and on an insert failure deletes the key file again. Runs on a
/// blocking thread: key generation, the file's fsync and the commit all block.
pub(crate) fn create_keystore_agent(
    ks: &UnlockedKeystore,
    store: &Store,
    mut rec: AgentRecord,
    source: KeySource,
    extra: Option<AuditEvent>,
    ctx: &OpCtx,
) -> Result<AgentRecord, ApiError> {
    let network = rec.network.as_str();
    rec.public_key = match source {
        KeySource::Generate => ks.generate(rec.id, chain_kind(rec.chain), network, &rec.name),
        KeySource::Import(secret) => ks.adopt(rec.id, network, &rec.name, secret),
    }
    .map_err(keystore_error)?;
    if let Err(e) = store.insert_agent_with(&rec, extra, ctx) {
        if let Err(re) = ks.remove(rec.id) {
            tracing::error!("cannot delete the key file of the failed agent {}: {re}", rec.id);
        }
        return Err(insert_error(e));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waiaas_backends::keystore::LockedKeystore;
    use waiaas_backends::keystore::kdf::KdfParams;
    use waiaas_backends::keystore::master::MasterFile;
    use waiaas_storage::Network;

    fn record(name: &str, now: u64) -> AgentRecord {
        AgentRecord {
            id: Uuid::now_v7(),
            name: name.into(),
            chain: Chain::Solana,
            network: Network::Devnet,
            chain_id: None,
            backend: Backend::Keystore,
            derivation_path: None,
            public_key: String::new(),
            status: AgentStatus::Active,
            owner_address: None,
            owner_verified: false,
            owner_verified_at: None,
            suspended_at: None,
            suspension_reason: None,
            terminated_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// ACC-066: an insert that fails after the key file was written leaves no key file behind.
    #[test]
    fn a_failed_insert_deletes_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ks_dir = dir.path().join("keystore");
        std::fs::create_dir(&ks_dir).unwrap();
        let (master, _) =
            MasterFile::create(b"password-12345", KdfParams { memory_kib: 8, time: 1, parallelism: 1 }).unwrap();
        master.save(&ks_dir.join("master.json")).unwrap();
        let ks = LockedKeystore::open(&ks_dir).unwrap().unlock(b"password-12345", &[]).unwrap();
        let store = Store::create(&dir.path().join("db.redb"), 1000).unwrap();
        let ctx = OpCtx::new("admin", 1000);

        let first = create_keystore_agent(&ks, &store, record("same", 1000), KeySource::Generate, None, &ctx).unwrap();
        assert!(ks_dir.join(format!("{}.json", first.id)).exists());
        let clash = record("SAME", 1000);
        let clash_id = clash.id;
        let e = create_keystore_agent(&ks, &store, clash, KeySource::Generate, None, &ctx).unwrap_err();
        assert_eq!(e.code, ErrorCode::DuplicateResource);
        assert!(!ks_dir.join(format!("{clash_id}.json")).exists(), "the orphan key file was deleted");
        assert!(!ks.contains(clash_id) && ks.contains(first.id));
        assert_eq!(store.list_agents().unwrap().len(), 1);
    }
}
