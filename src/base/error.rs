//! The stable error-code vocabulary (09-api.md §7) and the trait every domain error implements.
//!
//! Errors come in three layers. Domain outcomes are values (a policy denial is not an error).
//! Each module has its own `thiserror` enum with structured fields, and implements [`Coded`]:
//! which stable [`ErrorCode`] it is, and the `details` that go with it. Only `http/` turns a
//! code into a status, a `retryable` flag, a hint and headers (`http::status`), so nothing below
//! the HTTP layer knows what a status code is.

use serde_json::{Map, Value};

macro_rules! codes {
    ($($variant:ident = $code:literal,)+) => {
        /// Every API error code. The list is complete even where no operation returns a code
        /// yet, so the mapping test covers the whole spec.
        #[allow(dead_code)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            #[cfg(test)]
            pub(crate) const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire spelling.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// Parses a wire spelling.
            pub(crate) fn parse(s: &str) -> Option<ErrorCode> {
                match s { $($code => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    ValidationError = "VALIDATION_ERROR",
    PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    RouteNotFound = "ROUTE_NOT_FOUND",
    MethodNotAllowed = "METHOD_NOT_ALLOWED",
    InvalidHost = "INVALID_HOST",
    RateLimitExceeded = "RATE_LIMIT_EXCEEDED",
    ServiceShuttingDown = "SERVICE_SHUTTING_DOWN",
    TooManyConnections = "TOO_MANY_CONNECTIONS",
    RequestTimeout = "REQUEST_TIMEOUT",
    SystemLocked = "SYSTEM_LOCKED",
    InternalError = "INTERNAL_ERROR",
    NotLeader = "NOT_LEADER",
    DatabaseUnavailable = "DATABASE_UNAVAILABLE",
    MasterPasswordRequired = "MASTER_PASSWORD_REQUIRED",
    InvalidMasterPassword = "INVALID_MASTER_PASSWORD",
    MasterPasswordLocked = "MASTER_PASSWORD_LOCKED",
    AuthTokenMissing = "AUTH_TOKEN_MISSING",
    AuthTokenInvalid = "AUTH_TOKEN_INVALID",
    AuthTokenExpired = "AUTH_TOKEN_EXPIRED",
    SessionRevoked = "SESSION_REVOKED",
    Unauthorized = "UNAUTHORIZED",
    InvalidSignature = "INVALID_SIGNATURE",
    InvalidNonce = "INVALID_NONCE",
    OwnerMismatch = "OWNER_MISMATCH",
    OwnerActionMismatch = "OWNER_ACTION_MISMATCH",
    OwnerAuthRequired = "OWNER_AUTH_REQUIRED",
    RotationTooRecent = "ROTATION_TOO_RECENT",
    SessionNotFound = "SESSION_NOT_FOUND",
    SessionLimitExceeded = "SESSION_LIMIT_EXCEEDED",
    SessionAlreadyRevoked = "SESSION_ALREADY_REVOKED",
    SessionRenewalMismatch = "SESSION_RENEWAL_MISMATCH",
    RenewalLimitReached = "RENEWAL_LIMIT_REACHED",
    SessionAbsoluteLifetimeExceeded = "SESSION_ABSOLUTE_LIFETIME_EXCEEDED",
    RenewalTooEarly = "RENEWAL_TOO_EARLY",
    RenewalConflict = "RENEWAL_CONFLICT",
    AgentNotFound = "AGENT_NOT_FOUND",
    AgentSuspended = "AGENT_SUSPENDED",
    AgentTerminated = "AGENT_TERMINATED",
    AgentHasActiveTransactions = "AGENT_HAS_ACTIVE_TRANSACTIONS",
    DuplicateResource = "DUPLICATE_RESOURCE",
    ChainNotSupported = "CHAIN_NOT_SUPPORTED",
    BackendOperationUnsupported = "BACKEND_OPERATION_UNSUPPORTED",
    KeystoreDecryptFailed = "KEYSTORE_DECRYPT_FAILED",
    UnsupportedKeystoreVersion = "UNSUPPORTED_KEYSTORE_VERSION",
    KeystoreImportFailed = "KEYSTORE_IMPORT_FAILED",
    KeystoreLocked = "KEYSTORE_LOCKED",
    NoOwner = "NO_OWNER",
    OwnerLocked = "OWNER_LOCKED",
    OwnerNotFound = "OWNER_NOT_FOUND",
    WithdrawLockedOnly = "WITHDRAW_LOCKED_ONLY",
    SweepTotalFailure = "SWEEP_TOTAL_FAILURE",
    InsufficientForFee = "INSUFFICIENT_FOR_FEE",
    TxNotFound = "TX_NOT_FOUND",
    TxExpired = "TX_EXPIRED",
    TxAlreadyProcessed = "TX_ALREADY_PROCESSED",
    TxNotPendingApproval = "TX_NOT_PENDING_APPROVAL",
    InvalidStateTransition = "INVALID_STATE_TRANSITION",
    Stage5Timeout = "STAGE5_TIMEOUT",
    PendingTxLimitExceeded = "PENDING_TX_LIMIT_EXCEEDED",
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED",
    IdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS",
    PolicyDenied = "POLICY_DENIED",
    WhitelistDenied = "WHITELIST_DENIED",
    TokenNotAllowed = "TOKEN_NOT_ALLOWED",
    ContractCallDisabled = "CONTRACT_CALL_DISABLED",
    ContractNotWhitelisted = "CONTRACT_NOT_WHITELISTED",
    MethodNotWhitelisted = "METHOD_NOT_WHITELISTED",
    ApproveDisabled = "APPROVE_DISABLED",
    SpenderNotApproved = "SPENDER_NOT_APPROVED",
    ApproveAmountExceeded = "APPROVE_AMOUNT_EXCEEDED",
    UnlimitedApproveBlocked = "UNLIMITED_APPROVE_BLOCKED",
    BatchPolicyViolation = "BATCH_POLICY_VIOLATION",
    InvalidRules = "INVALID_RULES",
    PolicyNotFound = "POLICY_NOT_FOUND",
    InsufficientBalance = "INSUFFICIENT_BALANCE",
    InvalidAddress = "INVALID_ADDRESS",
    TransactionFailed = "TRANSACTION_FAILED",
    TransactionExpired = "TRANSACTION_EXPIRED",
    RpcError = "RPC_ERROR",
    NetworkError = "NETWORK_ERROR",
    SimulationFailed = "SIMULATION_FAILED",
    TokenNotFound = "TOKEN_NOT_FOUND",
    InvalidTokenMint = "INVALID_TOKEN_MINT",
    UnsupportedTokenExtension = "UNSUPPORTED_TOKEN_EXTENSION",
    InsufficientTokenBalance = "INSUFFICIENT_TOKEN_BALANCE",
    BatchNotSupported = "BATCH_NOT_SUPPORTED",
    BatchSizeExceeded = "BATCH_SIZE_EXCEEDED",
    BatchInstructionInvalid = "BATCH_INSTRUCTION_INVALID",
    SolanaBlockhashExpired = "SOLANA_BLOCKHASH_EXPIRED",
    SolanaBlockhashStale = "SOLANA_BLOCKHASH_STALE",
    SolanaProgramError = "SOLANA_PROGRAM_ERROR",
    SolanaInsufficientFee = "SOLANA_INSUFFICIENT_FEE",
    EvmNonceTooLow = "EVM_NONCE_TOO_LOW",
    EvmGasTooLow = "EVM_GAS_TOO_LOW",
    EvmRevert = "EVM_REVERT",
    AdapterNotAvailable = "ADAPTER_NOT_AVAILABLE",
    SignerUnavailable = "SIGNER_UNAVAILABLE",
    SigningRejected = "SIGNING_REJECTED",
    SignerTimeout = "SIGNER_TIMEOUT",
    SignerRefused = "SIGNER_REFUSED",
    KillSwitchActive = "KILL_SWITCH_ACTIVE",
    KillSwitchNotActive = "KILL_SWITCH_NOT_ACTIVE",
    RecoveryAlreadyStarted = "RECOVERY_ALREADY_STARTED",
    RecoveryWaitRequired = "RECOVERY_WAIT_REQUIRED",
    InvalidRecoveryState = "INVALID_RECOVERY_STATE",
    TooManyAttempts = "TOO_MANY_ATTEMPTS",
    MinChannelsRequired = "MIN_CHANNELS_REQUIRED",
    InvalidChannelConfig = "INVALID_CHANNEL_CONFIG",
    ChannelNotFound = "CHANNEL_NOT_FOUND",
    RuleNotFound = "RULE_NOT_FOUND",
}

/// A failure that has a stable code: every domain error type implements this, and the HTTP
/// layer renders any `Coded` value as the error envelope. The message is the `Display` text.
pub(crate) trait Coded: std::fmt::Display {
    /// The stable code.
    fn code(&self) -> ErrorCode;

    /// Structured `details` for the envelope.
    fn details(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Seconds until the same request may succeed (`Retry-After`), when known.
    fn retry_after(&self) -> Option<u64> {
        None
    }
}

/// Builds a `details` map from pairs.
pub(crate) fn details<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Storage failures reach an API caller only as an internal error: the cause is logged, never
/// shown. (Call sites that expect a specific storage outcome — a conflict, a uniqueness clash —
/// match it first and turn it into their own error.)
impl Coded for waiaas_storage::StoreError {
    fn code(&self) -> ErrorCode {
        use waiaas_storage::StoreError as E;
        match self {
            // PostgreSQL (13-postgres-ha.md §8): retryable, and the client may try the other
            // replica; nothing of the operation committed.
            E::Unavailable { .. } => ErrorCode::DatabaseUnavailable,
            E::Fenced { .. } => ErrorCode::NotLeader,
            _ => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            waiaas_storage::StoreError::Unavailable { reason } => details([("reason", Value::from(reason.as_str()))]),
            _ => Map::new(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        self.database_lost().then_some(1)
    }
}
