//! The operations the PostgreSQL engine does not have yet: each answers
//! [`StoreError::Unsupported`]. Today that is `snapshot_to` alone, so `backup create` under
//! postgres fails with that error (13-postgres-ha.md §7 wants it to write a redb snapshot).

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

pending! {
    fn snapshot_to(&self, path: &Path) -> Result<(), StoreError>;
}
