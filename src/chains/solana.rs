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
use sha2::{Digest, Sha256};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_request::RpcRequest;
use solana_commitment_config::CommitmentConfig;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{AccountMeta, Instruction};
use solana_sdk::message::{VersionedMessage, v0};
use solana_sdk::pubkey::Pubkey;
use spl_token_2022_interface::extension::{BaseStateWithExtensions, ExtensionType, StateWithExtensions};
use waiaas_backends::seam::{SignIntent, SignOutput, parse_solana_address};
use waiaas_storage::{Amount, Chain, Network};

use super::adapter::{AdapterStatus, ChainAdapter, ConnState};
use super::error::ChainError;
use super::types::*;
use crate::clock::Clock;
use crate::error::ErrorCode;

const BLOCKHASH_TTL: Duration = Duration::from_secs(5);
const FEE_TTL: Duration = Duration::from_secs(30);
/// Unsigned transactions expire this long after the build.
const TX_LIFETIME: Duration = Duration::from_secs(50);
/// The spec's seconds per block for the freshness arithmetic.
const SECS_PER_BLOCK: f64 = 0.4;
/// Less than this much blockhash life left at signing: refresh first.
const FRESHNESS_BUDGET_SECS: f64 = 20.0;
const MAX_CU_LIMIT: u32 = 1_400_000;
const LAMPORTS_PER_SIGNATURE: u64 = 5000;
const MAX_TX_BYTES: usize = 1232;

/// The SPL Token program.
pub(crate) const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// The Token-2022 program.
pub(crate) const TOKEN_2022_PROGRAM: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
const MEMO_PROGRAM: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";
/// Size of a Token-program account.
const TOKEN_ACCOUNT_LEN: usize = 165;

/// Token-2022 extensions whose semantics a plain transfer cannot honour (05-chains.md §3.7).
const REFUSED_EXTENSIONS: &[ExtensionType] = &[
    ExtensionType::TransferFeeConfig,
    ExtensionType::TransferFeeAmount,
    ExtensionType::ConfidentialTransferMint,
    ExtensionType::ConfidentialTransferAccount,
    ExtensionType::TransferHook,
    ExtensionType::TransferHookAccount,
    ExtensionType::PermanentDelegate,
    ExtensionType::NonTransferable,
    ExtensionType::NonTransferableAccount,
];

fn pubkey(s: &str) -> Result<Pubkey, ChainError> {
    parse_solana_address(s)
        .map(Pubkey::new_from_array)
        .ok_or_else(|| ChainError::new(ErrorCode::InvalidAddress, format!("invalid Solana address {s}")))
}

fn program(s: &str) -> Pubkey {
    Pubkey::from_str(s).expect("a valid program id")
}

/// Maps a client error: delivery failures are NETWORK_ERROR, the rest RPC_ERROR.
pub(crate) fn map_client(e: solana_client::client_error::ClientError) -> ChainError {
    use solana_client::client_error::ClientErrorKind;
    match e.kind() {
        ClientErrorKind::Reqwest(r) if r.is_connect() => ChainError::new(ErrorCode::NetworkError, e.to_string()),
        _ => ChainError::new(ErrorCode::RpcError, e.to_string()),
    }
}

/// The text a submit error is matched against: the message, the preflight error and its logs.
fn error_text(e: &solana_client::client_error::ClientError) -> String {
    use solana_client::client_error::ClientErrorKind;
    use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData};
    match e.kind() {
        ClientErrorKind::RpcError(RpcError::RpcResponseError { message, data, .. }) => {
            let mut t = message.clone();
            if let RpcResponseErrorData::SendTransactionPreflightFailure(r) = data {
                if let Some(err) = &r.err {
                    t.push_str(&format!(" {err:?}"));
                }
                for l in r.logs.iter().flatten() {
                    t.push(' ');
                    t.push_str(l);
                }
            }
            t
        }
        ClientErrorKind::TransactionError(te) => format!("{te:?} {te}"),
        _ => e.to_string(),
    }
}

/// Maps a node's refusal of `sendTransaction` (05-chains.md §3.11); `None` = accepted.
fn submit_code(text: &str, ours: bool) -> Option<ErrorCode> {
    let t = text.to_lowercase();
    Some(if t.contains("alreadyprocessed") || t.contains("already been processed") {
        if ours {
            return None;
        }
        ErrorCode::TransactionFailed
    } else if t.contains("blockhashnotfound")
        || t.contains("blockhash not found")
        || t.contains("block height exceeded")
    {
        ErrorCode::SolanaBlockhashExpired
    } else if t.contains("insufficientfeefortransaction") || t.contains("fee too low") {
        ErrorCode::SolanaInsufficientFee
    } else if t.contains("insufficientfunds") || t.contains("insufficient lamports") {
        ErrorCode::InsufficientBalance
    } else if t.contains("accountnotfound") {
        ErrorCode::InvalidAddress
    } else if t.contains("program failed") || t.contains("instructionerror") || t.contains("custom program error") {
        ErrorCode::SolanaProgramError
    } else {
        ErrorCode::TransactionFailed
    })
}

