//! Record types stored in the tables (02-storage.md §3).
//!
//! Records are stored as their `serde_json` encoding and read back with unknown fields
//! rejected. Invariants that span several fields ("`owner_verified` implies `owner_address`")
//! live in each record's `check` method, which every write path calls before touching a table;
//! a violation is [`StoreError::Invariant`](crate::StoreError::Invariant) and nothing is written.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::amount::Amount;
use crate::enums::*;
use crate::error::StoreError;

/// A 32-byte digest stored as 64 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash32(pub [u8; 32]);

impl Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Hash32(out))
    }
}

/// An agent: one key on one chain and network (§3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// UUID v7; also the key file name.
    pub id: Uuid,
    /// 1–100 characters, trimmed, not UUID-shaped; unique case-insensitively among live agents.
    pub name: String,
    /// Chain family.
    pub chain: Chain,
    /// Network of the chain.
    pub network: Network,
    /// EVM only: the EIP-155 chain id the agent is bound to.
    pub chain_id: Option<u64>,
    /// Key backend.
    pub backend: Backend,
    /// Ledger only: BIP-32 path of the key on the device.
    pub derivation_path: Option<String>,
    /// Solana base58 public key or EVM EIP-55 address.
    pub public_key: String,
    /// Lifecycle status.
    pub status: AgentStatus,
    /// Owner address, if any.
    pub owner_address: Option<String>,
    /// Whether the owner has proven control (LOCKED).
    pub owner_verified: bool,
    /// When the owner was verified.
    pub owner_verified_at: Option<u64>,
    /// Set exactly while SUSPENDED.
    pub suspended_at: Option<u64>,
    /// Set exactly while SUSPENDED.
    pub suspension_reason: Option<String>,
    /// Set once TERMINATED.
    pub terminated_at: Option<u64>,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
}

impl AgentRecord {
    /// A new ACTIVE keystore agent with no owner and no key yet: the caller sets `public_key`
    /// once the key exists (the key file is named after `id`, so the id comes first), or turns
    /// it into a Ledger agent with [`on_ledger`](Self::on_ledger).
    pub fn new(id: Uuid, name: String, chain: Chain, network: Network, chain_id: Option<u64>, now: u64) -> AgentRecord {
        AgentRecord {
            id,
            name,
            chain,
            network,
            chain_id,
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

    /// The same agent with its key on a Ledger at `path`.
    pub fn on_ledger(mut self, path: String, public_key: String) -> AgentRecord {
        self.backend = Backend::Ledger;
        self.derivation_path = Some(path);
        self.public_key = public_key;
        self
    }

    /// Derived owner state (§3.2).
    pub fn owner_state(&self) -> OwnerState {
        match (&self.owner_address, self.owner_verified) {
            (None, _) => OwnerState::None,
            (Some(_), false) => OwnerState::Grace,
            (Some(_), true) => OwnerState::Locked,
        }
    }

    /// The key of `idx_agent_owner` for the current owner.
    pub fn owner_key(&self) -> Option<String> {
        self.owner_address.as_deref().map(|a| owner_key(self.chain, a))
    }

    /// Checks every cross-field invariant.
    pub fn check(&self) -> Result<(), StoreError> {
        check_name(&self.name)?;
        if !self.network.valid_for(self.chain) {
            return Err(StoreError::Invariant("devnet exists only for solana"));
        }
        if (self.chain == Chain::Ethereum) != self.chain_id.is_some() {
            return Err(StoreError::Invariant("chain_id is required for and only for ethereum agents"));
        }
        if (self.backend == Backend::Ledger) != self.derivation_path.is_some() {
            return Err(StoreError::Invariant("derivation_path is required for and only for ledger agents"));
        }
        if self.public_key.is_empty() {
            return Err(StoreError::Invariant("public_key is empty"));
        }
        if self.owner_verified && self.owner_address.is_none() {
            return Err(StoreError::Invariant("owner_verified implies owner_address"));
        }
        if self.owner_verified != self.owner_verified_at.is_some() {
            return Err(StoreError::Invariant("owner_verified_at is set exactly when owner_verified"));
        }
        let suspended = self.status == AgentStatus::Suspended;
        if suspended != self.suspended_at.is_some() || suspended != self.suspension_reason.is_some() {
            return Err(StoreError::Invariant("suspended_at and suspension_reason are set exactly while SUSPENDED"));
        }
        if (self.status == AgentStatus::Terminated) != self.terminated_at.is_some() {
            return Err(StoreError::Invariant("terminated_at is set exactly when TERMINATED"));
        }
        Ok(())
    }
}

/// Validates an agent name (§3.2): 1–100 characters, trimmed, not UUID-shaped.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let chars = name.chars().count();
    if chars == 0 || chars > 100 {
        return Err(StoreError::Invariant("agent name must be 1-100 characters"));
    }
    if name.trim() != name {
        return Err(StoreError::Invariant("agent name must be trimmed"));
    }
    if Uuid::parse_str(name).is_ok() {
        return Err(StoreError::Invariant("agent name must not be a UUID"));
    }
    Ok(())
}

/// The owner index key: lowercase for EVM (addresses are case-insensitive), exact for Solana.
pub fn owner_key(chain: Chain, address: &str) -> String {
    match chain {
        Chain::Ethereum => address.to_ascii_lowercase(),
        Chain::Solana => address.to_string(),
    }
}

/// Operations a session may be limited to (04-auth.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AllowedOperation {
    /// TRANSFER
    Transfer,
    /// TOKEN_TRANSFER
    TokenTransfer,
    /// CONTRACT_CALL
    ContractCall,
    /// APPROVE
    Approve,
    /// BATCH
    Batch,
    /// Reading balances and assets.
    BalanceCheck,
}

