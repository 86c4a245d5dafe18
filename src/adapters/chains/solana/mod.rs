//! The Solana adapter on `solana-rpc-client` and the agave 4.2 component crates
//! (05-chains.md §3): version-0 messages with the agent as fee payer, a 5 s blockhash cache, a
//! 30 s priority-fee cache, the freshness guard before signing, SPL / Token-2022 transfers with
//! idempotent ATA creation, approvals, program calls and batches.
//!
//! Freshness is measured in **block height**, never slot: slots can be skipped, so a slot-based
//! guard would call a live blockhash dead. A message is always recompiled from the request's
//! instructions (never patched), so a refreshed transaction is exactly the old one with a new
//! blockhash.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Value, json};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_request::RpcRequest;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use waiaas_backends::seam::{SignIntent, SignOutput, parse_solana_address};
use waiaas_storage::{Amount, Chain, Network};

use super::adapter::{AdapterStatus, ChainAdapter, ConnState};
use super::error::ChainError;
use super::types::*;
use crate::base::clock::Clock;

mod build;
mod errors;
mod fees;
mod tokens;

use crate::base::error::ErrorCode;
use build::{Plan, wire};
use errors::{describe_tx_error, error_text, map_client, submit_code};
use fees::MAX_CU_LIMIT;
pub(crate) use fees::cu_limit_for;
pub(crate) use tokens::{TOKEN_2022_PROGRAM, TOKEN_PROGRAM};

const BLOCKHASH_TTL: Duration = Duration::from_secs(5);
/// Unsigned transactions expire this long after the build.
const TX_LIFETIME: Duration = Duration::from_secs(50);
/// The spec's seconds per block for the freshness arithmetic.
const SECS_PER_BLOCK: f64 = 0.4;
/// Less than this much blockhash life left at signing: refresh first.
const FRESHNESS_BUDGET_SECS: f64 = 20.0;
const MAX_TX_BYTES: usize = 1232;

fn pubkey(s: &str) -> Result<Pubkey, ChainError> {
    parse_solana_address(s)
        .map(Pubkey::new_from_array)
        .ok_or_else(|| ChainError::new(ErrorCode::InvalidAddress, format!("invalid Solana address {s}")))
}

fn program(s: &str) -> Pubkey {
    Pubkey::from_str(s).expect("a valid program id")
}

/// The Solana adapter of one network.
pub(crate) struct SolanaAdapter {
    network: Network,
    url: String,
    client: Arc<RpcClient>,
    conn: ConnState,
    clock: Clock,
    /// (blockhash, lastValidBlockHeight, fetched at).
    blockhash: tokio::sync::Mutex<Option<(Hash, u64, Instant)>>,
    /// (median fee, fetched at).
    prio_fee: tokio::sync::Mutex<Option<(u64, Instant)>>,
    /// Compiled messages prepared for signing (hash → time), to keep two identical requests
    /// from producing one signature.
    prepared: Mutex<HashMap<[u8; 32], Instant>>,
    /// Signatures this adapter broadcast (an `AlreadyProcessed` answer for them is success).
    broadcast: Mutex<HashSet<String>>,
}

impl SolanaAdapter {
    pub(crate) fn new(network: Network, url: &str, timeout: Duration, clock: Clock) -> SolanaAdapter {
        let sender = super::rpc_timing::TimedSolana(solana_rpc_client::http_sender::HttpSender::new_with_timeout(
            url.to_string(),
            timeout,
        ));
        let client = RpcClient::new_sender(
            sender,
            solana_rpc_client::rpc_client::RpcClientConfig::with_commitment(CommitmentConfig::confirmed()),
        );
        SolanaAdapter {
            network,
            url: url.to_string(),
            client: Arc::new(client),
            conn: ConnState::default(),
            clock,
            blockhash: tokio::sync::Mutex::new(None),
            prio_fee: tokio::sync::Mutex::new(None),
            prepared: Mutex::new(HashMap::new()),
            broadcast: Mutex::new(HashSet::new()),
        }
    }

    fn noted(&self, e: ChainError) -> ChainError {
        self.conn.note_failure(&e, self.clock.now());
        e
    }

    fn rpc_err(&self, e: solana_client::client_error::ClientError) -> ChainError {
        self.noted(map_client(e))
    }

