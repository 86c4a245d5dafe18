//! Records to and from jsonb: the shared codec (same U+0000 rule, same strict decoding), so a
//! row reads back exactly as redb would read it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec::{decode, encode};
use crate::error::StoreError;

/// A record as a jsonb parameter.
pub(crate) fn to_json<T: Serialize>(table: &'static str, value: &T) -> Result<Value, StoreError> {
    let bytes = encode(table, value)?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Serde { table, source })
}

/// A record from a jsonb column read as `record::text` (decoded by the shared, strict codec).
pub(crate) fn from_text<T: DeserializeOwned>(table: &'static str, text: &str) -> Result<T, StoreError> {
    decode(table, text.as_bytes())
}
