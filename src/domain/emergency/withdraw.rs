//! Withdraw (09-api.md §6.6, 05-chains.md §2.8 / §3.13): an owner pulls an agent's funds to the
//! owner address — also while the kill switch is on, which is when it matters most.
//!
//! It bypasses policies and session constraints and writes no transaction rows; it is audited
//! (`FUND_WITHDRAWN`, `FUND_PARTIALLY_WITHDRAWN`, `FUND_WITHDRAWAL_FAILED`) with the hashes. Keys:
//! the unlocked keystore when there is one; while it is locked (kill switch), only this agent's
//! key is decrypted, with the request's master password, for this call alone, and dropped
//! (zeroized) when it returns. Ledger agents sign on the device.
//!
//! Order: every token (one transaction each, failures recorded per token), then the native
//! balance minus the fee, attempted even when every token failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use uuid::Uuid;
use waiaas_backends::seam::{KeyRef, Purpose, SignContext, SignerBackend, SignerError, sign_verified};
use waiaas_storage::{
    AgentRecord, AgentStatus, Amount, AuditEvent, AuditEventType, AuditSeverity, Backend, OpCtx, OwnerState, StoreError,
};

use crate::adapters::chains::error::ChainError;
use crate::adapters::chains::types::{
    BuildOptions, BuildRequest, ChainTxStatus, StatusContext, SubmitOutcome, TokenHint,
};
use crate::adapters::chains::{ChainAdapter, Registry};
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::runtime::{Db, Signers};

/// `all` (tokens, then native) or `native`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    Native,
}

impl Scope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Native => "native",
        }
    }
}

/// What a withdrawal moved.
#[derive(Debug, Clone, Default)]
pub(crate) struct Withdrawal {
    pub(crate) agent_id: Uuid,
    pub(crate) destination: String,
    pub(crate) native_recovered: Amount,
    /// `(mint, symbol, amount)`.
    pub(crate) tokens_recovered: Vec<(String, String, Amount)>,
    pub(crate) rent_recovered: Amount,
    /// `(mint or "native", error)`.
    pub(crate) failed: Vec<(String, String)>,
    pub(crate) tx_hashes: Vec<String>,
}

