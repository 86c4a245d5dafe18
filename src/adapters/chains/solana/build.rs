//! Building Solana transactions (05-chains.md §3.5–3.10): each request compiled into
//! instructions (transfers, SPL / Token-2022 transfers with idempotent ATA creation, approvals,
//! program calls, batches), then into a version-0 message with the compute budget first.
//!
//! A message is always recompiled from the request's instructions (never patched), so a
//! refreshed transaction is exactly the old one with a new blockhash.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{AccountMeta, Instruction};
use solana_sdk::message::{VersionedMessage, v0};
use solana_sdk::pubkey::Pubkey;
use spl_token_2022_interface::extension::ExtensionType;

use super::super::error::ChainError;
use super::super::types::*;
use super::tokens::{TOKEN_2022_PROGRAM, TOKEN_ACCOUNT_LEN, TOKEN_PROGRAM};
use super::{SolanaAdapter, TX_LIFETIME, program, pubkey};
use crate::base::error::ErrorCode;

const MEMO_PROGRAM: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

/// The wire form: compact-u16 signature count (1), the signature, the message bytes.
pub(super) fn wire(sig: &[u8; 64], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 64 + message.len());
    out.push(1);
    out.extend_from_slice(sig);
    out.extend_from_slice(message);
    out
}

/// One request compiled into instructions, with what the build learned.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) instructions: Vec<Instruction>,
    pub(super) native: u64,
    pub(super) account_creation: u64,
    pub(super) metadata: serde_json::Map<String, Value>,
    pub(super) warnings: Vec<String>,
}

impl SolanaAdapter {
    /// Compiles one request (or a batch instruction) into instructions.
    pub(super) async fn plan(&self, req: &BuildRequest, plan: &mut Plan, in_batch: bool) -> Result<(), ChainError> {
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
    pub(super) fn compile(
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

    pub(super) fn unsigned(tx: &UnsignedTx) -> Result<&SolanaUnsigned, ChainError> {
        match &tx.inner {
            UnsignedInner::Solana(s) => Ok(s),
            UnsignedInner::Evm { .. } => Err(ChainError::new(ErrorCode::InternalError, "not a Solana transaction")),
        }
    }

    /// Rebuilds `tx`'s message with a new blockhash (same instructions, same fee settings).
    pub(super) fn with_blockhash(
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
    pub(super) async fn distinct(&self, tx: UnsignedTx, payer: &Pubkey) -> Result<UnsignedTx, ChainError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_count_signature_message() {
        let w = wire(&[7; 64], b"msg");
        assert_eq!((w[0], &w[1..65], &w[65..]), (1, &[7u8; 64][..], &b"msg"[..]));
    }
}
