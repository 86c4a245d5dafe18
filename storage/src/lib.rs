#![doc = include_str!("../README.md")]

pub mod amount;
pub mod audit;
mod audit_events;
mod autostop_counts;
mod codec;
pub mod db;
#[cfg(feature = "postgres")]
mod dump;
pub mod enums;
pub mod error;
mod in_tx;
pub mod ops;
#[cfg(feature = "postgres")]
pub mod pg;
mod rate;
pub mod records;
mod rows;
pub mod scope;
mod stats;
mod store;
mod tables;
#[cfg(feature = "test-util")]
mod test_util;

pub use amount::{Amount, AmountError};
pub use audit::{AuditEvent, AuditRecord, AuditVerification};
pub use audit_events::AuditEventType;
pub use db::{Commit, OpCtx, OpenReport, RedbStore, SCHEMA_VERSION};
#[cfg(feature = "postgres")]
pub use dump::Dump;
pub use enums::*;
pub use error::{SchemaError, StoreError, Unavailability};
pub use in_tx::{IdempotencyClaim, TxFailure, min_uuid_v7_at};
pub use ops::agents::{AgentScan, SetOwnerOutcome, TerminationReport};
pub use ops::approvals::{ApprovalResult, RejectResult};
pub use ops::decision::{DecisionOutcome, DecisionSnapshot, Recorded};
pub use ops::killswitch::{
    ActivationReport, KillSwitchState, RECOVERY_LOCKOUT_SECS, RECOVERY_MAX_FAILURES, RecoveryFailure,
};
pub use ops::notify::{ChannelChange, LogQuery, MinChannels};
pub use ops::policies::{PolicyChange, RuleChange};
pub use ops::sessions::{RenewOutcome, RenewalRefusal, SessionCleanup, renewal_guard};
pub use ops::system::{AuditQuery, InitSeed, JWT_ROTATION_OVERLAP, JwtSecrets, RotateOutcome};
pub use ops::tx_lifecycle::{Broadcast, ChainOutcome, Checkpoint, ClaimOutcome, RecordOutcome, Signed};
pub use ops::tx_queries::StatusCounts;
pub use ops::tx_recovery::RecoveryReport;
pub use rate::Window;
pub use records::*;
pub use stats::{COMMIT_BUCKETS, StatsSnapshot, TerminalKey};
pub use store::{Store, StoreOps};

#[cfg(test)]
mod power_cut_tests;
#[cfg(test)]
mod tests;
