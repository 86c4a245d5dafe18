//! The EVM signing step of a send (issue #21), piece by piece: what the keystore signer did per
//! send before (re-derive the key, then sign), signing straight from the secret scalar, and
//! the check after signing (recovering the address from the signature versus verifying against
//! the cached public key). Same run, same machine.
//!
//! Run: `cargo bench --bench signing`

use alloy::primitives::B256;
use alloy::signers::SignerSync;
use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::hazmat::SignPrimitive;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::elliptic_curve::PrimeField;

fn bench(c: &mut Criterion) {
    let secret = [0x42u8; 32];
    let hash = B256::repeat_byte(0x17);
    let mut g = c.benchmark_group("evm_signing");
    g.bench_function("derive_then_sign (before)", |b| {
        b.iter(|| {
            let signer = alloy::signers::local::PrivateKeySigner::from_bytes(&secret.into()).unwrap();
            signer.sign_hash_sync(&hash).unwrap()
        })
    });
    g.bench_function("sign_from_scalar", |b| {
        b.iter(|| {
            let d = k256::Scalar::from_repr(secret.into()).unwrap();
            d.try_sign_prehashed_rfc6979::<sha2::Sha256>(&hash.0.into(), &[]).unwrap()
        })
    });
    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(&secret.into()).unwrap();
    let sig = signer.sign_hash_sync(&hash).unwrap();
    let address = signer.address();
    g.bench_function("check_by_recovery (before)", |b| {
        b.iter(|| assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), address))
    });
    let vk = *signer.credential().verifying_key();
    let ksig = k256::ecdsa::Signature::from_scalars(sig.r().to_be_bytes(), sig.s().to_be_bytes()).unwrap();
    g.bench_function("check_by_verify_with_cached_key", |b| {
        b.iter(|| vk.verify_prehash(hash.as_slice(), &ksig).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
