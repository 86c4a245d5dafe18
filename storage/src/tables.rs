//! redb table and index definitions (02-storage.md §3).
//!
//! Index tables hold no data of their own and are written in the same write transaction as the
//! row they index. An index over an optional field has no entry while the field is `None`.
//! Nothing outside this crate opens these tables.

use redb::TableDefinition;

pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

pub(crate) const AGENTS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("agents");
pub(crate) const IDX_AGENT_PUBLIC_KEY: TableDefinition<'_, &str, u128> = TableDefinition::new("idx_agent_public_key");
pub(crate) const IDX_AGENT_NAME: TableDefinition<'_, &str, u128> = TableDefinition::new("idx_agent_name");
pub(crate) const IDX_AGENT_OWNER: TableDefinition<'_, (&str, u128), ()> = TableDefinition::new("idx_agent_owner");

pub(crate) const SESSIONS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("sessions");
pub(crate) const IDX_SESSION_TOKEN: TableDefinition<'_, &[u8], u128> = TableDefinition::new("idx_session_token");
pub(crate) const IDX_SESSION_AGENT: TableDefinition<'_, (u128, u128), ()> = TableDefinition::new("idx_session_agent");
pub(crate) const IDX_SESSION_EXPIRY: TableDefinition<'_, (u64, u128), ()> = TableDefinition::new("idx_session_expiry");
pub(crate) const IDX_SESSION_REVOKED: TableDefinition<'_, (u64, u128), ()> =
    TableDefinition::new("idx_session_revoked");

pub(crate) const TRANSACTIONS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("transactions");
pub(crate) const IDX_TX_HASH: TableDefinition<'_, &str, u128> = TableDefinition::new("idx_tx_hash");
pub(crate) const IDX_TX_AGENT: TableDefinition<'_, (u128, u128), ()> = TableDefinition::new("idx_tx_agent");
pub(crate) const IDX_TX_SESSION: TableDefinition<'_, (u128, u128), ()> = TableDefinition::new("idx_tx_session");
pub(crate) const IDX_TX_ACTIVE: TableDefinition<'_, (u128, u128), ()> = TableDefinition::new("idx_tx_active");
pub(crate) const IDX_TX_QUEUE: TableDefinition<'_, (&str, u64, u128), ()> = TableDefinition::new("idx_tx_queue");
pub(crate) const IDX_TX_CHILDREN: TableDefinition<'_, (u128, u32), u128> = TableDefinition::new("idx_tx_children");

pub(crate) const IDEMPOTENCY: TableDefinition<'_, (u128, &str), &[u8]> = TableDefinition::new("idempotency");
pub(crate) const IDX_IDEMPOTENCY_TIME: TableDefinition<'_, (u64, u128, &str), ()> =
    TableDefinition::new("idx_idempotency_time");

pub(crate) const PENDING_APPROVALS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("pending_approvals");

pub(crate) const POLICIES: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("policies");
pub(crate) const IDX_POLICY_SCOPE: TableDefinition<'_, (u128, u128), ()> = TableDefinition::new("idx_policy_scope");

pub(crate) const AUTO_STOP_RULES: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("auto_stop_rules");
pub(crate) const IDX_AUTO_STOP_SCOPE: TableDefinition<'_, (u128, &str), u128> =
    TableDefinition::new("idx_auto_stop_scope");

pub(crate) const AUDIT_LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("audit_log");
pub(crate) const IDX_AUDIT_AGENT: TableDefinition<'_, (u128, u64), ()> = TableDefinition::new("idx_audit_agent");
pub(crate) const IDX_AUDIT_EVENT: TableDefinition<'_, (&str, u64), ()> = TableDefinition::new("idx_audit_event");
pub(crate) const IDX_AUDIT_TIME: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("idx_audit_time");

pub(crate) const NOTIFICATION_CHANNELS: TableDefinition<'_, u128, &[u8]> =
    TableDefinition::new("notification_channels");