    /// The cached blockhash (5 s), or a fresh one; `fresh` bypasses the cache.
    async fn blockhash(&self, fresh: bool) -> Result<(Hash, u64), ChainError> {
        let mut cache = self.blockhash.lock().await;
        if !fresh
            && let Some((h, lvbh, at)) = *cache
            && at.elapsed() < BLOCKHASH_TTL
        {
            return Ok((h, lvbh));
        }
        let (h, lvbh) = self
            .client
            .get_latest_blockhash_with_commitment(CommitmentConfig::confirmed())
            .await
            .map_err(|e| self.rpc_err(e))?;
        *cache = Some((h, lvbh, Instant::now()));
        Ok((h, lvbh))
    }

    /// A blockhash other than `old` (the next one the node produces, waiting up to 2 s).
    async fn newer_blockhash(&self, old: Hash) -> Result<(Hash, u64), ChainError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (h, l) = self.blockhash(true).await?;
            if h != old || Instant::now() >= deadline {
                return Ok((h, l));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn account(&self, key: &Pubkey) -> Result<Option<solana_sdk::account::Account>, ChainError> {
        Ok(self
            .client
            .get_account_with_commitment(key, CommitmentConfig::confirmed())
            .await
            .map_err(|e| self.rpc_err(e))?
            .value)
    }

    async fn rent(&self, len: usize) -> Result<u64, ChainError> {
        self.client.get_minimum_balance_for_rent_exemption(len).await.map_err(|e| self.rpc_err(e))
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
        *self.blockhash.lock().await = None;
        *self.prio_fee.lock().await = None;
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
        let pk = pubkey(addr)?;
        let lamports = self
            .client
            .get_balance_with_commitment(&pk, CommitmentConfig::confirmed())
            .await
            .map_err(|e| self.rpc_err(e))?
            .value;
        Ok(BalanceInfo {
            address: addr.to_string(),
            balance: Amount::from_u64(lamports),
            decimals: 9,
            symbol: "SOL".into(),
        })
    }

    /// §3.13: every token account with a balance: the full balance to `to`'s ATA (created when
    /// missing) and `CloseAccount` of the agent's account, rent to `to`, in one transaction per
    /// token.
    async fn sweep_tokens(&self, from: &str, to: &str, _hints: &[TokenHint]) -> Result<Vec<SweepItem>, ChainError> {
        let owner = pubkey(from)?;
        let mut out = Vec::new();
        for a in self.get_assets(from, &[]).await?.into_iter().filter(|a| a.kind == AssetKind::Spl) {
            let Some(mint) = a.token_address.clone() else { continue };
            let (mint_key, program, decimals, _) =
                self.mint(&TokenRef { address: mint.clone(), decimals: None }).await?;
            let account = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                &owner, &mint_key, &program,
            );
            let rent = self.account(&account).await?.map(|acc| acc.lamports).unwrap_or(0);
            let close = BuildRequest::ContractCall {
                from: from.to_string(),
                to: program.to_string(),
                value: Amount::ZERO,
                // `CloseAccount` (instruction 9 of both token programs): account, destination, owner.
                body: CallBody::Solana {
                    instruction_data: vec![9],
                    accounts: vec![
                        AccountMetaSpec { pubkey: account.to_string(), is_signer: false, is_writable: true },
                        AccountMetaSpec { pubkey: to.to_string(), is_signer: false, is_writable: true },
                        AccountMetaSpec { pubkey: from.to_string(), is_signer: true, is_writable: false },
                    ],
                },
                memo: None,
            };
            let transfer = BuildRequest::TokenTransfer {
                from: from.to_string(),
                to: to.to_string(),
                amount: a.balance,
                token: TokenRef { address: mint.clone(), decimals: Some(decimals) },
                memo: None,
            };
            out.push(SweepItem {
                build: BuildRequest::Batch { from: from.to_string(), instructions: vec![transfer, close], memo: None },
                mint,
                symbol: a.symbol,
                amount: a.balance,
                rent: Amount::from_u64(rent),
            });
        }
        Ok(out)
    }

    async fn token_decimals(&self, token: &str) -> Result<u8, ChainError> {
        let (_, _, decimals, _) = self.mint(&TokenRef { address: token.to_string(), decimals: None }).await?;
        Ok(decimals)
    }

