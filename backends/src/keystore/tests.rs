//! Keystore tests: committed vectors, every decryption failure mode, the one-Argon2id unlock,
//! fresh salts and nonces, password change staging, export/import, and the signer seam.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, TxKind, U256};
use serde_json::Value;
use uuid::Uuid;

use super::kdf::{KdfBlock, KdfParams, argon2_runs_on_this_thread as argon2_runs};
use super::keyfile::{KeyFile, KeyFileIdentity, KeyMetadata, SecretKey};
use super::master::MasterFile;
use super::*;
use crate::seam::{BackendKind, ChainKind, KeyRef, Purpose, SignContext, SignIntent, SignOutput, sign_verified};

const LOW: KdfParams = KdfParams { memory_kib: 8, time: 1, parallelism: 1 };
const PW: &[u8] = b"a long enough password";

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keystore/vectors.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// ACC-062: the committed vectors rebuild byte for byte and decrypt to the fixture keys.
#[test]
fn committed_vectors_rebuild_exactly_and_decrypt() {
    let v = vectors();
    let password = v["password"].as_str().unwrap().as_bytes();
    let master: MasterFile = serde_json::from_value(v["master"].clone()).unwrap();
    let kek = master.verify(password).unwrap().expect("the fixture password verifies");
    assert!(master.verify(b"not the fixture password").unwrap().is_none());
    for case in v["files"].as_array().unwrap() {
        let expected: KeyFile = serde_json::from_value(case["file"].clone()).unwrap();
        let mut plain = hex::decode(case["plaintext"].as_str().unwrap()).unwrap();
        let secret = SecretKey::from_plaintext(expected.chain_kind().unwrap(), &mut plain).unwrap();
        let salt: [u8; 32] = hex::decode(case["fileSalt"].as_str().unwrap()).unwrap().try_into().unwrap();
        let nonce: [u8; 12] = hex::decode(case["nonce"].as_str().unwrap()).unwrap().try_into().unwrap();
        let who = KeyFileIdentity {
            id: expected.id,
            agent_id: expected.agent_id,
            network: expected.network.clone(),
            metadata: expected.metadata.clone(),
        };
        let rebuilt = KeyFile::seal_with(&secret, &kek, &master.kdf, who, salt, nonce).unwrap();
        assert_eq!(serde_json::to_value(&rebuilt).unwrap(), case["file"], "exact file");
        let opened = expected.open(&kek).unwrap();
        assert_eq!(hex::encode(opened.plaintext().as_slice()), case["plaintext"].as_str().unwrap());
        assert_eq!(opened.public_key().unwrap(), expected.public_key);
        // ACC-063: one file opens with the password alone, from its own kdf block.
        assert_eq!(expected.open_with_password(password).unwrap().public_key().unwrap(), expected.public_key);
    }
}

fn sample_file(chain: ChainKind) -> (KeyFile, Key32) {
    let (master, kek) = MasterFile::create(PW, LOW).unwrap();
    let secret = SecretKey::generate(chain).unwrap();
    let who = KeyFileIdentity {
        id: Uuid::new_v4(),
        agent_id: Uuid::now_v7(),
        network: if chain == ChainKind::Solana { "devnet".into() } else { "testnet".into() },
        metadata: KeyMetadata { name: "a".into(), created_at: "2025-01-01T00:00:00Z".into(), exported_at: None },
    };
    (KeyFile::seal(&secret, &kek, &master.kdf, who).unwrap(), kek)
}