/// The median of the recent prioritisation fees (05-chains.md §3.3): middle value, the floor
/// of the mean of the two middle values for an even count, 0 when empty.
pub(crate) fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => ((v[n / 2 - 1] as u128 + v[n / 2] as u128) / 2) as u64,
    }
}

/// The compute-unit limit after a simulation: `max(ceil(units × 1.2), 1000)`, capped at the
/// 1.4 M the runtime allows.
pub(crate) fn cu_limit_for(units: u64) -> u32 {
    (units.saturating_mul(12).div_ceil(10)).clamp(1000, MAX_CU_LIMIT as u64) as u32
}

/// The wire form: compact-u16 signature count (1), the signature, the message bytes.
fn wire(sig: &[u8; 64], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 64 + message.len());
    out.push(1);
    out.extend_from_slice(sig);
    out.extend_from_slice(message);
    out
}

/// One request compiled into instructions, with what the build learned.
#[derive(Default)]
struct Plan {
    instructions: Vec<Instruction>,
    native: u64,
    account_creation: u64,
    metadata: serde_json::Map<String, Value>,
    warnings: Vec<String>,
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
        let client =
            RpcClient::new_with_timeout_and_commitment(url.to_string(), timeout, CommitmentConfig::confirmed());
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

    /// The median prioritisation fee, cached 30 s; a failed fetch is 0 and cached too.
    pub(crate) async fn priority_fee(&self) -> u64 {
        let mut cache = self.prio_fee.lock().await;
        if let Some((v, at)) = *cache
            && at.elapsed() < FEE_TTL
        {
            return v;
        }
        let v = match self.client.get_recent_prioritization_fees(&[]).await {
            Ok(fees) => median(fees.iter().map(|f| f.prioritization_fee).collect()),
            Err(e) => {
                tracing::debug!("getRecentPrioritizationFees failed, using 0: {e}");
                0
            }
        };
        *cache = Some((v, Instant::now()));
        v
    }

