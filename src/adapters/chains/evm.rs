//! The EVM adapter on alloy (05-chains.md §2): EIP-1559 builds with the spec's fee and gas
//! formulas, an in-memory nonce tracker, ERC-20 transfer/approve through `sol!`, simulation by
//! `eth_call`, and node errors mapped to codes and categories.
//!
//! Node errors are classified from alloy's typed errors, not from display strings: a JSON-RPC
//! error object is the node's answer (its message is matched against the spec's substrings), an
//! HTTP error status is `RPC_ERROR`, and a transport failure is `NETWORK_ERROR` when the request
//! never left (connect failure) or an *unknown* outcome when it may have (timeout, reset) — the
//! difference that decides whether a submit can be retried blindly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::{BlockNumberOrTag, Encodable2718};
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, TxKind, U64, U256, keccak256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::transports::{TransportError, TransportErrorKind};
use async_trait::async_trait;
use serde_json::{Value, json};
use waiaas_backends::seam::{SignIntent, SignOutput, parse_evm_address};
use waiaas_storage::{Amount, Chain, Network};

use super::adapter::{AdapterStatus, ChainAdapter, ConnState};
use super::error::ChainError;
use super::types::*;
use crate::base::error::ErrorCode;

alloy::sol! {
    /// The ERC-20 calls the adapter makes.
    interface IERC20 {
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function decimals() external view returns (uint8);
        function symbol() external view returns (string);
        function name() external view returns (string);
    }
}

const GWEI: u128 = 1_000_000_000;
/// Confirmations that count as final when the node has no `finalized` tag.
const FINALITY_DEPTH: u64 = 15;

/// How a failed RPC call ended, from alloy's typed error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The node answered with a JSON-RPC error.
    Node { code: i64, message: String, revert: Option<String> },
    /// The node answered with an HTTP error status.
    Http(u16),
    /// The request never reached the node (connect failure).
    Undelivered(String),
    /// The request may have reached the node (timeout, connection lost after writing).
    Uncertain(String),
    /// The answer could not be read.
    Malformed(String),
}

/// Classifies an alloy transport error.
pub(crate) fn classify(e: &TransportError) -> Failure {
    use alloy::transports::RpcError;
    match e {
        RpcError::ErrorResp(p) => {
            let revert = p
                .as_decoded_error::<alloy::sol_types::Revert>()
                .map(|r| r.reason)
                .or_else(|| p.as_revert_data().filter(|d| !d.is_empty()).map(|d| format!("revert data {d}")));
            Failure::Node { code: p.code, message: p.message.to_string(), revert }
        }
        RpcError::Transport(TransportErrorKind::HttpError(h)) => Failure::Http(h.status),
        RpcError::Transport(TransportErrorKind::HttpErrorWithRetryAfter { error, .. }) => Failure::Http(error.status),
        RpcError::Transport(TransportErrorKind::Custom(inner)) => match inner.downcast_ref::<reqwest013::Error>() {
            Some(r) if r.is_connect() => Failure::Undelivered(r.to_string()),
            Some(r) if r.is_builder() => Failure::Undelivered(r.to_string()),
            Some(r) => Failure::Uncertain(r.to_string()),
            None => Failure::Uncertain(inner.to_string()),
        },
        RpcError::NullResp | RpcError::DeserError { .. } | RpcError::SerError(_) => Failure::Malformed(e.to_string()),
        other => Failure::Uncertain(other.to_string()),
    }
}

/// A read's failure: the node's error and HTTP errors are `RPC_ERROR`, undelivered requests
/// `NETWORK_ERROR` (both TRANSIENT).
fn read_error(f: Failure) -> ChainError {
    match f {
        Failure::Undelivered(m) => ChainError::new(ErrorCode::NetworkError, m),
        Failure::Node { code, message, .. } => {
            ChainError::new(ErrorCode::RpcError, format!("node error {code}: {message}"))
        }
        Failure::Http(s) => ChainError::new(ErrorCode::RpcError, format!("HTTP {s}")),
        Failure::Uncertain(m) | Failure::Malformed(m) => ChainError::new(ErrorCode::RpcError, m),
    }
}

fn timeout_error() -> ChainError {
    ChainError::new(ErrorCode::RpcError, "RPC request timed out")
}

/// Maps a node's answer to `eth_sendRawTransaction` (05-chains.md §2.5).
fn submit_error(message: &str) -> Option<Result<(), ChainError>> {
    let m = message.to_lowercase();
    let code = if m.contains("already known") {
        return Some(Ok(()));
    } else if m.contains("nonce too low")
        || m.contains("nonce too high")
        || m.contains("replacement transaction underpriced")
    {
        ErrorCode::EvmNonceTooLow
    } else if m.contains("intrinsic gas too low") || m.contains("gas too low") {
        ErrorCode::EvmGasTooLow
    } else if m.contains("insufficient funds") {
        ErrorCode::InsufficientBalance
    } else if m.contains("execution reverted") || m.contains("revert") {
        ErrorCode::EvmRevert
    } else {
        return None;
    };
    Some(Err(ChainError::new(code, message.to_string())))
}

fn u256_amount(v: U256) -> Amount {
    Amount(v)
}