    /// Native SOL, then every non-zero Token and Token-2022 account (jsonParsed).
    async fn get_assets(&self, addr: &str, hints: &[TokenHint]) -> Result<Vec<AssetInfo>, ChainError> {
        let native = self.get_balance(addr).await?;
        let mut tokens = Vec::new();
        for prog in [TOKEN_PROGRAM, TOKEN_2022_PROGRAM] {
            let params = json!([addr, {"programId": prog}, {"encoding": "jsonParsed", "commitment": "confirmed"}]);
            let v: Value =
                self.client.send(RpcRequest::GetTokenAccountsByOwner, params).await.map_err(|e| self.rpc_err(e))?;
            for item in v["value"].as_array().into_iter().flatten() {
                let info = &item["account"]["data"]["parsed"]["info"];
                let (Some(mint), Some(raw), Some(decimals)) = (
                    info["mint"].as_str(),
                    info["tokenAmount"]["amount"].as_str().and_then(|a| a.parse::<u64>().ok()),
                    info["tokenAmount"]["decimals"].as_u64(),
                ) else {
                    continue;
                };
                if raw == 0 {
                    continue;
                }
                let symbol = hints.iter().find(|h| h.address == mint).map(|h| h.symbol.clone()).unwrap_or_default();
                tokens.push(AssetInfo {
                    kind: AssetKind::Spl,
                    token_address: Some(mint.to_string()),
                    symbol,
                    name: None,
                    balance: Amount::from_u64(raw),
                    decimals: decimals as u8,
                });
            }
        }
        let ui = |a: &AssetInfo| a.balance.to_u64().unwrap_or(0) as f64 / 10f64.powi(a.decimals as i32);
        tokens.sort_by(|a, b| ui(b).partial_cmp(&ui(a)).unwrap_or(std::cmp::Ordering::Equal));
        let mut out = vec![AssetInfo {
            kind: AssetKind::Native,
            token_address: None,
            symbol: "SOL".into(),
            name: None,
            balance: native.balance,
            decimals: 9,
        }];
        out.extend(tokens);
        Ok(out)
    }

