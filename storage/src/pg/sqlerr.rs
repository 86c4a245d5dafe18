//! What a PostgreSQL error means to the daemon (13-postgres-ha.md §8). Decided by SQLSTATE and
//! the client's own error kind, never by message text.

use tokio_postgres::error::SqlState;

use crate::error::{StoreError, Unavailability};

/// The backstop constraints of the schema, and the name redb's matching index carries: a
/// `23505` surfaces exactly as redb's `Unique` would, so callers branch on one name.
const CONSTRAINTS: &[(&str, &str)] = &[
    ("agents_name_live", "idx_agent_name"),
    ("agents_public_key_live", "idx_agent_public_key"),
    ("sessions_token_hash", "idx_session_token"),
    ("transactions_tx_hash", "idx_tx_hash"),
    ("transactions_batch_child", "idx_tx_children"),
    ("auto_stop_rules_scope_type", "idx_auto_stop_scope"),
    ("audit_log_no_fork", "audit_log"),
    ("wallet_connections_owner_chain", "idx_wallet_connection"),
    ("evm_nonce_claims_pkey", "evm_nonce_claims"),
    ("evm_nonce_claims_tx_slot", "evm_nonce_claims"),
    ("nonces_pkey", "nonces"),
    ("idempotency_pkey", "idempotency"),
    ("agents_pkey", "agents"),
    ("sessions_pkey", "sessions"),
    ("transactions_pkey", "transactions"),
    ("policies_pkey", "policies"),
    ("auto_stop_rules_pkey", "auto_stop_rules"),
    ("notification_channels_pkey", "notification_channels"),
    ("schema_migrations_pkey", "schema_migrations"),
];

/// Maps a client error to the storage error the daemon branches on.
pub(crate) fn map(e: tokio_postgres::Error) -> StoreError {
    let Some(state) = e.code() else {
        // No SQLSTATE: the client failed. A connection that broke (closed, or an I/O error
        // underneath) is the database being unreachable; anything else — a parameter that does
        // not serialise into its column's type, a row of an unexpected type — is a bug here,
        // and must not hide behind a retryable 503.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io {
            return StoreError::Unavailable { reason: Unavailability::Unreachable };
        }
        tracing::error!("PostgreSQL client error: {e}");
        return StoreError::Pg { sqlstate: String::new(), message: e.to_string() };
    };
    let code = state.code();
    if code.starts_with("08")
        || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(state)
        || *state == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
    {
        return StoreError::Unavailable { reason: Unavailability::Unreachable };
    }
    if *state == SqlState::LOCK_NOT_AVAILABLE || *state == SqlState::QUERY_CANCELED {
        return StoreError::Unavailable { reason: Unavailability::Timeout };
    }
    let db = e.as_db_error();
    if *state == SqlState::UNIQUE_VIOLATION {
        let name = db.and_then(|d| d.constraint()).unwrap_or("");
        let index = CONSTRAINTS.iter().find(|(c, _)| *c == name).map_or("unknown constraint", |(_, i)| *i);
        tracing::error!(constraint = name, "a PostgreSQL backstop constraint fired");
        return StoreError::Unique { index };
    }
    StoreError::Pg { sqlstate: code.to_string(), message: db.map(|d| d.message().to_string()).unwrap_or_default() }
}

/// Whether a fresh transaction may succeed where this one failed (`40001`, `40P01`).
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(s) if *s == SqlState::T_R_SERIALIZATION_FAILURE || *s == SqlState::T_R_DEADLOCK_DETECTED)
}
