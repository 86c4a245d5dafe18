//! The operations the PostgreSQL engine does not have yet. Each answers
//! [`StoreError::Unsupported`]; the daemon does not start on PostgreSQL while this list is not
//! empty (13-postgres-ha.md is built operation group by operation group, and the conformance
//! suite runs a group on PostgreSQL once it moves out of here).

#![allow(unused_variables, clippy::too_many_arguments)]

use std::path::Path;

use super::PgStore;
use crate::*;

macro_rules! pending {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl PgStore {
            $(
                #[doc = concat!("Not on PostgreSQL yet: see [`crate::RedbStore::", stringify!($name), "`].")]
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    Err(StoreError::Unsupported { operation: stringify!($name) })
                }
            )*
        }
    };
}

/// The operations of `StoreOps` still waiting for their PostgreSQL implementation.
pub(crate) const PENDING: &[&str] = &["snapshot_to"];

pending! {
    fn snapshot_to(&self, path: &Path) -> Result<(), StoreError>;
}