fn ceil_mul(v: u64, num: u64, den: u64) -> u64 {
    (v as u128 * num as u128).div_ceil(den as u128) as u64
}

/// The call a build estimates and simulates: `from` calling `to` with `value` and `input`.
fn probe(from: Address, to: Address, value: U256, input: &Bytes) -> TransactionRequest {
    TransactionRequest::default().with_from(from).with_to(to).with_value(value).with_input(input.clone())
}

/// A build's reads from the node, answered together ([`EvmAdapter::build_reads`]).
struct BuildReads {
    estimate: u64,
    balance: U256,
    /// The sender's pending transaction count.
    pending: u64,
}

/// The EVM adapter of one network.
pub(crate) struct EvmAdapter {
    network: Network,
    url: String,
    provider: RootProvider,
    timeout: Duration,
    expected_chain_id: Option<u64>,
    symbol: String,
    conn: ConnState,
    clock: crate::base::clock::Clock,
    chain_id: Mutex<Option<u64>>,
    /// address → next nonce (not persisted; 05-chains.md §2.2).
    nonces: Mutex<HashMap<Address, u64>>,
    /// The node's priority-fee suggestion and the latest base fee, and when they were read.
    fee_cache: Mutex<Option<(std::time::Instant, u128, u128)>>,
}

/// How long a fee reading serves later sends (issue #21). A chain makes at most about one block
/// a second, so sends within it would read the same block from the node; `maxFeePerGas` =
/// 2 × base + priority leaves room for several full-block base-fee rises after it.
const FEE_TTL: Duration = Duration::from_secs(1);

fn address(s: &str) -> Result<Address, ChainError> {
    parse_evm_address(s).ok_or_else(|| ChainError::new(ErrorCode::InvalidAddress, format!("invalid EVM address {s}")))
}

impl EvmAdapter {
    pub(crate) fn new(
        network: Network,
        url: &str,
        timeout: Duration,
        expected_chain_id: Option<u64>,
        symbol: String,
        clock: crate::base::clock::Clock,
    ) -> Result<EvmAdapter, ChainError> {
        let parsed =
            url.parse().map_err(|e| ChainError::new(ErrorCode::NetworkError, format!("invalid RPC URL {url}: {e}")))?;
        Ok(EvmAdapter {
            network,
            url: url.to_string(),
            provider: RootProvider::new(
                alloy::rpc::client::ClientBuilder::default().layer(super::rpc_timing::EvmTiming).http(parsed),
            ),
            timeout,
            expected_chain_id,
            symbol,
            conn: ConnState::default(),
            clock,
            chain_id: Mutex::new(None),
            nonces: Mutex::new(HashMap::new()),
            fee_cache: Mutex::new(None),
        })
    }

