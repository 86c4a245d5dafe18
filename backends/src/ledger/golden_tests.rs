//! Our app encoders against the APDUs Ledger's official JS clients emit for the same inputs
//! (`fixtures/ledger/golden.json`, recorded by `scripts/record-ledger-vectors.sh`). Single-APDU
//! commands and Solana's chunking are compared byte for byte; the Ethereum chunked commands by
//! their reassembled payload, because the JS client picks its own chunk sizes.

use std::path::Path;

use alloy::consensus::{SignableTransaction, TxEip1559};
use alloy::dyn_abi::TypedData;
use alloy::rlp::Decodable;
use serde_json::Value;

use super::apps::{self, DerivationPath, sol_ins};
use super::transport::{Apdu, hid_frames};
use crate::seam::offchain_envelope;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ledger").join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn hexes(apdus: &[Apdu]) -> Vec<String> {
    apdus.iter().map(|a| hex::encode(a.to_bytes())).collect()
}

fn golden_apdus(g: &Value, name: &str) -> Vec<String> {
    g[name]["apdus"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Reassembles a recorded chunked command's data (strips the 5-byte headers).
fn golden_payload(g: &Value, name: &str) -> Vec<u8> {
    golden_apdus(g, name).iter().flat_map(|h| hex::decode(h).unwrap()[5..].to_vec()).collect()
}

fn eth_path() -> DerivationPath {
    DerivationPath::parse(apps::DEFAULT_ETH_PATH).unwrap()
}

fn sol_path() -> DerivationPath {
    DerivationPath::parse(apps::DEFAULT_SOL_PATH).unwrap()
}

#[test]
fn ethereum_get_address_matches_byte_for_byte() {
    let g = fixture("golden.json");
    assert_eq!(hexes(&[apps::eth_get_public_key(&eth_path(), false)]), golden_apdus(&g, "eth_get_address"));
}

#[test]
fn ethereum_eip1559_signing_payload_matches() {
    let g = fixture("golden.json");
    let raw = hex::decode(g["eth_sign_transaction"]["input"]["unsignedTx"].as_str().unwrap().trim_start_matches("0x"))
        .unwrap();
    assert_eq!(raw[0], 0x02);
    let tx = TxEip1559::decode(&mut &raw[1..]).expect("cast's unsigned EIP-1559 transaction decodes");
    let mut ours = Vec::new();
    tx.encode_for_signing(&mut ours);
    assert_eq!(ours, raw, "alloy re-encodes cast's transaction identically");
    let apdus = apps::eth_sign_transaction(&eth_path(), &ours);
    assert!(apdus.len() >= 2, "multi-chunk");
    assert_eq!(apps::reassemble(&apdus), golden_payload(&g, "eth_sign_transaction"));
    let recorded = golden_apdus(&g, "eth_sign_transaction");
    assert_eq!(recorded.len(), apdus.len());
    // Same instruction and first/following-chunk markers as the official client.
    for (i, (a, r)) in apdus.iter().zip(&recorded).enumerate() {
        assert_eq!(hex::encode([a.cla, a.ins, a.p1, a.p2]), &r[..8], "chunk {i}");
    }
}

#[test]
fn ethereum_personal_message_matches_byte_for_byte() {
    let g = fixture("golden.json");
    let msg = g["eth_sign_personal_message"]["input"]["message"].as_str().unwrap();
    let apdus = apps::eth_sign_personal_message(&eth_path(), msg.as_bytes());
    assert_eq!(hexes(&apdus), golden_apdus(&g, "eth_sign_personal_message"));
}

#[test]
fn ethereum_eip712_hashes_and_apdu_match() {
    let g = fixture("golden.json");
    let typed: TypedData = serde_json::from_value(fixture("eip712.json")).unwrap();
    let domain = typed.domain().separator();
    let struct_hash = typed.hash_struct().unwrap();
    let input = &g["eth_sign_eip712_hashed"]["input"];
    assert_eq!(format!("{domain:#x}"), input["domainSeparator"].as_str().unwrap(), "alloy agrees with eth-account");
    assert_eq!(format!("{struct_hash:#x}"), input["structHash"].as_str().unwrap());
    assert_eq!(
        hexes(&[apps::eth_sign_eip712_hashed(&eth_path(), domain, struct_hash)]),
        golden_apdus(&g, "eth_sign_eip712_hashed")
    );
}

#[test]
fn solana_commands_match_byte_for_byte() {
    let g = fixture("golden.json");
    assert_eq!(hexes(&[apps::sol_get_pubkey(&sol_path(), false)]), golden_apdus(&g, "sol_get_pubkey"));
    let msg = hex::decode(g["sol_sign_message"]["input"]["message"].as_str().unwrap()).unwrap();
    let apdus = apps::sol_sign(sol_ins::SIGN_MESSAGE, &sol_path(), &msg);
    assert_eq!(apdus.len(), 3);
    assert_eq!(hexes(&apdus), golden_apdus(&g, "sol_sign_message"));
    let env = hex::decode(g["sol_sign_offchain_message"]["input"]["envelope"].as_str().unwrap()).unwrap();
    // Our envelope builder produces the independently built envelope for the same signer/text.
    let signer: [u8; 32] = env[51..83].try_into().unwrap();
    let text = std::str::from_utf8(&env[85..]).unwrap();
    assert_eq!(offchain_envelope(&signer, text).unwrap(), env);
    let apdus = apps::sol_sign(sol_ins::SIGN_OFFCHAIN_MESSAGE, &sol_path(), &env);
    assert_eq!(hexes(&apdus), golden_apdus(&g, "sol_sign_offchain_message"));
}

/// ACC-077: a 300-byte APDU frames exactly as Ledger's own HID framing code frames it.
#[test]
fn hid_framing_matches_ledgers_framing() {
    let g = fixture("golden.json");
    let apdu = hex::decode(g["hid_framing_300"]["input"]["apdu"].as_str().unwrap()).unwrap();
    let ours: Vec<String> = hid_frames(&apdu).iter().map(hex::encode).collect();
    let theirs: Vec<String> =
        g["hid_framing_300"]["packets"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert_eq!(ours, theirs);
}
