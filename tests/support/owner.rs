//! Owner signatures made by tools independent of waiaas (Python eth-account, `cast wallet
//! sign`, PyNaCl/solders through `scripts/oracles/owner_sign.py`) over messages built here from
//! the template in 04-auth.md §7.2.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};

use super::{TestDaemon, tool};

/// anvil's first two dev accounts (public test keys).
pub(crate) const EVM_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub(crate) const EVM_ADDR_0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
pub(crate) const EVM_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub(crate) const EVM_ADDR_1: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
pub(crate) const EVM_KEY_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

pub(crate) fn python() -> PathBuf {
    tool("WAIAAS_TOOL_PYTHON", "py-oracles/bin/python")
}

pub(crate) fn cast() -> PathBuf {
    tool("WAIAAS_TOOL_CAST", "foundry-1.7.1/node_modules/@foundry-rs/cast-linux-amd64/bin/cast")
}

fn oracle(args: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/owner_sign.py");
    let out = Command::new(python()).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn message_file(message: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), message).unwrap();
    f
}

/// EIP-191 signature by eth-account.
pub(crate) fn evm_sign(key: &str, message: &str) -> String {
    let f = message_file(message);
    oracle(&["evm", key, f.path().to_str().unwrap()])
}

/// EIP-191 signatures by eth-account for many messages, in one Python process.
pub(crate) fn evm_sign_many(key: &str, messages: &[String]) -> Vec<String> {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/owner_sign.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["evm-many", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for m in messages {
            writeln!(stdin, "{}", serde_json::to_string(m).unwrap()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// The message parsed by the reference PyPI `siwe` package (EIP-4361 ABNF grammar): its fields,
/// or the parser's error.
pub(crate) fn siwe_parse(message: &str) -> Result<Value, String> {
    let f = message_file(message);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/siwe_parse.py");
    let python = tool("WAIAAS_TOOL_PYTHON_SIWE", "py-siwe/bin/python");
    let out = Command::new(python).arg(script).arg(f.path()).output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// EIP-191 signature by `cast wallet sign`.
pub(crate) fn cast_sign(key: &str, message: &str) -> String {
    let out = Command::new(cast()).args(["wallet", "sign", "--private-key", key, message]).output().unwrap();
    assert!(out.status.success(), "cast failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A Solana owner: a 32-byte seed (hex) and its base58 public key (solders).
pub(crate) fn sol_owner(seed_byte: u8) -> (String, String) {
    let seed = format!("{seed_byte:02x}").repeat(32);
    let pubkey = oracle(&["sol-pub", &seed]);
    (seed, pubkey)
}

/// Ed25519 signature by PyNaCl over `mode` (raw, ledger0, ledger1, compact0, compact1).
pub(crate) fn sol_sign(seed: &str, mode: &str, message: &str) -> String {
    let f = message_file(message);
    oracle(&["sol", seed, mode, f.path().to_str().unwrap()])
}

/// The daemon's clock (dev mode may have moved it).
pub(crate) async fn daemon_now(d: &TestDaemon) -> i64 {
    let h: Value = d.get("/health").await.json().await.unwrap();
    chrono::DateTime::parse_from_rfc3339(h["timestamp"].as_str().unwrap()).unwrap().timestamp()
}

pub(crate) async fn nonce(d: &TestDaemon) -> String {
    let v: Value = d.get("/v1/nonce").await.json().await.unwrap();
    v["nonce"].as_str().unwrap().to_string()
}

pub(crate) fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The §7.2 message, field by field.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub domain: String,
    pub account: &'static str,
    pub address: String,
    pub action: String,
    pub target: String,
    pub chain_id: String,
    pub nonce: String,
    pub issued_at: String,
    pub expires: String,
    /// `approve_tx`: the approval summary after the target in the statement (04-auth.md §7.2).
    pub summary: Option<String>,
}

impl Msg {
    /// A fresh, valid message for `d`.
    pub(crate) async fn new(
        d: &TestDaemon,
        chain: &str,
        address: &str,
        action: &str,
        target: &str,
        chain_id: &str,
    ) -> Msg {
        let now = daemon_now(d).await;
        Msg {
            domain: format!("127.0.0.1:{}", d.port),
            account: if chain == "solana" { "Solana" } else { "Ethereum" },
            address: address.into(),
            action: action.into(),
            target: target.into(),
            chain_id: chain_id.into(),
            nonce: nonce(d).await,
            issued_at: iso(now),
            expires: iso(now + 300),
            summary: None,
        }
    }

    pub(crate) fn text(&self) -> String {
        [
            format!("{} wants you to sign in with your {} account:", self.domain, self.account),
            self.address.clone(),
            String::new(),
            match &self.summary {
                Some(s) => format!("WAIaaS Owner Action: {} {} ({s})", self.action, self.target),
                None => format!("WAIaaS Owner Action: {} {}", self.action, self.target),
            },
            String::new(),
            format!("URI: http://{}", self.domain),
            "Version: 1".into(),
            format!("Chain ID: {}", self.chain_id),
            format!("Nonce: {}", self.nonce),
            format!("Issued At: {}", self.issued_at),
            format!("Expiration Time: {}", self.expires),
            format!("Request ID: {}", self.target),
        ]
        .join("\n")
    }

    /// The `Authorization` bearer value carrying `signature` over this message.
    pub(crate) fn payload(&self, signature: &str) -> String {
        let chain = if self.account == "Solana" { "solana" } else { "ethereum" };
        let v = json!({
            "chain": chain, "address": self.address, "action": self.action, "nonce": self.nonce,
            "timestamp": self.issued_at, "message": self.text(), "signature": signature,
        });
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// Signed by the EVM key (eth-account).
    pub(crate) fn evm(&self, key: &str) -> String {
        self.payload(&evm_sign(key, &self.text()))
    }

    /// Signed by the Solana seed in `mode`.
    pub(crate) fn sol(&self, seed: &str, mode: &str) -> String {
        self.payload(&sol_sign(seed, mode, &self.text()))
    }
}
