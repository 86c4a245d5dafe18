//! The owner signing flow (01-daemon.md §4.8): build the exact owner message of 04-auth.md
//! §7.2 for an action and target, get it signed — on a Ledger, offline (prepare now, submit
//! later) or by pasting a signature — and wrap it in the `Authorization` payload.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use waiaas_backends::ledger::apps::DerivationPath;
use waiaas_backends::seam::{BackendKind, ChainKind, KeyRef, Purpose, SignContext, SignIntent, SignOutput};

use crate::cli::CliError;
use crate::cli::remote::api::Api;
use crate::domain::auth::owner::{OwnerAction, Payload};
use crate::domain::auth::siwe::{Account, SiweMessage, owner_message};

const DEFAULT_MESSAGE_PATH: &str = "/tmp/waiaas-sign-msg.txt";

/// Signing options shared by every command that needs an owner signature.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SigningArgs {
    /// Sign on a Ledger (transport from `[ledger]`).
    #[arg(long)]
    pub(crate) ledger: bool,
    /// Ledger derivation path of the owner key.
    #[arg(long, value_name = "PATH", requires = "ledger")]
    pub(crate) derivation_path: Option<String>,
    /// Write the message for offline signing and exit.
    #[arg(long, conflicts_with_all = ["ledger", "message_file"])]
    pub(crate) prepare_only: bool,
    /// Where `--prepare-only` writes the message.
    #[arg(long, value_name = "PATH", requires = "prepare_only")]
    pub(crate) message_out: Option<PathBuf>,
    /// A message prepared earlier with `--prepare-only`.
    #[arg(long, value_name = "PATH", requires = "signature", conflicts_with = "ledger")]
    pub(crate) message_file: Option<PathBuf>,
    /// The signature over `--message-file` (base58 for Solana, 0x-hex for EVM).
    #[arg(long, value_name = "SIG", requires = "message_file")]
    pub(crate) signature: Option<String>,
}

/// Who signs what.
pub(crate) struct Request<'a> {
    pub(crate) chain: &'a str,
    pub(crate) owner: &'a str,
    /// Decimal chain id (Ethereum) or network name (Solana).
    pub(crate) chain_id: &'a str,
    pub(crate) action: OwnerAction,
    pub(crate) target: &'a str,
    /// `approve_tx`: the approval summary (04-auth.md §7.2) shown after the target, so the owner
    /// reads what executes on the wallet or Ledger screen.
    pub(crate) summary: Option<&'a str>,
    /// A nonce issued elsewhere (kill-switch recovery: `recoveryNonce` of
    /// `GET /v1/admin/kill-switch`, since `/v1/nonce` does not pass the guard); `None` fetches
    /// one from `/v1/nonce`.
    pub(crate) nonce: Option<&'a str>,
}

fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    waiaas_backends::fsutil::write_atomic(path, text.as_bytes(), 0o600)
        .map_err(|e| CliError::general(format!("Error: cannot write {}: {e}", path.display())))
}

/// Builds the message with a fresh nonce and the daemon's clock.
fn build(api: &Api, r: &Request<'_>) -> Result<(SiweMessage, String), CliError> {
    let nonce = match r.nonce {
        Some(n) => n.to_string(),
        None => api.call(Method::GET, "/v1/nonce", None)?["nonce"].as_str().unwrap_or_default().to_string(),
    };
    // The daemon's clock, not ours: dev mode can move it forward.
    let health = api.block_on(api.client.health())?;
    let now = health["timestamp"]
        .as_str()
        .and_then(crate::domain::auth::siwe::parse_time)
        .ok_or_else(|| CliError::general("Error: the daemon did not report its time"))?
        .max(0) as u64;
    let issued = crate::base::clock::iso(now);
    let expires = crate::base::clock::iso(now + 300);
    let account = if r.chain == "solana" { Account::Solana } else { Account::Ethereum };
    let domain = format!("127.0.0.1:{}", api.port);
    let mut msg =
        owner_message(&domain, account, r.owner, r.action.as_str(), r.target, r.chain_id, &nonce, &issued, &expires);
    if let Some(s) = r.summary {
        msg.statement = Some(format!("WAIaaS Owner Action: {} {} ({s})", r.action.as_str(), r.target));
    }
    Ok((msg, nonce))
}

