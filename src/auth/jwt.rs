//! JWT signing keys (04-auth.md §5): the current secret and, for 300 s after a rotation, the
//! previous one. The database is the source; this is the in-memory copy the auth layer reads.

use waiaas_storage::JwtSecrets;
use zeroize::Zeroizing;

/// Decoded HMAC keys.
pub(crate) struct JwtKeys {
    pub(crate) current: Zeroizing<[u8; 32]>,
    pub(crate) previous: Option<(Zeroizing<[u8; 32]>, u64)>,
}

fn decode(hex_secret: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_secret, out.as_mut()).ok()?;
    Some(out)
}

impl JwtKeys {
    pub(crate) fn from_secrets(s: &JwtSecrets) -> Option<JwtKeys> {
        let previous = match (&s.previous, s.rotated_at) {
            (Some(p), Some(at)) => Some((decode(p)?, at)),
            _ => None,
        };
        Some(JwtKeys { current: decode(&s.current)?, previous })
    }
}