impl AllowedOperation {
    /// The operation a transaction type needs.
    pub fn for_tx(t: TxType) -> AllowedOperation {
        match t {
            TxType::Transfer => AllowedOperation::Transfer,
            TxType::TokenTransfer => AllowedOperation::TokenTransfer,
            TxType::ContractCall => AllowedOperation::ContractCall,
            TxType::Approve => AllowedOperation::Approve,
            TxType::Batch => AllowedOperation::Batch,
        }
    }
}

/// Session constraints, stored with every default resolved (04-auth.md §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionConstraints {
    /// Per-request native amount cap.
    pub max_amount_per_tx: Option<Amount>,
    /// Cap on usage plus in-flight reservations plus this request.
    pub max_total_amount: Option<Amount>,
    /// Cap on confirmed plus in-flight transaction count.
    pub max_transactions: Option<u64>,
    /// Allowed operations; `None` = all.
    pub allowed_operations: Option<Vec<AllowedOperation>>,
    /// Allowed TRANSFER / TOKEN_TRANSFER destinations.
    pub allowed_destinations: Option<Vec<String>>,
    /// Allowed tokens for TOKEN_TRANSFER / APPROVE.
    pub allowed_tokens: Option<Vec<String>>,
    /// Allowed CONTRACT_CALL targets.
    pub allowed_contracts: Option<Vec<String>>,
    /// Allowed APPROVE spenders.
    pub allowed_spenders: Option<Vec<String>>,
    /// Token lifetime in seconds (300–604800).
    pub expires_in: u64,
    /// Maximum number of renewals (0–100).
    pub max_renewals: u32,
    /// Seconds after a renewal during which a revoke counts as a renewal rejection.
    pub renewal_reject_window: u64,
}

/// Confirmed usage of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageStats {
    /// Confirmed transactions.
    pub total_tx: u64,
    /// Sum of confirmed native amounts.
    pub total_amount: Amount,
    /// Time of the last confirmation.
    pub last_tx_at: Option<u64>,
}

impl Default for UsageStats {
    fn default() -> Self {
        UsageStats { total_tx: 0, total_amount: Amount::ZERO, last_tx_at: None }
    }
}

/// A session grant (§3.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRecord {
    /// UUID v7; equals the JWT `sid` and `jti`.
    pub id: Uuid,
    /// The agent the session acts for.
    pub agent_id: Uuid,
    /// SHA-256 of the full token string.
    pub token_hash: Hash32,
    /// Resolved constraints.
    pub constraints: SessionConstraints,
    /// Confirmed usage.
    pub usage: UsageStats,
    /// Current JWT `exp`.
    pub expires_at: u64,
    /// Hard end of the session, fixed at creation.
    pub absolute_expires_at: u64,
    /// Renewals so far.
    pub renewal_count: u32,
    /// Maximum renewals.
    pub max_renewals: u32,
    /// Time of the last renewal.
    pub last_renewed_at: Option<u64>,
    /// Revocation time; `None` = not revoked.
    pub revoked_at: Option<u64>,
    /// Why it was revoked.
    pub revoke_trigger: Option<String>,
    /// Creation time.
    pub created_at: u64,
}

