//! Agents: the lifecycle of an agent row and the key it stands for (09-api.md §6.3, 04-auth.md
//! §8 for owner changes, 03-keys.md §4.4 and §7 for keys).
//!
//! Creating an agent touches two stores that cannot share a transaction — the key file and the
//! database row — so the order is fixed: the key file is written first and the row inserted
//! complete in one write transaction; if the insert fails the key file is deleted and the key
//! forgotten. A crash between the two leaves an orphan key file, which the start-up scan logs
//! and never loads. Terminating an agent deletes its key through the keystore backend, never by
//! touching the file directly.
//!
//! Inputs are typed ([`NewAgent`], [`OwnerChange`]); results are agent records or an
//! [`AgentError`]. Nothing here knows about HTTP.

use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;
use waiaas_backends::keystore::import::ImportSource;
use waiaas_backends::keystore::kdf::KdfParams;
use waiaas_backends::keystore::keyfile::{KeyFile, SecretKey};
use waiaas_backends::keystore::{AgentKeyInfo, KeystoreError, UnlockedKeystore};
use waiaas_backends::ledger::apps::DerivationPath;
use waiaas_backends::seam::{BackendKind, ChainKind, KeyRef, SignerError};
use waiaas_storage::{
    AgentRecord, AgentStatus, AuditEvent, AuditEventType, AuditSeverity, Backend, Chain, Network, OpCtx, OwnerState,
    Store, StoreError, TerminationReport, WalletConnectionRecord,
};

use crate::adapters::chains::Registry;
use crate::adapters::chains::error::ChainError;
use crate::adapters::notify::{Message, Notifier};
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::domain::auth::owner::{Owner, OwnerAction, OwnerAuth, OwnerAuthError, Target};
use crate::runtime::{Db, Settings, Signers};

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

