//! Where a stable [`ErrorCode`] becomes HTTP: status, `retryable` flag and the default hint
//! (09-api.md §7), plus the default `Retry-After`. This is the only place that maps codes to
//! statuses.

use crate::base::error::ErrorCode;

macro_rules! table {
    ($($variant:ident => ($status:literal, $retry:literal, $hint:expr),)+) => {
        /// (HTTP status, retryable, default hint) of a code.
        fn row(code: ErrorCode) -> (u16, bool, Option<&'static str>) {
            match code { $(ErrorCode::$variant => ($status, $retry, $hint)),+ }
        }
    };
}

table! {
    ValidationError => (400, false, Some("Fix the fields listed in details.issues.")),
    PayloadTooLarge => (413, false, None),
    RouteNotFound => (404, false, None),
    MethodNotAllowed => (405, false, None),
    InvalidHost => (403, false, Some("Call the daemon as localhost or 127.0.0.1.")),
    RateLimitExceeded => (429, true, Some("Wait for Retry-After seconds.")),
    ServiceShuttingDown => (503, true, None),
    TooManyConnections => (503, true, Some("Too many open connections; retry after Retry-After seconds.")),
    RequestTimeout => (408, true, Some("Send the whole request body without pausing.")),
    SystemLocked => (503, false, Some("The kill switch is active; the operator must recover.")),
    InternalError => (500, true, None),
    NotLeader => (503, true, Some("This replica is a standby; send the request to the leader (or retry).")),
    DatabaseUnavailable => (503, true, Some("The database is unreachable or busy; retry with the same Idempotency-Key.")),
    MasterPasswordRequired => (401, false, Some("Send X-Master-Password.")),
    InvalidMasterPassword => (401, false, None),
    MasterPasswordLocked => (429, false, Some("Too many wrong passwords; wait 30 minutes.")),
    AuthTokenMissing => (401, false, Some("Send Authorization: Bearer wai_sess_…")),
    AuthTokenInvalid => (401, false, Some("Get a new session: waiaas session create --agent <name>.")),
    AuthTokenExpired => (401, false, Some("Renew before expiry, or get a new session.")),
    SessionRevoked => (401, false, Some("Get a new session.")),
    Unauthorized => (401, false, Some("Send the owner signature payload.")),
    InvalidSignature => (401, false, Some("Sign the exact message again with a fresh nonce.")),
    InvalidNonce => (401, false, Some("Fetch a new nonce from /v1/nonce.")),
    OwnerMismatch => (403, false, Some("Sign with the agent's owner address.")),
    OwnerActionMismatch => (403, false, Some("The signed action or target does not match this request.")),
    OwnerAuthRequired => (403, false, Some("This change needs the current owner's signature.")),
    RotationTooRecent => (429, false, Some("Wait 5 minutes between rotations.")),
    SessionNotFound => (404, false, None),
    SessionLimitExceeded => (403, false, Some("See details.code.")),
    SessionAlreadyRevoked => (409, false, None),
    SessionRenewalMismatch => (403, false, Some("Renew only your own session.")),
    RenewalLimitReached => (403, false, Some("Ask the operator for a new session.")),
    SessionAbsoluteLifetimeExceeded => (403, false, Some("Ask the operator for a new session.")),
    RenewalTooEarly => (403, true, Some("Renew after half of the session lifetime.")),
    RenewalConflict => (409, false, Some("Another renewal won; use its token.")),
    AgentNotFound => (404, false, None),
    AgentSuspended => (409, false, Some("The operator must resume the agent.")),
    AgentTerminated => (410, false, None),
    AgentHasActiveTransactions => (409, true, None),
    DuplicateResource => (409, false, None),
    ChainNotSupported => (400, false, Some("Configure the RPC URL in [rpc].")),
    BackendOperationUnsupported => (400, false, None),
    KeystoreDecryptFailed => (400, false, Some("Wrong password or corrupted file.")),
    UnsupportedKeystoreVersion => (400, false, None),
    KeystoreImportFailed => (400, false, None),
    KeystoreLocked => (503, true, None),
    NoOwner => (404, false, Some("Set an owner: waiaas agent set-owner.")),
    OwnerLocked => (403, false, Some("A verified owner cannot be removed.")),
    OwnerNotFound => (404, false, None),
    WithdrawLockedOnly => (403, false, Some("Verify the owner first: waiaas agent verify-owner.")),
    SweepTotalFailure => (500, true, None),
    InsufficientForFee => (422, false, None),
    TxNotFound => (404, false, None),
    TxExpired => (410, false, None),
    TxAlreadyProcessed => (409, false, None),
    TxNotPendingApproval => (409, false, None),
    InvalidStateTransition => (409, false, None),
    Stage5Timeout => (408, true, Some("Check GET /v1/transactions/:id, then resend.")),
    PendingTxLimitExceeded => (429, true, Some("Wait until queued transactions finish.")),
    IdempotencyKeyReused => (409, false, Some("Use a new Idempotency-Key for a different request.")),
    IdempotencyInProgress => (409, true, None),
    PolicyDenied => (403, false, Some("See details.reason.")),
    WhitelistDenied => (403, false, None),
    TokenNotAllowed => (403, false, Some("The owner must allow this token (ALLOWED_TOKENS).")),
    ContractCallDisabled => (403, false, Some("The owner must create a CONTRACT_WHITELIST policy.")),
    ContractNotWhitelisted => (403, false, None),
    MethodNotWhitelisted => (403, false, None),
    ApproveDisabled => (403, false, Some("The owner must create an APPROVED_SPENDERS policy.")),
    SpenderNotApproved => (403, false, None),
    ApproveAmountExceeded => (403, false, None),
    UnlimitedApproveBlocked => (403, false, None),
    BatchPolicyViolation => (403, false, Some("See details.violations.")),
    InvalidRules => (400, false, None),
    PolicyNotFound => (404, false, None),
    InsufficientBalance => (400, false, None),
    InvalidAddress => (400, false, None),
    TransactionFailed => (500, false, None),
    TransactionExpired => (408, true, None),
    RpcError => (502, true, None),
    NetworkError => (503, true, None),
    SimulationFailed => (422, false, Some("The transaction would fail on chain; see details.logs.")),
    TokenNotFound => (404, false, None),
    InvalidTokenMint => (400, false, None),
    UnsupportedTokenExtension => (400, false, None),
    InsufficientTokenBalance => (400, false, None),
    BatchNotSupported => (400, false, Some("Batches are Solana only.")),
    BatchSizeExceeded => (400, false, Some("2–20 instructions, at most 1232 bytes.")),
    BatchInstructionInvalid => (400, false, None),
    SolanaBlockhashExpired => (408, true, None),
    SolanaBlockhashStale => (408, true, None),
    SolanaProgramError => (400, false, None),
    SolanaInsufficientFee => (408, true, None),
    EvmNonceTooLow => (409, true, None),
    EvmGasTooLow => (400, true, None),
    EvmRevert => (400, false, None),
    AdapterNotAvailable => (503, true, Some("The chain RPC is unreachable or misconfigured.")),
    SignerUnavailable => (503, true, Some("Connect and unlock the Ledger and open the right app.")),
    SigningRejected => (403, false, Some("The request was rejected on the device.")),
    SignerTimeout => (408, true, Some("Confirm on the device within the timeout.")),
    SignerRefused => (422, false, Some("See details.hint (e.g. enable blind signing).")),
    KillSwitchActive => (409, false, None),
    KillSwitchNotActive => (409, false, None),
    RecoveryAlreadyStarted => (409, false, None),
    RecoveryWaitRequired => (409, true, Some("Call again after recoveryEligibleAt.")),
    InvalidRecoveryState => (409, false, None),
    TooManyAttempts => (429, false, Some("Wait 30 minutes.")),
    MinChannelsRequired => (400, false, Some("Add another channel before disabling this one.")),
    InvalidChannelConfig => (400, false, None),
    ChannelNotFound => (404, false, None),
    RuleNotFound => (404, false, None),
}

