//! The operations of `StoreOps` on PostgreSQL, one file per group like `crate::ops`; each keeps
//! the redb operation's contract (the conformance suite runs both) under the locks of §5.

mod agent_cascades;
pub(super) mod agents;
mod approvals;
mod decision;
pub(super) mod keys;
mod killswitch;
pub(super) mod nonces;
mod notify;
mod pins;
mod policies;
mod sessions;
mod system;
mod tx_lifecycle;
mod tx_queries;
mod tx_recovery;
