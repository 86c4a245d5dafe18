//! Session tokens (04-auth.md §3.1, §5): `wai_sess_` + an HS256 JWT
//! `{iss:"waiaas", iat, exp, jti, sid, aid}` signed with the current secret; verified with the
//! current secret and, for 300 s after a rotation, the previous one.
//!
//! Expiry is checked against the daemon clock (which dev mode can advance), not the wall clock,
//! so `jsonwebtoken`'s own `exp` check is off and done here with no leeway. Only HS256 is
//! accepted: `none`, HS512 or any other algorithm is `AUTH_TOKEN_INVALID`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waiaas_storage::JwtSecrets;
use zeroize::Zeroizing;

/// The token prefix.
pub(crate) const PREFIX: &str = "wai_sess_";

/// JWT claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
    pub(crate) sid: String,
    pub(crate) aid: String,
}

/// Why a token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not `wai_sess_` + three dot-separated parts.
    Missing,
    /// Signature, algorithm, issuer or claims wrong.
    Invalid,
    /// `exp ≤ now`.
    Expired,
}

/// The live signing keys: read by every session check, replaced by a secret rotation.
#[derive(Clone)]
pub(crate) struct Tokens(std::sync::Arc<std::sync::RwLock<JwtKeys>>);

impl Tokens {
    pub(crate) fn new(keys: JwtKeys) -> Tokens {
        Tokens(std::sync::Arc::new(std::sync::RwLock::new(keys)))
    }

    /// Signs a token for session `sid` of agent `aid`.
    pub(crate) fn issue(&self, sid: Uuid, aid: Uuid, iat: u64, exp: u64) -> String {
        self.0.read().expect("jwt lock").issue(sid, aid, iat, exp)
    }

    /// Verifies a token at daemon time `now`.
    pub(crate) fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        self.0.read().expect("jwt lock").verify(token, now)
    }

    /// Issues a read-only owner-console token.
    pub(crate) fn issue_owner(&self, sub: &str, chn: &str, iat: u64) -> (String, u64) {
        self.0.read().expect("jwt lock").issue_owner(sub, chn, iat)
    }

    /// Verifies an owner-console token at daemon time `now`.
    pub(crate) fn verify_owner(&self, token: &str, now: u64) -> Result<OwnerClaims, TokenError> {
        self.0.read().expect("jwt lock").verify_owner(token, now)
    }

    /// Installs rotated keys.
    pub(crate) fn replace(&self, keys: JwtKeys) {
        *self.0.write().expect("jwt lock") = keys;
    }
}

/// Decoded HMAC keys: the session keys, and the owner-console keys derived from them.
pub(crate) struct JwtKeys {
    current: Zeroizing<[u8; 32]>,
    previous: Option<(Zeroizing<[u8; 32]>, u64)>,
    owner_current: Zeroizing<[u8; 32]>,
    owner_previous: Option<(Zeroizing<[u8; 32]>, u64)>,
}

/// The owner token prefix (11-owner-console.md §3.2).
pub(crate) const OWNER_PREFIX: &str = "wai_own_";
/// An owner token's lifetime.
pub(crate) const OWNER_TOKEN_SECS: u64 = 900;

/// A read-only console token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerClaims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
    /// The owner address, stored form.
    pub(crate) sub: String,
    /// `ethereum` or `solana`.
    pub(crate) chn: String,
}

/// The owner-console key: HKDF-SHA256 of a session secret, so a session token never verifies
/// as an owner token nor the other way round.
fn owner_key(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, secret)
        .expand(b"waiaas owner console v1", out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

fn decode_hex(hex_secret: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_secret, out.as_mut()).ok()?;
    Some(out)
}

/// SHA-256 of the full token string (what the database stores).
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a string has the session-token shape.
pub(crate) fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|jwt| jwt.split('.').count() == 3 && jwt.split('.').all(|p| !p.is_empty()))
}

