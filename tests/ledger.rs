//! The Ledger backend against real things: the Speculos emulator running Ledger's Boilerplate
//! app (transport, chunking, status words, button presses, timeouts on real firmware code), and
//! the fake device's signatures accepted by real anvil and Solana nodes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::Encodable2718;
use alloy::primitives::{Address, TxKind, U256, keccak256};
use serde_json::{Value, json};
use waiaas_backends::ledger::apps::{self, App, DEFAULT_ETH_PATH, DEFAULT_SOL_PATH, DerivationPath};
use waiaas_backends::ledger::device::{LedgerBackend, LedgerDevice, LedgerTimeouts};
use waiaas_backends::ledger::fake::FakeDevice;
use waiaas_backends::ledger::transport::{Apdu, ApduTransport, TcpTransport, TransportError};
use waiaas_backends::seam::{
    BackendKind, ChainKind, KeyRef, Purpose, SignContext, SignIntent, SignOutput, SignerError, sign_verified,
};

use crate::support::nodes::{Anvil, Speculos, Surfnet};

// ---------------------------------------------------------------- Speculos helpers

/// Every (response data, status word) of one exchange sequence.
type ExchangeResult = Result<Vec<(Vec<u8>, u16)>, TransportError>;

/// A minimal HTTP/1.1 call to the Speculos REST API.
fn speculos_http(port: u16, method: &str, path: &str, body: Option<&str>) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.unwrap_or("");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn screen(sp: &Speculos) -> Vec<String> {
    let body = speculos_http(sp.api_port, "GET", "/events?currentscreenonly=true", None);
    // The body may be chunked; pull the JSON object out.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map(|e| e + 1).unwrap_or(body.len());
    serde_json::from_str::<Value>(&body[start..end])
        .ok()
        .and_then(|v| {
            v["events"].as_array().map(|a| a.iter().filter_map(|e| e["text"].as_str().map(str::to_string)).collect())
        })
        .unwrap_or_default()
}

fn press(sp: &Speculos, button: &str) {
    speculos_http(sp.api_port, "POST", &format!("/button/{button}"), Some(r#"{"action":"press-and-release"}"#));
}

/// Walks right through the review screens until `target`, then presses both buttons.
fn choose(sp: &Speculos, target: &str) {
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(250));
        if screen(sp).iter().any(|t| t.contains(target)) {
            press(sp, "both");
            return;
        }
        press(sp, "right");
    }
    panic!("screen {target:?} never appeared");
}

const BOIL_PATH: &str = "44'/1'/0'/0/0";

/// The Boilerplate app's transaction: nonce u64 BE ‖ to (20) ‖ value u64 BE ‖ varint memo len ‖ memo.
fn boil_tx(memo_len: usize) -> Vec<u8> {
    let mut tx = 7u64.to_be_bytes().to_vec();
    tx.extend((0u8..20).collect::<Vec<_>>());
    tx.extend(666u64.to_be_bytes());
    tx.push(0xfd);
    tx.extend((memo_len as u16).to_le_bytes());
    tx.extend(std::iter::repeat_n(b'm', memo_len));
    tx
}

/// INS 0x06 SIGN_TX: a path chunk (P1 0), then data chunks (P1 = index, P2 0x80 while more).
fn boil_sign_apdus(tx: &[u8]) -> Vec<Apdu> {
    let path = DerivationPath::parse(BOIL_PATH).unwrap().serialize();
    let mut out = vec![Apdu { cla: 0xE0, ins: 0x06, p1: 0, p2: 0x80, data: path }];
    let chunks: Vec<&[u8]> = tx.chunks(255).collect();
    for (i, c) in chunks.iter().enumerate() {
        let more = if i + 1 < chunks.len() { 0x80 } else { 0x00 };
        out.push(Apdu { cla: 0xE0, ins: 0x06, p1: (i + 1) as u8, p2: more, data: c.to_vec() });
    }
    out
}

