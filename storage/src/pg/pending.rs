//! The operations the PostgreSQL engine does not have yet. Each answers
//! [`StoreError::Unsupported`]; the daemon does not start on PostgreSQL while this list is not
//! empty (13-postgres-ha.md is built operation group by operation group, and the conformance
//! suite runs a group on PostgreSQL once it moves out of here).

#![allow(unused_variables, clippy::too_many_arguments)]

use std::path::Path;

use serde_json::Value;
use uuid::Uuid;

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

/// The operations of `StoreOps` still waiting for their PostgreSQL implementation.
pub(crate) const PENDING: &[&str] = &[
    "snapshot_to",
    "terminate_agent",
    "delete_agent",
    "set_owner",
    "disconnect_owner",
    "approve_transaction",
    "reject_transaction",
    "expire_due_approvals",
    "queued_rows",
    "get_approval",
    "consecutive_failures",
    "created_since",
    "confirmed_volume_since",
    "autonomous_volume_on_day",
    "autonomous_transfers_to_since",
    "auto_stop_suspend",
    "decide_transaction",
    "decide_and_claim",
    "record_and_decide",
    "dry_run_snapshot",
    "complete_idempotency",
    "cleanup_idempotency",
    "activate_kill_switch",
    "kill_switch_state",
    "recovery_start",
    "recovery_fail",
    "recovery_complete",
    "insert_channel",
    "update_channel",
    "disable_channel",
    "get_channel",
    "list_channels",
    "record_channel_health",
    "record_notifications",
    "was_delivered",
    "list_notification_log",
    "prune_notification_log",
    "notification_log_len",
    "record_request",
    "fail_transaction",
    "record_chain_outcome",
    "confirm_transaction",
    "record_broadcast",
    "checkpoint",
    "claim_for_execution",
    "active_in_status",
    "get_transaction",
    "batch_children",
    "list_transactions",
    "list_transactions_of",
    "confirmed_to_before",
    "queued_by_tier",
    "due_rows",
    "status_counts",
    "sweep_pending",
    "startup_recovery",
];

pending! {
    // engine, audit append and verification
    fn snapshot_to(&self, path: &Path) -> Result<(), StoreError>;
    // agents
    fn terminate_agent(&self, id: Uuid, ctx: &OpCtx) -> Result<TerminationReport, StoreError>;
    fn delete_agent(&self, id: Uuid) -> Result<(), StoreError>;
    fn set_owner(&self, agent_id: Uuid, new_address: Option<&str>, expect: OwnerState, ctx: &OpCtx) -> Result<SetOwnerOutcome, StoreError>;
    fn disconnect_owner(&self, chain: Chain, address: &str, ctx: &OpCtx) -> Result<(u64, u64), StoreError>;
    // approvals
    // autostop
    fn consecutive_failures(&self, agent: Uuid, cap: u64) -> Result<u64, StoreError>;
    fn created_since(&self, agent: Uuid, since: u64, cap: u64) -> Result<u64, StoreError>;
    fn confirmed_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError>;
    fn autonomous_volume_on_day(&self, agent: Uuid, day: u64) -> Result<Amount, StoreError>;
    fn autonomous_transfers_to_since(&self, agent: Uuid, to: &str, since: u64, cap: u64) -> Result<u64, StoreError>;
    fn auto_stop_suspend(&self, agent: Uuid, reason: &str, rule: Uuid, ctx: &OpCtx) -> Result<bool, StoreError>;
    // decision
    // idempotency
    // killswitch
    fn activate_kill_switch(&self, reason: &str, actor: KillSwitchActor, ctx: &OpCtx) -> Result<ActivationReport, StoreError>;
    fn kill_switch_state(&self) -> Result<KillSwitchState, StoreError>;
    fn recovery_start(&self, wait: u64, signer: Option<(Chain, String)>, ctx: &OpCtx) -> Result<u64, StoreError>;
    fn recovery_fail(&self, ctx: &OpCtx) -> Result<RecoveryFailure, StoreError>;
    fn recovery_complete(&self, ctx: &OpCtx) -> Result<u64, StoreError>;
    // notify
    fn insert_channel(&self, c: &ChannelRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn update_channel(&self, id: Uuid, change: &ChannelChange, rule: MinChannels, ctx: &OpCtx) -> Result<ChannelRecord, StoreError>;
    fn disable_channel(&self, id: Uuid, rule: MinChannels, ctx: &OpCtx) -> Result<ChannelRecord, StoreError>;
    fn get_channel(&self, id: Uuid) -> Result<Option<ChannelRecord>, StoreError>;
    fn list_channels(&self) -> Result<Vec<ChannelRecord>, StoreError>;
    fn record_channel_health(&self, id: Uuid, healthy: bool, now: u64) -> Result<ChannelRecord, StoreError>;
    fn record_notifications(&self, entries: &[NotificationLogRecord], audit: Option<AuditEvent>, ctx: &OpCtx) -> Result<(), StoreError>;
    fn was_delivered(&self, event: &str, reference: &str) -> Result<bool, StoreError>;
    fn list_notification_log(&self, q: &LogQuery) -> Result<(Vec<NotificationLogRecord>, bool), StoreError>;
    fn prune_notification_log(&self, before: u64) -> Result<u64, StoreError>;
    fn notification_log_len(&self) -> Result<u64, StoreError>;
    // policies
    // sessions
    // system
    // tx_lifecycle
    // tx_queries
    // tx_recovery
    fn sweep_pending(&self, now: u64, min_age: u64) -> Result<u64, StoreError>;
    fn startup_recovery(&self, now: u64) -> Result<RecoveryReport, StoreError>;
}
