//! The Solana adapter on `solana-rpc-client` (05-chains.md §3). Nonblocking client, commitment
//! `confirmed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use waiaas_backends::seam::{SignIntent, SignOutput, parse_solana_address};
use waiaas_storage::{Amount, Chain, Network};

use super::adapter::{AdapterStatus, ChainAdapter, ConnState};
use super::error::ChainError;
use super::types::*;
use crate::clock::Clock;
use crate::error::ErrorCode;

/// Maps a client error: delivery failures are NETWORK_ERROR, others RPC_ERROR.
pub(crate) fn map_client(e: solana_client::client_error::ClientError) -> ChainError {
    use solana_client::client_error::ClientErrorKind;
    match e.kind() {
        ClientErrorKind::Reqwest(r) if r.is_connect() => ChainError::new(ErrorCode::NetworkError, e.to_string()),
        _ => ChainError::new(ErrorCode::RpcError, e.to_string()),
    }
}

/// The Solana adapter of one network.
pub(crate) struct SolanaAdapter {
    network: Network,
    url: String,
    client: Arc<RpcClient>,
    conn: ConnState,
    clock: Clock,
}

fn unsupported() -> ChainError {
    ChainError::new(ErrorCode::InternalError, "Solana transactions are not built by this version")
}

impl SolanaAdapter {
    pub(crate) fn new(network: Network, url: &str, timeout: Duration, clock: Clock) -> SolanaAdapter {
        let client =
            RpcClient::new_with_timeout_and_commitment(url.to_string(), timeout, CommitmentConfig::confirmed());
        SolanaAdapter { network, url: url.to_string(), client: Arc::new(client), conn: ConnState::default(), clock }
    }
}

#[async_trait]
impl ChainAdapter for SolanaAdapter {
    fn chain(&self) -> Chain {
        Chain::Solana
    }

    fn network(&self) -> Network {
        self.network
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn conn(&self) -> &ConnState {
        &self.conn
    }

    /// `getHealth`, up to 3 attempts with 1 s then 2 s backoff; a no-op when connected.
    async fn connect(&self, now: u64) -> Result<(), ChainError> {
        if self.conn.status() == AdapterStatus::Connected {
            return Ok(());
        }
        let started = Instant::now();
        let mut r = self.client.get_health().await.map_err(map_client);
        for backoff in [1, 2] {
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(backoff)).await;
            r = self.client.get_health().await.map_err(map_client);
        }
        match &r {
            Ok(()) => self.conn.connected(started.elapsed().as_millis() as i64, now),
            Err(e) => self.conn.down(e.to_string(), now),
        }
        r
    }

    async fn disconnect(&self) {
        self.conn.down("disconnected".into(), self.clock.now());
    }

    async fn health(&self) -> Health {
        if !self.is_connected() {
            return Health { healthy: false, latency_ms: -1 };
        }
        let started = Instant::now();
        match self.client.get_health().await {
            Ok(()) => Health { healthy: true, latency_ms: started.elapsed().as_millis() as i64 },
            Err(_) => Health { healthy: false, latency_ms: -1 },
        }
    }

    fn chain_id(&self) -> Option<u64> {
        None
    }

    fn is_valid_address(&self, addr: &str) -> bool {
        parse_solana_address(addr).is_some()
    }

    async fn get_balance(&self, addr: &str) -> Result<BalanceInfo, ChainError> {
        let pk = parse_solana_address(addr)
            .map(solana_sdk::pubkey::Pubkey::new_from_array)
            .ok_or_else(|| ChainError::new(ErrorCode::InvalidAddress, format!("invalid Solana address {addr}")))?;
        let lamports = self.client.get_balance(&pk).await.map_err(map_client)?;
        Ok(BalanceInfo {
            address: addr.to_string(),
            balance: Amount::from_u64(lamports),
            decimals: 9,
            symbol: "SOL".into(),
        })
    }

    async fn get_assets(&self, addr: &str, _hints: &[TokenHint]) -> Result<Vec<AssetInfo>, ChainError> {
        let b = self.get_balance(addr).await?;
        Ok(vec![AssetInfo {
            kind: AssetKind::Native,
            token_address: None,
            symbol: b.symbol,
            name: None,
            balance: b.balance,
            decimals: 9,
        }])
    }

    async fn estimate_fee(&self, _req: &BuildRequest, _prio: Priority) -> Result<FeeEstimate, ChainError> {
        Err(unsupported())
    }

    async fn build(&self, _req: &BuildRequest, _opts: &BuildOptions) -> Result<UnsignedTx, ChainError> {
        Err(unsupported())
    }

    async fn simulate(&self, _tx: &UnsignedTx) -> Result<SimulationResult, ChainError> {
        Err(unsupported())
    }

    async fn apply_simulation(&self, tx: UnsignedTx, _sim: &SimulationResult) -> Result<UnsignedTx, ChainError> {
        Ok(tx)
    }

    async fn prepare_signing(&self, _tx: &UnsignedTx) -> Result<SignIntent, ChainError> {
        Err(unsupported())
    }

    fn attach_signature(&self, _tx: &UnsignedTx, _sig: &SignOutput) -> Result<SignedTx, ChainError> {
        Err(unsupported())
    }

    async fn refresh_blockhash(&self, _tx: UnsignedTx) -> Result<UnsignedTx, ChainError> {
        Err(unsupported())
    }

    async fn submit(&self, _tx: &SignedTx) -> SubmitOutcome {
        SubmitOutcome::Rejected(unsupported())
    }

    async fn get_transaction_status(&self, _hash: &str, _ctx: &StatusContext) -> Result<ChainTxStatus, ChainError> {
        Err(unsupported())
    }

    async fn wait_for_confirmation(
        &self,
        _hash: &str,
        _ctx: &StatusContext,
        _timeout: Duration,
    ) -> Result<ChainTxStatus, ChainError> {
        Err(unsupported())
    }

    async fn get_current_nonce(&self, _addr: &str) -> Result<u64, ChainError> {
        Ok(0)
    }

    fn reset_nonce_tracker(&self, _addr: Option<&str>) {}
}
