//! Every audit event the daemon writes, as one closed enum (02-storage.md §7, and the event each
//! operation of the spec names). Code that appends an audit row names a variant; the row stores
//! its spelling (`as_str`), and a reader filters by it. No event name is written anywhere else
//! (`scripts/check-layers.sh` refuses an `AuditEvent::new("…")` literal).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::enums::UnknownVariant;

crate::enums::closed_enum!(
    /// The name of an audit event.
    AuditEventType {
        // The daemon's life.
        DaemonStarted = "DAEMON_STARTED",
        DaemonShutdownInitiated = "DAEMON_SHUTDOWN_INITIATED",
        DaemonStopped = "DAEMON_STOPPED",
        DaemonForcedShutdown = "DAEMON_FORCED_SHUTDOWN",
        ConfigReloaded = "CONFIG_RELOADED",
        ConfigReloadFailed = "CONFIG_RELOAD_FAILED",
        DevClockAdvanced = "DEV_CLOCK_ADVANCED",
        BackupCreated = "BACKUP_CREATED",
        // Keys and secrets.
        KeystoreLocked = "KEYSTORE_LOCKED",
        KeystoreUnlocked = "KEYSTORE_UNLOCKED",
        KeystoreRestored = "KEYSTORE_RESTORED",
        MasterPasswordChanged = "MASTER_PASSWORD_CHANGED",
        AgentKeyExported = "AGENT_KEY_EXPORTED",
        AgentKeyImported = "AGENT_KEY_IMPORTED",
        SecretRotated = "SECRET_ROTATED",
        PreviousSecretExpired = "PREVIOUS_SECRET_EXPIRED",
        // Authentication and rate limits.
        AuthFailed = "AUTH_FAILED",
        MasterAuthLocked = "MASTER_AUTH_LOCKED",
        RateLimitExceeded = "RATE_LIMIT_EXCEEDED",
        // Agents and owners.
        AgentCreated = "AGENT_CREATED",
        AgentUpdated = "AGENT_UPDATED",
        AgentSuspended = "AGENT_SUSPENDED",
        AgentResumed = "AGENT_RESUMED",
        AgentTerminated = "AGENT_TERMINATED",
        OwnerRegistered = "OWNER_REGISTERED",
        OwnerAddressChanged = "OWNER_ADDRESS_CHANGED",
        OwnerRemoved = "OWNER_REMOVED",
        OwnerVerified = "OWNER_VERIFIED",
        OwnerConnected = "OWNER_CONNECTED",
        OwnerDisconnected = "OWNER_DISCONNECTED",
        OwnerConsoleLogin = "OWNER_CONSOLE_LOGIN",
        // Sessions.
        SessionIssued = "SESSION_ISSUED",
        SessionRenewed = "SESSION_RENEWED",
        SessionRevoked = "SESSION_REVOKED",
        SessionExpired = "SESSION_EXPIRED",
        SessionCleanup = "SESSION_CLEANUP",
        // Transactions.
        TxRequested = "TX_REQUESTED",
        TxSessionCheck = "TX_SESSION_CHECK",
        PolicyViolation = "POLICY_VIOLATION",
        TxQueued = "TX_QUEUED",
        TxDowngraded = "TX_DOWNGRADED",
        TxApproved = "TX_APPROVED",
        TxCancelled = "TX_CANCELLED",
        TxSubmitted = "TX_SUBMITTED",
        FeeBumpAttempted = "FEE_BUMP_ATTEMPTED",
        TxConfirmed = "TX_CONFIRMED",
        TxFailed = "TX_FAILED",
        TxExpired = "TX_EXPIRED",
        // Policies and notification channels.
        PolicyCreated = "POLICY_CREATED",
        PolicyUpdated = "POLICY_UPDATED",
        PolicyDeleted = "POLICY_DELETED",
        NotificationChannelCreated = "NOTIFICATION_CHANNEL_CREATED",
        NotificationChannelUpdated = "NOTIFICATION_CHANNEL_UPDATED",
        NotificationChannelDisabled = "NOTIFICATION_CHANNEL_DISABLED",
        NotificationAllFailed = "NOTIFICATION_ALL_FAILED",
        NotificationBroadcastFailed = "NOTIFICATION_BROADCAST_FAILED",
        // Emergency controls.
        KillSwitchActivated = "KILL_SWITCH_ACTIVATED",
        KillSwitchRecoveryStarted = "KILL_SWITCH_RECOVERY_STARTED",
        KillSwitchRecoveryFailed = "KILL_SWITCH_RECOVERY_FAILED",
        KillSwitchRecovered = "KILL_SWITCH_RECOVERED",
        AutoStopWarn = "AUTO_STOP_WARN",
        AutoStopSuspend = "AUTO_STOP_SUSPEND",
        AutoStopKillSwitch = "AUTO_STOP_KILL_SWITCH",
        AutoStopRuleCreated = "AUTO_STOP_RULE_CREATED",
        AutoStopRuleUpdated = "AUTO_STOP_RULE_UPDATED",
        AutoStopRuleDeleted = "AUTO_STOP_RULE_DELETED",
        FundWithdrawn = "FUND_WITHDRAWN",
        FundPartiallyWithdrawn = "FUND_PARTIALLY_WITHDRAWN",
        FundWithdrawalFailed = "FUND_WITHDRAWAL_FAILED",
        // Leadership and nonces under PostgreSQL (13-postgres-ha.md §6).
        LeaderAcquired = "LEADER_ACQUIRED",
        LeaderReleased = "LEADER_RELEASED",
        NonceResynced = "NONCE_RESYNCED",
        NonceGapFilled = "NONCE_GAP_FILLED",
    }
);
