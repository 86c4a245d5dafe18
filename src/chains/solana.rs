//! Solana JSON-RPC over `solana-rpc-client` (nonblocking, commitment `confirmed`).

use std::sync::Arc;
use std::time::Duration;

use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;

use super::error::ChainError;
use crate::error::ErrorCode;

/// A nonblocking RPC client.
#[derive(Clone)]
pub(crate) struct SolanaRpc {
    pub(crate) client: Arc<RpcClient>,
}

/// Maps a client error: delivery failures are NETWORK_ERROR, others RPC_ERROR.
pub(crate) fn map_client(e: solana_client::client_error::ClientError) -> ChainError {
    use solana_client::client_error::ClientErrorKind;
    match e.kind() {
        ClientErrorKind::Reqwest(r) if r.is_connect() || r.is_request() && !r.is_timeout() => {
            ChainError::new(ErrorCode::NetworkError, e.to_string())
        }
        _ => ChainError::new(ErrorCode::RpcError, e.to_string()),
    }
}

impl SolanaRpc {
    pub(crate) fn new(url: &str, timeout: Duration) -> SolanaRpc {
        SolanaRpc {
            client: Arc::new(RpcClient::new_with_timeout_and_commitment(
                url.to_string(),
                timeout,
                CommitmentConfig::confirmed(),
            )),
        }
    }

    pub(crate) async fn health(&self) -> Result<(), ChainError> {
        self.client.get_health().await.map_err(map_client)
    }
}
