//! Key import checked against tools nobody here wrote: an Ethereum V3 keystore written by
//! `cast wallet new` and a Solana CLI keypair made by Python `solders` import to the addresses
//! those tools report; the committed key vector's EVM address is the one cast derives.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use waiaas_backends::keystore::KeystoreError;
use waiaas_backends::keystore::import::ImportSource;

use crate::support::tool;

fn cast() -> std::path::PathBuf {
    tool("WAIAAS_TOOL_CAST", "foundry-1.7.1/node_modules/@foundry-rs/cast-linux-amd64/bin/cast")
}

fn python() -> std::path::PathBuf {
    tool("WAIAAS_TOOL_PYTHON", "py-oracles/bin/python")
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_cast_v3_keystore_imports_to_the_address_cast_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new(cast()).args(["wallet", "new"]).arg(dir.path()).args(["--unsafe-password", "v3 password 1234"]),
    );
    let address = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Address:"))
        .expect("cast prints the address")
        .trim()
        .to_string();
    let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let json: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let source = ImportSource::detect(&json).unwrap();
    let imported = source.decrypt(b"v3 password 1234").unwrap();
    assert_eq!(imported.secret.public_key().unwrap(), address);
    assert!(matches!(
        ImportSource::detect(&json).unwrap().decrypt(b"wrong password"),
        Err(KeystoreError::DecryptFailed)
    ));
}

#[test]
fn a_solana_cli_keypair_imports_to_the_pubkey_solders_reports() {
    let out = run_ok(Command::new(python()).args([
        "-c",
        "import json; from solders.keypair import Keypair; k = Keypair(); print(json.dumps(list(bytes(k)))); print(k.pubkey())",
    ]));
    let mut lines = out.lines();
    let keypair: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let pubkey = lines.next().unwrap().trim();
    let imported = ImportSource::detect(&keypair).unwrap().decrypt(b"").unwrap();
    assert_eq!(imported.secret.public_key().unwrap(), pubkey);
}

#[test]
fn the_committed_evm_vector_has_the_address_cast_derives() {
    let v: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keystore/vectors.json")).unwrap(),
    )
    .unwrap();
    let evm = v["files"].as_array().unwrap().iter().find(|f| f["file"]["chain"] == "ethereum").unwrap();
    let out = run_ok(Command::new(cast()).args([
        "wallet",
        "address",
        "--private-key",
        &format!("0x{}", evm["plaintext"].as_str().unwrap()),
    ]));
    assert_eq!(out.trim(), evm["file"]["publicKey"].as_str().unwrap());
    // The Solana vector's public key is the one solders derives from the same seed.
    let sol = v["files"].as_array().unwrap().iter().find(|f| f["file"]["chain"] == "solana").unwrap();
    let seed = &sol["plaintext"].as_str().unwrap()[..64];
    let out = run_ok(Command::new(python()).args([
        "-c",
        &format!("from solders.keypair import Keypair; print(Keypair.from_seed(bytes.fromhex('{seed}')).pubkey())"),
    ]));
    assert_eq!(out.trim(), sol["file"]["publicKey"].as_str().unwrap());
}
