//! secp256k1 signing and the check after it (03-keys.md §3), at their cost floor (issue #21).
//!
//! Signing reads the secret scalar in place and signs the 32-byte hash with RFC 6979 (the same
//! deterministic nonce, low-S normalisation and parity as alloy's `PrivateKeySigner`, without
//! re-deriving the public key on every call).
//!
//! The check recomputes the signature's point `R = (z·s⁻¹)·G + (r·s⁻¹)·Q` and requires its x
//! coordinate to be `r` and its y parity to be the signature's — the ECDSA verification plus the
//! parity an Ethereum signature carries, so a signature with a wrong `v` is refused as recovery
//! would refuse it. `Q`, the public key, is learned once per address by recovering it from a
//! signature and checking that it hashes to the address, then kept (it is public).

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use alloy::primitives::{Address, B256, Signature, U256};
use k256::ecdsa::hazmat::SignPrimitive;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::{Invert, LinearCombination, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{AffinePoint, ProjectivePoint, Scalar};

/// Signs `hash` with the 32-byte secret `d`: `(r, s, y_parity)`, low S. `None` for an invalid
/// secret (zero or not below the group order).
pub(crate) fn sign(d: &[u8; 32], hash: &B256) -> Option<([u8; 32], [u8; 32], bool)> {
    let d = zeroize::Zeroizing::new(Option::<Scalar>::from(Scalar::from_repr((*d).into()))?);
    if bool::from(d.is_zero()) {
        return None;
    }
    let (sig, recid) = d.try_sign_prehashed_rfc6979::<sha2::Sha256>(&hash.0.into(), &[]).ok()?;
    let recid = recid?;
    let (r, s) = sig.split_bytes();
    Some((r.into(), s.into(), recid.is_y_odd()))
}

/// The public keys learned so far, by address.
static KEYS: LazyLock<RwLock<HashMap<Address, AffinePoint>>> = LazyLock::new(Default::default);

/// Whether `sig` (r, s, parity) is `address`'s signature of `hash`.
pub(crate) fn check(address: Address, hash: &B256, sig: &Signature) -> bool {
    let known = KEYS.read().unwrap_or_else(|p| p.into_inner()).get(&address).copied();
    let q = match known {
        Some(q) => q,
        None => {
            // Learn the key: recover it and require it to be the address's.
            let Ok(vk) = sig.recover_from_prehash(hash) else { return false };
            if Address::from_public_key(&vk) != address {
                return false;
            }
            let q = *vk.as_affine();
            KEYS.write().unwrap_or_else(|p| p.into_inner()).insert(address, q);
            q
        }
    };
    verify_with_parity(&q, hash, sig)
}

/// ECDSA verification against `q` that also checks the y parity of `R`.
fn verify_with_parity(q: &AffinePoint, hash: &B256, sig: &Signature) -> bool {
    let scalar = |v: U256| Option::<Scalar>::from(Scalar::from_repr(v.to_be_bytes::<32>().into()));
    let (Some(r), Some(s)) = (scalar(sig.r()), scalar(sig.s())) else { return false };
    // Zero values are invalid; a high S is not Ethereum's (EIP-2) and not what we sign.
    if bool::from(r.is_zero() | s.is_zero()) || bool::from(s.is_high()) {
        return false;
    }
    let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(&hash.0.into());
    let s_inv = Option::<Scalar>::from(s.invert_vartime()).unwrap_or(Scalar::ZERO);
    let (u1, u2) = (z * s_inv, r * s_inv);
    let big_r = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &ProjectivePoint::from(*q), &u2).to_affine();
    if bool::from(ProjectivePoint::from(big_r).is_identity()) {
        return false;
    }
    let x = <Scalar as Reduce<k256::U256>>::reduce_bytes(&big_r.x());
    x == r && bool::from(big_r.y_is_odd()) == sig.v()
}

#[cfg(test)]
mod tests {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Signing matches alloy's `PrivateKeySigner` bit for bit, and the check accepts
        /// exactly what recovery accepts: the right signature, never a flipped parity, another
        /// hash or another key.
        #[test]
        fn sign_and_check_agree_with_alloy(secret in any::<[u8; 32]>(), h in any::<[u8; 32]>(), other in any::<[u8; 32]>()) {
            let Ok(signer) = PrivateKeySigner::from_bytes(&secret.into()) else { return Ok(()) };
            let hash = B256::from(h);
            let expected = signer.sign_hash_sync(&hash).unwrap();
            let (r, s, parity) = sign(&secret, &hash).unwrap();
            let ours = Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), parity);
            prop_assert_eq!(ours, expected);
            let address = signer.address();
            prop_assert!(check(address, &hash, &ours));
            prop_assert!(check(address, &hash, &ours), "again, from the learned key");
            prop_assert!(!check(address, &hash, &Signature::new(ours.r(), ours.s(), !parity)), "a flipped parity");
            prop_assert!(!check(address, &B256::from(other), &ours) || other == h, "another hash");
            if let Ok(o) = PrivateKeySigner::from_bytes(&other.into()) {
                prop_assert!(!check(o.address(), &hash, &ours) || o.address() == address, "another key");
            }
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let signer = PrivateKeySigner::random();
        let hash = B256::repeat_byte(9);
        let good = signer.sign_hash_sync(&hash).unwrap();
        assert!(check(signer.address(), &hash, &good));
        let n = U256::from_be_slice(&hex_n());
        for (r, s) in [(U256::ZERO, good.s()), (good.r(), U256::ZERO), (n, good.s()), (good.r(), n - good.s())] {
            assert!(!check(signer.address(), &hash, &Signature::new(r, s, good.v())), "r={r} s={s}");
        }
        assert!(sign(&[0u8; 32], &hash).is_none());
        assert!(sign(&[0xff; 32], &hash).is_none());
    }

    fn hex_n() -> [u8; 32] {
        let mut n = [0u8; 32];
        hex::decode_to_slice("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", &mut n).unwrap();
        n
    }
}