pub(crate) const NOTIFICATION_LOG: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("notification_log");
pub(crate) const IDX_NOTIFICATION_DELIVERED: TableDefinition<'_, (&str, &str), u128> =
    TableDefinition::new("idx_notification_delivered");

pub(crate) const WALLET_CONNECTIONS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("wallet_connections");
pub(crate) const IDX_WALLET_CONNECTION: TableDefinition<'_, (&str, &str), u128> =
    TableDefinition::new("idx_wallet_connection");

pub(crate) const NONCES: TableDefinition<'_, &str, u64> = TableDefinition::new("nonces");
pub(crate) const IDX_NONCE_EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("idx_nonce_expiry");

/// RATE_LIMIT counters, `(agent, level, bucket start) → count` (see `rate.rs`; schema v2).
pub(crate) const RATE_COUNTS: TableDefinition<'_, (u128, u8, u64), u64> = TableDefinition::new("rate_counts");

/// AutoStop's DAILY_LIMIT_THRESHOLD volume, `(agent, UTC day) → amount (32 bytes, big-endian)`
/// (see `autostop_counts.rs`; schema v3).
pub(crate) const AUTOSTOP_DAILY: TableDefinition<'_, (u128, u64), &[u8]> = TableDefinition::new("autostop_daily");
/// AutoStop's ANOMALY_PATTERN transfers, `(agent, to-address, created_at, tx) → ()` (schema v3).
pub(crate) const AUTOSTOP_TO: TableDefinition<'_, (u128, &str, u64, u128), ()> = TableDefinition::new("autostop_to");

pub(crate) const SYSTEM_STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("system_state");

/// Opens every table once, so that a new database holds all of them (and a read transaction
/// never fails with "table does not exist").
pub(crate) fn create_all(tx: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    tx.open_table(META)?;
    tx.open_table(AGENTS)?;
    tx.open_table(IDX_AGENT_PUBLIC_KEY)?;
    tx.open_table(IDX_AGENT_NAME)?;
    tx.open_table(IDX_AGENT_OWNER)?;
    tx.open_table(SESSIONS)?;
    tx.open_table(IDX_SESSION_TOKEN)?;
    tx.open_table(IDX_SESSION_AGENT)?;
    tx.open_table(IDX_SESSION_EXPIRY)?;
    tx.open_table(IDX_SESSION_REVOKED)?;
    tx.open_table(TRANSACTIONS)?;
    tx.open_table(IDX_TX_HASH)?;
    tx.open_table(IDX_TX_AGENT)?;
    tx.open_table(IDX_TX_SESSION)?;
    tx.open_table(IDX_TX_ACTIVE)?;
    tx.open_table(IDX_TX_QUEUE)?;
    tx.open_table(IDX_TX_CHILDREN)?;
    tx.open_table(IDEMPOTENCY)?;
    tx.open_table(IDX_IDEMPOTENCY_TIME)?;
    tx.open_table(PENDING_APPROVALS)?;
    tx.open_table(POLICIES)?;
    tx.open_table(IDX_POLICY_SCOPE)?;
    tx.open_table(AUTO_STOP_RULES)?;
    tx.open_table(IDX_AUTO_STOP_SCOPE)?;
    tx.open_table(AUDIT_LOG)?;
    tx.open_table(IDX_AUDIT_AGENT)?;
    tx.open_table(IDX_AUDIT_EVENT)?;
    tx.open_table(IDX_AUDIT_TIME)?;
    tx.open_table(NOTIFICATION_CHANNELS)?;
    tx.open_table(NOTIFICATION_LOG)?;
    tx.open_table(IDX_NOTIFICATION_DELIVERED)?;
    tx.open_table(WALLET_CONNECTIONS)?;
    tx.open_table(IDX_WALLET_CONNECTION)?;
    tx.open_table(NONCES)?;
    tx.open_table(IDX_NONCE_EXPIRY)?;
    tx.open_table(SYSTEM_STATE)?;
    tx.open_table(RATE_COUNTS)?;
    tx.open_table(AUTOSTOP_DAILY)?;
    tx.open_table(AUTOSTOP_TO)?;
    Ok(())
}