/// ACC-061, ACC-064: each failure has its own error, never a panic and never a key.
#[test]
fn every_tampering_and_bad_file_has_its_own_error() {
    for chain in [ChainKind::Ethereum, ChainKind::Solana] {
        let (file, kek) = sample_file(chain);
        assert!(file.open(&kek).is_ok());
        // Wrong password.
        assert!(matches!(file.open_with_password(b"wrong password!!"), Err(KeystoreError::DecryptFailed)));
        // One ciphertext byte flipped.
        let mut f = file.clone();
        let mut ct = hex::decode(&f.cipher.ciphertext).unwrap();
        ct[3] ^= 1;
        f.cipher.ciphertext = hex::encode(ct);
        assert!(matches!(f.open(&kek), Err(KeystoreError::DecryptFailed)));
        // Tag flipped.
        let mut f = file.clone();
        let mut tag = hex::decode(&f.cipher.tag).unwrap();
        tag[0] ^= 0x80;
        f.cipher.tag = hex::encode(tag);
        assert!(matches!(f.open(&kek), Err(KeystoreError::DecryptFailed)));
        // publicKey changed: bound as AAD.
        let mut f = file.clone();
        f.public_key = if chain == ChainKind::Solana {
            "11111111111111111111111111111111".into()
        } else {
            Address::ZERO.to_checksum(None)
        };
        assert!(matches!(f.open(&kek), Err(KeystoreError::DecryptFailed)));
        // agentId and network are bound too.
        let mut f = file.clone();
        f.agent_id = Uuid::now_v7();
        assert!(matches!(f.open(&kek), Err(KeystoreError::DecryptFailed)));
        // Unknown version, truncated file, wrong lengths.
        let mut json: Value = serde_json::to_value(&file).unwrap();
        json["version"] = 2.into();
        assert!(matches!(
            KeyFile::from_json(&serde_json::to_vec(&json).unwrap()),
            Err(KeystoreError::UnsupportedVersion { found: 2 })
        ));
        let bytes = serde_json::to_vec(&file).unwrap();
        assert!(matches!(KeyFile::from_json(&bytes[..bytes.len() / 2]), Err(KeystoreError::Malformed { .. })));
        let mut json: Value = serde_json::to_value(&file).unwrap();
        json["cipher"]["nonce"] = "00".into();
        assert!(matches!(
            KeyFile::from_json(&serde_json::to_vec(&json).unwrap()),
            Err(KeystoreError::Malformed { .. })
        ));
        assert!(matches!(KeyFile::from_json(b"\x00\xff garbage"), Err(KeystoreError::Malformed { .. })));
    }
    // A world-readable file is refused before it is read.
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = sample_file(ChainKind::Solana);
    let path = dir.path().join("k.json");
    file.save(&path).unwrap();
    assert!(KeyFile::load(&path).is_ok());
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert!(matches!(KeyFile::load(&path), Err(KeystoreError::PermissionsTooOpen { mode: 0o644, .. })));
}

fn keystore_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("keystore");
    crate::fsutil::create_private_dir(&ks).unwrap();
    let (master, _) = MasterFile::create(PW, LOW).unwrap();
    master.save(&ks.join("master.json")).unwrap();
    (dir, ks)
}

fn create_agents(ks_dir: &Path, n: usize) -> Vec<AgentKeyInfo> {
    let unlocked = LockedKeystore::open(ks_dir).unwrap().unlock(PW, &[]).unwrap();
    (0..n)
        .map(|i| {
            let chain = if i % 2 == 0 { ChainKind::Solana } else { ChainKind::Ethereum };
            let network = if chain == ChainKind::Solana { "devnet" } else { "testnet" };
            let id = Uuid::now_v7();
            let pk = unlocked.generate(id, chain, network, &format!("agent-{i}")).unwrap();
            AgentKeyInfo { agent_id: id, chain, network: network.into(), public_key: pk }
        })
        .collect()
}

