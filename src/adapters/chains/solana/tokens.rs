//! SPL Token and Token-2022 (05-chains.md §3.7): mint checks, refused extensions, the source
//! token account.

use solana_sdk::pubkey::Pubkey;
use spl_token_2022_interface::extension::{BaseStateWithExtensions, ExtensionType, StateWithExtensions};

use super::super::error::ChainError;
use super::super::types::TokenRef;
use super::{SolanaAdapter, pubkey};
use crate::base::error::ErrorCode;

/// The SPL Token program.
pub(crate) const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// The Token-2022 program.
pub(crate) const TOKEN_2022_PROGRAM: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
/// Size of a Token-program account.
pub(super) const TOKEN_ACCOUNT_LEN: usize = 165;

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

impl SolanaAdapter {
    /// Mint checks (05-chains.md §3.7 steps 1–2): program, decimals, refused extensions.
    pub(super) async fn mint(&self, token: &TokenRef) -> Result<(Pubkey, Pubkey, u8, Vec<u8>), ChainError> {
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
    pub(super) async fn source(
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
}