/// The HTTP status of a code.
pub(crate) fn status(code: ErrorCode) -> u16 {
    row(code).0
}

/// Whether the same request may succeed later unchanged.
pub(crate) fn retryable(code: ErrorCode) -> bool {
    row(code).1
}

/// The default hint for an agent.
pub(crate) fn hint(code: ErrorCode) -> Option<&'static str> {
    row(code).2
}

/// `Retry-After` on retryable 503s (5, or 2 for `NETWORK_ERROR`) and shutdown (30).
pub(crate) fn default_retry_after(code: ErrorCode) -> Option<u64> {
    match code {
        ErrorCode::ServiceShuttingDown => Some(30),
        ErrorCode::NotLeader | ErrorCode::DatabaseUnavailable => Some(1),
        ErrorCode::NetworkError => Some(2),
        c if status(c) == 503 && retryable(c) => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ACC-228: every code of 09-api.md §7 maps to exactly the listed status and retryable flag.
    /// The table is a verbatim copy of the spec in fixtures/api/error-codes.tsv.
    #[test]
    fn every_spec_code_maps_to_its_status_and_retryable_flag() {
        let table = include_str!("../../fixtures/api/error-codes.tsv");
        let mut seen = 0;
        for line in table.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            let code = ErrorCode::parse(cols[0]).unwrap_or_else(|| panic!("{} missing from ErrorCode", cols[0]));
            assert_eq!(code.as_str(), cols[0]);
            assert_eq!(status(code).to_string(), cols[1], "{}", cols[0]);
            assert_eq!(retryable(code), cols[2] == "yes", "{}", cols[0]);
            seen += 1;
        }
        assert_eq!(seen, ErrorCode::ALL.len(), "the enum has codes the spec does not list");
    }
}