impl SessionRecord {
    /// Live = not revoked and not expired at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// Checks cross-field invariants.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.expires_at > self.absolute_expires_at {
            return Err(StoreError::Invariant("expires_at must not exceed absolute_expires_at"));
        }
        if self.revoked_at.is_some() != self.revoke_trigger.is_some() {
            return Err(StoreError::Invariant("revoke_trigger is set exactly when revoked"));
        }
        if self.renewal_count > self.max_renewals {
            return Err(StoreError::Invariant("renewal_count exceeds max_renewals"));
        }
        Ok(())
    }
}

/// A transaction request and its lifecycle (§3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionRecord {
    /// UUID v7.
    pub id: Uuid,
    /// Owning agent.
    pub agent_id: Uuid,
    /// Session that sent it; `None` after the session row is deleted.
    pub session_id: Option<Uuid>,
    /// BATCH children: the parent row.
    pub parent_id: Option<Uuid>,
    /// BATCH children: 0-based index.
    pub batch_index: Option<u32>,
    /// Copied from the agent.
    pub chain: Chain,
    /// Copied from the agent.
    pub network: Network,
    /// Request type.
    pub tx_type: TxType,
    /// Current status.
    pub status: TxStatus,
    /// Tier, once decided.
    pub tier: Option<Tier>,
    /// Canonical request (or the child's instruction).
    pub request: Value,
    /// The amount in the request's own unit.
    pub amount: Amount,
    /// Native coin moved.
    pub native_amount: Amount,
    /// Destination.
    pub to_address: Option<String>,
    /// Token (TOKEN_TRANSFER, APPROVE).
    pub token_mint: Option<String>,
    /// Contract (CONTRACT_CALL, EVM APPROVE's token contract).
    pub contract_address: Option<String>,
    /// e.g. `0xa9059cbb (transfer)`.
    pub method_signature: Option<String>,
    /// APPROVE spender.
    pub spender_address: Option<String>,
    /// APPROVE amount.
    pub approved_amount: Option<Amount>,
    /// Chain hash / signature.
    pub tx_hash: Option<String>,
    /// Native amount reserved against caps while non-terminal.
    pub reserved_amount: Option<Amount>,
    /// When it was queued.
    pub queued_at: Option<u64>,
    /// DELAY: execute-at; APPROVAL: deadline.
    pub queue_expires_at: Option<u64>,
    /// Time of CONFIRMED.
    pub executed_at: Option<u64>,
    /// Idempotency key of the request.
    pub idempotency_key: Option<String>,
    /// Stable error string.
    pub error: Option<String>,
    /// Free-form metadata (keys listed in §3.4).
    pub metadata: Map<String, Value>,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
}

