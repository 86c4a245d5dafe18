//! The values that cross the adapter boundary (05-chains.md §1.2): what the pipeline asks an
//! adapter to build, and what comes back at each step. No key material ever appears here.

use std::time::{Instant, SystemTime};

use alloy::consensus::TxEip1559;
use serde_json::{Map, Value};
use waiaas_storage::Amount;

use super::error::ChainError;

/// Fee bid level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    pub(crate) fn parse(s: &str) -> Option<Priority> {
        match s {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
}

/// A token by address, with the decimals the request claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRef {
    pub(crate) address: String,
    pub(crate) decimals: Option<u8>,
}

/// A Solana account meta of a program call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountMetaSpec {
    pub(crate) pubkey: String,
    pub(crate) is_signer: bool,
    pub(crate) is_writable: bool,
}

/// The body of a contract call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallBody {
    Evm { calldata: Vec<u8> },
    Solana { instruction_data: Vec<u8>, accounts: Vec<AccountMetaSpec> },
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildRequest {
    Transfer {
        from: String,
        to: String,
        amount: Amount,
        memo: Option<String>,
    },
    TokenTransfer {
        from: String,
        to: String,
        amount: Amount,
        token: TokenRef,
        memo: Option<String>,
    },
    ContractCall {
        from: String,
        to: String,
        value: Amount,
        body: CallBody,
        memo: Option<String>,
    },
    Approve {
        from: String,
        token: TokenRef,
        spender: String,
        amount: Amount,
    },
    /// Solana only; no nesting.
    Batch {
        from: String,
        instructions: Vec<BuildRequest>,
        memo: Option<String>,
    },
}

impl BuildRequest {
    pub(crate) fn from(&self) -> &str {
        match self {
            BuildRequest::Transfer { from, .. }
            | BuildRequest::TokenTransfer { from, .. }
            | BuildRequest::ContractCall { from, .. }
            | BuildRequest::Approve { from, .. }
            | BuildRequest::Batch { from, .. } => from,
        }
    }
}

/// Which nonce of a transaction an EVM build takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceUse {
    /// The transaction itself.
    Main,
    /// The `approve(spender, 0)` reset sent before it.
    Reset,
}

/// Where an EVM build gets its nonce when the caller supplies the source (PostgreSQL: the
/// database's nonce table, 13-postgres-ha.md §5); otherwise the adapter's in-memory tracker.
#[async_trait::async_trait]
pub(crate) trait NonceSource: Send + Sync {
    /// The nonce for this use of the transaction being built, given the node's pending count;
    /// asking again for the same use returns the same nonce.
    async fn assign(&self, used_for: NonceUse, pending: u64) -> Result<u64, super::error::ChainError>;
}

/// A shared nonce source, shown as its presence in `Debug`.
#[derive(Clone)]
pub(crate) struct Nonces(pub(crate) std::sync::Arc<dyn NonceSource>);

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(..)")
    }
}

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildOptions {
    /// EVM: where the nonce comes from (`None`: the adapter's tracker).
    pub(crate) nonces: Option<Nonces>,
    pub(crate) priority: Priority,
    /// EVM: one more × 1.2 on the gas limit (after `EVM_GAS_TOO_LOW`).
    pub(crate) gas_limit_multiplier_bump: bool,
    /// Solana: the fee-bump compute-unit price.
    pub(crate) cu_price_override: Option<u64>,
    /// A METHOD_WHITELIST name for the method signature.
    pub(crate) contract_name: Option<String>,
    /// EVM: the transfer empties the account (a withdrawal, issue #22). The gas limit is the
    /// estimate itself — a plain transfer to an account without code costs exactly its
    /// estimate — and `maxPriorityFeePerGas = maxFeePerGas`, so the price charged is exactly
    /// `maxFeePerGas`; a native transfer's value is the balance less that fee, from the
    /// build's own readings (the request's amount is ignored; `metadata.sweptAmount` says
    /// what it became), so nothing is left behind.
    pub(crate) sweep: bool,
}

/// Fee components in the chain's smallest unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FeeEstimate {
    pub(crate) network_fee: Amount,
    pub(crate) priority_fee: Amount,
    pub(crate) account_creation_fee: Amount,
    pub(crate) total_fee: Amount,
}

