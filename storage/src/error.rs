//! Storage errors (02-storage.md §11).
//!
//! Callers branch on these variants (a `Conflict` becomes 409, `NotFound` 404, …); the daemon
//! maps them to API codes at each call site because the right code depends on the operation.
//! `Redb` and `Serde` are internal failures and surface as 500 `INTERNAL_ERROR`.

/// Why a storage operation did not apply. When an operation returns an error, none of its
/// effects were committed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row with that key.
    #[error("{table} {id} not found")]
    NotFound {
        /// Table name.
        table: &'static str,
        /// The key looked up.
        id: String,
    },
    /// A compare-and-swap found another state than the caller expected.
    #[error("conflict: expected {expected}, found {actual}")]
    Conflict {
        /// What the caller expected.
        expected: String,
        /// What the row holds.
        actual: String,
    },
    /// A unique index already holds the key for another row.
    #[error("unique constraint violated on {index}")]
    Unique {
        /// The index name.
        index: &'static str,
    },
    /// A delete refused by a `restrict` rule.
    #[error("restricted: {reason}")]
    Restricted {
        /// Why.
        reason: &'static str,
    },
    /// A count limit was reached.
    #[error("limit reached: {what}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// The current count.
        current: u64,
    },
    /// A record violates a cross-field invariant.
    #[error("invariant violated: {0}")]
    Invariant(&'static str),
    /// The operation's deadline has passed.
    #[error("expired")]
    Expired,
    /// The transaction is not in a tier that waits for the owner.
    #[error("transaction is not pending approval")]
    NotPendingApproval,
    /// The transaction was already decided.
    #[error("transaction already processed")]
    AlreadyProcessed,
    /// Disabling this channel would leave fewer than `min_channels`.
    #[error("minimum number of notification channels reached")]
    MinChannels,
    /// The file is not a usable waiaas database.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// redb failed.
    #[error("database error: {0}")]
    Redb(#[from] redb::Error),
    /// A stored value does not deserialise (e.g. an invalid enum value written offline).
    #[error("corrupt record in {table}: {source}")]
    Serde {
        /// Table name.
        table: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// Filesystem error outside redb (snapshots).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The database cannot be reached, or did not answer in time (PostgreSQL, 13-postgres-ha.md
    /// §8). Retryable: 503 `DATABASE_UNAVAILABLE`. Nothing of the operation committed — or its
    /// acknowledgement was lost, which the gates of §8 treat the same way.
    #[error("database unavailable ({reason})")]
    Unavailable {
        /// Unreachable or timed out.
        reason: Unavailability,
    },
    /// This replica's leader epoch is not the database's: another replica took over, and this
    /// write was refused before it touched anything (§6). 503 `NOT_LEADER`.
    #[error("fenced: this replica led epoch {mine}, the database is at epoch {current}")]
    Fenced {
        /// This replica's epoch (0 = standby).
        mine: u64,
        /// The database's epoch.
        current: u64,
    },
    /// The operation has no implementation on this engine yet (the PostgreSQL engine is built
    /// operation group by operation group; the daemon refuses to start on it until it is whole).
    #[error("{operation} is not implemented on this storage engine yet")]
    Unsupported {
        /// The operation.
        operation: &'static str,
    },
    /// Any other PostgreSQL error: a bug or an operator problem (500).
    #[error("PostgreSQL error {sqlstate}: {message}")]
    Pg {
        /// The SQLSTATE (empty when the error came from the client, not the server).
        sqlstate: String,
        /// The server's or the client's message.
        message: String,
    },
}

/// Why the database is unavailable (`details.reason` of `DATABASE_UNAVAILABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    /// Connection refused or lost, the pool wait ran out, or the server is shutting down.
    Unreachable,
    /// A lock wait or a statement ran past its timeout.
    Timeout,
}

impl Unavailability {
    /// `unreachable` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailability::Unreachable => "unreachable",
            Unavailability::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Unavailability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Schema-version problems found when opening a database (§9).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No `meta.schema_version`.
    #[error("not a waiaas database (no schema version)")]
    NotWaiaas,
    /// Written by a newer binary.
    #[error("database created by a newer waiaas (schema v{found}, this binary supports v{supported})")]
    Newer {
        /// Version in the file.
        found: u64,
        /// Version this binary writes.
        supported: u64,
    },
    /// An upgrade step failed; the file is unchanged.
    #[error("migration from schema v{from} failed: {reason}")]
    Migration {
        /// Version the step started from.
        from: u64,
        /// Why it failed.
        reason: String,
    },
    /// PostgreSQL: no `schema_migrations` table (13-postgres-ha.md §7; exit 3).
    #[error("Database not initialised. Run 'waiaas db migrate' and 'waiaas init'.")]
    NotInitialised,
    /// PostgreSQL: migrations of this binary are not applied yet (exit 1).
    #[error("database schema is v{applied}, this binary needs v{needed}: Run 'waiaas db migrate'")]
    Pending {
        /// Highest applied version.
        applied: u32,
        /// Highest version this binary embeds.
        needed: u32,
    },
    /// PostgreSQL: an applied migration's checksum differs from the embedded file (exit 1).
    #[error("Migration V{version:04} was modified (applied checksum differs from this binary's file)")]
    Modified {
        /// The migration.
        version: u32,
    },
    /// PostgreSQL: an applied `contract` migration this binary does not know (exit 1).
    #[error("database created by a newer waiaas (applied contract migration V{version:04} is unknown to this binary)")]
    NewerContract {
        /// The migration.
        version: u32,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl StoreError {
    /// PostgreSQL (13-postgres-ha.md §8): the database did not answer, or this replica no
    /// longer leads. A step that meets it stops where it is — the row is the next leader's
    /// recovery's — and the caller gets a retryable 503.
    pub fn database_lost(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Fenced { .. })
    }

    /// A `Conflict` from two displayable states.
    pub fn conflict(expected: impl std::fmt::Display, actual: impl std::fmt::Display) -> StoreError {
        StoreError::Conflict { expected: expected.to_string(), actual: actual.to_string() }
    }

    /// A `NotFound` for a UUID key.
    pub fn not_found(table: &'static str, id: impl std::fmt::Display) -> StoreError {
        StoreError::NotFound { table, id: id.to_string() }
    }
}