impl Withdrawal {
    pub(crate) fn partial(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// Why a withdrawal did not happen (nothing was sent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WithdrawError {
    #[error("Agent {0} not found")]
    AgentNotFound(String),
    #[error("Agent {0} has no owner")]
    NoOwner(Uuid),
    #[error("Agent {0} is terminated")]
    Terminated(Uuid),
    #[error("Withdrawals need a verified (LOCKED) owner")]
    LockedOnly,
    #[error("The balance cannot pay the fee")]
    InsufficientForFee,
    #[error("Nothing could be sent: {0}")]
    TotalFailure(String),
    #[error(transparent)]
    Chain(ChainError),
    #[error(transparent)]
    Signer(SignerError),
    /// PostgreSQL: the agent's Ledger is on another replica (13-postgres-ha.md §6.4).
    #[error("This agent's Ledger is on replica {0}, which does not lead now")]
    PinnedElsewhere(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for WithdrawError {
    fn code(&self) -> ErrorCode {
        match self {
            WithdrawError::AgentNotFound(_) => ErrorCode::AgentNotFound,
            WithdrawError::NoOwner(_) => ErrorCode::NoOwner,
            WithdrawError::Terminated(_) => ErrorCode::AgentTerminated,
            WithdrawError::LockedOnly => ErrorCode::WithdrawLockedOnly,
            WithdrawError::InsufficientForFee => ErrorCode::InsufficientForFee,
            WithdrawError::TotalFailure(_) => ErrorCode::SweepTotalFailure,
            WithdrawError::Chain(e) => e.code(),
            WithdrawError::Signer(e) => e.code(),
            WithdrawError::PinnedElsewhere(_) => ErrorCode::SignerUnavailable,
            WithdrawError::Store(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            WithdrawError::AgentNotFound(id) => details([("resource", "agent".into()), ("id", id.clone().into())]),
            WithdrawError::Chain(e) => e.details(),
            _ => Map::new(),
        }
    }
}

/// Signs for one agent: the daemon's backend, or a one-key keystore decrypted for this call.
struct Signing {
    backend: Arc<dyn SignerBackend>,
    key: KeyRef,
}

/// The withdraw service.
pub(crate) struct Withdrawals {
    db: Db,
    clock: Clock,
    chains: Arc<Registry>,
    signers: Signers,
    /// For its per-agent execution lock: a sweep and a send of the same EVM agent must not
    /// take the same nonce.
    pipeline: Arc<crate::domain::pipeline::Pipeline>,
}

impl Withdrawals {
    pub(crate) fn new(
        db: Db,
        clock: Clock,
        chains: Arc<Registry>,
        signers: Signers,
        pipeline: Arc<crate::domain::pipeline::Pipeline>,
    ) -> Withdrawals {
        Withdrawals { db, clock, chains, signers, pipeline }
    }

    /// Moves `agent`'s funds to its owner. `tokens` adds ERC-20 addresses to the agent's
    /// ALLOWED_TOKENS hints (EVM; Solana sweeps every token account). `password` is the
    /// request's master password, used only when the keystore is locked.
    pub(crate) async fn withdraw(
        &self,
        agent: &str,
        scope: Scope,
        tokens: Vec<String>,
        password: &str,
        actor: &str,
    ) -> Result<Withdrawal, WithdrawError> {
        let agent = self.load(agent).await?;
        let owner = agent.owner_address.clone().ok_or(WithdrawError::NoOwner(agent.id))?;
        if agent.owner_state() != OwnerState::Locked {
            return Err(WithdrawError::LockedOnly);
        }
        if let Some(replica) = crate::domain::ledger_pins::elsewhere(&self.db, &agent).await? {
            return Err(WithdrawError::PinnedElsewhere(replica));
        }
        let adapter = self.chains.for_agent(&agent).await.map_err(WithdrawError::Chain)?;
        let signing = self.signing(&agent, password).await?;
        let mut hints = self.hints(&agent).await?;
        for t in tokens {
            if let Some(address) = crate::base::address::normalize(agent.chain, &t)
                && !hints.iter().any(|h| crate::base::address::same(agent.chain, &h.address, &address))
            {
                hints.push(TokenHint { address, symbol: String::new(), decimals: None });
            }
        }
        // Held for the whole sweep, as a send holds it from build to broadcast.
        let _nonce_order = self.pipeline.nonce_order(&agent).await;
        let mut w = Withdrawal { agent_id: agent.id, destination: owner.clone(), ..Withdrawal::default() };
        if scope == Scope::All {
            let items = adapter.sweep_tokens(&agent.public_key, &owner, &hints).await.map_err(WithdrawError::Chain)?;
            for item in items {
                match send(adapter.as_ref(), &item.build, &BuildOptions::default(), &signing, &agent).await {
                    Ok((hash, _)) => {
                        w.tx_hashes.push(hash);
                        w.rent_recovered = w.rent_recovered.saturating_add(item.rent);
                        w.tokens_recovered.push((item.mint, item.symbol, item.amount));
                    }
                    Err(e) => w.failed.push((item.mint, e)),
                }
            }
        }
        // Native last, always attempted.
        match self.native(adapter.as_ref(), &agent, &owner, &signing).await {
            Ok((hash, amount)) => {
                w.tx_hashes.push(hash);
                w.native_recovered = amount;
            }
            Err(NativeFailure::Fee) if scope == Scope::Native => return Err(WithdrawError::InsufficientForFee),
            Err(NativeFailure::Fee) if w.tx_hashes.is_empty() && w.failed.is_empty() => {
                return Err(WithdrawError::InsufficientForFee);
            }
            Err(NativeFailure::Fee) => w.failed.push(("native".into(), "INSUFFICIENT_FOR_FEE".into())),
            Err(NativeFailure::Other(e)) => w.failed.push(("native".into(), e)),
        }
        self.audit(&agent, scope, &w, actor).await?;
        if w.tx_hashes.is_empty() {
            let why = w.failed.iter().map(|(m, e)| format!("{m}: {e}")).collect::<Vec<_>>().join("; ");
            return Err(WithdrawError::TotalFailure(why));
        }
        Ok(w)
    }

    async fn load(&self, raw: &str) -> Result<AgentRecord, WithdrawError> {
        let id = Uuid::parse_str(raw).map_err(|_| WithdrawError::AgentNotFound(raw.to_string()))?;
        let agent = self
            .db
            .call(move |s| s.get_agent(id))
            .await?
            .ok_or_else(|| WithdrawError::AgentNotFound(raw.to_string()))?;
        if agent.status == AgentStatus::Terminated {
            return Err(WithdrawError::Terminated(agent.id));
        }
        Ok(agent)
    }

    /// The ALLOWED_TOKENS hints of the agent's effective policies.
    async fn hints(&self, agent: &AgentRecord) -> Result<Vec<TokenHint>, StoreError> {
        let policies = self.db.call(|s| s.list_policies()).await?;
        Ok(crate::rules::policy::scope::allowed_tokens(agent, &policies)
            .into_iter()
            .map(|t| TokenHint { address: t.mint, symbol: t.symbol, decimals: t.decimals })
            .collect())
    }

    /// The daemon's signer for the agent, or — keystore locked — a keystore holding only this
    /// agent's key, decrypted with `password` now.
    async fn signing(&self, agent: &AgentRecord, password: &str) -> Result<Signing, WithdrawError> {
        let key = crate::domain::agents::key_ref(agent);
        let backend: Arc<dyn SignerBackend> = match agent.backend {
            Backend::Ledger => match &self.signers.ledger {
                Some(l) => l.clone(),
                None => return Err(WithdrawError::Signer(SignerError::Unsupported { intent: "ledger" })),
            },
            Backend::Keystore if self.signers.keystore.is_unlocked().await => self.signers.keystore.clone(),
            Backend::Keystore => {
                let candidate = zeroize::Zeroizing::new(password.as_bytes().to_vec());
                let one = self
                    .signers
                    .keystore
                    .decrypt_from_disk(candidate, vec![crate::domain::agents::key_info(agent)])
                    .await
                    .map_err(|e| {
                        WithdrawError::Signer(SignerError::Internal(format!("cannot decrypt the agent's key: {e}")))
                    })?;
                Arc::new(self.signers.keystore.sibling(one))
            }
        };
        Ok(Signing { backend, key })
    }

    /// The native balance minus the fee of the transfer that moves it.
    async fn native(
        &self,
        adapter: &dyn ChainAdapter,
        agent: &AgentRecord,
        to: &str,
        signing: &Signing,
    ) -> Result<(String, Amount), NativeFailure> {
        let balance =
            adapter.get_balance(&agent.public_key).await.map_err(|e| NativeFailure::Other(e.to_string()))?.balance;
        let probe = BuildRequest::Transfer {
            from: agent.public_key.clone(),
            to: to.into(),
            amount: Amount::from_u64(1),
            memo: None,
        };
        // Priced and built as a sweep: whatever the fee does not take leaves the account.
        let sweep = BuildOptions { sweep: true, ..BuildOptions::default() };
        let fee =
            adapter.estimate_fee(&probe, &sweep).await.map_err(|e| NativeFailure::Other(e.to_string()))?.total_fee;
        if balance <= fee {
            return Err(NativeFailure::Fee);
        }
        let amount = balance.saturating_sub(fee);
        let req = BuildRequest::Transfer { from: agent.public_key.clone(), to: to.into(), amount, memo: None };
        let (hash, swept) = send(adapter, &req, &sweep, signing, agent).await.map_err(NativeFailure::Other)?;
        // EVM prices the sweep again when it builds it; what it sent is what counts.
        Ok((hash, swept.unwrap_or(amount)))
    }

    async fn audit(&self, agent: &AgentRecord, scope: Scope, w: &Withdrawal, actor: &str) -> Result<(), StoreError> {
        let (event, severity) = match (w.tx_hashes.is_empty(), w.partial()) {
            (true, _) => (AuditEventType::FundWithdrawalFailed, AuditSeverity::Critical),
            (false, true) => (AuditEventType::FundPartiallyWithdrawn, AuditSeverity::Warning),
            (false, false) => (AuditEventType::FundWithdrawn, AuditSeverity::Warning),
        };
        let ev = AuditEvent::new(event, actor.to_string())
            .severity(severity)
            .agent(agent.id)
            .detail("destination", w.destination.clone())
            .detail("scope", scope.as_str())
            .detail("nativeRecovered", w.native_recovered.to_string())
            .detail("txHashes", json!(w.tx_hashes))
            .detail("failed", json!(w.failed.iter().map(|(m, e)| json!({"mint": m, "error": e})).collect::<Vec<_>>()));
        let ctx = OpCtx::new(actor, self.clock.now());
        self.db.call(move |s| s.append_audit(ev, &ctx)).await.map(|_| ())
    }
}

enum NativeFailure {
    Fee,
    Other(String),
}

/// One sweep transaction: build, simulate, sign, submit, wait for the confirmation (30 s).
/// Returns the hash and, for an EVM sweep, the amount the build settled on; or the error text
/// recorded in `failed`.
async fn send(
    adapter: &dyn ChainAdapter,
    req: &BuildRequest,
    opts: &BuildOptions,
    signing: &Signing,
    agent: &AgentRecord,
) -> Result<(String, Option<Amount>), String> {
    let chain_err = |e: ChainError| format!("{}: {}", e.code.as_str(), e.message);
    let unsigned = adapter.build(req, opts).await.map_err(chain_err)?;
    let sim = adapter.simulate(&unsigned).await.map_err(chain_err)?;
    if !sim.success {
        adapter.reset_nonce_tracker(Some(&agent.public_key));
        return Err(format!("SIMULATION_FAILED: {}", sim.error.unwrap_or_default()));
    }
    let unsigned = adapter.apply_simulation(unsigned, &sim).await.map_err(chain_err)?;
    let intent = adapter.prepare_signing(&unsigned).await.map_err(chain_err)?;
    let ctx =
        SignContext { purpose: Purpose::Withdraw, tx_id: None, deadline: Instant::now() + Duration::from_secs(60) };
    let out = sign_verified(signing.backend.as_ref(), &signing.key, &intent, &ctx).await.map_err(|e| e.to_string())?;
    let signed = adapter.attach_signature(&unsigned, &out).map_err(chain_err)?;
    let hash = match adapter.submit(&signed).await {
        SubmitOutcome::Accepted { hash } | SubmitOutcome::Unknown { hash, .. } => hash,
        SubmitOutcome::Rejected(e) => {
            adapter.reset_nonce_tracker(Some(&agent.public_key));
            return Err(chain_err(e));
        }
    };
    let ctx = StatusContext {
        last_valid_block_height: unsigned.metadata.get("lastValidBlockHeight").and_then(Value::as_u64),
        nonce: unsigned.metadata.get("nonce").and_then(Value::as_u64),
        from: Some(agent.public_key.clone()),
    };
    match adapter.wait_for_confirmation(&hash, &ctx, Duration::from_secs(30)).await {
        Ok(ChainTxStatus::Confirmed { .. } | ChainTxStatus::Finalized { .. }) => {
            let swept =
                unsigned.metadata.get("sweptAmount").and_then(Value::as_str).and_then(|a| Amount::parse(a).ok());
            Ok((hash, swept))
        }
        Ok(ChainTxStatus::Failed { error, .. }) => Err(chain_err(error)),
        Ok(other) => Err(format!("not confirmed within 30 s ({other:?}): {hash}")),
        Err(e) => Err(chain_err(e)),
    }
}