impl TransactionRecord {
    /// A new PENDING top-level row of `agent` (chain and network copied from it). Amounts start
    /// at zero and every optional field empty; stage 1 fills in what the request carries.
    pub fn pending(
        id: Uuid,
        agent: &AgentRecord,
        session_id: Option<Uuid>,
        tx_type: TxType,
        request: Value,
        now: u64,
    ) -> TransactionRecord {
        TransactionRecord {
            id,
            agent_id: agent.id,
            session_id,
            parent_id: None,
            batch_index: None,
            chain: agent.chain,
            network: agent.network,
            tx_type,
            status: TxStatus::Pending,
            tier: None,
            request,
            amount: Amount::ZERO,
            native_amount: Amount::ZERO,
            to_address: None,
            token_mint: None,
            contract_address: None,
            method_signature: None,
            spender_address: None,
            approved_amount: None,
            tx_hash: None,
            reserved_amount: None,
            queued_at: None,
            queue_expires_at: None,
            executed_at: None,
            idempotency_key: None,
            error: None,
            metadata: Map::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// A new PENDING native TRANSFER of `amount` (smallest units) to `to`, as stage 1 records
    /// one: the request body, the amount and the recipient filled in.
    pub fn native_transfer(
        id: Uuid,
        agent: &AgentRecord,
        session_id: Option<Uuid>,
        to: &str,
        amount: u64,
        now: u64,
    ) -> TransactionRecord {
        let request = serde_json::json!({"type": "TRANSFER", "to": to, "amount": amount.to_string()});
        let mut t = TransactionRecord::pending(id, agent, session_id, TxType::Transfer, request, now);
        t.amount = Amount::from_u64(amount);
        t.native_amount = t.amount;
        t.to_address = Some(to.to_string());
        t
    }

    /// The same row as instruction `index` of the BATCH `parent`.
    pub fn child_of(mut self, parent: Uuid, index: u32) -> TransactionRecord {
        self.parent_id = Some(parent);
        self.batch_index = Some(index);
        self
    }

    /// Top-level rows are those without a parent.
    pub fn is_top_level(&self) -> bool {
        self.parent_id.is_none()
    }

    /// The NOOP that fills the EVM nonce gap at `nonce` (13-postgres-ha.md §6.2 step 4): a
    /// top-level 0-value TRANSFER from the agent to itself, claimed (EXECUTING) from the start,
    /// with no session and no reservation, marked `metadata.nonceFill`.
    pub fn nonce_fill(id: Uuid, agent: &AgentRecord, nonce: u64, now: u64) -> TransactionRecord {
        let request = serde_json::json!({"type": "TRANSFER", "to": agent.public_key, "amount": "0"});
        let mut r = TransactionRecord::pending(id, agent, None, TxType::Transfer, request, now);
        r.status = TxStatus::Executing;
        r.tier = Some(Tier::Instant);
        r.to_address = Some(agent.public_key.clone());
        r.metadata.insert("nonceFill".into(), Value::Bool(true));
        r.metadata.insert("nonce".into(), nonce.into());
        r
    }

    /// Whether this row is a [`nonce_fill`](Self::nonce_fill): the system's, so no rate limit
    /// or AutoStop rule counts it.
    pub fn is_nonce_fill(&self) -> bool {
        self.metadata.get("nonceFill").and_then(Value::as_bool) == Some(true)
    }

    /// The signed transaction of the stage-5 checkpoint (`metadata.signedTx`), once there is one:
    /// what start-up recovery and the confirmation worker rebroadcast.
    pub fn signed_tx(&self) -> Option<&str> {
        self.metadata.get(meta::SIGNED_TX).and_then(Value::as_str)
    }

    /// The hash the checkpointed transaction will have on chain (`metadata.expectedHash`).
    pub fn expected_hash(&self) -> Option<&str> {
        self.metadata.get(meta::EXPECTED_HASH).and_then(Value::as_str)
    }

    /// Whether the owner signed for this row: an APPROVAL-tier transaction can only run after
    /// the owner's approval. AutoStop's volume and pattern rules watch what an agent does on its
    /// own, so they skip sanctioned rows (08-killswitch-autostop.md §6.2, ACC-222b).
    pub fn owner_sanctioned(&self) -> bool {
        self.tier == Some(Tier::Approval)
    }

    /// Checks cross-field invariants.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.parent_id.is_some() != self.batch_index.is_some() {
            return Err(StoreError::Invariant("parent_id and batch_index are set together"));
        }
        if !self.network.valid_for(self.chain) {
            return Err(StoreError::Invariant("devnet exists only for solana"));
        }
        if self.status.is_terminal() && self.reserved_amount.is_some() {
            return Err(StoreError::Invariant("terminal transactions hold no reservation"));
        }
        if self.status == TxStatus::Queued && self.tier.is_none() {
            return Err(StoreError::Invariant("a QUEUED transaction has a tier"));
        }
        if !self.request.is_object() {
            return Err(StoreError::Invariant("request is a JSON object"));
        }
        Ok(())
    }
}

/// Keys of `TransactionRecord::metadata` that storage itself gives meaning to.
pub mod meta {
    /// The signed transaction, hex or base64 as the chain encodes it.
    pub const SIGNED_TX: &str = "signedTx";
    /// The hash the signed transaction will have on chain.
    pub const EXPECTED_HASH: &str = "expectedHash";
    /// An EVM approve's signed allowance reset.
    pub const RESET_SIGNED_TX: &str = "resetSignedTx";
}

/// An idempotency record, keyed by (agent, key) (§3.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyRecord {
    /// SHA-256 of the canonical request JSON.
    pub request_hash: Hash32,
    /// The transaction it created.
    pub tx_id: Option<Uuid>,
    /// Creation time.
    pub created_at: u64,
    /// When a response was stored.
    pub completed_at: Option<u64>,
    /// Stored HTTP status.
    pub response_status: Option<u16>,
    /// Stored HTTP body.
    pub response_body: Option<Value>,
}

/// The owner's approval slot of an APPROVAL-tier transaction (§3.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    /// The transaction.
    pub tx_id: Uuid,
    /// Its agent.
    pub agent_id: Uuid,
    /// Owner address at queue time.
    pub owner_address: String,
    /// Deadline.
    pub expires_at: u64,
    /// When approved.
    pub approved_at: Option<u64>,
    /// Who approved.
    pub approved_by: Option<String>,
    /// The verified ownerAuth payload.
    pub owner_payload: Option<Value>,
    /// When rejected.
    pub rejected_at: Option<u64>,
    /// When expired.
    pub expired_at: Option<u64>,
    /// Creation time.
    pub created_at: u64,
}

