//! Writes `fixtures/keystore/vectors.json`: fixed password, Argon2id salt, per-file HKDF salts,
//! nonces and keys, and the exact key files they produce. `keystore::tests` rebuilds every file
//! byte for byte and decrypts it, so any change to the format or the key hierarchy is caught.
//!
//! Run: `cargo run -p waiaas-backends --example make_keystore_vectors -- fixtures/keystore`

use serde_json::json;
use uuid::Uuid;
use waiaas_backends::keystore::kdf::{KdfBlock, KdfParams};
use waiaas_backends::keystore::keyfile::{KeyFile, KeyFileIdentity, KeyMetadata, SecretKey};
use waiaas_backends::keystore::master::MasterFile;
use waiaas_backends::seam::ChainKind;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fixtures/keystore".into()));
    let password = "fixture password 1234";
    let params = KdfParams { memory_kib: 32768, time: 1, parallelism: 1 };
    let kdf = KdfBlock::with_salt(params, [0x11; 16]);
    let (mut master, kek) = MasterFile::create_with(password.as_bytes(), kdf.clone()).unwrap();
    master.created_at = "2025-01-31T12:00:00Z".into();
    master.updated_at = master.created_at.clone();

    let mut files = Vec::new();
    let evm_secret = [0x4cu8; 32];
    let seed = [0x9au8; 32];
    let sol_pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let mut sol_plain = [0u8; 64];
    sol_plain[..32].copy_from_slice(&seed);
    sol_plain[32..].copy_from_slice(&sol_pk);
    let cases: Vec<(ChainKind, Vec<u8>, &str, u8)> = vec![
        (ChainKind::Ethereum, evm_secret.to_vec(), "testnet", 0x21),
        (ChainKind::Solana, sol_plain.to_vec(), "devnet", 0x31),
    ];
    for (i, (chain, mut plain, network, fill)) in cases.into_iter().enumerate() {
        let plain_hex = hex::encode(&plain);
        let secret = SecretKey::from_plaintext(chain, &mut plain).unwrap();
        let who = KeyFileIdentity {
            id: Uuid::from_u128(0x1111_1111_1111_4111_8111_0000_0000_0000 + i as u128),
            agent_id: Uuid::from_u128(0x0190_b5a0_0000_7000_8000_0000_0000_0000 + i as u128),
            network: network.into(),
            metadata: KeyMetadata {
                name: format!("fixture-{i}"),
                created_at: "2025-01-31T12:00:00Z".into(),
                exported_at: None,
            },
        };
        let salt = [fill; 32];
        let nonce = [fill + 1; 12];
        let file = KeyFile::seal_with(&secret, &kek, &kdf, who, salt, nonce).unwrap();
        files.push(json!({
            "plaintext": plain_hex,
            "fileSalt": hex::encode(salt),
            "nonce": hex::encode(nonce),
            "file": file,
        }));
    }
    let vectors = json!({
        "password": password,
        "master": master,
        "files": files,
    });
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vectors.json");
    std::fs::write(&path, serde_json::to_string_pretty(&vectors).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}
