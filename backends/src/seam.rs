//! The signer seam (03-keys.md §3): the only way to get a signature.
//!
//! Callers hand a backend a typed [`SignIntent`]; there is no "sign these 32 bytes" operation, so
//! nothing outside this crate can make a key sign an arbitrary hash. [`sign_verified`] is the
//! entry point: it refuses intents the key's curve cannot sign (`Unsupported`), dispatches to the
//! backend, and verifies every signature against the key before returning it — an EVM signature
//! must recover the key's address, an Ed25519 signature must verify strictly.

use std::time::Instant;

use alloy::consensus::{SignableTransaction, TxEip1559};
use alloy::dyn_abi::TypedData;
use alloy::primitives::{Address, B256, Signature, U256, eip191_hash_message};
use uuid::Uuid;

/// Chain family of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainKind {
    /// Ed25519 keys, base58 addresses.
    Solana,
    /// secp256k1 keys, EIP-55 addresses.
    Ethereum,
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Encrypted key file.
    Keystore,
    /// Ledger hardware wallet.
    Ledger,
}

/// What to sign.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIntent {
    /// Unsigned EIP-1559 transaction; its chain id must equal the agent's.
    EvmTransaction(TxEip1559),
    /// EIP-191 personal message; the backend applies the prefix.
    Eip191Message(Vec<u8>),
    /// EIP-712 typed data; the backend computes the hash itself.
    Eip712(Box<TypedData>),
    /// A serialized Solana transaction message (legacy or v0); the signature covers these bytes.
    SolanaMessage(Vec<u8>),
    /// Solana off-chain message text; the backend signs the envelope of §3.3.
    SolanaOffchainMessage(String),
}

impl SignIntent {
    /// Short name for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            SignIntent::EvmTransaction(_) => "EvmTransaction",
            SignIntent::Eip191Message(_) => "Eip191Message",
            SignIntent::Eip712(_) => "Eip712",
            SignIntent::SolanaMessage(_) => "SolanaMessage",
            SignIntent::SolanaOffchainMessage(_) => "SolanaOffchainMessage",
        }
    }

    /// The curve family that can sign this intent.
    pub fn chain(&self) -> ChainKind {
        match self {
            SignIntent::EvmTransaction(_) | SignIntent::Eip191Message(_) | SignIntent::Eip712(_) => ChainKind::Ethereum,
            SignIntent::SolanaMessage(_) | SignIntent::SolanaOffchainMessage(_) => ChainKind::Solana,
        }
    }
}

/// A signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutput {
    /// ECDSA over secp256k1.
    Secp256k1 {
        /// r
        r: [u8; 32],
        /// s
        s: [u8; 32],
        /// Recovery parity.
        y_parity: bool,
    },
    /// Ed25519.
    Ed25519([u8; 64]),
}

impl SignOutput {
    /// As an alloy signature (secp256k1 only).
    pub fn to_alloy(&self) -> Option<Signature> {
        match self {
            SignOutput::Secp256k1 { r, s, y_parity } => {
                Some(Signature::new(U256::from_be_bytes(*r), U256::from_be_bytes(*s), *y_parity))
            }
            SignOutput::Ed25519(_) => None,
        }
    }

    /// `r ‖ s ‖ v` with `v = 27 + parity` (the 65-byte form owners send).
    pub fn to_rsv(&self) -> Option<[u8; 65]> {
        match self {
            SignOutput::Secp256k1 { r, s, y_parity } => {
                let mut out = [0u8; 65];
                out[..32].copy_from_slice(r);
                out[32..64].copy_from_slice(s);
                out[64] = 27 + u8::from(*y_parity);
                Some(out)
            }
            SignOutput::Ed25519(_) => None,
        }
    }
}

/// Which key to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// The agent; `None` for an owner key used by the CLI.
    pub agent_id: Option<Uuid>,
    /// Curve family.
    pub chain: ChainKind,
    /// Base58 public key or EIP-55 address.
    pub public_key: String,
    /// Backend.
    pub backend: BackendKind,
    /// Ledger derivation path.
    pub derivation_path: Option<String>,
}

/// Why a signature is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An agent transaction from the pipeline.
    AgentTransaction,
    /// A withdrawal to the owner.
    Withdraw,
    /// An owner message signed through the CLI.
    OwnerMessage,
}

/// Context of one signing call.
#[derive(Debug, Clone)]
pub struct SignContext {
    /// Purpose.
    pub purpose: Purpose,
    /// The transaction, when there is one.
    pub tx_id: Option<Uuid>,
    /// No answer after this instant is `Timeout`.
    pub deadline: Instant,
}