/// The keys the keystore holds: those of every keystore agent not terminated.
pub(crate) fn keystore_keys(agents: &[AgentRecord]) -> Vec<AgentKeyInfo> {
    agents
        .iter()
        .filter(|a| a.status != AgentStatus::Terminated && a.backend == Backend::Keystore)
        .map(key_info)
        .collect()
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

/// Why an agent operation did not apply. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    #[error("Agent {0} not found")]
    NotFound(String),
    #[error("Agent {0} is terminated")]
    Terminated(Uuid),
    #[error("Agent {0} is already suspended")]
    AlreadySuspended(Uuid),
    #[error("Agent {0} is {1}; only a SUSPENDED agent can be resumed")]
    NotSuspended(Uuid, AgentStatus),
    #[error("A transaction of this agent is executing; try again when it finishes")]
    HasActiveTransactions,
    #[error("An agent with this name already exists")]
    DuplicateName,
    #[error("An active agent already uses this key")]
    DuplicateKey,
    #[error("A verified owner cannot be removed")]
    OwnerLocked,
    #[error("The owner state changed while the request was being authorised; nothing changed")]
    OwnerStateChanged,
    #[error("Ledger keys never leave the device")]
    LedgerKeyStays,
    #[error("No Ledger transport is configured")]
    NoLedger,
    #[error("No {0} agent is owned by {1}")]
    OwnerNotFound(Chain, String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    OwnerAuth(#[from] OwnerAuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for AgentError {
    fn code(&self) -> ErrorCode {
        match self {
            AgentError::NotFound(_) => ErrorCode::AgentNotFound,
            AgentError::Terminated(_) => ErrorCode::AgentTerminated,
            AgentError::AlreadySuspended(_) => ErrorCode::AgentSuspended,
            AgentError::NotSuspended(..) | AgentError::OwnerStateChanged => ErrorCode::InvalidStateTransition,
            AgentError::HasActiveTransactions => ErrorCode::AgentHasActiveTransactions,
            AgentError::DuplicateName | AgentError::DuplicateKey => ErrorCode::DuplicateResource,
            AgentError::OwnerLocked => ErrorCode::OwnerLocked,
            AgentError::LedgerKeyStays => ErrorCode::BackendOperationUnsupported,
            AgentError::NoLedger => ErrorCode::SignerUnavailable,
            AgentError::OwnerNotFound(..) => ErrorCode::OwnerNotFound,
            AgentError::Invalid(e) => e.code(),
            AgentError::Chain(e) => e.code(),
            AgentError::Signer(e) => e.code(),
            AgentError::Keystore(e) => e.code(),
            AgentError::OwnerAuth(e) => e.code(),
            AgentError::Store(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            AgentError::NotFound(id) => details([("resource", "agent".into()), ("id", id.clone().into())]),
            AgentError::DuplicateName => details([("field", "name".into())]),
            AgentError::DuplicateKey => details([("field", "publicKey".into())]),
            AgentError::Invalid(e) => e.details(),
            AgentError::Chain(e) => e.details(),
            AgentError::Signer(e) => e.details(),
            AgentError::OwnerAuth(e) => e.details(),
            _ => Map::new(),
        }
    }
}

/// Signer failures (03-keys.md §3) as API codes.
impl Coded for SignerError {
    fn code(&self) -> ErrorCode {
        match self {
            SignerError::KeystoreLocked | SignerError::KeyNotFound => ErrorCode::KeystoreLocked,
            SignerError::Unsupported { .. } | SignerError::Refused { .. } => ErrorCode::SignerRefused,
            SignerError::UserRejected => ErrorCode::SigningRejected,
            SignerError::Timeout => ErrorCode::SignerTimeout,
            SignerError::DeviceUnavailable { .. } => ErrorCode::SignerUnavailable,
            SignerError::Internal(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            SignerError::DeviceUnavailable { reason } => details([("reason", reason.clone().into())]),
            SignerError::Refused { hint, .. } => details([("hint", hint.clone().into())]),
            _ => Map::new(),
        }
    }
}

/// Keystore failures as API codes.
impl Coded for KeystoreError {
    fn code(&self) -> ErrorCode {
        match self {
            KeystoreError::DecryptFailed | KeystoreError::WrongPassword => ErrorCode::KeystoreDecryptFailed,
            KeystoreError::UnsupportedVersion { .. } => ErrorCode::UnsupportedKeystoreVersion,
            KeystoreError::Malformed { .. } => ErrorCode::KeystoreImportFailed,
            KeystoreError::Agent { source, .. } => source.code(),
            KeystoreError::NotFound(_) => ErrorCode::KeystoreLocked,
            _ => ErrorCode::InternalError,
        }
    }
}

/// Agent names (09-api.md §6.3): 1–100 characters, not UUID-shaped.
fn check_name(name: &str) -> Result<(), Invalid> {
    waiaas_storage::check_name(name).map_err(|_| {
        Invalid::field("name", "invalid_string", "name must be 1-100 characters and not shaped like a UUID")
    })
}

/// `chain` of a request (default `solana`).
pub(crate) fn parse_chain(v: Option<&str>) -> Result<Chain, Invalid> {
    match v {
        None => Ok(Chain::Solana),
        Some(c) => Chain::from_str(c).map_err(|_| {
            Invalid::field(
                "chain",
                "invalid_enum_value",
                format!("Unsupported chain '{c}'. Supported: solana, ethereum."),
            )
        }),
    }
}

/// `network` of a request for `chain` (default `devnet` on Solana, `testnet` on Ethereum).
pub(crate) fn parse_network(chain: Chain, v: Option<&str>) -> Result<Network, Invalid> {
    let network = match v {
        None if chain == Chain::Solana => Network::Devnet,
        None => Network::Testnet,
        Some(n) => Network::from_str(n).map_err(|_| {
            Invalid::field(
                "network",
                "invalid_enum_value",
                format!("Unsupported network '{n}'. Supported: mainnet, devnet (Solana), testnet."),
            )
        })?,
    };
    if !network.valid_for(chain) {
        return Err(Invalid::field(
            "network",
            "invalid_enum_value",
            format!("Network '{network}' does not exist on {chain}"),
        ));
    }
    Ok(network)
}

/// `backend` of a request (default `keystore`).
pub(crate) fn parse_backend(v: Option<&str>) -> Result<Backend, Invalid> {
    match v {
        None | Some("keystore") => Ok(Backend::Keystore),
        Some("ledger") => Ok(Backend::Ledger),
        Some(other) => Err(Invalid::field(
            "backend",
            "invalid_enum_value",
            format!("Unsupported backend '{other}'. Supported: keystore, ledger."),
        )),
    }
}

/// An owner address for `chain`, normalised as stored (EIP-55 / base58), or the spec's 400.
pub(crate) fn owner_address(chain: Chain, address: &str) -> Result<String, Invalid> {
    crate::base::address::normalize(chain, address).ok_or_else(|| {
        Invalid::field(
            "owner",
            "invalid_string",
            "Invalid owner address format. Expected Solana base58 or EVM 0x address.",
        )
    })
}

/// The first of `agent-01`, `agent-02`, … not used by a non-terminated agent.
pub(crate) fn free_name(agents: &[AgentRecord]) -> String {
    let taken = |n: &str| agents.iter().any(|a| a.status != AgentStatus::Terminated && a.name.eq_ignore_ascii_case(n));
    (1..).map(|i| format!("agent-{i:02}")).find(|n| !taken(n)).expect("an unbounded range has a free name")
}

/// A new agent, as requested (defaults not yet applied).
#[derive(Debug, Clone)]
pub(crate) struct NewAgent {
    pub(crate) name: Option<String>,
    pub(crate) chain: Chain,
    pub(crate) network: Network,
    pub(crate) backend: Backend,
    /// Ledger only; the app's default account path when absent.
    pub(crate) derivation_path: Option<String>,
    /// Registers an owner (GRACE) at creation.
    pub(crate) owner: Option<String>,
}

/// A change to an agent (`PATCH /v1/agents/:id`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentUpdate {
    pub(crate) name: Option<String>,
    /// `Some(None)` removes the owner.
    pub(crate) owner: Option<Option<String>>,
    /// The current owner's `change_owner` payload, for a LOCKED agent's address change.
    pub(crate) owner_payload: Option<String>,
}

/// What an update did: the agent after it, and the verified owner when one signed.
pub(crate) struct Updated {
    pub(crate) agent: AgentRecord,
    pub(crate) signed_by: Option<Owner>,
}

/// Where a keystore agent's key comes from.
pub(crate) enum KeySource {
    Generate,
    Import(SecretKey),
}

/// The agent service.
#[derive(Clone)]
pub(crate) struct Agents {
    db: Db,
    clock: Clock,
    settings: Settings,
    signers: Signers,
    chains: Arc<Registry>,
    owner_auth: Arc<OwnerAuth>,
    notifier: Arc<Notifier>,
}

impl Agents {
    pub(crate) fn new(
        db: Db,
        clock: Clock,
        settings: Settings,
        signers: Signers,
        chains: Arc<Registry>,
        owner_auth: Arc<OwnerAuth>,
        notifier: Arc<Notifier>,
    ) -> Agents {
        Agents { db, clock, settings, signers, chains, owner_auth, notifier }
    }

    /// The agent a path parameter names (a UUID; anything else is not found).
    pub(crate) async fn load(&self, raw: &str) -> Result<AgentRecord, AgentError> {
        let id = Uuid::parse_str(raw).map_err(|_| AgentError::NotFound(raw.to_string()))?;
        self.db.call(move |s| s.get_agent(id)).await?.ok_or_else(|| AgentError::NotFound(raw.to_string()))
    }

    /// [`load`](Self::load), refusing a terminated agent.
    pub(crate) async fn load_live(&self, raw: &str) -> Result<AgentRecord, AgentError> {
        let a = self.load(raw).await?;
        if a.status == AgentStatus::Terminated {
            return Err(AgentError::Terminated(a.id));
        }
        Ok(a)
    }

    /// The agent a session-create request names by name.
    pub(crate) async fn find_by_name(&self, name: &str) -> Result<AgentRecord, AgentError> {
        let n = name.to_string();
        self.db.call(move |s| s.find_agent_by_name(&n)).await?.ok_or_else(|| AgentError::NotFound(name.to_string()))
    }

    /// The requested name, trimmed, or the first free default; refused when a live agent has
    /// it (case-insensitive). Storage re-checks uniqueness in the insert transaction.
    async fn name_or_default(&self, name: Option<String>) -> Result<String, AgentError> {
        let existing = self.db.call(|s| s.list_agents()).await?;
        let name = match name {
            Some(n) => n.trim().to_string(),
            None => free_name(&existing),
        };
        check_name(&name)?;
        if existing.iter().any(|a| a.status != AgentStatus::Terminated && a.name.eq_ignore_ascii_case(&name)) {
            return Err(AgentError::DuplicateName);
        }
        Ok(name)
    }

    /// The agent's EIP-155 chain id: EVM agents need their adapter connected (the chain id binds
    /// the agent); Solana agents only need an RPC URL (a missing one is `CHAIN_NOT_SUPPORTED`)
    /// and connect in the background.
    async fn bind_chain(&self, chain: Chain, network: Network) -> Result<Option<u64>, AgentError> {
        match chain {
            Chain::Ethereum => Ok(self.chains.available(chain, network, None).await?.chain_id()),
            Chain::Solana => {
                let adapter = self.chains.get_or_create(chain, network)?;
                if !adapter.is_connected() {
                    let now = self.clock.now();
                    tokio::spawn(async move {
                        let _ = adapter.connect(now).await;
                    });
                }
                Ok(None)
            }
        }
    }

    /// Creates an agent: name, chain binding, key (a new keystore key, or the Ledger's address
    /// at the derivation path), then the row with `AGENT_CREATED` (+ `OWNER_REGISTERED`).
    pub(crate) async fn create(&self, new: NewAgent, ctx: &OpCtx) -> Result<AgentRecord, AgentError> {
        if new.backend == Backend::Keystore && new.derivation_path.is_some() {
            return Err(Invalid::field(
                "derivationPath",
                "unrecognized_keys",
                "derivationPath is only for ledger agents",
            )
            .into());
        }
        let owner = new.owner.as_deref().map(|a| owner_address(new.chain, a)).transpose()?;
        let path = match new.backend {
            Backend::Ledger => {
                let text = new
                    .derivation_path
                    .unwrap_or_else(|| DerivationPath::default_text(chain_kind(new.chain)).to_string());
                let parsed = DerivationPath::parse(&text).ok_or_else(|| {
                    Invalid::field("derivationPath", "invalid_string", format!("Invalid derivation path {text}"))
                })?;
                Some((text, parsed))
            }
            Backend::Keystore => None,
        };
        let name = self.name_or_default(new.name).await?;
        let chain_id = self.bind_chain(new.chain, new.network).await?;
        let mut rec = AgentRecord::new(self.clock.new_id(), name, new.chain, new.network, chain_id, self.clock.now());
        rec.owner_address = owner;
        match path {
            None => self.insert_keystore_agent(rec, KeySource::Generate, None, ctx).await,
            Some((text, path)) => {
                let device = self.signers.ledger_device().ok_or(AgentError::NoLedger)?;
                let address = device.get_address(chain_kind(new.chain), &path).await?;
                let rec = rec.on_ledger(text, address);
                // PostgreSQL: the device is on this replica's host (13-postgres-ha.md §6.4).
                crate::domain::ledger_pins::pin_new(&self.db, rec.id).await.map_err(insert_error)?;
                let (r, ctx) = (rec.clone(), ctx.clone());
                self.db.call(move |s| s.insert_agent(&r, &ctx)).await.map_err(insert_error)?;
                Ok(rec)
            }
        }
    }

    /// Key creation and the insert on a blocking thread, under the keystore's read lock.
    async fn insert_keystore_agent(
        &self,
        rec: AgentRecord,
        source: KeySource,
        extra: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, AgentError> {
        let store = self.db.store().clone();
        self.signers
            .keystore
            .with(|ks| tokio::task::block_in_place(|| create_keystore_agent(ks, &store, rec, source, extra, ctx)))
            .await?
    }

    /// Renames an agent and/or changes its owner (04-auth.md §8). A LOCKED agent's address
    /// change needs the current owner's `change_owner` signature bound to the new address; a
    /// LOCKED owner cannot be removed. The owner change re-checks the owner state it authorised
    /// inside its write transaction.
    pub(crate) async fn update(&self, raw: &str, change: AgentUpdate, ctx: &OpCtx) -> Result<Updated, AgentError> {
        let mut agent = self.load_live(raw).await?;
        if let Some(name) = &change.name {
            check_name(name.trim())?;
        }
        let mut signed_by = None;
        if let Some(new_owner) = change.owner {
            let new_owner = new_owner.map(|a| owner_address(agent.chain, &a)).transpose()?;
            let state = agent.owner_state();
            let same = new_owner
                .as_deref()
                .zip(agent.owner_address.as_deref())
                .is_some_and(|(n, o)| crate::base::address::same(agent.chain, n, o));
            match (state, &new_owner) {
                (OwnerState::Locked, None) => return Err(AgentError::OwnerLocked),
                (OwnerState::Locked, Some(addr)) if !same => {
                    let raw = change.owner_payload.as_deref().ok_or(OwnerAuthError::Required)?;
                    let target = Target {
                        action: OwnerAction::ChangeOwner,
                        target: format!("agent:{}:owner:{addr}", agent.id),
                        agent: Some(agent.clone()),
                        summary: None,
                    };
                    signed_by = Some(self.owner_auth.verify(raw, &target).await?);
                }
                _ => {}
            }
            let mut ctx = ctx.clone();
            if let Some(o) = &signed_by {
                ctx.actor = format!("owner:{}+admin", o.address);
            }
            let (id, removed, previous) = (agent.id, new_owner.is_none(), agent.owner_address.clone());
            let now = ctx.now;
            let out =
                self.db.call(move |s| s.set_owner(id, new_owner.as_deref(), state, &ctx)).await.map_err(
                    |e| match e {
                        StoreError::Conflict { .. } => AgentError::OwnerStateChanged,
                        other => other.into(),
                    },
                )?;
            agent = out.agent;
            if let (true, true, Some(prev)) = (out.changed, removed, previous) {
                self.notifier.emit(Message::owner_removed(&agent, &prev, now));
            }
        }
        if let Some(name) = change.name {
            let (ctx, id, name) = (ctx.clone(), agent.id, name.trim().to_string());
            agent = self.db.call(move |s| s.update_agent_name(id, &name, &ctx)).await.map_err(|e| match e {
                StoreError::Unique { .. } => insert_error(e),
                StoreError::Conflict { .. } => AgentError::Terminated(id),
                other => other.into(),
            })?;
        }
        Ok(Updated { agent, signed_by })
    }

    /// ACTIVE → SUSPENDED with `manual[: reason]`.
    pub(crate) async fn suspend(
        &self,
        raw: &str,
        reason: Option<&str>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, AgentError> {
        if reason.is_some_and(|r| r.chars().count() > 500) {
            return Err(Invalid::field("reason", "too_big", "reason must be at most 500 characters").into());
        }
        let agent = self.load_live(raw).await?;
        let reason = match reason.map(str::trim) {
            Some(r) if !r.is_empty() => format!("manual: {r}"),
            _ => "manual".to_string(),
        };
        self.set_status(agent, AgentStatus::Active, AgentStatus::Suspended, Some(reason), ctx).await
    }

    /// SUSPENDED → ACTIVE. Revoked sessions stay revoked.
    pub(crate) async fn resume(&self, raw: &str, ctx: &OpCtx) -> Result<AgentRecord, AgentError> {
        let agent = self.load_live(raw).await?;
        self.set_status(agent, AgentStatus::Suspended, AgentStatus::Active, None, ctx).await
    }

    async fn set_status(
        &self,
        agent: AgentRecord,
        from: AgentStatus,
        to: AgentStatus,
        reason: Option<String>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, AgentError> {
        let (ctx, id) = (ctx.clone(), agent.id);
        match self.db.call(move |s| s.set_agent_status(id, from, to, reason, &ctx)).await {
            Ok(rec) => Ok(rec),
            // The status was not `from`: say which one it is now.
            Err(StoreError::Conflict { .. }) => {
                let now = self.db.call(move |s| s.get_agent(id)).await?.map(|a| a.status);
                Err(match now {
                    Some(AgentStatus::Terminated) | None => AgentError::Terminated(id),
                    Some(AgentStatus::Suspended) => AgentError::AlreadySuspended(id),
                    Some(status) => AgentError::NotSuspended(id, status),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Terminates an agent (sessions revoked, queued work cancelled, unique names released),
    /// then deletes its key through the keystore backend. A key-file deletion that fails is
    /// only logged: the next start deletes key files of TERMINATED agents.
    pub(crate) async fn terminate(
        &self,
        raw: &str,
        ctx: &OpCtx,
    ) -> Result<(AgentRecord, TerminationReport), AgentError> {
        let agent = self.load_live(raw).await?;
        let (c, id) = (ctx.clone(), agent.id);
        let report = match self.db.call(move |s| s.terminate_agent(id, &c)).await {
            Ok(r) => r,
            Err(StoreError::Conflict { .. }) => {
                let terminated =
                    self.db.call(move |s| s.get_agent(id)).await?.is_none_or(|a| a.status == AgentStatus::Terminated);
                return Err(if terminated { AgentError::Terminated(id) } else { AgentError::HasActiveTransactions });
            }
            Err(e) => return Err(e.into()),
        };
        if agent.backend == Backend::Keystore
            && let Err(e) = self.signers.keystore.delete_key(id).await
        {
            tracing::warn!("cannot delete the key file of terminated agent {id}: {e}");
        }
        Ok((agent, report))
    }

    /// Exports a keystore agent's key as a v1 file only `password` opens; audits
    /// `AGENT_KEY_EXPORTED`.
    pub(crate) async fn export(&self, raw: &str, password: &[u8], ctx: &OpCtx) -> Result<KeyFile, AgentError> {
        if !(12..=128).contains(&String::from_utf8_lossy(password).chars().count()) {
            return Err(Invalid::field("password", "too_small", "password must be 12-128 characters").into());
        }
        let agent = self.load_live(raw).await?;
        if agent.backend != Backend::Keystore {
            return Err(AgentError::LedgerKeyStays);
        }
        let k = self.settings.get().keystore.clone();
        let params = KdfParams { memory_kib: k.argon2_memory, time: k.argon2_time, parallelism: k.argon2_parallelism };
        let id = agent.id;
        let file =
            self.signers.keystore.with(|ks| tokio::task::block_in_place(|| ks.export(id, password, params))).await??;
        let ev = AuditEvent::new(AuditEventType::AgentKeyExported, ctx.actor.clone())
            .agent(id)
            .severity(AuditSeverity::Warning);
        let ctx = ctx.clone();
        self.db.call(move |s| s.append_audit(ev, &ctx)).await?;
        Ok(file)
    }

    /// Imports a waiaas v1 key file, an Ethereum V3 keystore or a Solana CLI keypair as a new
    /// keystore agent (new id; the key re-encrypted under the master KEK).
    pub(crate) async fn import(
        &self,
        keystore: &Value,
        password: zeroize::Zeroizing<String>,
        name: Option<String>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, AgentError> {
        let source = ImportSource::detect(keystore)?;
        let chain = match source.chain()? {
            ChainKind::Ethereum => Chain::Ethereum,
            ChainKind::Solana => Chain::Solana,
        };
        let decrypted = tokio::task::spawn_blocking(move || source.decrypt(password.as_bytes()))
            .await
            .map_err(|_| StoreError::Invariant("import task failed"))??;
        let network = parse_network(chain, decrypted.network.as_deref())?;
        let name = self.name_or_default(name.or(decrypted.name.clone())).await?;
        let chain_id = self.bind_chain(chain, network).await?;
        let rec = AgentRecord::new(self.clock.new_id(), name, chain, network, chain_id, self.clock.now());
        let ev = AuditEvent::new(AuditEventType::AgentKeyImported, ctx.actor.clone()).severity(AuditSeverity::Warning);
        self.insert_keystore_agent(rec, KeySource::Import(decrypted.secret), Some(ev), ctx).await
    }

    /// `POST /v1/owner/agents/:id/verify` after ownerAuth: GRACE → LOCKED (idempotent for a
    /// LOCKED agent). `OwnerStateChanged` when the owner changed between the signature check
    /// and the write.
    pub(crate) async fn mark_verified(
        &self,
        agent: &AgentRecord,
        owner: &Owner,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, AgentError> {
        let (ctx, id, address) = (ctx.clone(), agent.id, owner.address.clone());
        let agent = self
            .db
            .call(move |s| {
                s.mark_owner_verified(id, &address, &ctx)?;
                s.get_agent(id)
            })
            .await?
            .ok_or_else(|| AgentError::NotFound(id.to_string()))?;
        if agent.owner_state() != OwnerState::Locked {
            return Err(AgentError::OwnerStateChanged);
        }
        Ok(agent)
    }
}

/// Owner wallet connections (04-auth.md §9): a cache for client apps, never an auth source.
impl Agents {
    /// Remembers a paired owner wallet; a connection for the same (address, chain) is replaced.
    pub(crate) async fn connect_wallet(
        &self,
        chain: Chain,
        address: &str,
        wc_session_topic: Option<String>,
        wc_pairing_topic: Option<String>,
        ctx: &OpCtx,
    ) -> Result<WalletConnectionRecord, AgentError> {
        let address = crate::base::address::normalize(chain, address)
            .ok_or_else(|| Invalid::field("address", "invalid_string", format!("Invalid {chain} address")))?;
        let now = self.clock.now();
        let rec = WalletConnectionRecord {
            id: self.clock.new_id(),
            owner_address: address,
            chain,
            wc_session_topic,
            wc_pairing_topic,
            connected_at: now,
            last_active_at: now,
            metadata: serde_json::json!({}),
        };
        let (r, ctx) = (rec.clone(), ctx.clone());
        self.db.call(move |s| s.connect_wallet(&r, &ctx)).await?;
        Ok(rec)
    }

    /// Expires the owner's QUEUED APPROVAL transactions on `chain` (`OWNER_DISCONNECTED`) and
    /// forgets its wallet connections; returns (affected agents, expired transactions).
    pub(crate) async fn disconnect_owner(
        &self,
        chain: Chain,
        address: &str,
        ctx: &OpCtx,
    ) -> Result<(u64, u64), AgentError> {
        let address = crate::base::address::normalize(chain, address)
            .ok_or_else(|| Invalid::field("address", "invalid_string", format!("Invalid {chain} address")))?;
        let (ctx, a) = (ctx.clone(), address.clone());
        self.db.call(move |s| s.disconnect_owner(chain, &a, &ctx)).await.map_err(|e| match e {
            StoreError::NotFound { .. } => AgentError::OwnerNotFound(chain, address),
            other => other.into(),
        })
    }
}

/// Insert failures after the key was created.
fn insert_error(e: StoreError) -> AgentError {
    match e {
        StoreError::Unique { index: "idx_agent_name" } => AgentError::DuplicateName,
        StoreError::Unique { index: "idx_agent_public_key" } => AgentError::DuplicateKey,
        StoreError::Invariant(what) => Invalid::value("", what).into(),
        other => other.into(),
    }
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
) -> Result<AgentRecord, AgentError> {
    let network = rec.network.as_str();
    rec.public_key = match source {
        KeySource::Generate => ks.generate(rec.id, chain_kind(rec.chain), network, &rec.name),
        KeySource::Import(secret) => ks.adopt(rec.id, network, &rec.name, secret),
    }?;
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
    use waiaas_backends::keystore::master::MasterFile;

    fn record(name: &str, now: u64) -> AgentRecord {
        AgentRecord::new(Uuid::now_v7(), name.into(), Chain::Solana, Network::Devnet, None, now)
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
        assert_eq!(e.code(), ErrorCode::DuplicateResource);
        assert!(!ks_dir.join(format!("{clash_id}.json")).exists(), "the orphan key file was deleted");
        assert!(!ks.contains(clash_id) && ks.contains(first.id));
        assert_eq!(store.list_agents().unwrap().len(), 1);
    }
}
