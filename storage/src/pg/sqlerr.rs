//! What a PostgreSQL error means to the daemon (13-postgres-ha.md §8). Decided by SQLSTATE and
//! the client's own error kind, never by message text.

use tokio_postgres::error::SqlState;

use crate::error::{StoreError, Unavailability};

/// The backstop constraints of the schema, by name: a `23505` names one of them. (`Unique`
/// carries a `&'static str`, like redb's index names.)
const CONSTRAINTS: &[&str] = &[
    "agents_name_live",
    "agents_public_key_live",
    "sessions_token_hash",
    "transactions_tx_hash",
    "transactions_batch_child",
    "auto_stop_rules_scope_type",
    "audit_log_no_fork",
    "wallet_connections_owner_chain",
    "evm_nonce_claims_pkey",
    "evm_nonce_claims_tx_slot",
    "nonces_pkey",
    "idempotency_pkey",
    "schema_migrations_pkey",
];

/// Maps a client error to the storage error the daemon branches on.
pub(crate) fn map(e: tokio_postgres::Error) -> StoreError {
    let Some(state) = e.code() else {
        // No SQLSTATE: the client failed (connect, socket, closed connection).
        return StoreError::Unavailable { reason: Unavailability::Unreachable };
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
        let index = CONSTRAINTS.iter().find(|c| **c == name).copied().unwrap_or("unknown constraint");
        tracing::error!(constraint = name, "a PostgreSQL backstop constraint fired");
        return StoreError::Unique { index };
    }
    StoreError::Pg { sqlstate: code.to_string(), message: db.map(|d| d.message().to_string()).unwrap_or_default() }
}

/// Whether a fresh transaction may succeed where this one failed (`40001`, `40P01`).
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(s) if *s == SqlState::T_R_SERIALIZATION_FAILURE || *s == SqlState::T_R_DEADLOCK_DETECTED)
}
