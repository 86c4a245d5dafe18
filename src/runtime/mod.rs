//! The shared runtime pieces every service is built from: the configuration (`config`), the
//! database handle ([`Db`]), the live settings ([`Settings`]), the signer backends
//! ([`Signers`]), the shutdown state ([`Shutdown`]) and the worker scheduler
//! ([`scheduler::Registry`]). This folder may call only `base`.
//!
//! Services take exactly the pieces they use, never the whole application; `crate::app::App`
//! only composes them.

pub(crate) mod config;
mod db;
#[cfg(feature = "postgres")]
pub(crate) mod keyfiles;
pub(crate) mod metrics;
pub(crate) mod scheduler;
mod settings;
pub(crate) mod shutdown;
pub(crate) mod signers;

pub(crate) use db::Db;
pub(crate) use settings::Settings;
pub(crate) use shutdown::Shutdown;
pub(crate) use signers::Signers;