    async fn estimate_fee(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<FeeEstimate, ChainError> {
        let prio = opts.priority;
        let mut plan = Plan::default();
        self.plan(req, &mut plan, false).await?;
        let cu_price = Self::cu_price(self.priority_fee().await, prio);
        Ok(Self::fee(cu_price, MAX_CU_LIMIT, plan.account_creation))
    }

    async fn build(&self, req: &BuildRequest, opts: &BuildOptions) -> Result<UnsignedTx, ChainError> {
        let payer = pubkey(req.from())?;
        let mut plan = Plan::default();
        self.plan(req, &mut plan, false).await?;
        let cu_price = match opts.cu_price_override {
            Some(p) => p,
            None => Self::cu_price(self.priority_fee().await, opts.priority),
        };
        let (blockhash, lvbh) = self.blockhash(false).await?;
        let message = Self::compile(&payer, &plan.instructions, MAX_CU_LIMIT, cu_price, blockhash)?;
        if wire(&[0; 64], &message.serialize()).len() > MAX_TX_BYTES {
            return Err(ChainError::new(
                if matches!(req, BuildRequest::Batch { .. }) {
                    ErrorCode::BatchSizeExceeded
                } else {
                    ErrorCode::TransactionFailed
                },
                format!("the transaction is larger than {MAX_TX_BYTES} bytes"),
            ));
        }
        let fee = Self::fee(cu_price, MAX_CU_LIMIT, plan.account_creation);
        let balance = self.get_balance(req.from()).await?.balance.to_u64().unwrap_or(0);
        let needed = plan.native as u128 + fee.total_fee.to_u64().unwrap_or(u64::MAX) as u128;
        if (balance as u128) < needed {
            return Err(ChainError::new(
                ErrorCode::InsufficientBalance,
                format!("balance {balance} lamports is below amount + fee = {needed}"),
            ));
        }
        let mut metadata = plan.metadata;
        metadata.insert("blockhash".into(), json!(blockhash.to_string()));
        metadata.insert("lastValidBlockHeight".into(), json!(lvbh));
        metadata.insert("cuPrice".into(), json!(cu_price));
        metadata.insert("accountCreationFee".into(), json!(plan.account_creation.to_string()));
        if !plan.warnings.is_empty() {
            metadata.insert("warnings".into(), json!(plan.warnings));
        }
        Ok(UnsignedTx {
            inner: UnsignedInner::Solana(Box::new(SolanaUnsigned {
                instructions: plan.instructions,
                message,
                blockhash,
                last_valid_block_height: lvbh,
                cu_price,
                cu_limit: MAX_CU_LIMIT,
            })),
            estimated_fee: fee,
            built_at: Instant::now(),
            expires_at: Some(SystemTime::now() + TX_LIFETIME),
            metadata,
        })
    }

    /// `simulateTransaction` with `sigVerify: false`, `replaceRecentBlockhash: true`.
    async fn simulate(&self, tx: &UnsignedTx) -> Result<SimulationResult, ChainError> {
        if tx.expires_at.is_some_and(|e| SystemTime::now() > e) {
            return Err(ChainError::new(
                ErrorCode::TransactionExpired,
                "the unsigned transaction expired before simulation",
            ));
        }
        let s = Self::unsigned(tx)?;
        let bytes = wire(&[0; 64], &s.message.serialize());
        let params = json!([
            base64::engine::general_purpose::STANDARD.encode(bytes),
            {"sigVerify": false, "replaceRecentBlockhash": true, "commitment": "confirmed", "encoding": "base64"}
        ]);
        let v: Value = self.client.send(RpcRequest::SimulateTransaction, params).await.map_err(|e| self.rpc_err(e))?;
        let r = &v["value"];
        let logs: Vec<String> =
            r["logs"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect();
        let units = r["unitsConsumed"].as_u64();
        Ok(if r["err"].is_null() {
            SimulationResult { success: true, logs, units_consumed: units, error: None }
        } else {
            SimulationResult { success: false, logs, units_consumed: units, error: Some(describe_tx_error(&r["err"])) }
        })
    }

    /// Recompiles with `SetComputeUnitLimit(max(ceil(units × 1.2), 1000))`.
    async fn apply_simulation(&self, tx: UnsignedTx, sim: &SimulationResult) -> Result<UnsignedTx, ChainError> {
        // The fee payer is always the first account of the message.
        let payer = *Self::unsigned(&tx)?
            .message
            .static_account_keys()
            .first()
            .ok_or_else(|| ChainError::new(ErrorCode::InternalError, "empty message"))?;
        let mut tx = tx;
        if let (Some(units), UnsignedInner::Solana(s)) = (sim.units_consumed, &mut tx.inner) {
            s.cu_limit = cu_limit_for(units);
            s.message = Self::compile(&payer, &s.instructions, s.cu_limit, s.cu_price, s.blockhash)?;
            let (price, limit) = (s.cu_price, s.cu_limit);
            let creation = tx.estimated_fee.account_creation_fee.to_u64().unwrap_or(0);
            tx.estimated_fee = Self::fee(price, limit, creation);
            tx.metadata.insert("cuLimit".into(), json!(limit));
        }
        self.distinct(tx, &payer).await
    }

    /// The freshness guard (05-chains.md §3.6): block height, never slot.
    async fn prepare_signing(&self, tx: &UnsignedTx) -> Result<SignIntent, ChainError> {
        if tx.expires_at.is_some_and(|e| SystemTime::now() > e) {
            return Err(ChainError::new(ErrorCode::TransactionExpired, "the unsigned transaction is older than 50 s"));
        }
        let s = Self::unsigned(tx)?;
        let height = self
            .client
            .get_block_height_with_commitment(CommitmentConfig::confirmed())
            .await
            .map_err(|e| self.rpc_err(e))?;
        let remaining = s.last_valid_block_height as i64 - height as i64;
        if (remaining as f64) * SECS_PER_BLOCK < FRESHNESS_BUDGET_SECS {
            // The cached blockhash is at least as old: the next build must fetch a new one.
            *self.blockhash.lock().await = None;
        }
        if remaining <= 0 {
            return Err(ChainError::new(
                ErrorCode::SolanaBlockhashExpired,
                format!("block height {height} is past lastValidBlockHeight {}", s.last_valid_block_height),
            ));
        }
        if (remaining as f64) * SECS_PER_BLOCK < FRESHNESS_BUDGET_SECS {
            return Err(ChainError::new(
                ErrorCode::SolanaBlockhashStale,
                format!("{remaining} blocks (~{:.1} s) of blockhash life left", remaining as f64 * SECS_PER_BLOCK),
            ));
        }
        Ok(SignIntent::SolanaMessage(s.message.serialize()))
    }

    fn attach_signature(&self, tx: &UnsignedTx, sig: &SignOutput) -> Result<SignedTx, ChainError> {
        let s = Self::unsigned(tx)?;
        let SignOutput::Ed25519(sig) = sig else {
            return Err(ChainError::new(ErrorCode::InternalError, "not an Ed25519 signature"));
        };
        Ok(SignedTx { bytes: wire(sig, &s.message.serialize()), hash: bs58::encode(sig).into_string() })
    }

    /// Same instructions, a new blockhash (the cache is bypassed), a new 50 s lifetime.
    async fn refresh_blockhash(&self, tx: UnsignedTx) -> Result<UnsignedTx, ChainError> {
        let s = Self::unsigned(&tx)?;
        let payer = *s
            .message
            .static_account_keys()
            .first()
            .ok_or_else(|| ChainError::new(ErrorCode::InternalError, "empty message"))?;
        let (h, l) = self.newer_blockhash(s.blockhash).await?;
        let tx = self.with_blockhash(tx, h, l, &payer)?;
        self.distinct(tx, &payer).await
    }

    async fn submit(&self, tx: &SignedTx) -> SubmitOutcome {
        let ours = self.broadcast.lock().expect("broadcast lock").contains(&tx.hash);
        let params = json!([
            base64::engine::general_purpose::STANDARD.encode(&tx.bytes),
            {"encoding": "base64", "skipPreflight": false, "preflightCommitment": "confirmed", "maxRetries": 3}
        ]);
        match self.client.send::<String>(RpcRequest::SendTransaction, params).await {
            Ok(sig) => {
                self.broadcast.lock().expect("broadcast lock").insert(tx.hash.clone());
                SubmitOutcome::Accepted { hash: if sig.is_empty() { tx.hash.clone() } else { sig } }
            }
            Err(e) => {
                use solana_client::client_error::ClientErrorKind;
                match e.kind() {
                    ClientErrorKind::Reqwest(r) if r.is_connect() => {
                        SubmitOutcome::Rejected(self.noted(ChainError::new(ErrorCode::NetworkError, e.to_string())))
                    }
                    ClientErrorKind::Reqwest(_) | ClientErrorKind::Io(_) => {
                        SubmitOutcome::Unknown { hash: tx.hash.clone(), cause: e.to_string() }
                    }
                    ClientErrorKind::RpcError(solana_rpc_client_api::request::RpcError::RpcResponseError {
                        code,
                        ..
                    }) if *code == -32005 || *code == -32603 => {
                        SubmitOutcome::Rejected(ChainError::new(ErrorCode::RpcError, e.to_string()))
                    }
                    _ => {
                        let text = error_text(&e);
                        match submit_code(&text, ours) {
                            None => SubmitOutcome::Accepted { hash: tx.hash.clone() },
                            Some(code) => SubmitOutcome::Rejected(ChainError::new(code, text)),
                        }
                    }
                }
            }
        }
    }

    async fn get_transaction_status(&self, hash: &str, ctx: &StatusContext) -> Result<ChainTxStatus, ChainError> {
        let params = json!([[hash], {"searchTransactionHistory": true}]);
        let v: Value = self.client.send(RpcRequest::GetSignatureStatuses, params).await.map_err(|e| self.rpc_err(e))?;
        let st = &v["value"][0];
        if st.is_null() {
            if let Some(lvbh) = ctx.last_valid_block_height {
                let height = self
                    .client
                    .get_block_height_with_commitment(CommitmentConfig::confirmed())
                    .await
                    .map_err(|e| self.rpc_err(e))?;
                if height > lvbh {
                    return Ok(ChainTxStatus::Expired);
                }
            }
            return Ok(ChainTxStatus::NotFound);
        }
        let slot = st["slot"].as_u64().unwrap_or(0);
        if !st["err"].is_null() {
            let text = describe_tx_error(&st["err"]);
            let code = if text.contains("InstructionError") {
                ErrorCode::SolanaProgramError
            } else {
                ErrorCode::TransactionFailed
            };
            return Ok(ChainTxStatus::Failed { error: ChainError::new(code, text), block: Some(slot), fee: None });
        }
        let fee = self.fee_of(hash).await;
        Ok(match st["confirmationStatus"].as_str() {
            Some("finalized") => ChainTxStatus::Finalized { block: slot, fee },
            Some("confirmed") => {
                ChainTxStatus::Confirmed { block: slot, fee, confirmations: st["confirmations"].as_u64() }
            }
            _ => ChainTxStatus::Pending,
        })
    }

    /// Checks at once, then on a doubling ramp from 50 ms up to the spec's 2 s.
    async fn wait_for_confirmation(
        &self,
        hash: &str,
        ctx: &StatusContext,
        timeout: Duration,
    ) -> Result<ChainTxStatus, ChainError> {
        let deadline = Instant::now() + timeout;
        let mut last = ChainTxStatus::NotFound;
        let mut step = Duration::from_millis(50);
        loop {
            match self.get_transaction_status(hash, ctx).await {
                Ok(
                    s @ (ChainTxStatus::Confirmed { .. }
                    | ChainTxStatus::Finalized { .. }
                    | ChainTxStatus::Failed { .. }
                    | ChainTxStatus::Expired),
                ) => return Ok(s),
                Ok(s) => last = s,
                Err(e) if e.category() == super::error::Category::Transient => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(last);
            }
            tokio::time::sleep(step.min(deadline - now)).await;
            step = (step * 2).min(Duration::from_secs(2));
        }
    }

    async fn get_current_nonce(&self, _addr: &str) -> Result<u64, ChainError> {
        Ok(0)
    }

    fn reset_nonce_tracker(&self, _addr: Option<&str>) {}
}

impl SolanaAdapter {
    /// The fee actually paid (`getTransaction` `meta.fee`), best effort.
    async fn fee_of(&self, sig: &str) -> Option<Amount> {
        let params = json!([sig, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]);
        let v: Value = self.client.send(RpcRequest::GetTransaction, params).await.ok()?;
        v["meta"]["fee"].as_u64().map(Amount::from_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ACC-131, ACC-132, ACC-130.
    #[tokio::test]
    async fn a_disconnected_adapter_is_unhealthy_without_an_error() {
        let a = SolanaAdapter::new(Network::Devnet, "http://127.0.0.1:1", Duration::from_secs(1), Clock::default());
        assert_eq!(a.health().await, Health { healthy: false, latency_ms: -1 });
        assert!(a.is_valid_address("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"));
        assert!(!a.is_valid_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
        assert!(!a.is_valid_address("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGY"), "too short for 32 bytes");
        assert_eq!(a.get_current_nonce("x").await.unwrap(), 0);
        a.reset_nonce_tracker(None);
    }

    // ACC-135: an unsigned transaction lives 50 s; past that neither simulation nor signing
    // starts (the check comes before any RPC, so an unreachable node does not matter).
    #[tokio::test]
    async fn an_unsigned_transaction_older_than_50_s_is_refused() {
        let a = SolanaAdapter::new(Network::Devnet, "http://127.0.0.1:1", Duration::from_secs(1), Clock::default());
        let tx = |expires_at| UnsignedTx {
            inner: UnsignedInner::Evm { tx: Box::default(), approve_reset: None },
            estimated_fee: FeeEstimate::default(),
            built_at: Instant::now(),
            expires_at: Some(expires_at),
            metadata: serde_json::Map::new(),
        };
        let past = tx(SystemTime::now() - Duration::from_secs(1));
        assert_eq!(a.simulate(&past).await.unwrap_err().code, ErrorCode::TransactionExpired);
        assert_eq!(a.prepare_signing(&past).await.unwrap_err().code, ErrorCode::TransactionExpired);
        let fresh = tx(SystemTime::now() + TX_LIFETIME);
        assert_ne!(a.prepare_signing(&fresh).await.unwrap_err().code, ErrorCode::TransactionExpired);
    }
}