    /// Runs one RPC with the configured timeout, mapping failures as a read.
    async fn rpc<T, F>(&self, f: F) -> Result<T, ChainError>
    where
        F: std::future::IntoFuture<Output = Result<T, TransportError>>,
    {
        match tokio::time::timeout(self.timeout, f.into_future()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.noted(read_error(classify(&e)))),
            Err(_) => Err(timeout_error()),
        }
    }

    /// Marks the adapter down when a call could not reach the node.
    fn noted(&self, e: ChainError) -> ChainError {
        self.conn.note_failure(&e, self.clock.now());
        e
    }

    /// `eth_call` at `latest`; a revert is the contract's answer (`Ok(Err(reason))`).
    pub(crate) async fn call(&self, to: Address, data: Bytes) -> Result<Result<Bytes, String>, ChainError> {
        let tx = TransactionRequest::default().with_to(to).with_input(data);
        self.call_request(tx).await
    }

    async fn call_request(&self, tx: TransactionRequest) -> Result<Result<Bytes, String>, ChainError> {
        match tokio::time::timeout(self.timeout, self.provider.call(tx).into_future()).await {
            Ok(Ok(b)) => Ok(Ok(b)),
            Ok(Err(e)) => match classify(&e) {
                Failure::Node { message, revert, .. }
                    if message.to_lowercase().contains("revert") || revert.is_some() =>
                {
                    Ok(Err(revert.unwrap_or(message)))
                }
                f => Err(self.noted(read_error(f))),
            },
            Err(_) => Err(timeout_error()),
        }
    }

    pub(crate) async fn code(&self, addr: Address) -> Result<Bytes, ChainError> {
        self.rpc(self.provider.get_code_at(addr)).await
    }

    async fn erc20<C: SolCall>(&self, token: Address, call: C) -> Result<C::Return, ChainError> {
        let out = self
            .call(token, call.abi_encode().into())
            .await?
            .map_err(|r| ChainError::new(ErrorCode::TokenNotFound, format!("token {token} call reverted: {r}")))?;
        C::abi_decode_returns(&out)
            .map_err(|e| ChainError::new(ErrorCode::TokenNotFound, format!("token {token} answered garbage: {e}")))
    }

    fn chain_id_or_err(&self) -> Result<u64, ChainError> {
        self.chain_id
            .lock()
            .expect("chain id lock")
            .ok_or_else(|| ChainError::new(ErrorCode::AdapterNotAvailable, "the adapter has not read the chain id"))
    }

    /// `(maxPriorityFeePerGas, maxFeePerGas, baseFee)` per 05-chains.md §2.3.
    /// Cached for [`FEE_TTL`].
    async fn fees(&self, prio: Priority) -> Result<(u128, u128, u128), ChainError> {
        let cached = *self.fee_cache.lock().expect("fee cache lock");
        let (suggestion, base) = match cached {
            Some((at, suggestion, base)) if at.elapsed() < FEE_TTL => (suggestion, base),
            _ => {
                let suggestion = match tokio::time::timeout(
                    self.timeout,
                    self.provider.get_max_priority_fee_per_gas().into_future(),
                )
                .await
                {
                    Ok(Ok(v)) => v,
                    _ => 2 * GWEI,
                };
                let block = self
                    .rpc(self.provider.get_block_by_number(BlockNumberOrTag::Latest))
                    .await?
                    .ok_or_else(|| ChainError::new(ErrorCode::RpcError, "no latest block"))?;
                let base = block.header.base_fee_per_gas.unwrap_or(0) as u128;
                *self.fee_cache.lock().expect("fee cache lock") = Some((std::time::Instant::now(), suggestion, base));
                (suggestion, base)
            }
        };
        let priority = match prio {
            Priority::Low => suggestion.max(GWEI),
            Priority::Medium => suggestion.max(2 * GWEI),
            Priority::High => 2 * suggestion.max(2 * GWEI),
        };
        Ok((priority, 2 * base + priority, base))
    }

    /// `eth_estimateGas`, with a revert mapped to `SIMULATION_FAILED` and missing funds to
    /// `INSUFFICIENT_BALANCE`.
    async fn estimate_gas(&self, tx: TransactionRequest) -> Result<u64, ChainError> {
        match tokio::time::timeout(self.timeout, self.provider.estimate_gas(tx).into_future()).await {
            Ok(answer) => self.estimate_answer(answer),
            Err(_) => Err(timeout_error()),
        }
    }

    /// The node's answer to `eth_estimateGas`, mapped as [`estimate_gas`](Self::estimate_gas) says.
    fn estimate_answer(&self, answer: Result<u64, TransportError>) -> Result<u64, ChainError> {
        match answer {
            Ok(g) => Ok(g),
            Err(e) => match classify(&e) {
                Failure::Node { message, revert, .. } => {
                    let lower = message.to_lowercase();
                    if lower.contains("insufficient funds") {
                        Err(ChainError::new(ErrorCode::InsufficientBalance, message))
                    } else if lower.contains("revert") || revert.is_some() {
                        let reason = revert.unwrap_or(message);
                        Err(ChainError::new(ErrorCode::SimulationFailed, format!("execution reverted: {reason}"))
                            .with_details(json!({"logs": [reason]})))
                    } else {
                        Err(read_error(Failure::Node { code: -32000, message, revert: None }))
                    }
                }
                f => Err(self.noted(read_error(f))),
            },
        }
    }

    /// What a build reads from the node about its call, as one JSON-RPC batch: one HTTP round
    /// trip instead of three (issue #21). Each answer keeps its own error: the estimate's is
    /// mapped first, as when they were three calls.
    async fn build_reads(&self, probe: TransactionRequest, from: Address) -> Result<BuildReads, ChainError> {
        let read = |e: TransportError| self.noted(read_error(classify(&e)));
        let mut batch = alloy::rpc::client::BatchRequest::new(self.provider.client());
        let estimate = batch.add_call::<_, U64>("eth_estimateGas", &(probe,)).map_err(read)?;
        let balance = batch.add_call::<_, U256>("eth_getBalance", &(from, BlockNumberOrTag::Latest)).map_err(read)?;
        let pending =
            batch.add_call::<_, U64>("eth_getTransactionCount", &(from, BlockNumberOrTag::Pending)).map_err(read)?;
        let answers = async {
            batch.send().await?;
            Ok::<_, TransportError>((estimate.await, balance.await, pending.await))
        };
        let (estimate, balance, pending) = match tokio::time::timeout(self.timeout, answers).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(read(e)),
            Err(_) => return Err(timeout_error()),
        };
        Ok(BuildReads {
            estimate: self.estimate_answer(estimate.map(|g| g.to::<u64>()))?,
            balance: balance.map_err(read)?,
            pending: pending.map_err(read)?.to::<u64>(),
        })
    }

    /// The call this request makes: `(to, value, input, gas multiplier ×10, method signature)`.
    async fn call_of(
        &self,
        req: &BuildRequest,
        opts: &BuildOptions,
        from: Address,
    ) -> Result<(Address, U256, Bytes, u64, Option<String>), ChainError> {
        Ok(match req {
            BuildRequest::Transfer { to, amount, .. } => (address(to)?, amount.0, Bytes::new(), 11, None),
            BuildRequest::TokenTransfer { to, amount, token, .. } => {
                let t = self.check_token(token).await?;
                let balance = self.erc20(t, IERC20::balanceOfCall { owner: from }).await?;
                if balance < amount.0 {
                    return Err(ChainError::new(
                        ErrorCode::InsufficientTokenBalance,
                        format!("token balance {balance} is below {}", amount.0),
                    ));
                }
                let data = IERC20::transferCall { to: address(to)?, amount: amount.0 }.abi_encode();
                (t, U256::ZERO, data.into(), 12, Some("0xa9059cbb (transfer)".to_string()))
            }
            BuildRequest::ContractCall { to, value, body, .. } => {
                let CallBody::Evm { calldata } = body else {
                    return Err(ChainError::new(ErrorCode::ValidationError, "a Solana program call on an EVM agent"));
                };
                let selector = format!("0x{}", hex::encode(&calldata[..4.min(calldata.len())]));
                let sig = match &opts.contract_name {
                    Some(n) => format!("{selector} ({n})"),
                    None => selector,
                };
                (address(to)?, value.0, calldata.clone().into(), 12, Some(sig))
            }
            BuildRequest::Approve { token, spender, amount, .. } => {
                let t = self.check_token(token).await?;
                let data = IERC20::approveCall { spender: address(spender)?, amount: amount.0 }.abi_encode();
                (t, U256::ZERO, data.into(), 12, Some("0x095ea7b3 (approve)".to_string()))
            }
            BuildRequest::Batch { .. } => {
                return Err(ChainError::new(ErrorCode::BatchNotSupported, "batches are Solana only"));
            }
        })
    }

    /// The token must be a contract and, when the request names decimals, have those decimals.
    async fn check_token(&self, token: &TokenRef) -> Result<Address, ChainError> {
        let t = address(&token.address)?;
        if self.code(t).await?.is_empty() {
            return Err(ChainError::new(ErrorCode::TokenNotFound, format!("no contract at {t}")));
        }
        if let Some(want) = token.decimals {
            let have = self.erc20(t, IERC20::decimalsCall {}).await?;
            if have != want {
                return Err(ChainError::new(
                    ErrorCode::InvalidTokenMint,
                    format!("token {t} has {have} decimals, the request says {want}"),
                ));
            }
        }
        Ok(t)
    }

    /// Gas, fees and the fee estimate for a call, without taking a nonce.
    async fn price(
        &self,
        from: Address,
        to: Address,
        value: U256,
        input: &Bytes,
        mult_x10: u64,
        opts: &BuildOptions,
    ) -> Result<(u64, u128, u128, FeeEstimate), ChainError> {
        let estimate = self.estimate_gas(probe(from, to, value, input)).await?;
        self.price_from(estimate, mult_x10, opts).await
    }

    /// Gas, fees and the fee estimate for a call whose gas estimate is `estimate`.
    async fn price_from(
        &self,
        estimate: u64,
        mult_x10: u64,
        opts: &BuildOptions,
    ) -> Result<(u64, u128, u128, FeeEstimate), ChainError> {
        let mut gas = if opts.sweep { estimate } else { ceil_mul(estimate, mult_x10, 10) };
        if opts.gas_limit_multiplier_bump {
            gas = ceil_mul(gas, 12, 10);
        }
        let (mut priority, max_fee, base) = self.fees(opts.priority).await?;
        if opts.sweep {
            priority = max_fee;
        }
        let g = gas as u128;
        let fee = FeeEstimate {
            network_fee: Amount(U256::from(g * base)),
            priority_fee: Amount(U256::from(g * priority)),
            account_creation_fee: Amount::ZERO,
            total_fee: Amount(U256::from(g * max_fee)),
        };
        Ok((gas, priority, max_fee, fee))
    }

    /// What the node says about `hash`; with `finality`, also how deep it is (two more
    /// lookups: the head and the finalized block).
    async fn status_of(&self, hash: &str, ctx: &StatusContext, finality: bool) -> Result<ChainTxStatus, ChainError> {
        let h: alloy::primitives::B256 =
            hash.parse().map_err(|_| ChainError::new(ErrorCode::InternalError, format!("bad hash {hash}")))?;
        let receipt = self.rpc(self.provider.get_transaction_receipt(h)).await?;
        let Some(r) = receipt else {
            // Not mined: failed for good when another transaction used its nonce.
            if let (Some(nonce), Some(from)) = (ctx.nonce, ctx.from.as_deref().and_then(parse_evm_address)) {
                let latest = self.rpc(self.provider.get_transaction_count(from).latest()).await?;
                // The count can move before the receipt is served: a node that knows the
                // transaction itself means it is ours that used the nonce.
                let known = latest > nonce && self.rpc(self.provider.get_transaction_by_hash(h)).await?.is_some();
                if known {
                    return Ok(ChainTxStatus::Pending);
                }
                if latest > nonce {
                    return Ok(ChainTxStatus::Failed {
                        error: ChainError::new(ErrorCode::TransactionFailed, "nonce consumed by another transaction"),
                        block: None,
                        fee: None,
                    });
                }
            }
            return Ok(ChainTxStatus::NotFound);
        };
        let block = r.block_number.unwrap_or(0);
        let fee = Some(Amount(U256::from(r.gas_used as u128 * r.effective_gas_price)));
        if !r.status() {
            return Ok(ChainTxStatus::Failed {
                error: ChainError::new(ErrorCode::EvmRevert, "the transaction reverted on chain"),
                block: Some(block),
                fee,
            });
        }
        if !finality {
            return Ok(ChainTxStatus::Confirmed { block, fee, confirmations: None });
        }
        let head = self.rpc(self.provider.get_block_number()).await?;
        let finalized = match tokio::time::timeout(
            self.timeout,
            self.provider.get_block_by_number(BlockNumberOrTag::Finalized).into_future(),
        )
        .await
        {
            Ok(Ok(Some(b))) => Some(b.header.number),
            _ => None,
        };
        let confirmations = head.saturating_sub(block) + 1;
        let is_final = match finalized {
            Some(f) => block <= f,
            None => confirmations >= FINALITY_DEPTH,
        };
        Ok(if is_final {
            ChainTxStatus::Finalized { block, fee }
        } else {
            ChainTxStatus::Confirmed { block, fee, confirmations: Some(confirmations) }
        })
    }

    /// The next nonce, `max(pending count, tracker)` (05-chains.md §2.2), for a pending count
    /// the build read; advances the tracker.
    fn next_nonce(&self, from: Address, pending: u64) -> u64 {
        let mut map = self.nonces.lock().expect("nonce lock");
        let next = map.get(&from).copied().unwrap_or(0).max(pending);
        map.insert(from, next + 1);
        next
    }

    /// The nonce of a build: from the caller's source when it gave one, else the tracker.
    async fn nonce_for(
        &self,
        opts: &BuildOptions,
        used_for: NonceUse,
        from: Address,
        pending: u64,
    ) -> Result<u64, ChainError> {
        match &opts.nonces {
            Some(source) => source.0.assign(used_for, pending).await,
            None => Ok(self.next_nonce(from, pending)),
        }
    }

    /// The account's mined (`latest`) and pending transaction counts: what a new leader's
    /// nonce resync reads (13-postgres-ha.md §6.2 step 4).
    #[cfg(feature = "postgres")]
    pub(crate) async fn nonce_counts(&self, addr: &str) -> Result<(u64, u64), ChainError> {
        let a = address(addr)?;
        let mined = self.rpc(self.provider.get_transaction_count(a).latest()).await?;
        let pending = self.rpc(self.provider.get_transaction_count(a).pending()).await?;
        Ok((mined, pending))
    }

    async fn native_balance(&self, a: Address) -> Result<U256, ChainError> {
        self.rpc(self.provider.get_balance(a)).await
    }

    fn tx(&self, chain_id: u64, nonce: u64, call: (Address, U256, Bytes), price: (u64, u128, u128)) -> TxEip1559 {
        let ((to, value, input), (gas, prio, max)) = (call, price);
        TxEip1559 {
            chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: max,
            max_priority_fee_per_gas: prio,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        }
    }
}

