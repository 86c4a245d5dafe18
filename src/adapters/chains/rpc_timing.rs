//! Every node RPC timed for `waiaas_rpc_duration_seconds{chain, method}`: a tower layer on the
//! EVM transport and a wrapper around the Solana client's sender, so no call site can forget
//! it. Method names become labels only from a closed list (anything else is `other`): a node
//! never chooses a label value.

use std::task::{Context, Poll};
use std::time::Instant;

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportFut};

/// The EVM methods the adapter calls.
const EVM_METHODS: &[&str] = &[
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getBalance",
    "eth_getCode",
    "eth_call",
    "eth_estimateGas",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_getTransactionCount",
    "eth_sendRawTransaction",
    "eth_getTransactionReceipt",
    "eth_getTransactionByHash",
    "net_version",
];

/// The Solana methods the adapter calls.
const SOLANA_METHODS: &[&str] = &[
    "getHealth",
    "getVersion",
    "getSlot",
    "getBlockHeight",
    "getEpochInfo",
    "getLatestBlockhash",
    "isBlockhashValid",
    "getBalance",
    "getAccountInfo",
    "getMultipleAccounts",
    "getTokenAccountsByOwner",
    "getTokenAccountBalance",
    "getMinimumBalanceForRentExemption",
    "getFeeForMessage",
    "getRecentPrioritizationFees",
    "simulateTransaction",
    "sendTransaction",
    "getSignatureStatuses",
    "getTransaction",
    "requestAirdrop",
];

fn label(known: &'static [&'static str], method: &str) -> &'static str {
    known.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// The tower layer for the EVM transport.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EvmTiming;

impl<S> tower::Layer<S> for EvmTiming {
    type Service = TimedEvm<S>;
    fn layer(&self, inner: S) -> TimedEvm<S> {
        TimedEvm(inner)
    }
}

/// The EVM transport with every request timed.
#[derive(Debug, Clone)]
pub(crate) struct TimedEvm<S>(S);

impl<S> tower::Service<RequestPacket> for TimedEvm<S>
where
    S: tower::Service<RequestPacket, Response = ResponsePacket, Error = TransportError, Future = TransportFut<'static>>,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        let method = match &req {
            RequestPacket::Single(r) => label(EVM_METHODS, r.method()),
            RequestPacket::Batch(_) => "batch",
        };
        let fut = self.0.call(req);
        Box::pin(async move {
            let t0 = Instant::now();
            let r = fut.await;
            crate::runtime::metrics::get().rpc("ethereum", method, t0.elapsed().as_secs_f64());
            r
        })
    }
}

/// The Solana client's sender with every request timed.
pub(crate) struct TimedSolana(pub(crate) solana_rpc_client::http_sender::HttpSender);

#[async_trait::async_trait]
impl solana_rpc_client::rpc_sender::RpcSender for TimedSolana {
    async fn send(
        &self,
        request: solana_rpc_client_api::request::RpcRequest,
        params: serde_json::Value,
    ) -> solana_rpc_client_api::client_error::Result<serde_json::Value> {
        let method = label(SOLANA_METHODS, &request.to_string());
        let t0 = Instant::now();
        let r = self.0.send(request, params).await;
        crate::runtime::metrics::get().rpc("solana", method, t0.elapsed().as_secs_f64());
        r
    }

    fn get_transport_stats(&self) -> solana_rpc_client::rpc_sender::RpcTransportStats {
        self.0.get_transport_stats()
    }

    fn url(&self) -> String {
        self.0.url()
    }
}