impl ApprovalRecord {
    /// Whether one of approved / rejected / expired has been set.
    pub fn is_settled(&self) -> bool {
        self.approved_at.is_some() || self.rejected_at.is_some() || self.expired_at.is_some()
    }

    /// Checks that at most one outcome is set.
    pub fn check(&self) -> Result<(), StoreError> {
        let n = [self.approved_at, self.rejected_at, self.expired_at].iter().filter(|v| v.is_some()).count();
        if n > 1 {
            return Err(StoreError::Invariant("an approval is settled at most once"));
        }
        Ok(())
    }
}

/// A policy row (§3.7). `rules` are validated by the daemon per type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// UUID v7.
    pub id: Uuid,
    /// `None` = global.
    pub agent_id: Option<Uuid>,
    /// `None` = all chains.
    pub chain: Option<Chain>,
    /// Rule type.
    pub policy_type: PolicyType,
    /// Rules JSON.
    pub rules: Value,
    /// −1000..=1000, higher first.
    pub priority: i32,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
}

impl PolicyRecord {
    /// A new global, enabled policy of priority 0 for every chain, created at `now`; set
    /// `agent_id`, `chain` or `priority` on the result for a narrower or stronger one.
    pub fn new(id: Uuid, policy_type: PolicyType, rules: Value, now: u64) -> PolicyRecord {
        PolicyRecord {
            id,
            agent_id: None,
            chain: None,
            policy_type,
            rules,
            priority: 0,
            enabled: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// Checks cross-field invariants.
    pub fn check(&self) -> Result<(), StoreError> {
        if !(-1000..=1000).contains(&self.priority) {
            return Err(StoreError::Invariant("policy priority must be -1000..=1000"));
        }
        if !self.rules.is_object() {
            return Err(StoreError::Invariant("policy rules must be a JSON object"));
        }
        Ok(())
    }
}

/// An AutoStop rule (§3.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoStopRuleRecord {
    /// UUID v7.
    pub id: Uuid,
    /// `None` = global.
    pub agent_id: Option<Uuid>,
    /// Rule type.
    pub rule_type: AutoStopRuleType,
    /// Config JSON.
    pub config: Value,
    /// Action when it fires.
    pub action: AutoStopAction,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
}

impl AutoStopRuleRecord {
    /// A new global, enabled rule created at `now`; set `agent_id` or `enabled` on the result
    /// for an agent's rule or a disabled one.
    pub fn new(id: Uuid, rule_type: AutoStopRuleType, config: Value, action: AutoStopAction, now: u64) -> Self {
        AutoStopRuleRecord {
            id,
            agent_id: None,
            rule_type,
            config,
            action,
            enabled: true,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A notification channel (§3.10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRecord {
    /// UUID v7.
    pub id: Uuid,
    /// Channel kind.
    pub channel_type: ChannelType,
    /// 1–100 characters.
    pub name: String,
    /// Channel config JSON (holds secrets; masked by the API).
    pub config: Value,
    /// Higher tried first.
    pub priority: i32,
    /// Disabled channels are kept, never deleted.
    pub enabled: bool,
    /// Last health check time.
    pub last_health_check: Option<u64>,
    /// Last health check result.
    pub last_health_status: Option<bool>,
    /// Consecutive failed health checks.
    pub consecutive_health_failures: u32,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
}

/// One notification delivery attempt (§3.11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationLogRecord {
    /// UUID v7 (key order = time order).
    pub id: Uuid,
    /// Channel, `None` for ALL_FAILED rows.
    pub channel_id: Option<Uuid>,
    /// Event name.
    pub event: String,
    /// Level.
    pub level: NotificationLevel,
    /// Reference (tx id, session id, …).
    pub reference_id: Option<String>,
    /// Outcome.
    pub status: NotificationStatus,
    /// Error text.
    pub error: Option<String>,
    /// Retries made.
    pub retry_count: u32,
    /// Send time.
    pub sent_at: u64,
}

/// A remembered owner wallet pairing (§3.12); never an auth source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletConnectionRecord {
    /// UUID v7.
    pub id: Uuid,
    /// Owner address.
    pub owner_address: String,
    /// Chain.
    pub chain: Chain,
    /// WalletConnect session topic.
    pub wc_session_topic: Option<String>,
    /// WalletConnect pairing topic.
    pub wc_pairing_topic: Option<String>,
    /// Connection time.
    pub connected_at: u64,
    /// Last activity.
    pub last_active_at: u64,
    /// Client metadata.
    pub metadata: Value,
}

/// A `system_state` value (§3.14).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemStateEntry {
    /// The value.
    pub value: Value,
    /// Last change.
    pub updated_at: u64,
}