/// Runs the flow; `Ok(None)` means `--prepare-only` wrote the message and the command is done.
pub(crate) fn sign(api: &Api, args: &SigningArgs, r: &Request<'_>) -> Result<Option<String>, CliError> {
    let (message, signature) = if let Some(path) = &args.message_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::general(format!("Error: cannot read {}: {e}", path.display())))?;
        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
        (text, args.signature.clone().unwrap_or_default())
    } else {
        let (msg, _) = build(api, r)?;
        let text = msg.to_string();
        if args.prepare_only {
            let path = args.message_out.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MESSAGE_PATH));
            write_private(&path, &text)?;
            println!("Message written to {}", path.display());
            println!("Sign it, then submit with --message-file {} --signature <sig>", path.display());
            return Ok(None);
        }
        let signature = if args.ledger { ledger_sign(api, args, r, &text)? } else { interactive_sign(r, &text)? };
        (text, signature)
    };
    let parsed = SiweMessage::from_str(&message).map_err(|e| CliError::general(format!("Error: {e}")))?;
    let payload = Payload {
        chain: r.chain.to_string(),
        address: r.owner.to_string(),
        action: r.action.as_str().to_string(),
        nonce: parsed.nonce.clone(),
        timestamp: parsed.issued_at.clone(),
        message,
        signature,
    };
    Ok(Some(payload.encode()))
}

fn interactive_sign(r: &Request<'_>, text: &str) -> Result<String, CliError> {
    let path = PathBuf::from(DEFAULT_MESSAGE_PATH);
    write_private(&path, text)?;
    println!("{text}\n");
    println!("Message written to {}", path.display());
    if r.chain == "solana" {
        println!("Sign it, e.g.: solana sign-offchain-message -k <owner-keypair.json> \"$(cat {})\"", path.display());
    } else {
        println!("Sign it as an EIP-191 personal message, e.g.: cast wallet sign \"$(cat {})\"", path.display());
    }
    eprint!("Paste signature: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::general(format!("Error: cannot read the signature: {e}")))?;
    let sig = line.trim().to_string();
    if sig.is_empty() {
        return Err(CliError::general("Error: no signature given"));
    }
    Ok(sig)
}

/// 03-keys.md §11.8: the device's address must be the owner's before anything is signed.
fn ledger_sign(api: &Api, args: &SigningArgs, r: &Request<'_>, text: &str) -> Result<String, CliError> {
    let config = api.config.as_ref().ok_or_else(|| CliError::general("Error: cannot read config.toml for [ledger]"))?;
    let device = crate::runtime::signers::ledger_device(&config.ledger)
        .ok_or_else(|| CliError::general("Error: this build has no USB HID support"))?;
    let confirm = Duration::from_secs(config.ledger.confirm_timeout);
    let chain = if r.chain == "solana" { ChainKind::Solana } else { ChainKind::Ethereum };
    let path_text = args.derivation_path.clone().unwrap_or_else(|| DerivationPath::default_text(chain).to_string());
    let path = DerivationPath::parse(&path_text)
        .ok_or_else(|| CliError::general(format!("Error: invalid derivation path {path_text}")))?;
    let fail = |e: waiaas_backends::seam::SignerError| CliError::general(format!("Error: Ledger: {e}"));
    let address = api.block_on(device.get_address(chain, &path)).map_err(fail)?;
    let storage_chain = match chain {
        ChainKind::Ethereum => waiaas_storage::Chain::Ethereum,
        ChainKind::Solana => waiaas_storage::Chain::Solana,
    };
    if !crate::base::address::same(storage_chain, &address, r.owner) {
        return Err(CliError::general(format!(
            "Error: the Ledger address at {path_text} is {address}, not the owner {}",
            r.owner
        )));
    }
    let key = KeyRef {
        agent_id: None,
        chain,
        public_key: address,
        backend: BackendKind::Ledger,
        derivation_path: Some(path_text),
    };
    let intent = match chain {
        ChainKind::Ethereum => SignIntent::Eip191Message(text.as_bytes().to_vec()),
        ChainKind::Solana => SignIntent::SolanaOffchainMessage(text.to_string()),
    };
    let ctx = SignContext { purpose: Purpose::OwnerMessage, tx_id: None, deadline: Instant::now() + confirm };
    println!("Confirm the message on the Ledger...");
    let backend = waiaas_backends::ledger::device::LedgerBackend::new(std::sync::Arc::new(device));
    let out = api.block_on(waiaas_backends::seam::sign_verified(&backend, &key, &intent, &ctx)).map_err(fail)?;
    Ok(match out {
        SignOutput::Secp256k1 { .. } => format!("0x{}", hex::encode(out.to_rsv().expect("secp256k1"))),
        SignOutput::Ed25519(sig) => bs58::encode(sig).into_string(),
    })
}
