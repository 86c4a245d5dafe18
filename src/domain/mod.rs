//! The services that decide what happens: agents, sessions, authentication, the transaction
//! pipeline, policy administration, backups and the emergency controls. Each takes typed inputs
//! and returns typed outcomes and errors; this folder may call `base`, `rules`, `runtime` and
//! `adapters`, never `app`, `http`, `daemon` or `cli`.

pub(crate) mod agents;
pub(crate) mod auth;
pub(crate) mod backup;
pub(crate) mod defaults;
pub(crate) mod emergency;
pub(crate) mod ledger_pins;
pub(crate) mod owner_console;
pub(crate) mod pipeline;
pub(crate) mod policy_admin;
pub(crate) mod sessions;
