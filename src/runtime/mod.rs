//! The shared runtime pieces every domain service is built from, grouped by concern: the
//! database handle ([`Db`]), the live configuration ([`Settings`]), the signer backends
//! ([`Signers`]), the shutdown state ([`Shutdown`]) and the background worker registry
//! ([`workers::Registry`]).
//!
//! Domain modules (pipeline, agents, sessions, owners, kill switch, notify, …) take exactly the
//! pieces they use, never the whole application; `crate::app::App` only composes them. Nothing
//! here knows about HTTP.

pub(crate) mod config;
mod db;
mod settings;
pub(crate) mod shutdown;
pub(crate) mod signers;
pub(crate) mod workers;

pub(crate) use db::Db;
pub(crate) use settings::Settings;
pub(crate) use shutdown::Shutdown;
pub(crate) use signers::Signers;