    fn cu_price(base: u64, prio: Priority) -> u64 {
        match prio {
            Priority::Low => base / 2,
            Priority::Medium => base,
            Priority::High => base.saturating_mul(2),
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

    /// Mint checks (05-chains.md §3.7 steps 1–2): program, decimals, refused extensions.
    async fn mint(&self, token: &TokenRef) -> Result<(Pubkey, Pubkey, u8, Vec<u8>), ChainError> {
        let mint = pubkey(&token.address)?;
        let acct = self
            .account(&mint)
            .await?
            .ok_or_else(|| ChainError::new(ErrorCode::TokenNotFound, format!("no mint account at {mint}")))?;
        let owner = acct.owner.to_string();
        if owner != TOKEN_PROGRAM && owner != TOKEN_2022_PROGRAM {
            return Err(ChainError::new(ErrorCode::InvalidTokenMint, format!("{mint} is not a token mint")));
        }
        let parsed = StateWithExtensions::<spl_token_2022_interface::state::Mint>::unpack(&acct.data)
            .map_err(|e| ChainError::new(ErrorCode::InvalidTokenMint, format!("{mint}: {e}")))?;
        let decimals = parsed.base.decimals;
        if token.decimals.is_some_and(|d| d != decimals) {
            return Err(ChainError::new(
                ErrorCode::InvalidTokenMint,
                format!("mint {mint} has {decimals} decimals, the request says {}", token.decimals.unwrap_or(0)),
            ));
        }
        let exts = if owner == TOKEN_2022_PROGRAM {
            // A mint whose extensions cannot be read counts as carrying the refused ones.
            parsed.get_extension_types().map_err(|_| {
                ChainError::new(ErrorCode::UnsupportedTokenExtension, format!("cannot read the extensions of {mint}"))
            })?
        } else {
            Vec::new()
        };
        if let Some(x) = exts.iter().find(|x| REFUSED_EXTENSIONS.contains(x)) {
            return Err(ChainError::new(
                ErrorCode::UnsupportedTokenExtension,
                format!("mint {mint} has the {x:?} extension"),
            ));
        }
        Ok((mint, acct.owner, decimals, acct.data))
    }

    /// The source token account: must exist with `amount`; its extensions are checked too.
    async fn source(
        &self,
        owner: &Pubkey,
        mint: &Pubkey,
        prog: &Pubkey,
        amount: u64,
    ) -> Result<(Pubkey, Option<Pubkey>), ChainError> {
        let ata = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
            owner, mint, prog,
        );
        let acct = self.account(&ata).await?.ok_or_else(|| {
            ChainError::new(ErrorCode::InsufficientTokenBalance, format!("no token account for {mint}"))
        })?;
        let parsed = StateWithExtensions::<spl_token_2022_interface::state::Account>::unpack(&acct.data)
            .map_err(|e| ChainError::new(ErrorCode::InsufficientTokenBalance, format!("token account {ata}: {e}")))?;
        if let Ok(exts) = parsed.get_extension_types()
            && let Some(x) = exts.iter().find(|x| REFUSED_EXTENSIONS.contains(x))
        {
            return Err(ChainError::new(
                ErrorCode::UnsupportedTokenExtension,
                format!("token account {ata} has {x:?}"),
            ));
        }
        if parsed.base.amount < amount {
            return Err(ChainError::new(
                ErrorCode::InsufficientTokenBalance,
                format!("token balance {} is below {amount}", parsed.base.amount),
            ));
        }
        let delegate: Option<Pubkey> = parsed.base.delegate.into();
        Ok((ata, delegate))
    }

    /// Compiles one request (or a batch instruction) into instructions.
    async fn plan(&self, req: &BuildRequest, plan: &mut Plan, in_batch: bool) -> Result<(), ChainError> {
        let memo_ix = |from: &Pubkey, memo: &Option<String>| {
            memo.as_ref().map(|m| Instruction {
                program_id: program(MEMO_PROGRAM),
                accounts: vec![AccountMeta::new_readonly(*from, true)],
                data: m.as_bytes().to_vec(),
            })
        };
        match req {
            BuildRequest::Transfer { from, to, amount, memo } => {
                let (f, t) = (pubkey(from)?, pubkey(to)?);
                let lamports =
                    amount.to_u64().ok_or_else(|| ChainError::new(ErrorCode::ValidationError, "amount exceeds u64"))?;
                plan.instructions.push(solana_system_interface::instruction::transfer(&f, &t, lamports));
                plan.native += lamports;
                plan.instructions.extend(memo_ix(&f, memo));
            }
            BuildRequest::TokenTransfer { from, to, amount, token, memo } => {
                let (f, t) = (pubkey(from)?, pubkey(to)?);
                let amount =
                    amount.to_u64().ok_or_else(|| ChainError::new(ErrorCode::ValidationError, "amount exceeds u64"))?;
                let (mint, prog, decimals, mint_data) = self.mint(token).await?;
                if let Some(a) = self.account(&t).await?
                    && (a.owner.to_string() == TOKEN_PROGRAM || a.owner.to_string() == TOKEN_2022_PROGRAM)
                {
                    return Err(ChainError::new(
                        ErrorCode::InvalidAddress,
                        "destination must be a wallet address, not a token account",
                    ));
                }
                let (source, _) = self.source(&f, &mint, &prog, amount).await?;
                let dest =
                    spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                        &t, &mint, &prog,
                    );
                if self.account(&dest).await?.is_none() {
                    let len = if prog.to_string() == TOKEN_2022_PROGRAM {
                        // The extensions the mint requires on its accounts, plus ImmutableOwner.
                        spl_token_2022_interface::extension::account_len::try_calculate_account_len_from_mint_data(
                            &mint_data,
                            &[ExtensionType::ImmutableOwner],
                        )
                        .map_err(|e| ChainError::new(ErrorCode::InvalidTokenMint, e.to_string()))?
                    } else {
                        TOKEN_ACCOUNT_LEN
                    };
                    let rent = self.rent(len).await?;
                    plan.instructions.push(
                        spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                            &f, &t, &mint, &prog,
                        ),
                    );
                    plan.account_creation += rent;
                    plan.metadata.insert("needCreateAta".into(), json!(true));
                }
                plan.metadata.insert("tokenProgram".into(), json!(prog.to_string()));
                plan.instructions.push(
                    spl_token_2022_interface::instruction::transfer_checked(
                        &prog,
                        &source,
                        &mint,
                        &dest,
                        &f,
                        &[],
                        amount,
                        decimals,
                    )
                    .map_err(|e| ChainError::new(ErrorCode::InternalError, e.to_string()))?,
                );
                plan.instructions.extend(memo_ix(&f, memo));
            }
            BuildRequest::ContractCall { from, to, body, memo, .. } => {
                let f = pubkey(from)?;
                let CallBody::Solana { instruction_data, accounts } = body else {
                    return Err(ChainError::new(ErrorCode::ValidationError, "an EVM call on a Solana agent"));
                };
                let metas = accounts
                    .iter()
                    .map(|a| {
                        let k = pubkey(&a.pubkey)?;
                        Ok(if a.is_writable {
                            AccountMeta::new(k, a.is_signer)
                        } else {
                            AccountMeta::new_readonly(k, a.is_signer)
                        })
                    })
                    .collect::<Result<Vec<_>, ChainError>>()?;
                plan.instructions.push(Instruction {
                    program_id: pubkey(to)?,
                    accounts: metas,
                    data: instruction_data.clone(),
                });
                plan.instructions.extend(memo_ix(&f, memo));
            }
            BuildRequest::Approve { from, token, spender, amount } => {
                let (f, s) = (pubkey(from)?, pubkey(spender)?);
                let amount =
                    amount.to_u64().ok_or_else(|| ChainError::new(ErrorCode::ValidationError, "amount exceeds u64"))?;
                let (mint, prog, decimals, _) = self.mint(token).await?;
                let (source, delegate) = match self.source(&f, &mint, &prog, 0).await {
                    Ok(x) => x,
                    Err(e) if in_batch && e.code == ErrorCode::InsufficientTokenBalance => {
                        return Err(ChainError::new(
                            ErrorCode::BatchInstructionInvalid,
                            format!("APPROVE: {}", e.message),
                        ));
                    }
                    Err(e) => return Err(e),
                };
                if let Some(d) = delegate
                    && d != s
                {
                    plan.metadata.insert("previousDelegate".into(), json!(d.to_string()));
                    plan.warnings.push(format!("Replaces existing delegate {d}"));
                }
                let ix = if amount == 0 {
                    spl_token_2022_interface::instruction::revoke(&prog, &source, &f, &[])
                } else {
                    spl_token_2022_interface::instruction::approve_checked(
                        &prog,
                        &source,
                        &mint,
                        &s,
                        &f,
                        &[],
                        amount,
                        decimals,
                    )
                };
                plan.instructions.push(ix.map_err(|e| ChainError::new(ErrorCode::InternalError, e.to_string()))?);
            }
            BuildRequest::Batch { from, instructions, memo } => {
                let f = pubkey(from)?;
                for i in instructions {
                    Box::pin(self.plan(i, plan, true)).await?;
                }
                plan.instructions.extend(memo_ix(&f, memo));
                if plan.instructions.len() > 20 {
                    return Err(ChainError::new(
                        ErrorCode::BatchSizeExceeded,
                        format!("{} instructions after ATA creation and memo; at most 20", plan.instructions.len()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Compute budget first, then the request's instructions, compiled as version 0.
    fn compile(
        payer: &Pubkey,
        ixs: &[Instruction],
        cu_limit: u32,
        cu_price: u64,
        blockhash: Hash,
    ) -> Result<VersionedMessage, ChainError> {
        let mut all = vec![
            ComputeBudgetInstruction::set_compute_unit_limit(cu_limit),
            ComputeBudgetInstruction::set_compute_unit_price(cu_price),
        ];
        all.extend_from_slice(ixs);
        let m = v0::Message::try_compile(payer, &all, &[], blockhash)
            .map_err(|e| ChainError::new(ErrorCode::InternalError, format!("compile: {e}")))?;
        Ok(VersionedMessage::V0(m))
    }

    fn fee(cu_price: u64, cu_limit: u32, account_creation: u64) -> FeeEstimate {
        let priority = ((cu_price as u128 * cu_limit as u128).div_ceil(1_000_000)) as u64;
        let total = LAMPORTS_PER_SIGNATURE + priority + account_creation;
        FeeEstimate {
            network_fee: Amount::from_u64(LAMPORTS_PER_SIGNATURE),
            priority_fee: Amount::from_u64(priority),
            account_creation_fee: Amount::from_u64(account_creation),
            total_fee: Amount::from_u64(total),
        }
    }

    fn unsigned(tx: &UnsignedTx) -> Result<&SolanaUnsigned, ChainError> {
        match &tx.inner {
            UnsignedInner::Solana(s) => Ok(s),
            UnsignedInner::Evm { .. } => Err(ChainError::new(ErrorCode::InternalError, "not a Solana transaction")),
        }
    }

    /// Rebuilds `tx`'s message with a new blockhash (same instructions, same fee settings).
    fn with_blockhash(
        &self,
        mut tx: UnsignedTx,
        blockhash: Hash,
        lvbh: u64,
        payer: &Pubkey,
    ) -> Result<UnsignedTx, ChainError> {
        let UnsignedInner::Solana(s) = &mut tx.inner else {
            return Err(ChainError::new(ErrorCode::InternalError, "not a Solana transaction"));
        };
        s.message = Self::compile(payer, &s.instructions, s.cu_limit, s.cu_price, blockhash)?;
        s.blockhash = blockhash;
        s.last_valid_block_height = lvbh;
        tx.built_at = Instant::now();
        tx.expires_at = Some(SystemTime::now() + TX_LIFETIME);
        tx.metadata.insert("blockhash".into(), json!(blockhash.to_string()));
        tx.metadata.insert("lastValidBlockHeight".into(), json!(lvbh));
        Ok(tx)
    }

    /// Keeps two identical requests from compiling to one message (one signature).
    async fn distinct(&self, tx: UnsignedTx, payer: &Pubkey) -> Result<UnsignedTx, ChainError> {
        let s = Self::unsigned(&tx)?;
        let digest: [u8; 32] = Sha256::digest(s.message.serialize()).into();
        let seen = {
            let mut p = self.prepared.lock().expect("prepared lock");
            p.retain(|_, at| at.elapsed() < Duration::from_secs(120));
            p.contains_key(&digest)
        };
        let tx = if seen {
            let (h, l) = self.newer_blockhash(s.blockhash).await?;
            self.with_blockhash(tx, h, l, payer)?
        } else {
            tx
        };
        let s = Self::unsigned(&tx)?;
        let digest: [u8; 32] = Sha256::digest(s.message.serialize()).into();
        self.prepared.lock().expect("prepared lock").insert(digest, Instant::now());
        Ok(tx)
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

    async fn estimate_fee(&self, req: &BuildRequest, prio: Priority) -> Result<FeeEstimate, ChainError> {
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

/// A readable form of a JSON transaction error (`{"InstructionError": [2, {"Custom": 1}]}` →
/// `Instruction 2: custom program error 0x1`).
fn describe_tx_error(err: &Value) -> String {
    if let Some(ie) = err.get("InstructionError").and_then(Value::as_array) {
        let idx = ie.first().and_then(Value::as_u64).unwrap_or(0);
        let what = match ie.get(1) {
            Some(Value::Object(o)) if o.contains_key("Custom") => {
                format!("custom program error 0x{:x}", o["Custom"].as_u64().unwrap_or(0))
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        return format!("InstructionError: Instruction {idx}: {what}");
    }
    match err {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_follows_the_spec() {
        assert_eq!(median(vec![1, 3, 2]), 2);
        assert_eq!(median(vec![1, 2, 3, 10]), 2);
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![u64::MAX, u64::MAX]), u64::MAX);
    }

    #[test]
    fn submit_errors_map_to_the_spec_codes() {
        assert_eq!(
            submit_code("Transaction simulation failed: Blockhash not found", false),
            Some(ErrorCode::SolanaBlockhashExpired)
        );
        assert_eq!(submit_code("InsufficientFeeForTransaction", false), Some(ErrorCode::SolanaInsufficientFee));
        assert_eq!(
            submit_code(
                "Attempt to debit an account but found no record of a prior credit. InsufficientFundsForFee",
                false
            ),
            Some(ErrorCode::InsufficientBalance)
        );
        assert_eq!(
            submit_code("Error processing Instruction 2: custom program error 0x1", false),
            Some(ErrorCode::SolanaProgramError)
        );
        assert_eq!(submit_code("AlreadyProcessed", true), None);
        assert_eq!(submit_code("AlreadyProcessed", false), Some(ErrorCode::TransactionFailed));
        assert_eq!(submit_code("Transaction simulation failed: something", false), Some(ErrorCode::TransactionFailed));
    }

    // ACC-138.
    #[test]
    fn compute_limits_follow_the_simulation() {
        assert_eq!(cu_limit_for(150), 1000);
        assert_eq!(cu_limit_for(1000), 1200);
        assert_eq!(cu_limit_for(1001), 1202);
        assert_eq!(cu_limit_for(10_000_000), MAX_CU_LIMIT);
    }

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

    #[test]
    fn the_wire_format_is_count_signature_message() {
        let w = wire(&[7; 64], b"msg");
        assert_eq!((w[0], &w[1..65], &w[65..]), (1, &[7u8; 64][..], &b"msg"[..]));
        assert_eq!(
            describe_tx_error(&json!({"InstructionError": [2, {"Custom": 1}]})),
            "InstructionError: Instruction 2: custom program error 0x1"
        );
    }
}