/// Typed signer failures (03-keys.md §3); the daemon maps them to API codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The keystore is locked (shutdown, kill switch).
    #[error("keystore is locked")]
    KeystoreLocked,
    /// No key is loaded for the agent.
    #[error("no key loaded for this agent")]
    KeyNotFound,
    /// The backend or key cannot sign this intent.
    #[error("this key cannot sign a {intent} intent")]
    Unsupported {
        /// The intent's name.
        intent: &'static str,
    },
    /// Rejected on the device.
    #[error("rejected on the device")]
    UserRejected,
    /// No answer from the device before the deadline.
    #[error("no answer from the device before the deadline")]
    Timeout,
    /// Not connected, locked, wrong app open, busy.
    #[error("device unavailable: {reason}")]
    DeviceUnavailable {
        /// What is wrong.
        reason: String,
    },
    /// The device refused the content.
    #[error("device refused the request (status 0x{status_word:04X}): {hint}")]
    Refused {
        /// The status word.
        status_word: u16,
        /// What the user can do.
        hint: String,
    },
    /// Protocol error or a signature that does not verify.
    #[error("signer internal error: {0}")]
    Internal(String),
}

/// The raw, unverified signing call of a backend. It lives in a module private to this crate, so
/// code outside it cannot name the trait and so cannot call `sign` directly: every signature
/// leaves the crate through [`sign_verified`].
pub(crate) mod raw {
    use async_trait::async_trait;

    use super::{KeyRef, SignContext, SignIntent, SignOutput, SignerError};

    /// Signs without verification.
    #[async_trait]
    pub trait RawSigner: Send + Sync {
        /// Signs `intent` with `key`; [`super::sign_verified`] checks the result.
        async fn sign(&self, key: &KeyRef, intent: &SignIntent, ctx: &SignContext) -> Result<SignOutput, SignerError>;
    }
}

/// A key backend: one small trait over a closed set of implementations (the keystore and the
/// Ledger, both in this crate). Sign with [`sign_verified`].
#[allow(private_bounds)]
pub trait SignerBackend: raw::RawSigner {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Whether `key` can sign `intent` here.
    fn supports(&self, key: &KeyRef, intent: &SignIntent) -> bool;
}

/// Parses an EVM address (any case; mixed case must carry a valid EIP-55 checksum).
pub fn parse_evm_address(s: &str) -> Option<Address> {
    let hex = s.strip_prefix("0x")?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.bytes().all(|b| !b.is_ascii_uppercase());
    let upper = hex.bytes().all(|b| !b.is_ascii_lowercase());
    if lower || upper { s.parse().ok() } else { Address::parse_checksummed(s, None).ok() }
}

/// Parses a Solana address: base58 decoding to exactly 32 bytes.
pub fn parse_solana_address(s: &str) -> Option<[u8; 32]> {
    let bytes = bs58::decode(s).into_vec().ok()?;
    bytes.try_into().ok()
}

/// The header layouts of a Solana off-chain message envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeLayout {
    /// The Ledger app's (03-keys.md §3.3): version 0, a 32-byte application domain (zeros), the
    /// format, one signer and its key, the length.
    Ledger,
    /// The compact header some wallets sign (04-auth.md §7.4): version 0, the format, the length.
    Compact,
}

