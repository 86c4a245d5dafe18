//! Unlocking at start: one Argon2id run for the whole keystore versus one per key file.
//!
//! `unlock_1000_keys` unlocks 1,000 key files with the default Argon2id parameters
//! (m = 64 MiB, t = 3, p = 4): one derivation, then 1,000 × (read + HKDF + AES-GCM + public key
//! check + guarded allocation). `argon2id_default` is a single derivation with the same
//! parameters: what each file would cost if it ran its own. Both run in the same process.
//!
//! Run: `cargo bench -p waiaas-backends --bench unlock`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use waiaas_backends::keystore::kdf::{KdfBlock, KdfParams, derive_root};
use waiaas_backends::keystore::master::MasterFile;
use waiaas_backends::keystore::{AgentKeyInfo, LockedKeystore};
use waiaas_backends::seam::ChainKind;

const PW: &[u8] = b"benchmark master password";

fn setup(n: usize) -> (tempfile::TempDir, Vec<AgentKeyInfo>) {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("keystore");
    waiaas_backends::fsutil::create_private_dir(&ks).unwrap();
    MasterFile::create(PW, KdfParams::default()).unwrap().0.save(&ks.join("master.json")).unwrap();
    let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &[]).unwrap();
    let agents = (0..n)
        .map(|i| {
            let (chain, network) =
                if i % 2 == 0 { (ChainKind::Solana, "devnet") } else { (ChainKind::Ethereum, "testnet") };
            let id = Uuid::now_v7();
            let public_key = unlocked.generate(id, chain, network, &format!("agent-{i}")).unwrap();
            AgentKeyInfo { agent_id: id, chain, network: network.into(), public_key }
        })
        .collect();
    (dir, agents)
}

fn unlock(c: &mut Criterion) {
    let (dir, agents) = setup(1000);
    let ks = dir.path().join("keystore");
    let mut g = c.benchmark_group("keystore");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("unlock_1000_keys", |b| {
        b.iter(|| {
            let unlocked = LockedKeystore::open(&ks).unwrap().unlock(PW, &agents).unwrap();
            assert_eq!(unlocked.len(), 1000);
        })
    });
    let block = KdfBlock::fresh(KdfParams::default());
    g.bench_function("argon2id_default", |b| b.iter(|| derive_root(PW, &block).unwrap()));
    g.finish();
}

criterion_group!(benches, unlock);
criterion_main!(benches);