/// The chain-specific part of an unsigned transaction.
#[derive(Debug, Clone)]
pub(crate) enum UnsignedInner {
    /// `approve_reset` is `approve(spender, 0)`: when present the pipeline signs, submits and
    /// confirms it first and then builds the real approve afresh.
    Evm {
        tx: Box<TxEip1559>,
        approve_reset: Option<Box<TxEip1559>>,
    },
    Solana(Box<SolanaUnsigned>),
}

/// A Solana v0 message with the data needed to refresh it.
#[derive(Debug, Clone)]
pub(crate) struct SolanaUnsigned {
    /// The request's instructions (without the compute-budget pair), for recompiling.
    pub(crate) instructions: Vec<solana_sdk::instruction::Instruction>,
    pub(crate) message: solana_sdk::message::VersionedMessage,
    pub(crate) blockhash: solana_sdk::hash::Hash,
    pub(crate) last_valid_block_height: u64,
    pub(crate) cu_price: u64,
    pub(crate) cu_limit: u32,
}

/// A built, unsigned transaction.
#[derive(Debug, Clone)]
pub(crate) struct UnsignedTx {
    pub(crate) inner: UnsignedInner,
    pub(crate) estimated_fee: FeeEstimate,
    pub(crate) built_at: Instant,
    /// Solana only: `built_at + 50 s`.
    pub(crate) expires_at: Option<SystemTime>,
    /// `nonce`, `needCreateAta`, `tokenProgram`, `previousDelegate`, `methodSignature`, …
    pub(crate) metadata: Map<String, Value>,
}

/// The outcome of a simulation that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SimulationResult {
    pub(crate) success: bool,
    pub(crate) logs: Vec<String>,
    pub(crate) units_consumed: Option<u64>,
    pub(crate) error: Option<String>,
}

/// Wire bytes and the hash they will have on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedTx {
    pub(crate) bytes: Vec<u8>,
    /// Solana: base58 signature; EVM: 0x + 64 hex.
    pub(crate) hash: String,
}

/// What a submit achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubmitOutcome {
    Accepted {
        hash: String,
    },
    /// The request may have reached the node.
    Unknown {
        hash: String,
        cause: String,
    },
    /// Definitively refused, or never sent.
    Rejected(ChainError),
}

/// On-chain status of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainTxStatus {
    NotFound,
    Pending,
    Confirmed {
        block: u64,
        fee: Option<Amount>,
        confirmations: Option<u64>,
    },
    Finalized {
        block: u64,
        fee: Option<Amount>,
    },
    Failed {
        error: ChainError,
        block: Option<u64>,
        fee: Option<Amount>,
    },
    /// Solana: the blockhash passed without inclusion.
    Expired,
}

/// What a status lookup may use besides the hash.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusContext {
    pub(crate) last_valid_block_height: Option<u64>,
    pub(crate) nonce: Option<u64>,
    pub(crate) from: Option<String>,
}

/// `{healthy, latency_ms}`; `{false, -1}` when disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) healthy: bool,
    pub(crate) latency_ms: i64,
}

/// A native balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BalanceInfo {
    pub(crate) address: String,
    pub(crate) balance: Amount,
    pub(crate) decimals: u8,
    pub(crate) symbol: String,
}

/// Kind of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssetKind {
    Native,
    Spl,
    Erc20,
}

impl AssetKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AssetKind::Native => "native",
            AssetKind::Spl => "spl",
            AssetKind::Erc20 => "erc20",
        }
    }
}

/// One asset held by an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssetInfo {
    pub(crate) kind: AssetKind,
    pub(crate) token_address: Option<String>,
    pub(crate) symbol: String,
    pub(crate) name: Option<String>,
    pub(crate) balance: Amount,
    pub(crate) decimals: u8,
}

/// One token of a sweep (05-chains.md §2.8, §3.13): what moves and the request that moves it.
#[derive(Debug, Clone)]
pub(crate) struct SweepItem {
    pub(crate) mint: String,
    pub(crate) symbol: String,
    pub(crate) amount: Amount,
    /// Solana: the lamports of the token account the request closes (back to the destination).
    pub(crate) rent: Amount,
    pub(crate) build: BuildRequest,
}

/// A token an owner's policy names (ALLOWED_TOKENS), used to list and sweep balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenHint {
    pub(crate) address: String,
    pub(crate) symbol: String,
    pub(crate) decimals: Option<u8>,
}
