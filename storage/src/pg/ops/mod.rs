//! The operations of `StoreOps` on PostgreSQL, one file per group like `crate::ops`; each keeps
//! the redb operation's contract (the conformance suite runs both) under the locks of §5.

mod agents;
mod policies;
mod sessions;
mod system;