impl JwtKeys {
    pub(crate) fn from_secrets(s: &JwtSecrets) -> Option<JwtKeys> {
        let previous = match (&s.previous, s.rotated_at) {
            (Some(p), Some(at)) => Some((decode_hex(p)?, at)),
            _ => None,
        };
        let current = decode_hex(&s.current)?;
        let owner_current = owner_key(&current);
        let owner_previous = previous.as_ref().map(|(p, at)| (owner_key(p), *at));
        Some(JwtKeys { current, previous, owner_current, owner_previous })
    }

    /// Issues a read-only owner token for `sub` on `chn` at `iat` (15 minutes).
    pub(crate) fn issue_owner(&self, sub: &str, chn: &str, iat: u64) -> (String, u64) {
        let exp = iat + OWNER_TOKEN_SECS;
        let claims = OwnerClaims {
            iss: "waiaas".into(),
            aud: "owner-console".into(),
            iat,
            exp,
            jti: Uuid::new_v4().to_string(),
            sub: sub.to_string(),
            chn: chn.to_string(),
        };
        let jwt = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.owner_current.as_ref()),
        )
        .expect("HS256 encoding cannot fail");
        (format!("{OWNER_PREFIX}{jwt}"), exp)
    }

    /// Verifies a `wai_own_` token at `now` (11-owner-console.md §3.2): HS256 only, `iss`,
    /// `aud` and every claim, `exp > now` with no leeway, the current key or within 300 s of a
    /// rotation the previous one.
    pub(crate) fn verify_owner(&self, token: &str, now: u64) -> Result<OwnerClaims, TokenError> {
        let jwt = token.strip_prefix(OWNER_PREFIX).ok_or(TokenError::Missing)?;
        if jwt.split('.').count() != 3 || jwt.split('.').any(str::is_empty) {
            return Err(TokenError::Missing);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        v.set_issuer(&["waiaas"]);
        v.set_audience(&["owner-console"]);
        v.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
        let mut keys: Vec<&[u8]> = vec![self.owner_current.as_ref()];
        if let Some((prev, at)) = &self.owner_previous
            && now.saturating_sub(*at) <= waiaas_storage::JWT_ROTATION_OVERLAP
        {
            keys.push(prev.as_ref());
        }
        for key in keys {
            match jsonwebtoken::decode::<OwnerClaims>(jwt, &DecodingKey::from_secret(key), &v) {
                Ok(data) => {
                    let c = data.claims;
                    if !matches!(c.chn.as_str(), "ethereum" | "solana") || Uuid::parse_str(&c.jti).is_err() {
                        return Err(TokenError::Invalid);
                    }
                    if c.exp <= now {
                        return Err(TokenError::Expired);
                    }
                    return Ok(c);
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {}
                Err(_) => return Err(TokenError::Invalid),
            }
        }
        Err(TokenError::Invalid)
    }

    /// Signs a token for session `sid` of agent `aid`.
    pub(crate) fn issue(&self, sid: Uuid, aid: Uuid, iat: u64, exp: u64) -> String {
        let claims =
            Claims { iss: "waiaas".into(), iat, exp, jti: sid.to_string(), sid: sid.to_string(), aid: aid.to_string() };
        let jwt = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.current.as_ref()),
        )
        .expect("HS256 encoding cannot fail");
        format!("{PREFIX}{jwt}")
    }

    /// Verifies a `wai_sess_` token at daemon time `now` (04-auth.md §3.2 step 2).
    pub(crate) fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if !looks_like_token(token) {
            return Err(TokenError::Missing);
        }
        let jwt = &token[PREFIX.len()..];
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.leeway = 0;
        v.set_issuer(&["waiaas"]);
        v.set_required_spec_claims(&["iss", "exp"]);
        let mut keys: Vec<&[u8]> = vec![self.current.as_ref()];
        if let Some((prev, at)) = &self.previous
            && now.saturating_sub(*at) <= waiaas_storage::JWT_ROTATION_OVERLAP
        {
            keys.push(prev.as_ref());
        }
        let mut last = TokenError::Invalid;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(key), &v) {
                Ok(data) => {
                    let c = data.claims;
                    if c.sid != c.jti || Uuid::parse_str(&c.sid).is_err() || Uuid::parse_str(&c.aid).is_err() {
                        return Err(TokenError::Invalid);
                    }
                    if c.exp <= now {
                        return Err(TokenError::Expired);
                    }
                    return Ok(c);
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    last = TokenError::Invalid
                }
                Err(_) => return Err(TokenError::Invalid),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> JwtKeys {
        JwtKeys::from_secrets(&JwtSecrets {
            current: "11".repeat(32),
            previous: Some("22".repeat(32)),
            rotated_at: Some(1000),
        })
        .unwrap()
    }

    #[test]
    fn issue_and_verify_with_expiry_and_rotation_window() {
        let k = keys();
        let (sid, aid) = (Uuid::now_v7(), Uuid::now_v7());
        let t = k.issue(sid, aid, 1000, 2000);
        assert!(t.starts_with("wai_sess_"));
        let c = k.verify(&t, 1999).unwrap();
        assert_eq!((c.sid.clone(), c.aid.clone(), c.exp - c.iat), (sid.to_string(), aid.to_string(), 1000));
        assert_eq!(k.verify(&t, 2000), Err(TokenError::Expired), "no leeway");
        // A token signed with the previous secret verifies only inside the 300 s window.
        let old =
            JwtKeys::from_secrets(&JwtSecrets { current: "22".repeat(32), previous: None, rotated_at: None }).unwrap();
        let t_old = old.issue(sid, aid, 900, 5000);
        assert!(k.verify(&t_old, 1300).is_ok());
        assert_eq!(k.verify(&t_old, 1301), Err(TokenError::Invalid));
    }

    /// 11-owner-console.md §3.2: owner tokens live 900 s, verify only with the derived key, and
    /// session and owner tokens never verify as each other.
    #[test]
    fn owner_tokens_are_separate_from_session_tokens() {
        let k = keys();
        let (t, exp) = k.issue_owner("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "ethereum", 1000);
        assert!(t.starts_with("wai_own_") && exp == 1900);
        let c = k.verify_owner(&t, 1899).unwrap();
        assert_eq!((c.aud.as_str(), c.chn.as_str()), ("owner-console", "ethereum"));
        assert_eq!(k.verify_owner(&t, 1900), Err(TokenError::Expired));
        let session = k.issue(Uuid::now_v7(), Uuid::now_v7(), 1000, 2000);
        assert!(k.verify_owner(&session.replacen("wai_sess_", "wai_own_", 1), 1500).is_err());
        assert!(k.verify(&t.replacen("wai_own_", "wai_sess_", 1), 1500).is_err());
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let payload = t.split('.').nth(1).unwrap();
        let none = format!("wai_own_{}.{payload}.x", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})));
        assert_eq!(k.verify_owner(&none, 1500), Err(TokenError::Invalid));
        assert_eq!(k.verify_owner("wai_own_a.b", 1500), Err(TokenError::Missing));
    }

    #[test]
    fn other_algorithms_tampering_and_shapes_are_refused() {
        let k = keys();
        let t = k.issue(Uuid::now_v7(), Uuid::now_v7(), 1000, 2000);
        let mut tampered = t.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(k.verify(&tampered, 1500), Err(TokenError::Invalid));
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let payload = t.split('.').nth(1).unwrap();
        let none = format!("wai_sess_{}.{payload}.x", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})));
        assert_eq!(k.verify(&none, 1500), Err(TokenError::Invalid));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &k.verify(&t, 1500).unwrap(),
            &EncodingKey::from_secret(&[0x11; 32]),
        )
        .unwrap();
        assert_eq!(k.verify(&format!("wai_sess_{hs512}"), 1500), Err(TokenError::Invalid));
        for bad in ["abc", "wai_sess_", "wai_sess_a.b", "Bearer x", "wai_sess_a..c"] {
            assert_eq!(k.verify(bad, 1500), Err(TokenError::Missing), "{bad}");
        }
    }
}