/// ACC-058, ACC-059, ACC-060: files are 0600 with the documented shape, unlocking N agents runs
/// exactly one Argon2id derivation, and no two files share a nonce or salt.
#[test]
fn unlock_runs_one_argon2id_and_files_never_share_salt_or_nonce() {
    let (_d, ks) = keystore_dir();
    let agents = create_agents(&ks, 12);
    let mut salts = std::collections::HashSet::new();
    let mut nonces = std::collections::HashSet::new();
    for a in &agents {
        let path = key_path(&ks, a.agent_id);
        assert_eq!(crate::fsutil::mode_of(&path).unwrap(), 0o600);
        let f = KeyFile::load(&path).unwrap();
        assert_eq!((f.format.as_str(), f.version), ("waiaas-keystore", 1));
        assert_eq!(f.cipher.nonce.len(), 24);
        assert_eq!(f.cipher.tag.len(), 32);
        assert_eq!(f.hkdf.salt.len(), 64);
        assert_eq!(f.cipher.ciphertext.len(), if a.chain == ChainKind::Solana { 128 } else { 64 });
        assert_eq!(f.kdf, LockedKeystore::open(&ks).unwrap().master().kdf, "kdf block is master.json's");
        assert!(salts.insert(f.hkdf.salt.clone()) && nonces.insert(f.cipher.nonce.clone()));
    }
    // Unlocking runs on this thread, so the per-thread counter sees only this test's runs.
    let before = argon2_runs();
    let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap();
    assert_eq!(argon2_runs() - before, 1, "one Argon2id run for {} keys", agents.len());
    assert_eq!(unlocked.len(), 12);
    for a in &agents {
        assert!(unlocked.check_integrity(a).is_ok());
    }
    // A wrong password unlocks nothing.
    assert!(matches!(
        LockedKeystore::open(&ks).unwrap().unlock(b"wrong password xx", &agents),
        Err(KeystoreError::WrongPassword)
    ));
}

/// ACC-065: addresses derive from the keys (EIP-55 of keccak(pubkey); base58 Ed25519).
#[test]
fn addresses_derive_from_the_secrets() {
    let mut secret = [0x01u8; 32];
    secret[31] = 0x02;
    let s = SecretKey::from_plaintext(ChainKind::Ethereum, &mut secret.clone()).unwrap();
    let expected = alloy::signers::local::PrivateKeySigner::from_bytes(&secret.into()).unwrap().address();
    assert_eq!(s.public_key().unwrap(), expected.to_checksum(None));
    let seed = [5u8; 32];
    let pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let mut full = [0u8; 64];
    full[..32].copy_from_slice(&seed);
    full[32..].copy_from_slice(&pk);
    let s = SecretKey::from_plaintext(ChainKind::Solana, &mut full).unwrap();
    assert_eq!(s.public_key().unwrap(), bs58::encode(pk).into_string());
    // A keypair whose halves do not match is refused.
    let mut bad = [0u8; 64];
    bad[..32].copy_from_slice(&seed);
    assert!(SecretKey::from_plaintext(ChainKind::Solana, &mut bad).unwrap().public_key().is_err());
}

/// ACC-069: an interrupted change rolls back before COMMIT and forward after; either way
/// exactly one password works. ACC-060: the change gives every file new salts and nonces.
#[test]
fn password_change_is_crash_safe() {
    for stop_after_commit in [false, true] {
        let (_d, ks) = keystore_dir();
        let agents = create_agents(&ks, 3);
        let before: Vec<KeyFile> = agents.iter().map(|a| KeyFile::load(&key_path(&ks, a.agent_id)).unwrap()).collect();
        let new_pw = b"the new password 123";
        let staged = rotate::stage(&LockedKeystore::open(&ks).unwrap(), PW, new_pw, LOW).unwrap();
        assert_eq!(staged.files, 3);
        if stop_after_commit {
            let _committed = staged.commit().unwrap(); // "crash" before apply
        } else {
            drop(staged); // "crash" before COMMIT
        }
        let reopened = LockedKeystore::open(&ks).unwrap();
        assert!(!ks.join(".password-change").exists());
        let (works, fails) = if stop_after_commit { (&new_pw[..], PW) } else { (PW, &new_pw[..]) };
        let unlocked = reopened.unlock(works, &agents).unwrap();
        assert_eq!(unlocked.len(), 3);
        assert!(matches!(LockedKeystore::open(&ks).unwrap().unlock(fails, &agents), Err(KeystoreError::WrongPassword)));
        if stop_after_commit {
            for (a, old) in agents.iter().zip(&before) {
                let new = KeyFile::load(&key_path(&ks, a.agent_id)).unwrap();
                assert_eq!((new.id, new.agent_id, &new.metadata), (old.id, old.agent_id, &old.metadata));
                assert_ne!(new.hkdf.salt, old.hkdf.salt);
                assert_ne!(new.cipher.nonce, old.cipher.nonce);
                assert_ne!(new.kdf.salt, old.kdf.salt);
            }
        }
    }
}

