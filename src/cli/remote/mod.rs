//! Commands that are calls to the running daemon's API (agents, sessions, channels, policies,
//! the owner's queue, the emergency controls), with the one client they share.

pub(crate) mod agent;
pub(crate) mod api;
pub(crate) mod channel;
pub(crate) mod client;
pub(crate) mod emergency;
pub(crate) mod owner;
pub(crate) mod owner_sign;
pub(crate) mod policy;
pub(crate) mod session;