fn connect(sp: &Speculos) -> TcpTransport {
    TcpTransport::connect(&format!("127.0.0.1:{}", sp.apdu_port), Duration::from_secs(5)).unwrap()
}

/// Sends a chunked sign on its own thread (the device blocks until a button is pressed).
fn sign_in_background(sp: &Speculos, tx: Vec<u8>, timeout: Duration) -> std::thread::JoinHandle<ExchangeResult> {
    let mut t = connect(sp);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        for a in boil_sign_apdus(&tx) {
            let r = t.exchange(&a, timeout)?;
            out.push((r.data, r.sw));
        }
        Ok(out)
    })
}

// ---------------------------------------------------------------- Speculos tests (ACC-078)

// ACC-078.
#[test]
fn speculos_answers_version_and_name_through_our_tcp_transport() {
    let sp = Speculos::start(None);
    let mut t = connect(&sp);
    let v = t.exchange(&Apdu { cla: 0xE0, ins: 0x03, p1: 0, p2: 0, data: vec![] }, Duration::from_secs(5)).unwrap();
    assert_eq!(v.sw, 0x9000);
    assert_eq!(v.data.len(), 3, "major.minor.patch");
    let n = t.exchange(&Apdu { cla: 0xE0, ins: 0x04, p1: 0, p2: 0, data: vec![] }, Duration::from_secs(5)).unwrap();
    assert_eq!((String::from_utf8(n.data).unwrap().as_str(), n.sw), ("Boilerplate", 0x9000));
}

#[test]
fn a_chunked_sign_approved_with_button_presses_verifies() {
    let sp = Speculos::start(None);
    let mut t = connect(&sp);
    let path = DerivationPath::parse(BOIL_PATH).unwrap().serialize();
    let pk = t.exchange(&Apdu { cla: 0xE0, ins: 0x05, p1: 0, p2: 0, data: path }, Duration::from_secs(5)).unwrap();
    assert_eq!(pk.sw, 0x9000);
    let pubkey = k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk.data[1..66]).unwrap();
    drop(t);

    let tx = boil_tx(280); // 319 bytes: two data chunks
    assert!(boil_sign_apdus(&tx).len() >= 3, "path chunk + at least two data chunks");
    let job = sign_in_background(&sp, tx.clone(), Duration::from_secs(30));
    choose(&sp, "Sign transaction");
    let responses = job.join().unwrap().unwrap();
    assert!(responses.iter().all(|(_, sw)| *sw == 0x9000));
    let (last, _) = responses.last().unwrap();
    let der_len = last[0] as usize;
    let sig = k256::ecdsa::Signature::from_der(&last[1..1 + der_len]).unwrap();
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    pubkey
        .verify_prehash(keccak256(&tx).as_slice(), &sig)
        .expect("the device signed keccak256(tx) with the path's key");
}

#[test]
fn a_rejected_sign_is_user_rejected() {
    let sp = Speculos::start(None);
    let job = sign_in_background(&sp, boil_tx(10), Duration::from_secs(30));
    choose(&sp, "Reject transaction");
    let responses = job.join().unwrap().unwrap();
    let (_, sw) = *responses.last().unwrap();
    assert_eq!(sw, 0x6985);
    assert_eq!(apps::check_sw(sw, App::Ethereum), Err(SignerError::UserRejected));
}