/// ACC-070, ACC-071: export yields a file only the export password opens; importing it re-keys
/// under the master KEK with fresh salt and nonce.
#[test]
fn export_and_import_round_trip() {
    let (_d, ks) = keystore_dir();
    let agents = create_agents(&ks, 2);
    let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap();
    let a = &agents[1];
    let exported = unlocked.export(a.agent_id, b"export password 99", LOW).unwrap();
    let original = KeyFile::load(&key_path(&ks, a.agent_id)).unwrap();
    assert_ne!(exported.kdf.salt, original.kdf.salt);
    assert_ne!(exported.cipher.nonce, original.cipher.nonce);
    assert!(exported.metadata.exported_at.is_some());
    assert!(matches!(exported.open_with_password(PW), Err(KeystoreError::DecryptFailed)));

    let source = import::ImportSource::detect(&serde_json::to_value(&exported).unwrap()).unwrap();
    assert!(matches!(
        import::ImportSource::detect(&serde_json::to_value(&exported).unwrap()).unwrap().decrypt(b"wrong one, long"),
        Err(KeystoreError::DecryptFailed)
    ));
    let decrypted = source.decrypt(b"export password 99").unwrap();
    let new_id = Uuid::now_v7();
    let pk = unlocked.adopt(new_id, decrypted.network.as_deref().unwrap(), "imported", decrypted.secret).unwrap();
    assert_eq!(pk, a.public_key);
    let imported = KeyFile::load(&key_path(&ks, new_id)).unwrap();
    assert_eq!(imported.kdf, LockedKeystore::open(&ks).unwrap().master().kdf);
    assert_ne!(imported.cipher.nonce, exported.cipher.nonce);
}

#[test]
fn solana_keypair_files_and_unknown_shapes_are_recognised() {
    let seed = [3u8; 32];
    let pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let bytes: Vec<u8> = seed.iter().chain(pk.iter()).copied().collect();
    let v: Value = serde_json::to_value(&bytes).unwrap();
    let d = import::ImportSource::detect(&v).unwrap().decrypt(b"").unwrap();
    assert_eq!(d.secret.public_key().unwrap(), bs58::encode(pk).into_string());
    assert!(import::ImportSource::detect(&serde_json::json!([1, 2, 3])).is_err());
    assert!(import::ImportSource::detect(&serde_json::json!({"hello": 1})).is_err());
}

fn key_ref(a: &AgentKeyInfo) -> KeyRef {
    KeyRef {
        agent_id: Some(a.agent_id),
        chain: a.chain,
        public_key: a.public_key.clone(),
        backend: BackendKind::Keystore,
        derivation_path: None,
    }
}

fn ctx() -> SignContext {
    SignContext { purpose: Purpose::AgentTransaction, tx_id: None, deadline: Instant::now() + Duration::from_secs(5) }
}

/// ACC-076: the seam refuses cross-curve intents; every signature is verified before return.
#[tokio::test]
async fn the_seam_signs_verifies_and_refuses_cross_curve_intents() {
    let (_d, ks) = keystore_dir();
    let agents = create_agents(&ks, 2);
    let (sol, evm) = (&agents[0], &agents[1]);
    let backend =
        KeystoreBackend::new(ks.clone(), Some(LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap()));
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(7)),
        value: U256::from(1u64),
        ..Default::default()
    };
    for intent in [SignIntent::EvmTransaction(tx.clone()), SignIntent::Eip191Message(b"hello".to_vec())] {
        let out = sign_verified(&backend, &key_ref(evm), &intent, &ctx()).await.unwrap();
        assert!(matches!(out, SignOutput::Secp256k1 { .. }));
        assert!(matches!(
            sign_verified(&backend, &key_ref(sol), &intent, &ctx()).await,
            Err(SignerError::Unsupported { .. })
        ));
    }
    for intent in [SignIntent::SolanaMessage(vec![1, 2, 3]), SignIntent::SolanaOffchainMessage("sign in".into())] {
        assert!(matches!(
            sign_verified(&backend, &key_ref(sol), &intent, &ctx()).await.unwrap(),
            SignOutput::Ed25519(_)
        ));
        assert!(matches!(
            sign_verified(&backend, &key_ref(evm), &intent, &ctx()).await,
            Err(SignerError::Unsupported { .. })
        ));
    }
    // A key reference claiming another address fails verification, not silently.
    let mut wrong = key_ref(evm);
    wrong.public_key = Address::repeat_byte(9).to_checksum(None);
    assert!(matches!(
        sign_verified(&backend, &wrong, &SignIntent::Eip191Message(vec![1]), &ctx()).await,
        Err(SignerError::KeyNotFound | SignerError::Internal(_))
    ));
    // After lock, signing reports KeystoreLocked.
    assert!(backend.lock().await);
    assert_eq!(
        sign_verified(&backend, &key_ref(evm), &SignIntent::Eip191Message(vec![1]), &ctx()).await,
        Err(SignerError::KeystoreLocked)
    );
}

