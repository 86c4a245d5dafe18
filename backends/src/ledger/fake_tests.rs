//! The device manager against the fake device: every intent, every scripted user behaviour,
//! parity recovery that ignores the device's `v`, and serialisation of concurrent signatures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, Bytes, TxKind, U256};

use super::apps::{DEFAULT_ETH_PATH, DEFAULT_SOL_PATH, DerivationPath};
use super::device::{LedgerBackend, LedgerDevice, LedgerTimeouts, Opener};
use super::fake::{Behavior, FakeDevice};
use super::transport::ApduTransport;
use crate::seam::{
    BackendKind, ChainKind, KeyRef, Purpose, SignContext, SignIntent, SignOutput, SignerError, sign_verified,
};

fn device(fake: &FakeDevice, timeouts: LedgerTimeouts) -> Arc<LedgerDevice> {
    let f = fake.clone();
    let opener: Opener = Arc::new(move |_| Ok(Box::new(f.transport()) as Box<dyn ApduTransport>));
    Arc::new(LedgerDevice::new(opener, timeouts))
}

fn fast() -> LedgerTimeouts {
    LedgerTimeouts { confirm: Duration::from_secs(2), command: Duration::from_secs(2) }
}

fn key(fake: &FakeDevice, chain: ChainKind, path: &str) -> KeyRef {
    let public_key = match chain {
        ChainKind::Ethereum => fake.eth_address(path),
        ChainKind::Solana => fake.solana_pubkey(path),
    };
    KeyRef { agent_id: None, chain, public_key, backend: BackendKind::Ledger, derivation_path: Some(path.into()) }
}