#[test]
fn an_unanswered_prompt_times_out() {
    let sp = Speculos::start(None);
    let started = Instant::now();
    let r = sign_in_background(&sp, boil_tx(10), Duration::from_secs(2)).join().unwrap();
    assert_eq!(r.unwrap_err(), TransportError::Timeout);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn an_unknown_class_or_instruction_is_device_unavailable() {
    let sp = Speculos::start(None);
    let mut t = connect(&sp);
    for (cla, ins, expected) in [(0xE1u8, 0x04u8, 0x6E00u16), (0xE0, 0xFF, 0x6D00)] {
        let r = t.exchange(&Apdu { cla, ins, p1: 0, p2: 0, data: vec![] }, Duration::from_secs(5)).unwrap();
        assert_eq!(r.sw, expected);
        assert!(
            matches!(apps::check_sw(r.sw, App::Solana), Err(SignerError::DeviceUnavailable { reason }) if reason == "open the Solana app")
        );
    }
}

// ---------------------------------------------------------------- the fake device on real nodes

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn ctx() -> SignContext {
    SignContext { purpose: Purpose::AgentTransaction, tx_id: None, deadline: Instant::now() + Duration::from_secs(30) }
}

/// The fake device signs an EIP-1559 transfer over the TCP transport (the daemon's
/// `[ledger] transport = "tcp"` path); anvil mines it and recovers the device's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_signed_by_the_fake_ledger_is_mined_by_anvil() {
    let anvil = Anvil::start();
    let fake = FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let device = Arc::new(LedgerDevice::tcp(server.address(), LedgerTimeouts::default()));
    let from =
        device.get_address(ChainKind::Ethereum, &DerivationPath::parse(DEFAULT_ETH_PATH).unwrap()).await.unwrap();
    let key = KeyRef {
        agent_id: None,
        chain: ChainKind::Ethereum,
        public_key: from.clone(),
        backend: BackendKind::Ledger,
        derivation_path: Some(DEFAULT_ETH_PATH.into()),
    };
    let to = Address::repeat_byte(0x42);
    let nonce = hex_u64(&rpc(&anvil.url, "eth_getTransactionCount", json!([from, "pending"])).await);
    let base = hex_u64(&rpc(&anvil.url, "eth_getBlockByNumber", json!(["latest", false])).await["baseFeePerGas"]);
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_priority_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 2 * base as u128 + 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(10u64).pow(U256::from(18u64)),
        ..Default::default()
    };
    let backend = LedgerBackend::new(device);
    let out = sign_verified(&backend, &key, &SignIntent::EvmTransaction(tx.clone()), &ctx()).await.unwrap();
    let SignOutput::Secp256k1 { .. } = out else { panic!("secp256k1 expected") };
    let signed = tx.into_signed(out.to_alloy().unwrap());
    let raw = TxEnvelope::from(signed).encoded_2718();
    let hash = rpc(&anvil.url, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(raw))])).await;
    // anvil mines on submission, but the receipt can lag the RPC answer by a moment.
    let mut receipt = Value::Null;
    for _ in 0..100 {
        receipt = rpc(&anvil.url, "eth_getTransactionReceipt", json!([hash])).await;
        if !receipt.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(
        receipt["from"].as_str().unwrap().to_lowercase(),
        from.to_lowercase(),
        "anvil recovered the device's address"
    );
    let balance = rpc(&anvil.url, "eth_getBalance", json!([to.to_checksum(None), "latest"])).await;
    assert_eq!(balance, "0xde0b6b3a7640000", "exactly 1 ETH arrived");
}