#[async_trait]
impl ChainAdapter for EvmAdapter {
    fn chain(&self) -> Chain {
        Chain::Ethereum
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

    /// Reads `eth_chainId` (checked against the configured id, §1.4) and `eth_blockNumber`.
    async fn connect(&self, now: u64) -> Result<(), ChainError> {
        if self.conn.status() == AdapterStatus::Connected {
            return Ok(());
        }
        let started = Instant::now();
        let id = match self.rpc(self.provider.get_chain_id()).await {
            Ok(id) => id,
            Err(e) => {
                self.conn.down(e.to_string(), now);
                return Err(e);
            }
        };
        *self.chain_id.lock().expect("chain id lock") = Some(id);
        if let Some(expected) = self.expected_chain_id.filter(|e| *e != id) {
            let msg = format!("chain id mismatch: configured {expected}, node reports {id}");
            self.conn.error(msg.clone(), now);
            return Err(ChainError::new(ErrorCode::AdapterNotAvailable, msg));
        }
        match self.rpc(self.provider.get_block_number()).await {
            Ok(_) => {
                self.conn.connected(started.elapsed().as_millis() as i64, now);
                Ok(())
            }
            Err(e) => {
                self.conn.down(e.to_string(), now);
                Err(e)
            }
        }
    }

    async fn disconnect(&self) {
        self.nonces.lock().expect("nonce lock").clear();
        self.conn.down("disconnected".into(), self.clock.now());
    }

    async fn health(&self) -> Health {
        if !self.is_connected() {
            return Health { healthy: false, latency_ms: -1 };
        }
        let started = Instant::now();
        match self.rpc(self.provider.get_block_number()).await {
            Ok(_) => Health { healthy: true, latency_ms: started.elapsed().as_millis() as i64 },
            Err(_) => Health { healthy: false, latency_ms: -1 },
        }
    }

    fn chain_id(&self) -> Option<u64> {
        *self.chain_id.lock().expect("chain id lock")
    }

    fn is_valid_address(&self, addr: &str) -> bool {
        parse_evm_address(addr).is_some()
    }

    async fn get_balance(&self, addr: &str) -> Result<BalanceInfo, ChainError> {
        let a = address(addr)?;
        let balance = self.native_balance(a).await?;
        Ok(BalanceInfo {
            address: a.to_checksum(None),
            balance: u256_amount(balance),
            decimals: 18,
            symbol: self.symbol.clone(),
        })
    }

    /// §2.8: one full-balance ERC-20 transfer per hinted token that holds a balance.
    async fn sweep_tokens(&self, from: &str, to: &str, hints: &[TokenHint]) -> Result<Vec<SweepItem>, ChainError> {
        let assets = self.get_assets(from, hints).await?;
        Ok(assets
            .into_iter()
            .filter(|a| a.kind == AssetKind::Erc20 && !a.balance.is_zero())
            .filter_map(|a| {
                let mint = a.token_address?;
                Some(SweepItem {
                    build: BuildRequest::TokenTransfer {
                        from: from.to_string(),
                        to: to.to_string(),
                        amount: a.balance,
                        token: TokenRef { address: mint.clone(), decimals: Some(a.decimals) },
                        memo: None,
                    },
                    mint,
                    symbol: a.symbol,
                    amount: a.balance,
                    rent: Amount::ZERO,
                })
            })
            .collect())
    }

    async fn token_decimals(&self, token: &str) -> Result<u8, ChainError> {
        self.erc20(address(token)?, IERC20::decimalsCall {}).await
    }

    /// Native first, then each hinted token with a non-zero balance, by scaled balance.
    async fn get_assets(&self, addr: &str, hints: &[TokenHint]) -> Result<Vec<AssetInfo>, ChainError> {
        let owner = address(addr)?;
        let native = self.native_balance(owner).await?;
        let mut tokens = Vec::new();
        for h in hints {
            let Ok(t) = address(&h.address) else { continue };
            let balance = self.erc20(t, IERC20::balanceOfCall { owner }).await?;
            if balance.is_zero() {
                continue;
            }
            let decimals = match h.decimals {
                Some(d) => d,
                None => self.erc20(t, IERC20::decimalsCall {}).await.unwrap_or(0),
            };
            let symbol = if h.symbol.is_empty() {
                self.erc20(t, IERC20::symbolCall {}).await.unwrap_or_default()
            } else {
                h.symbol.clone()
            };
            let name = self.erc20(t, IERC20::nameCall {}).await.ok();
            tokens.push(AssetInfo {
                kind: AssetKind::Erc20,
                token_address: Some(t.to_checksum(None)),
                symbol,
                name,
                balance: u256_amount(balance),
                decimals,
            });
        }
        // Compare balances scaled to 18 decimals.
        let scaled = |a: &AssetInfo| {
            a.balance.0.saturating_mul(U256::from(10u64).pow(U256::from(18u8.saturating_sub(a.decimals))))
        };
        tokens.sort_by_key(|b| std::cmp::Reverse(scaled(b)));
        let mut out = vec![AssetInfo {
            kind: AssetKind::Native,
            token_address: None,
            symbol: self.symbol.clone(),
            name: None,
            balance: u256_amount(native),
            decimals: 18,
        }];
        out.extend(tokens);
        Ok(out)
    }

    async fn estimate_fee(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<FeeEstimate, ChainError> {
        let from = address(req.from())?;
        let (to, value, input, mult, _) = self.call_of(req, opts, from).await?;
        Ok(self.price(from, to, value, &input, mult, opts).await?.3)
    }

    async fn build(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<UnsignedTx, ChainError> {
        let chain_id = self.chain_id_or_err()?;
        let from = address(req.from())?;
        let mut metadata = serde_json::Map::new();
        // An approve over an existing non-zero allowance goes through approve(spender, 0) first.
        if let BuildRequest::Approve { token, spender, amount, .. } = req
            && !amount.is_zero()
        {
            let t = self.check_token(token).await?;
            let s = address(spender)?;
            let current = self.erc20(t, IERC20::allowanceCall { owner: from, spender: s }).await?;
            if !current.is_zero() {
                let data: Bytes = IERC20::approveCall { spender: s, amount: U256::ZERO }.abi_encode().into();
                let reads = self.build_reads(probe(from, t, U256::ZERO, &data), from).await?;
                let (gas, prio, max, fee) = self.price_from(reads.estimate, 12, opts).await?;
                if reads.balance < fee.total_fee.0 {
                    return Err(ChainError::new(
                        ErrorCode::InsufficientBalance,
                        "balance cannot pay the allowance reset",
                    ));
                }
                let nonce = self.nonce_for(opts, NonceUse::Reset, from, reads.pending).await?;
                let reset = self.tx(chain_id, nonce, (t, U256::ZERO, data), (gas, prio, max));
                metadata.insert("nonce".into(), json!(nonce));
                metadata.insert("from".into(), json!(from.to_checksum(None)));
                metadata.insert("previousAllowance".into(), json!(current.to_string()));
                metadata.insert("methodSignature".into(), json!("0x095ea7b3 (approve)"));
                return Ok(UnsignedTx {
                    inner: UnsignedInner::Evm { tx: Box::new(reset.clone()), approve_reset: Some(Box::new(reset)) },
                    estimated_fee: fee,
                    built_at: Instant::now(),
                    expires_at: None,
                    metadata,
                });
            }
        }
        let (to, value, input, mult, method) = self.call_of(req, opts, from).await?;
        let reads = self.build_reads(probe(from, to, value, &input), from).await?;
        let (gas, prio, max, fee) = self.price_from(reads.estimate, mult, opts).await?;
        // A sweep sends what the balance holds beyond the fee, priced from the same readings:
        // a fee read again later could differ from the one the caller estimated with.
        let value = match req {
            BuildRequest::Transfer { .. } if opts.sweep => {
                let swept = reads.balance.checked_sub(fee.total_fee.0).filter(|v| !v.is_zero()).ok_or_else(|| {
                    ChainError::new(
                        ErrorCode::InsufficientBalance,
                        format!("balance {} wei cannot pay the fee {} wei", reads.balance, fee.total_fee.0),
                    )
                })?;
                metadata.insert("sweptAmount".into(), json!(swept.to_string()));
                swept
            }
            _ => value,
        };
        let needed = value.saturating_add(fee.total_fee.0);
        if reads.balance < needed {
            return Err(ChainError::new(
                ErrorCode::InsufficientBalance,
                format!("balance {} wei is below amount + fee = {needed} wei", reads.balance),
            ));
        }
        let nonce = self.nonce_for(opts, NonceUse::Main, from, reads.pending).await?;
        metadata.insert("nonce".into(), json!(nonce));
        metadata.insert("from".into(), json!(from.to_checksum(None)));
        if let Some(m) = method {
            metadata.insert("methodSignature".into(), json!(m));
        }
        Ok(UnsignedTx {
            inner: UnsignedInner::Evm {
                tx: Box::new(self.tx(chain_id, nonce, (to, value, input), (gas, prio, max))),
                approve_reset: None,
            },
            estimated_fee: fee,
            built_at: Instant::now(),
            expires_at: None,
            metadata,
        })
    }

    /// `eth_call {from, to, value, data, gas}` at `latest`.
    async fn simulate(&self, tx: &UnsignedTx) -> Result<SimulationResult, ChainError> {
        let UnsignedInner::Evm { tx: t, approve_reset } = &tx.inner else {
            return Err(ChainError::new(ErrorCode::InternalError, "not an EVM transaction"));
        };
        let t = approve_reset.as_ref().unwrap_or(t);
        let from = tx.metadata.get("from").and_then(Value::as_str).and_then(parse_evm_address);
        let mut req =
            TransactionRequest::default().with_value(t.value).with_input(t.input.clone()).with_gas_limit(t.gas_limit);
        if let TxKind::Call(to) = t.to {
            req = req.with_to(to);
        }
        if let Some(f) = from {
            req = req.with_from(f);
        }
        Ok(match self.call_request(req).await? {
            Ok(_) => SimulationResult { success: true, ..SimulationResult::default() },
            Err(reason) => SimulationResult {
                success: false,
                logs: vec![reason.clone()],
                units_consumed: None,
                error: Some(format!("execution reverted: {reason}")),
            },
        })
    }

    async fn apply_simulation(&self, tx: UnsignedTx, _sim: &SimulationResult) -> Result<UnsignedTx, ChainError> {
        Ok(tx)
    }

    async fn prepare_signing(&self, tx: &UnsignedTx) -> Result<SignIntent, ChainError> {
        match &tx.inner {
            UnsignedInner::Evm { tx, approve_reset } => {
                Ok(SignIntent::EvmTransaction(*approve_reset.clone().unwrap_or_else(|| tx.clone())))
            }
            UnsignedInner::Solana(_) => Err(ChainError::new(ErrorCode::InternalError, "not an EVM transaction")),
        }
    }

    fn attach_signature(&self, tx: &UnsignedTx, sig: &SignOutput) -> Result<SignedTx, ChainError> {
        let UnsignedInner::Evm { tx: t, approve_reset } = &tx.inner else {
            return Err(ChainError::new(ErrorCode::InternalError, "not an EVM transaction"));
        };
        let t = approve_reset.clone().unwrap_or_else(|| t.clone());
        let signature =
            sig.to_alloy().ok_or_else(|| ChainError::new(ErrorCode::InternalError, "not a secp256k1 signature"))?;
        let envelope = TxEnvelope::from(t.into_signed(signature));
        let bytes = envelope.encoded_2718();
        let hash = format!("{:#x}", keccak256(&bytes));
        Ok(SignedTx { bytes, hash })
    }

    async fn refresh_blockhash(&self, _tx: UnsignedTx) -> Result<UnsignedTx, ChainError> {
        Err(ChainError::new(ErrorCode::InternalError, "EVM transactions have no blockhash to refresh"))
    }

    async fn submit(&self, tx: &SignedTx) -> SubmitOutcome {
        let raw = format!("0x{}", hex::encode(&tx.bytes));
        let call = self.provider.raw_request::<_, String>("eth_sendRawTransaction".into(), [raw]);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(hash)) => {
                SubmitOutcome::Accepted { hash: if hash.is_empty() { tx.hash.clone() } else { hash.to_lowercase() } }
            }
            Ok(Err(e)) => match classify(&e) {
                Failure::Node { code, message, .. } => match submit_error(&message) {
                    Some(Ok(())) => SubmitOutcome::Accepted { hash: tx.hash.clone() },
                    Some(Err(err)) => {
                        if err.code == ErrorCode::EvmNonceTooLow {
                            self.reset_nonce_tracker(None);
                        }
                        SubmitOutcome::Rejected(err)
                    }
                    None if code == -32005 || code == -32603 => SubmitOutcome::Rejected(ChainError::new(
                        ErrorCode::RpcError,
                        format!("node error {code}: {message}"),
                    )),
                    None => SubmitOutcome::Rejected(ChainError::new(ErrorCode::TransactionFailed, message)),
                },
                Failure::Http(s) if s == 429 || s >= 500 => {
                    SubmitOutcome::Rejected(ChainError::new(ErrorCode::RpcError, format!("HTTP {s}")))
                }
                Failure::Http(s) => {
                    SubmitOutcome::Rejected(ChainError::new(ErrorCode::TransactionFailed, format!("HTTP {s}")))
                }
                Failure::Undelivered(m) => {
                    let e = ChainError::new(ErrorCode::NetworkError, m);
                    self.conn.note_failure(&e, self.clock.now());
                    SubmitOutcome::Rejected(e)
                }
                Failure::Uncertain(m) | Failure::Malformed(m) => {
                    SubmitOutcome::Unknown { hash: tx.hash.clone(), cause: m }
                }
            },
            Err(_) => SubmitOutcome::Unknown { hash: tx.hash.clone(), cause: "submit timed out".into() },
        }
    }

    async fn get_transaction_status(&self, hash: &str, ctx: &StatusContext) -> Result<ChainTxStatus, ChainError> {
        self.status_of(hash, ctx, true).await
    }

    /// Checks at once, then on a doubling ramp from 2 ms up to the spec's 1 s: a local node
    /// mines within milliseconds of the submission (anvil: 1–5 ms, so a 10 ms first step cost
    /// a send ~10 ms of latency), a public one every few seconds (the short steps add three
    /// polls to a 12 s block), and a poll is one cheap receipt lookup (no head or
    /// finalized-block lookups: the wait is for inclusion, issue #21). Only
    /// the last check, at the timeout, also looks for a nonce consumed by another transaction.
    async fn wait_for_confirmation(
        &self,
        hash: &str,
        ctx: &StatusContext,
        timeout: Duration,
    ) -> Result<ChainTxStatus, ChainError> {
        let deadline = Instant::now() + timeout;
        let receipt_only = StatusContext { nonce: None, ..ctx.clone() };
        let mut step = Duration::from_millis(2);
        loop {
            match self.status_of(hash, &receipt_only, false).await {
                Ok(
                    s @ (ChainTxStatus::Confirmed { .. }
                    | ChainTxStatus::Finalized { .. }
                    | ChainTxStatus::Failed { .. }),
                ) => {
                    return Ok(s);
                }
                Ok(_) => {}
                Err(e) if e.category() == super::error::Category::Transient => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return match self.status_of(hash, ctx, false).await {
                    Err(e) if e.category() == super::error::Category::Transient => Ok(ChainTxStatus::NotFound),
                    other => other,
                };
            }
            tokio::time::sleep(step.min(deadline - now)).await;
            step = (step * 2).min(Duration::from_secs(1));
        }
    }

    async fn get_current_nonce(&self, addr: &str) -> Result<u64, ChainError> {
        let a = address(addr)?;
        let pending = self.rpc(self.provider.get_transaction_count(a).pending()).await?;
        Ok(self.nonces.lock().expect("nonce lock").get(&a).copied().unwrap_or(0).max(pending))
    }

    fn as_evm(&self) -> Option<&EvmAdapter> {
        Some(self)
    }

    fn reset_nonce_tracker(&self, addr: Option<&str>) {
        let mut map = self.nonces.lock().expect("nonce lock");
        match addr.and_then(parse_evm_address) {
            Some(a) => {
                map.remove(&a);
            }
            None => map.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_errors_map_to_the_spec_codes() {
        let code = |m: &str| submit_error(m).map(|r| r.map_err(|e| e.code));
        assert_eq!(code("already known"), Some(Ok(())));
        assert_eq!(code("nonce too low: next nonce 5, tx nonce 4"), Some(Err(ErrorCode::EvmNonceTooLow)));
        assert_eq!(code("Replacement transaction underpriced"), Some(Err(ErrorCode::EvmNonceTooLow)));
        assert_eq!(code("intrinsic gas too low"), Some(Err(ErrorCode::EvmGasTooLow)));
        assert_eq!(code("insufficient funds for gas * price + value"), Some(Err(ErrorCode::InsufficientBalance)));
        assert_eq!(code("execution reverted: nope"), Some(Err(ErrorCode::EvmRevert)));
        assert_eq!(code("something else"), None);
    }

    // ACC-131, ACC-132.
    #[tokio::test]
    async fn a_disconnected_adapter_is_unhealthy_without_an_error() {
        let a = EvmAdapter::new(
            Network::Testnet,
            "http://127.0.0.1:1",
            Duration::from_secs(1),
            None,
            "ETH".into(),
            Default::default(),
        )
        .unwrap();
        assert_eq!(a.health().await, Health { healthy: false, latency_ms: -1 });
        assert!(a.is_valid_address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"));
        assert!(a.is_valid_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
        assert!(!a.is_valid_address("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"), "bad EIP-55 checksum");
        assert!(!a.is_valid_address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb9226"));
        assert!(!a.is_valid_address("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"));
        // A node that cannot be reached: a network error, not a panic.
        assert_eq!(
            a.get_current_nonce("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266").await.unwrap_err().code,
            ErrorCode::NetworkError
        );
    }

    #[test]
    fn gas_multipliers_round_up() {
        assert_eq!(ceil_mul(21_000, 11, 10), 23_100);
        assert_eq!(ceil_mul(21_001, 11, 10), 23_102);
        assert_eq!(ceil_mul(50_000, 12, 10), 60_000);
    }
}
