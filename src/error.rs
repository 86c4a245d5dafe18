//! The stable API error codes (09-api.md §7) and the error value handlers return.
//!
//! Errors come in three layers: domain outcomes are values (a policy denial is not an error),
//! each crate has its own `thiserror` enum with structured fields, and this one `Copy` enum is
//! what the HTTP layer turns into a status, a `retryable` flag and a hint. Call sites map their
//! crate errors to a code here, because the right code depends on the operation.

use serde_json::{Map, Value};

macro_rules! codes {
    ($($variant:ident = ($code:literal, $status:literal, $retry:literal, $hint:expr),)+) => {
        /// Every API error code. The table is complete even where no handler returns a code
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

            /// HTTP status.
            pub(crate) fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }

            /// Whether the same request may succeed later unchanged.
            pub(crate) fn retryable(self) -> bool {
                match self { $(ErrorCode::$variant => $retry),+ }
            }

            /// The default hint for an agent.
            pub(crate) fn hint(self) -> Option<&'static str> {
                match self { $(ErrorCode::$variant => $hint),+ }
            }

            /// Parses a wire spelling.
            pub(crate) fn parse(s: &str) -> Option<ErrorCode> {
                match s { $($code => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    ValidationError = ("VALIDATION_ERROR", 400, false, Some("Fix the fields listed in details.issues.")),
    PayloadTooLarge = ("PAYLOAD_TOO_LARGE", 413, false, None),
    RouteNotFound = ("ROUTE_NOT_FOUND", 404, false, None),
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", 405, false, None),
    InvalidHost = ("INVALID_HOST", 403, false, Some("Call the daemon as localhost or 127.0.0.1.")),
    RateLimitExceeded = ("RATE_LIMIT_EXCEEDED", 429, true, Some("Wait for Retry-After seconds.")),
    ServiceShuttingDown = ("SERVICE_SHUTTING_DOWN", 503, true, None),
    SystemLocked = ("SYSTEM_LOCKED", 503, false, Some("The kill switch is active; the operator must recover.")),
    InternalError = ("INTERNAL_ERROR", 500, true, None),
    MasterPasswordRequired = ("MASTER_PASSWORD_REQUIRED", 401, false, Some("Send X-Master-Password.")),
    InvalidMasterPassword = ("INVALID_MASTER_PASSWORD", 401, false, None),
    MasterPasswordLocked = ("MASTER_PASSWORD_LOCKED", 429, false, Some("Too many wrong passwords; wait 30 minutes.")),
    AuthTokenMissing = ("AUTH_TOKEN_MISSING", 401, false, Some("Send Authorization: Bearer wai_sess_…")),
    AuthTokenInvalid = ("AUTH_TOKEN_INVALID", 401, false, Some("Get a new session: waiaas session create --agent <name>.")),
    AuthTokenExpired = ("AUTH_TOKEN_EXPIRED", 401, false, Some("Renew before expiry, or get a new session.")),
    SessionRevoked = ("SESSION_REVOKED", 401, false, Some("Get a new session.")),
    Unauthorized = ("UNAUTHORIZED", 401, false, Some("Send the owner signature payload.")),
    InvalidSignature = ("INVALID_SIGNATURE", 401, false, Some("Sign the exact message again with a fresh nonce.")),
    InvalidNonce = ("INVALID_NONCE", 401, false, Some("Fetch a new nonce from /v1/nonce.")),
    OwnerMismatch = ("OWNER_MISMATCH", 403, false, Some("Sign with the agent's owner address.")),
    OwnerActionMismatch = ("OWNER_ACTION_MISMATCH", 403, false, Some("The signed action or target does not match this request.")),
    OwnerAuthRequired = ("OWNER_AUTH_REQUIRED", 403, false, Some("This change needs the current owner's signature.")),
    RotationTooRecent = ("ROTATION_TOO_RECENT", 429, false, Some("Wait 5 minutes between rotations.")),
    SessionNotFound = ("SESSION_NOT_FOUND", 404, false, None),
    SessionLimitExceeded = ("SESSION_LIMIT_EXCEEDED", 403, false, Some("See details.code.")),
    SessionAlreadyRevoked = ("SESSION_ALREADY_REVOKED", 409, false, None),
    SessionRenewalMismatch = ("SESSION_RENEWAL_MISMATCH", 403, false, Some("Renew only your own session.")),
    RenewalLimitReached = ("RENEWAL_LIMIT_REACHED", 403, false, Some("Ask the operator for a new session.")),
    SessionAbsoluteLifetimeExceeded = ("SESSION_ABSOLUTE_LIFETIME_EXCEEDED", 403, false, Some("Ask the operator for a new session.")),
    RenewalTooEarly = ("RENEWAL_TOO_EARLY", 403, true, Some("Renew after half of the session lifetime.")),
    RenewalConflict = ("RENEWAL_CONFLICT", 409, false, Some("Another renewal won; use its token.")),
    AgentNotFound = ("AGENT_NOT_FOUND", 404, false, None),
    AgentSuspended = ("AGENT_SUSPENDED", 409, false, Some("The operator must resume the agent.")),
    AgentTerminated = ("AGENT_TERMINATED", 410, false, None),
    AgentHasActiveTransactions = ("AGENT_HAS_ACTIVE_TRANSACTIONS", 409, true, None),
    DuplicateResource = ("DUPLICATE_RESOURCE", 409, false, None),
    ChainNotSupported = ("CHAIN_NOT_SUPPORTED", 400, false, Some("Configure the RPC URL in [rpc].")),
    BackendOperationUnsupported = ("BACKEND_OPERATION_UNSUPPORTED", 400, false, None),
    KeystoreDecryptFailed = ("KEYSTORE_DECRYPT_FAILED", 400, false, Some("Wrong password or corrupted file.")),
    UnsupportedKeystoreVersion = ("UNSUPPORTED_KEYSTORE_VERSION", 400, false, None),
    KeystoreImportFailed = ("KEYSTORE_IMPORT_FAILED", 400, false, None),
    KeystoreLocked = ("KEYSTORE_LOCKED", 503, true, None),
    NoOwner = ("NO_OWNER", 404, false, Some("Set an owner: waiaas agent set-owner.")),
    OwnerLocked = ("OWNER_LOCKED", 403, false, Some("A verified owner cannot be removed.")),
    OwnerNotFound = ("OWNER_NOT_FOUND", 404, false, None),
    WithdrawLockedOnly = ("WITHDRAW_LOCKED_ONLY", 403, false, Some("Verify the owner first: waiaas agent verify-owner.")),
    SweepTotalFailure = ("SWEEP_TOTAL_FAILURE", 500, true, None),
    InsufficientForFee = ("INSUFFICIENT_FOR_FEE", 422, false, None),
    TxNotFound = ("TX_NOT_FOUND", 404, false, None),
    TxExpired = ("TX_EXPIRED", 410, false, None),
    TxAlreadyProcessed = ("TX_ALREADY_PROCESSED", 409, false, None),
    TxNotPendingApproval = ("TX_NOT_PENDING_APPROVAL", 409, false, None),
    InvalidStateTransition = ("INVALID_STATE_TRANSITION", 409, false, None),
    Stage5Timeout = ("STAGE5_TIMEOUT", 408, true, Some("Check GET /v1/transactions/:id, then resend.")),
    PendingTxLimitExceeded = ("PENDING_TX_LIMIT_EXCEEDED", 429, true, Some("Wait until queued transactions finish.")),
    IdempotencyKeyReused = ("IDEMPOTENCY_KEY_REUSED", 409, false, Some("Use a new Idempotency-Key for a different request.")),
    IdempotencyInProgress = ("IDEMPOTENCY_IN_PROGRESS", 409, true, None),
    PolicyDenied = ("POLICY_DENIED", 403, false, Some("See details.reason.")),
    WhitelistDenied = ("WHITELIST_DENIED", 403, false, None),
    TokenNotAllowed = ("TOKEN_NOT_ALLOWED", 403, false, Some("The owner must allow this token (ALLOWED_TOKENS).")),
    ContractCallDisabled = ("CONTRACT_CALL_DISABLED", 403, false, Some("The owner must create a CONTRACT_WHITELIST policy.")),
    ContractNotWhitelisted = ("CONTRACT_NOT_WHITELISTED", 403, false, None),
    MethodNotWhitelisted = ("METHOD_NOT_WHITELISTED", 403, false, None),
    ApproveDisabled = ("APPROVE_DISABLED", 403, false, Some("The owner must create an APPROVED_SPENDERS policy.")),
    SpenderNotApproved = ("SPENDER_NOT_APPROVED", 403, false, None),
    ApproveAmountExceeded = ("APPROVE_AMOUNT_EXCEEDED", 403, false, None),
    UnlimitedApproveBlocked = ("UNLIMITED_APPROVE_BLOCKED", 403, false, None),
    BatchPolicyViolation = ("BATCH_POLICY_VIOLATION", 403, false, Some("See details.violations.")),
    InvalidRules = ("INVALID_RULES", 400, false, None),
    PolicyNotFound = ("POLICY_NOT_FOUND", 404, false, None),
    InsufficientBalance = ("INSUFFICIENT_BALANCE", 400, false, None),
    InvalidAddress = ("INVALID_ADDRESS", 400, false, None),
    TransactionFailed = ("TRANSACTION_FAILED", 500, false, None),
    TransactionExpired = ("TRANSACTION_EXPIRED", 408, true, None),
    RpcError = ("RPC_ERROR", 502, true, None),
    NetworkError = ("NETWORK_ERROR", 503, true, None),
    SimulationFailed = ("SIMULATION_FAILED", 422, false, Some("The transaction would fail on chain; see details.logs.")),
    TokenNotFound = ("TOKEN_NOT_FOUND", 404, false, None),
    InvalidTokenMint = ("INVALID_TOKEN_MINT", 400, false, None),
    UnsupportedTokenExtension = ("UNSUPPORTED_TOKEN_EXTENSION", 400, false, None),
    InsufficientTokenBalance = ("INSUFFICIENT_TOKEN_BALANCE", 400, false, None),
    BatchNotSupported = ("BATCH_NOT_SUPPORTED", 400, false, Some("Batches are Solana only.")),
    BatchSizeExceeded = ("BATCH_SIZE_EXCEEDED", 400, false, Some("2–20 instructions, at most 1232 bytes.")),
    BatchInstructionInvalid = ("BATCH_INSTRUCTION_INVALID", 400, false, None),
    SolanaBlockhashExpired = ("SOLANA_BLOCKHASH_EXPIRED", 408, true, None),
    SolanaBlockhashStale = ("SOLANA_BLOCKHASH_STALE", 408, true, None),
    SolanaProgramError = ("SOLANA_PROGRAM_ERROR", 400, false, None),
    SolanaInsufficientFee = ("SOLANA_INSUFFICIENT_FEE", 408, true, None),
    EvmNonceTooLow = ("EVM_NONCE_TOO_LOW", 409, true, None),
    EvmGasTooLow = ("EVM_GAS_TOO_LOW", 400, true, None),
    EvmRevert = ("EVM_REVERT", 400, false, None),
    AdapterNotAvailable = ("ADAPTER_NOT_AVAILABLE", 503, true, Some("The chain RPC is unreachable or misconfigured.")),
    SignerUnavailable = ("SIGNER_UNAVAILABLE", 503, true, Some("Connect and unlock the Ledger and open the right app.")),
    SigningRejected = ("SIGNING_REJECTED", 403, false, Some("The request was rejected on the device.")),
    SignerTimeout = ("SIGNER_TIMEOUT", 408, true, Some("Confirm on the device within the timeout.")),
    SignerRefused = ("SIGNER_REFUSED", 422, false, Some("See details.hint (e.g. enable blind signing).")),
    KillSwitchActive = ("KILL_SWITCH_ACTIVE", 409, false, None),
    KillSwitchNotActive = ("KILL_SWITCH_NOT_ACTIVE", 409, false, None),
    RecoveryAlreadyStarted = ("RECOVERY_ALREADY_STARTED", 409, false, None),
    RecoveryWaitRequired = ("RECOVERY_WAIT_REQUIRED", 409, true, Some("Call again after recoveryEligibleAt.")),
    InvalidRecoveryState = ("INVALID_RECOVERY_STATE", 409, false, None),
    TooManyAttempts = ("TOO_MANY_ATTEMPTS", 429, false, Some("Wait 30 minutes.")),
    MinChannelsRequired = ("MIN_CHANNELS_REQUIRED", 400, false, Some("Add another channel before disabling this one.")),
    InvalidChannelConfig = ("INVALID_CHANNEL_CONFIG", 400, false, None),
    ChannelNotFound = ("CHANNEL_NOT_FOUND", 404, false, None),
    RuleNotFound = ("RULE_NOT_FOUND", 404, false, None),
}

/// An API error: a code plus the message and details of this occurrence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    // Rarely set; boxed so `Result<_, ApiError>` stays small.
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Extra {
    details: Option<Map<String, Value>>,
    hint: Option<String>,
    retry_after: Option<u64>,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), extra: None }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Adds one `details` field.
    pub(crate) fn detail(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.extra().details.get_or_insert_with(Map::new).insert(key.to_string(), value.into());
        self
    }

    /// Sets `Retry-After` (seconds).
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.extra().retry_after = Some(secs);
        self
    }

    /// Adds a response header (e.g. `Allow` on 405).
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.extra().headers.push((name, value.into()));
        self
    }

    pub(crate) fn details(&self) -> Option<&Map<String, Value>> {
        self.extra.as_ref().and_then(|e| e.details.as_ref())
    }

    /// This occurrence's hint, else the code's default hint.
    pub(crate) fn hint_text(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.hint.as_deref()).or(self.code.hint())
    }

    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.retry_after)
    }

    pub(crate) fn headers(&self) -> &[(&'static str, String)] {
        self.extra.as_ref().map(|e| e.headers.as_slice()).unwrap_or(&[])
    }

    /// 500 with no internals in the body; the cause is logged by the caller with the request id.
    pub(crate) fn internal() -> ApiError {
        ApiError::new(ErrorCode::InternalError, "Internal server error")
    }

    /// A single-issue validation error.
    pub(crate) fn validation(path: &str, code: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(ErrorCode::ValidationError, format!("Validation failed: {message}"))
            .detail("issues", serde_json::json!([{"path": path, "code": code, "message": message}]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ACC-228: every code of 09-api.md §7 maps to exactly the listed status and retryable flag.
    /// The table is a verbatim copy of the spec in fixtures/api/error-codes.tsv.
    #[test]
    fn every_spec_code_maps_to_its_status_and_retryable_flag() {
        let table = include_str!("../fixtures/api/error-codes.tsv");
        let mut seen = 0;
        for line in table.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            let code = ErrorCode::parse(cols[0]).unwrap_or_else(|| panic!("{} missing from ErrorCode", cols[0]));
            assert_eq!(code.as_str(), cols[0]);
            assert_eq!(code.status().to_string(), cols[1], "{}", cols[0]);
            assert_eq!(code.retryable(), cols[2] == "yes", "{}", cols[0]);
            seen += 1;
        }
        assert_eq!(seen, ErrorCode::ALL.len(), "the enum has codes the spec does not list");
    }
}
