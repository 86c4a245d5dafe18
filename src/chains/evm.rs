//! EVM JSON-RPC over alloy: the connection every EVM adapter operation goes through.

use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::TransactionRequest;

use super::error::ChainError;
use crate::error::ErrorCode;

/// An HTTP JSON-RPC client with the configured per-request timeout.
#[derive(Clone)]
pub(crate) struct EvmRpc {
    pub(crate) provider: RootProvider,
    pub(crate) timeout: Duration,
}

/// Maps an alloy transport error to NETWORK_ERROR (never delivered) or RPC_ERROR.
pub(crate) fn map_rpc<E: std::fmt::Display>(e: E) -> ChainError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let undelivered =
        ["connection refused", "error sending request", "dns error", "tcp connect", "connection reset", "tls"]
            .iter()
            .any(|p| lower.contains(p));
    ChainError::transport(text, !undelivered)
}

impl EvmRpc {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<EvmRpc, ChainError> {
        let url =
            url.parse().map_err(|e| ChainError::new(ErrorCode::NetworkError, format!("invalid RPC URL {url}: {e}")))?;
        Ok(EvmRpc { provider: RootProvider::new_http(url), timeout })
    }

    pub(crate) async fn with_timeout<T, F>(&self, f: F) -> Result<T, ChainError>
    where
        F: std::future::IntoFuture<Output = Result<T, alloy::transports::TransportError>>,
    {
        match tokio::time::timeout(self.timeout, f.into_future()).await {
            Ok(r) => r.map_err(map_rpc),
            Err(_) => Err(ChainError::new(ErrorCode::RpcError, "RPC request timed out")),
        }
    }

    pub(crate) async fn chain_id(&self) -> Result<u64, ChainError> {
        self.with_timeout(self.provider.get_chain_id()).await
    }

    pub(crate) async fn block_number(&self) -> Result<u64, ChainError> {
        self.with_timeout(self.provider.get_block_number()).await
    }

    pub(crate) async fn code(&self, addr: Address) -> Result<Bytes, ChainError> {
        self.with_timeout(self.provider.get_code_at(addr)).await
    }

    /// `eth_call` at `latest`.
    pub(crate) async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let tx = TransactionRequest::default().with_to(to).with_input(data);
        self.with_timeout(self.provider.call(tx)).await
    }
}
