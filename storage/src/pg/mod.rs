//! The PostgreSQL engine (13-postgres-ha.md): the same operations as redb on a database that
//! several replicas share, with one of them leading.
//!
//! - [`connect`]: URL, TLS (rustls), the session settings every connection carries.
//! - [`migrate`]: the embedded SQL migrations, `db migrate`, and the schema check every command
//!   runs first (§7).
//! - `sqlerr`: what a PostgreSQL error means to the daemon (§8): unreachable or timed out
//!   (retryable), a backstop constraint that fired, or a bug.
//! - [`locks`]: the advisory-lock keys of §5 and §6, in one place.
//!
//! Everything here is async on the caller's runtime; the blocking [`crate::StoreOps`] facade
//! drives it from `spawn_blocking` threads.

mod codec;
pub mod connect;
mod copy;
#[cfg(test)]
mod cross_process_tests;
pub mod election;
pub mod locks;
pub mod migrate;
mod ops;
mod pending;
mod rows;
mod sqlerr;
pub mod status;
mod store;
#[cfg(test)]
pub(crate) mod test_db;
mod txrows;

pub use connect::PgOptions;
pub use copy::{CopyError, CopyReport, KeyBytes};
pub use ops::keys::{MasterAuthFailure, MasterAuthState};
pub use ops::nonces::{NonceAccount, NonceSlot, Resynced};
pub use store::PgStore;

pub(crate) use sqlerr::map as map_err;
