//! Atomic operations, grouped by the entity they change. Each public method is one write
//! transaction (see the crate docs).

pub mod agents;
pub mod approvals;
pub mod autostop;
pub mod decision;
pub mod idempotency;
pub mod killswitch;
pub mod notify;
pub mod policies;
pub mod sessions;
pub mod system;
pub mod tx_lifecycle;
pub mod tx_queries;
pub mod tx_recovery;