fn ctx() -> SignContext {
    SignContext {
        purpose: Purpose::AgentTransaction,
        tx_id: Some(uuid::Uuid::now_v7()),
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

fn big_tx() -> TxEip1559 {
    TxEip1559 {
        chain_id: 31337,
        nonce: 3,
        gas_limit: 300_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 2_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x5f)),
        value: U256::from(12345u64),
        input: Bytes::from(vec![0xee; 400]),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_intent_signs_and_verifies_through_the_fake_device() {
    let fake = FakeDevice::default();
    let dev = device(&fake, fast());
    let backend = LedgerBackend::new(dev.clone());
    let eth = key(&fake, ChainKind::Ethereum, DEFAULT_ETH_PATH);
    let sol = key(&fake, ChainKind::Solana, DEFAULT_SOL_PATH);
    assert_eq!(
        dev.get_address(ChainKind::Ethereum, &DerivationPath::parse(DEFAULT_ETH_PATH).unwrap()).await.unwrap(),
        eth.public_key
    );
    assert_eq!(
        dev.get_address(ChainKind::Solana, &DerivationPath::parse(DEFAULT_SOL_PATH).unwrap()).await.unwrap(),
        sol.public_key
    );
    // The test mnemonic's first account is anvil's funded account 0.
    assert_eq!(eth.public_key, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

    let typed: alloy::dyn_abi::TypedData = serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ledger/eip712.json")).unwrap(),
    )
    .unwrap();
    for intent in [
        SignIntent::EvmTransaction(big_tx()),
        SignIntent::Eip191Message(b"owner message".to_vec()),
        SignIntent::Eip712(Box::new(typed)),
    ] {
        assert!(
            matches!(sign_verified(&backend, &eth, &intent, &ctx()).await.unwrap(), SignOutput::Secp256k1 { .. }),
            "{}",
            intent.name()
        );
    }
    for intent in [SignIntent::SolanaMessage(vec![9; 700]), SignIntent::SolanaOffchainMessage("approve tx:1".into())] {
        assert!(matches!(sign_verified(&backend, &sol, &intent, &ctx()).await.unwrap(), SignOutput::Ed25519(_)));
    }
    // Cross-curve intents never reach the device.
    let before = fake.log().len();
    assert!(matches!(
        sign_verified(&backend, &sol, &SignIntent::Eip191Message(vec![1]), &ctx()).await,
        Err(SignerError::Unsupported { .. })
    ));
    assert_eq!(fake.log().len(), before);
}

#[tokio::test]
async fn the_parity_is_recovered_whatever_v_the_device_returns() {
    let fake = FakeDevice::default();
    fake.set_bogus_v(true);
    let backend = LedgerBackend::new(device(&fake, fast()));
    let eth = key(&fake, ChainKind::Ethereum, DEFAULT_ETH_PATH);
    for _ in 0..8 {
        // Different transactions give both parities; each must verify.
        let mut tx = big_tx();
        tx.nonce = rand::random::<u16>() as u64;
        sign_verified(&backend, &eth, &SignIntent::EvmTransaction(tx), &ctx()).await.unwrap();
    }
}

#[tokio::test]
async fn scripted_users_map_to_typed_errors() {
    let fake = FakeDevice::default();
    let backend = LedgerBackend::new(device(&fake, fast()));
    let eth = key(&fake, ChainKind::Ethereum, DEFAULT_ETH_PATH);
    let sol = key(&fake, ChainKind::Solana, DEFAULT_SOL_PATH);
    let msg = SignIntent::Eip191Message(b"x".to_vec());
    let sign_eth = || async { sign_verified(&backend, &eth, &msg, &ctx()).await };
    fake.set_behavior(Behavior::Reject);
    assert_eq!(sign_eth().await, Err(SignerError::UserRejected));
    fake.set_behavior(Behavior::WrongApp);
    assert!(
        matches!(sign_eth().await, Err(SignerError::DeviceUnavailable { reason }) if reason == "open the Ethereum app")
    );
    fake.set_behavior(Behavior::Locked);
    assert!(matches!(sign_eth().await, Err(SignerError::DeviceUnavailable { reason }) if reason == "device locked"));
    fake.set_behavior(Behavior::BlindSigningDisabled);
    assert!(matches!(sign_eth().await, Err(SignerError::Refused { status_word: 0x6A80, .. })));
    assert!(matches!(
        sign_verified(&backend, &sol, &SignIntent::SolanaMessage(vec![1]), &ctx()).await,
        Err(SignerError::Refused { status_word: 0x6808, .. })
    ));
    fake.set_behavior(Behavior::NeverAnswer);
    let started = Instant::now();
    assert_eq!(sign_eth().await, Err(SignerError::Timeout));
    assert!(started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(5));
    // The device recovers: the transport was closed and reopens.
    fake.set_behavior(Behavior::Approve { delay: Duration::ZERO });
    assert!(sign_eth().await.is_ok());
    // EIP-712 needs app 1.6.0.
    fake.set_eth_version((1, 5, 0));
    let typed: alloy::dyn_abi::TypedData = serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ledger/eip712.json")).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        sign_verified(&backend, &eth, &SignIntent::Eip712(Box::new(typed)), &ctx()).await,
        Err(SignerError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn a_pending_signature_is_visible_as_waiting() {
    let fake = FakeDevice::default();
    fake.set_behavior(Behavior::Approve { delay: Duration::from_millis(600) });
    let dev = device(&fake, fast());
    let backend = Arc::new(LedgerBackend::new(dev.clone()));
    let eth = key(&fake, ChainKind::Ethereum, DEFAULT_ETH_PATH);
    let c = ctx();
    let tx_id = c.tx_id.unwrap();
    let task = {
        let (backend, eth) = (backend.clone(), eth.clone());
        tokio::spawn(async move {
            sign_verified(backend.as_ref(), &eth, &SignIntent::Eip191Message(b"x".to_vec()), &c).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dev.is_waiting(tx_id));
    task.await.unwrap().unwrap();
    assert!(!dev.is_waiting(tx_id));
}

/// ACC-082: concurrent multi-chunk signatures for several keys are serialised by the device
/// mutex; the device never sees an interleaved conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_signatures_never_interleave_on_the_device() {
    let fake = FakeDevice::default();
    fake.set_behavior(Behavior::Approve { delay: Duration::from_millis(5) });
    let backend = Arc::new(LedgerBackend::new(device(
        &fake,
        LedgerTimeouts { confirm: Duration::from_secs(30), command: Duration::from_secs(5) },
    )));
    let keys: Vec<KeyRef> = vec![
        key(&fake, ChainKind::Ethereum, "44'/60'/0'/0/0"),
        key(&fake, ChainKind::Ethereum, "44'/60'/0'/0/1"),
        key(&fake, ChainKind::Solana, "44'/501'/0'/0'"),
        key(&fake, ChainKind::Solana, "44'/501'/1'/0'"),
    ];
    let mut tasks = Vec::new();
    for i in 0..24 {
        let k = keys[i % keys.len()].clone();
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            let intent = match k.chain {
                ChainKind::Ethereum => SignIntent::EvmTransaction(big_tx()),
                ChainKind::Solana => SignIntent::SolanaMessage(vec![i as u8; 600]),
            };
            sign_verified(backend.as_ref(), &k, &intent, &ctx()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.signatures(), 24);
    assert_eq!(fake.interleavings(), 0);
    assert!(fake.log().len() > 24 * 3, "multi-chunk conversations happened");
}

/// Negative control for the test above: two conversations that do interleave are detected.
#[test]
fn the_fake_device_detects_interleaved_conversations() {
    let fake = FakeDevice::default();
    let (mut a, mut b) = (fake.transport(), fake.transport());
    let path = DerivationPath::parse(DEFAULT_ETH_PATH).unwrap();
    let mut encoded = Vec::new();
    alloy::consensus::SignableTransaction::encode_for_signing(&big_tx(), &mut encoded);
    let chunks = super::apps::eth_sign_transaction(&path, &encoded);
    assert!(chunks.len() >= 2);
    let t = Duration::from_secs(1);
    a.exchange(&super::apps::app_configuration(super::apps::App::Ethereum), t).unwrap();
    a.exchange(&chunks[0], t).unwrap();
    b.exchange(&chunks[0], t).unwrap(); // another conversation starts mid-way
    assert_eq!(fake.interleavings(), 1);
}