/// `text` in an off-chain envelope of `layout` and `format` (0: printable ASCII, 1: UTF-8), or
/// `None` when it is too long for the 16-bit length.
pub fn offchain_envelope_as(layout: EnvelopeLayout, format: u8, signer: &[u8; 32], text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let len = u16::try_from(bytes.len()).ok()?;
    let mut out = Vec::with_capacity(85 + bytes.len());
    out.extend_from_slice(b"\xffsolana offchain");
    out.push(0);
    if layout == EnvelopeLayout::Ledger {
        out.extend_from_slice(&[0u8; 32]);
    }
    out.push(format);
    if layout == EnvelopeLayout::Ledger {
        out.push(1);
        out.extend_from_slice(signer);
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Some(out)
}

/// The envelope the seam signs for [`SignIntent::SolanaOffchainMessage`]: the Ledger layout with
/// the format the text calls for, or `None` for text over 1212 bytes (the app's limit).
pub fn offchain_envelope(signer: &[u8; 32], text: &str) -> Option<Vec<u8>> {
    if text.len() > 1212 {
        return None;
    }
    let printable = text.bytes().all(|b| b == 0x0A || (0x20..=0x7E).contains(&b));
    offchain_envelope_as(EnvelopeLayout::Ledger, if printable { 0 } else { 1 }, signer, text)
}

/// The 32-byte hash an EVM intent signs.
pub fn evm_signing_hash(intent: &SignIntent) -> Result<B256, SignerError> {
    match intent {
        SignIntent::EvmTransaction(tx) => Ok(tx.signature_hash()),
        SignIntent::Eip191Message(m) => Ok(eip191_hash_message(m)),
        SignIntent::Eip712(td) => {
            td.eip712_signing_hash().map_err(|e| SignerError::Internal(format!("EIP-712 hashing: {e}")))
        }
        _ => Err(SignerError::Unsupported { intent: intent.name() }),
    }
}

/// The bytes a Solana intent signs for `signer`.
pub fn solana_signing_bytes(intent: &SignIntent, signer: &[u8; 32]) -> Result<Vec<u8>, SignerError> {
    match intent {
        SignIntent::SolanaMessage(m) => Ok(m.clone()),
        SignIntent::SolanaOffchainMessage(text) => offchain_envelope(signer, text)
            .ok_or(SignerError::Unsupported { intent: "SolanaOffchainMessage (over 1212 bytes)" }),
        _ => Err(SignerError::Unsupported { intent: intent.name() }),
    }
}

/// Checks a signature against the key (03-keys.md §3): EVM — ECDSA verification against the
/// address's public key with the signature's parity (`secp::check`: the same acceptance as
/// recovering the address, at half the cost); Solana — strict Ed25519 verification.
pub fn verify(key: &KeyRef, intent: &SignIntent, out: &SignOutput) -> Result<(), SignerError> {
    let bad = || SignerError::Internal("signature does not verify".into());
    match (key.chain, out) {
        (ChainKind::Ethereum, SignOutput::Secp256k1 { .. }) => {
            let expected =
                parse_evm_address(&key.public_key).ok_or_else(|| SignerError::Internal("bad EVM address".into()))?;
            let hash = evm_signing_hash(intent)?;
            let sig = out.to_alloy().expect("secp256k1 output");
            if !crate::secp::check(expected, &hash, &sig) {
                return Err(bad());
            }
            Ok(())
        }
        (ChainKind::Solana, SignOutput::Ed25519(sig)) => {
            let pk = parse_solana_address(&key.public_key)
                .ok_or_else(|| SignerError::Internal("bad Solana address".into()))?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| bad())?;
            let msg = solana_signing_bytes(intent, &pk)?;
            vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(sig)).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Signs through `backend` after refusing intents of the other curve, then verifies the
/// signature before returning it. This is the function the daemon calls.
pub async fn sign_verified(
    backend: &dyn SignerBackend,
    key: &KeyRef,
    intent: &SignIntent,
    ctx: &SignContext,
) -> Result<SignOutput, SignerError> {
    if intent.chain() != key.chain || !backend.supports(key, intent) {
        return Err(SignerError::Unsupported { intent: intent.name() });
    }
    if key.backend != backend.kind() {
        return Err(SignerError::Internal("key belongs to another backend".into()));
    }
    let out = raw::RawSigner::sign(backend, key, intent, ctx).await?;
    verify(key, intent, &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_checksums() {
        let good = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert!(parse_evm_address(good).is_some());
        assert!(parse_evm_address(&good.to_lowercase()).is_some());
        assert!(parse_evm_address(&format!("0x{}", good[2..].to_uppercase())).is_some());
        assert!(parse_evm_address("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266").is_none(), "bad checksum");
        assert!(parse_evm_address("0x1234").is_none());
        assert!(parse_solana_address("11111111111111111111111111111111").is_some());
        assert!(parse_solana_address("1111").is_none());
        assert!(parse_solana_address("0OIl").is_none());
    }

    #[test]
    fn the_offchain_envelope_has_the_documented_layout() {
        let signer = [7u8; 32];
        let env = offchain_envelope(&signer, "hi\n").unwrap();
        assert_eq!(&env[..16], b"\xffsolana offchain");
        assert_eq!(env[16], 0);
        assert_eq!(&env[17..49], &[0u8; 32]);
        assert_eq!(env[49], 0, "printable ASCII is format 0");
        assert_eq!(env[50], 1);
        assert_eq!(&env[51..83], &signer);
        assert_eq!(&env[83..85], &3u16.to_le_bytes());
        assert_eq!(&env[85..], b"hi\n");
        assert_eq!(offchain_envelope(&signer, "héllo").unwrap()[49], 1);
        assert!(offchain_envelope(&signer, &"x".repeat(1213)).is_none());
    }
}
