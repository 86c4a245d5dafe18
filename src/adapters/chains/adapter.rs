//! The chain adapter trait (05-chains.md §1.3) and the connection state every adapter keeps.
//!
//! An adapter is the low-level executor for one (chain, network): build, simulate, prepare for
//! signing, assemble, submit, track. It knows nothing of policies or sessions and never sees a
//! key: the pipeline signs the `SignIntent` from `prepare_signing` through the signer seam and
//! hands the signature back to `attach_signature`.

use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use waiaas_backends::seam::{SignIntent, SignOutput};
use waiaas_storage::{Chain, Network};

use super::error::ChainError;
use super::types::*;

/// Connection state as the registry and `/health` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdapterStatus {
    Connected,
    Disconnected,
    /// A configuration problem (chain-id mismatch): no automatic reconnect until the config changes.
    Error,
}

impl AdapterStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AdapterStatus::Connected => "connected",
            AdapterStatus::Disconnected => "disconnected",
            AdapterStatus::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    status: AdapterStatus,
    latency_ms: i64,
    last_error: Option<String>,
    last_check: Option<u64>,
}

/// The part of an adapter that tracks connectivity; shared by every implementation.
#[derive(Debug)]
pub(crate) struct ConnState(RwLock<State>);

impl Default for ConnState {
    fn default() -> Self {
        ConnState(RwLock::new(State {
            status: AdapterStatus::Disconnected,
            latency_ms: -1,
            last_error: None,
            last_check: None,
        }))
    }
}

impl ConnState {
    pub(crate) fn status(&self) -> AdapterStatus {
        self.0.read().expect("adapter state").status
    }

    pub(crate) fn latency_ms(&self) -> i64 {
        self.0.read().expect("adapter state").latency_ms
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.0.read().expect("adapter state").last_error.clone()
    }

    pub(crate) fn connected(&self, latency_ms: i64, now: u64) {
        let mut s = self.0.write().expect("adapter state");
        *s = State { status: AdapterStatus::Connected, latency_ms, last_error: None, last_check: Some(now) };
    }

    /// Unreachable for now; the reconnect worker retries.
    pub(crate) fn down(&self, why: String, now: u64) {
        let mut s = self.0.write().expect("adapter state");
        *s =
            State { status: AdapterStatus::Disconnected, latency_ms: -1, last_error: Some(why), last_check: Some(now) };
    }

    /// Misconfigured: stays down until the configuration changes.
    pub(crate) fn error(&self, why: String, now: u64) {
        let mut s = self.0.write().expect("adapter state");
        *s = State { status: AdapterStatus::Error, latency_ms: -1, last_error: Some(why), last_check: Some(now) };
    }

    /// A failed call: only network failures mark a connected adapter down.
    pub(crate) fn note_failure(&self, e: &ChainError, now: u64) {
        if e.code == crate::base::error::ErrorCode::NetworkError && self.status() == AdapterStatus::Connected {
            self.down(e.to_string(), now);
        }
    }

    /// What the status views show.
    pub(crate) fn info(&self, chain: Chain, network: Network, chain_id: Option<u64>) -> AdapterInfo {
        let s = self.0.read().expect("adapter state");
        AdapterInfo {
            chain,
            network,
            chain_id,
            status: s.status,
            latency_ms: s.latency_ms,
            last_error: s.last_error.clone(),
            last_check: s.last_check,
        }
    }
}

/// One adapter's connection state, as `/health` and `/v1/admin/status` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdapterInfo {
    pub(crate) chain: Chain,
    pub(crate) network: Network,
    pub(crate) chain_id: Option<u64>,
    pub(crate) status: AdapterStatus,
    pub(crate) latency_ms: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) last_check: Option<u64>,
}

/// One (chain, network) executor. Every method that talks to the node fails with a
/// [`ChainError`] carrying the spec's code; categories drive the pipeline's retries.
#[async_trait]
pub(crate) trait ChainAdapter: Send + Sync {
    fn chain(&self) -> Chain;
    fn network(&self) -> Network;
    /// The RPC URL (the registry compares it on SIGHUP).
    fn url(&self) -> &str;
    /// Connectivity for the registry's views.
    fn conn(&self) -> &ConnState;
    /// Idempotent.
    async fn connect(&self, now: u64) -> Result<(), ChainError>;
    /// Drops caches and the nonce tracker; the next call reconnects.
    async fn disconnect(&self);
    fn is_connected(&self) -> bool {
        self.conn().status() == AdapterStatus::Connected
    }
    /// Never errors; `{false, -1}` when disconnected.
    async fn health(&self) -> Health;
    /// EVM: read at connect.
    fn chain_id(&self) -> Option<u64>;
    // Part of the adapter contract (05-chains.md §1.3); the pipeline validates addresses with
    // the same rules before anything reaches an adapter, so only tests call it today.
    #[allow(dead_code)]
    fn is_valid_address(&self, addr: &str) -> bool;
    async fn get_balance(&self, addr: &str) -> Result<BalanceInfo, ChainError>;
    async fn get_assets(&self, addr: &str, hints: &[TokenHint]) -> Result<Vec<AssetInfo>, ChainError>;
    /// The token part of a sweep of `from` to `to`: one request per token holding a balance —
    /// on EVM the hinted ERC-20s, on Solana every token account (each transfer paired with the
    /// account's close, rent to `to`).
    async fn sweep_tokens(&self, from: &str, to: &str, hints: &[TokenHint]) -> Result<Vec<SweepItem>, ChainError>;
    /// A token's decimals (SPL mint or ERC-20 `decimals()`), for USD valuation.
    async fn token_decimals(&self, token: &str) -> Result<u8, ChainError>;
    async fn estimate_fee(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<FeeEstimate, ChainError>;
    async fn build(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<UnsignedTx, ChainError>;
    async fn simulate(&self, tx: &UnsignedTx) -> Result<SimulationResult, ChainError>;
    async fn apply_simulation(&self, tx: UnsignedTx, sim: &SimulationResult) -> Result<UnsignedTx, ChainError>;
    async fn prepare_signing(&self, tx: &UnsignedTx) -> Result<SignIntent, ChainError>;
    fn attach_signature(&self, tx: &UnsignedTx, sig: &SignOutput) -> Result<SignedTx, ChainError>;
    /// Solana: same instructions, new blockhash. EVM: unsupported.
    async fn refresh_blockhash(&self, tx: UnsignedTx) -> Result<UnsignedTx, ChainError>;
    async fn submit(&self, tx: &SignedTx) -> SubmitOutcome;
    async fn get_transaction_status(&self, hash: &str, ctx: &StatusContext) -> Result<ChainTxStatus, ChainError>;
    /// A timeout returns the last status seen, never an error for the timeout itself. Waits for
    /// inclusion, not finality: a confirmed transaction may come back `Confirmed` with no
    /// confirmation count (every caller treats `Confirmed` and `Finalized` alike).
    async fn wait_for_confirmation(
        &self,
        hash: &str,
        ctx: &StatusContext,
        timeout: Duration,
    ) -> Result<ChainTxStatus, ChainError>;
    /// Solana: always 0. (Contract method; builds take nonces through the tracker directly.)
    #[allow(dead_code)]
    async fn get_current_nonce(&self, addr: &str) -> Result<u64, ChainError>;
    /// Solana: no-op. `None` resets every address.
    fn reset_nonce_tracker(&self, addr: Option<&str>);
    /// The EVM adapter behind this one, for EVM-only reads (ERC-1271 owner checks).
    fn as_evm(&self) -> Option<&super::evm::EvmAdapter> {
        None
    }
}