/// The fake device signs a Solana transfer message with the Solana app protocol; the local
/// Solana node verifies and executes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_signed_by_the_fake_ledger_lands_on_the_solana_node() {
    use solana_sdk::hash::Hash;
    use solana_sdk::message::Message;
    use solana_sdk::pubkey::Pubkey;
    use solana_sdk::signature::Signature;
    use solana_sdk::transaction::Transaction;

    let node = Surfnet::start();
    let fake = FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let device = Arc::new(LedgerDevice::tcp(server.address(), LedgerTimeouts::default()));
    let from_text =
        device.get_address(ChainKind::Solana, &DerivationPath::parse(DEFAULT_SOL_PATH).unwrap()).await.unwrap();
    let from: Pubkey = from_text.parse().unwrap();
    let to = Pubkey::new_unique();
    let sig = rpc(&node.url, "requestAirdrop", json!([from_text, 2_000_000_000u64])).await;
    wait_signature(&node.url, sig.as_str().unwrap()).await;
    let blockhash: Hash =
        rpc(&node.url, "getLatestBlockhash", json!([{"commitment": "confirmed"}])).await["value"]["blockhash"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let ix = solana_system_interface::instruction::transfer(&from, &to, 1_234_567);
    let message = Message::new_with_blockhash(&[ix], Some(&from), &blockhash);
    let key = KeyRef {
        agent_id: None,
        chain: ChainKind::Solana,
        public_key: from_text.clone(),
        backend: BackendKind::Ledger,
        derivation_path: Some(DEFAULT_SOL_PATH.into()),
    };
    let backend = LedgerBackend::new(device);
    let SignOutput::Ed25519(sig) =
        sign_verified(&backend, &key, &SignIntent::SolanaMessage(message.serialize()), &ctx()).await.unwrap()
    else {
        panic!("ed25519 expected")
    };
    let tx = Transaction { signatures: vec![Signature::from(sig)], message };
    let wire = bincode_tx(&tx);
    use base64::Engine;
    let sent = rpc(
        &node.url,
        "sendTransaction",
        json!([base64::engine::general_purpose::STANDARD.encode(wire), {"encoding": "base64"}]),
    )
    .await;
    wait_signature(&node.url, sent.as_str().unwrap()).await;
    let bal = rpc(&node.url, "getBalance", json!([to.to_string(), {"commitment": "confirmed"}])).await;
    assert_eq!(bal["value"], 1_234_567);
}

/// Wire form of a one-signature legacy transaction: compact-u16 count ‖ signature ‖ message.
fn bincode_tx(tx: &solana_sdk::transaction::Transaction) -> Vec<u8> {
    let mut out = vec![tx.signatures.len() as u8];
    for s in &tx.signatures {
        out.extend_from_slice(s.as_ref());
    }
    out.extend_from_slice(&tx.message.serialize());
    out
}

async fn wait_signature(url: &str, sig: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = rpc(url, "getSignatureStatuses", json!([[sig], {"searchTransactionHistory": true}])).await;
        let s = &st["value"][0];
        if !s.is_null()
            && s["err"].is_null()
            && matches!(s["confirmationStatus"].as_str(), Some("confirmed" | "finalized"))
        {
            return;
        }
        assert!(s.is_null() || s["err"].is_null(), "transaction failed: {s}");
        assert!(Instant::now() < deadline, "{sig} not confirmed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------- physical device

/// Needs a physical Ledger with the Ethereum app open, plugged in over USB:
/// `cargo test --test main physical_ledger -- --ignored`.
#[cfg(feature = "hid")]
#[tokio::test]
#[ignore = "needs a physical Ledger device (Ethereum app open) on USB"]
async fn physical_ledger_reads_the_ethereum_address() {
    let dev = LedgerDevice::hid(LedgerTimeouts::default());
    let addr = dev.get_address(ChainKind::Ethereum, &DerivationPath::parse(DEFAULT_ETH_PATH).unwrap()).await.unwrap();
    assert!(addr.starts_with("0x") && addr.len() == 42);
}

/// Needs a physical Ledger with the Solana app open; approve the message on the device.
#[cfg(feature = "hid")]
#[tokio::test]
#[ignore = "needs a physical Ledger device (Solana app open) on USB and a button press"]
async fn physical_ledger_signs_a_solana_offchain_message() {
    let dev = Arc::new(LedgerDevice::hid(LedgerTimeouts::default()));
    let pk = dev.get_address(ChainKind::Solana, &DerivationPath::parse(DEFAULT_SOL_PATH).unwrap()).await.unwrap();
    let key = KeyRef {
        agent_id: None,
        chain: ChainKind::Solana,
        public_key: pk,
        backend: BackendKind::Ledger,
        derivation_path: Some(DEFAULT_SOL_PATH.into()),
    };
    let backend = LedgerBackend::new(dev);
    sign_verified(&backend, &key, &SignIntent::SolanaOffchainMessage("waiaas physical test".into()), &ctx())
        .await
        .unwrap();
}
