//! Typed JSON encoding of record values, shared by every engine.
//!
//! One rule both engines keep: no string may hold U+0000. PostgreSQL's jsonb cannot store it,
//! so a record redb would accept and PostgreSQL would refuse would make the engines disagree
//! (13-postgres-ha.md §4); both refuse it with `Invariant` instead.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Serde { table, source })?;
    if has_nul_escape(&bytes) {
        return Err(StoreError::Invariant("a stored string contains U+0000"));
    }
    Ok(bytes)
}

/// Decodes a stored record; unknown fields and invalid enum values are errors.
pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Serde { table, source })
}

/// Whether serde_json's output escapes a U+0000: a `\u0000` whose backslash is not itself
/// escaped (an odd run of backslashes before the `u`).
fn has_nul_escape(json: &[u8]) -> bool {
    // Every encode on the send path runs this: a SIMD substring search, and the backslash count
    // only where `u0000` actually occurs (almost never).
    memchr::memmem::find_iter(json, b"u0000")
        .any(|i| json[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_any_string_is_refused_and_its_lookalikes_are_not() {
        assert!(encode("t", &"a\u{0}b").is_err());
        assert!(encode("t", &serde_json::json!({"k": ["x", "\u{0}"]})).is_err());
        assert!(encode("t", &"\\u0000").is_ok(), "an escaped backslash followed by u0000 is text");
        assert!(encode("t", &"u0000").is_ok());
        assert!(encode("t", &"\\\u{0}").is_err());
    }
}