#[test]
fn a_kdf_block_other_than_masters_costs_one_more_derivation() {
    let (_d, ks) = keystore_dir();
    let agents = create_agents(&ks, 3);
    // Re-encrypt one file under a different Argon2id block (as an old export re-imported by hand).
    let a = &agents[0];
    let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap();
    let other = unlocked.export(a.agent_id, PW, KdfParams { memory_kib: 16, ..LOW }).unwrap();
    drop(unlocked);
    let mut f = other;
    f.metadata.exported_at = None;
    f.save(&key_path(&ks, a.agent_id)).unwrap();
    let before = argon2_runs();
    let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap();
    assert_eq!(argon2_runs() - before, 2);
    assert_eq!(unlocked.len(), 3);
    let _ = KdfBlock::fresh(LOW);
}

/// Issue #22: a file's KDF cost is bounded before anything runs. A key file asking Argon2id for
/// 4 TiB or a million passes, and a V3 file asking scrypt for 128 GiB or PBKDF2 for 4 billion
/// rounds, are refused as malformed at once (the unbounded ones would abort on allocation or
/// burn a core for hours); the cost waiaas itself writes, and geth's standard V3 cost, pass.
#[test]
fn crafted_kdf_costs_are_refused_before_they_run() {
    let v = vectors();
    let file = &v["files"][0]["file"];
    let started = Instant::now();
    for (key, value) in [("memoryCost", 4_000_000_000u64), ("timeCost", 1_000_000), ("parallelism", 1_000)] {
        let mut f = file.clone();
        f["kdf"][key] = value.into();
        let parsed = KeyFile::from_json(&serde_json::to_vec(&f).unwrap()).unwrap();
        let e = parsed.open_with_password(b"anything").err().expect("refused");
        assert!(matches!(e, KeystoreError::Malformed { .. }), "{key}: {e:?}");
    }
    let v3 = |kdf: &str, params: Value| serde_json::json!({"version": 3, "crypto": {"cipher": "aes-128-ctr", "kdf": kdf, "kdfparams": params}});
    for bad in [
        v3("scrypt", serde_json::json!({"n": 1u64 << 30, "r": 8, "p": 1, "dklen": 32})),
        v3("scrypt", serde_json::json!({"n": 262_144, "r": 8, "p": 1_000, "dklen": 32})),
        v3("scrypt", serde_json::json!({"n": 3, "r": 8, "p": 1, "dklen": 32})),
        v3("pbkdf2", serde_json::json!({"c": 4_000_000_000u64, "prf": "hmac-sha256", "dklen": 32})),
    ] {
        let e = import::ImportSource::detect(&bad).err().expect("refused");
        assert!(matches!(e, KeystoreError::Malformed { .. }), "{bad}: {e:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "refusals do not run the KDF");
    import::ImportSource::detect(&v3("scrypt", serde_json::json!({"n": 262_144, "r": 8, "p": 1, "dklen": 32})))
        .expect("geth's standard cost");
    import::ImportSource::detect(&v3("pbkdf2", serde_json::json!({"c": 262_144, "prf": "hmac-sha256", "dklen": 32})))
        .expect("geth's light pbkdf2 cost");
}
