//! Closed enums of the data model (02-storage.md §2).
//!
//! Every enum serialises to exactly the spelling the spec gives, and deserialising any other
//! spelling fails. That is the storage boundary's replacement for SQL `CHECK` constraints: a
//! record holding an invalid value can neither be constructed nor read back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a serde-backed enum with `as_str`, `Display`, `FromStr` and `ALL`.
macro_rules! closed_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $text, "`")] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The serialised spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: stringify!($name), value: s.to_string() }),
                }
            }
        }
    };
}

pub(crate) use closed_enum;

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}")]
pub struct UnknownVariant {
    /// The enum's name.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
}

closed_enum!(
    /// The chain family of an agent.
    Chain { Solana = "solana", Ethereum = "ethereum" }
);
closed_enum!(
    /// A network of a chain; `Devnet` exists only for Solana.
    Network { Mainnet = "mainnet", Devnet = "devnet", Testnet = "testnet" }
);
closed_enum!(
    /// Where an agent's key lives.
    Backend { Keystore = "keystore", Ledger = "ledger" }
);
closed_enum!(
    /// Lifecycle of an agent. `Terminated` is terminal.
    AgentStatus { Active = "ACTIVE", Suspended = "SUSPENDED", Terminated = "TERMINATED" }
);
closed_enum!(
    /// What a transaction request does.
    TxType {
        Transfer = "TRANSFER",
        TokenTransfer = "TOKEN_TRANSFER",
        ContractCall = "CONTRACT_CALL",
        Approve = "APPROVE",
        Batch = "BATCH",
    }
);
closed_enum!(
    /// Transaction state (06-pipeline.md §3). The last four are terminal.
    TxStatus {
        Pending = "PENDING",
        Queued = "QUEUED",
        Executing = "EXECUTING",
        Submitted = "SUBMITTED",
        Confirmed = "CONFIRMED",
        Failed = "FAILED",
        Cancelled = "CANCELLED",
        Expired = "EXPIRED",
    }
);
closed_enum!(
    /// Oversight tier, ordered INSTANT < NOTIFY < DELAY < APPROVAL.
    Tier { Instant = "INSTANT", Notify = "NOTIFY", Delay = "DELAY", Approval = "APPROVAL" }
);
closed_enum!(
    /// Policy rule types (07-policy.md).
    PolicyType {
        SpendingLimit = "SPENDING_LIMIT",
        Whitelist = "WHITELIST",
        TimeRestriction = "TIME_RESTRICTION",
        RateLimit = "RATE_LIMIT",
        AllowedTokens = "ALLOWED_TOKENS",
        ContractWhitelist = "CONTRACT_WHITELIST",
        MethodWhitelist = "METHOD_WHITELIST",
        ApprovedSpenders = "APPROVED_SPENDERS",
        ApproveAmountLimit = "APPROVE_AMOUNT_LIMIT",
        ApproveTierOverride = "APPROVE_TIER_OVERRIDE",
    }
);
closed_enum!(
    /// Severity of an audit row.
    AuditSeverity { Info = "info", Warning = "warning", Critical = "critical" }
);
closed_enum!(
    /// Notification channel kinds.
    ChannelType {
        Telegram = "TELEGRAM",
        Discord = "DISCORD",
        Ntfy = "NTFY",
        Slack = "SLACK",
        Webhook = "WEBHOOK",
    }
);
closed_enum!(
    /// Notification levels.
    NotificationLevel { Info = "INFO", Warning = "WARNING", Critical = "CRITICAL" }
);
closed_enum!(
    /// Outcome of one notification attempt.
    NotificationStatus {
        Delivered = "DELIVERED",
        Failed = "FAILED",
        RateLimited = "RATE_LIMITED",
        AllFailed = "ALL_FAILED",
    }
);
closed_enum!(
    /// System-wide kill switch state.
    KillSwitchStatus { Normal = "NORMAL", Activated = "ACTIVATED", Recovering = "RECOVERING" }
);
closed_enum!(
    /// Who activated the kill switch.
    KillSwitchActor { Owner = "owner", Admin = "admin", AutoStop = "auto_stop", System = "system" }
);
closed_enum!(
    /// AutoStop rule kinds (08-killswitch-autostop.md §6).
    AutoStopRuleType {
        ConsecutiveFailures = "CONSECUTIVE_FAILURES",
        TimeRestriction = "TIME_RESTRICTION",
        DailyLimitThreshold = "DAILY_LIMIT_THRESHOLD",
        HourlyRate = "HOURLY_RATE",
        AnomalyPattern = "ANOMALY_PATTERN",
    }
);
closed_enum!(
    /// What an AutoStop rule does when it fires.
    AutoStopAction { Warn = "WARN", SuspendAgent = "SUSPEND_AGENT", KillSwitch = "KILL_SWITCH" }
);
closed_enum!(
    /// Owner state, derived from the agent row and never stored.
    OwnerState { None = "NONE", Grace = "GRACE", Locked = "LOCKED" }
);

impl Network {
    /// Whether this network exists on `chain` (`devnet` is Solana only).
    pub fn valid_for(self, chain: Chain) -> bool {
        !(self == Network::Devnet && chain == Chain::Ethereum)
    }
}

impl TxStatus {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TxStatus::Confirmed | TxStatus::Failed | TxStatus::Cancelled | TxStatus::Expired)
    }

    /// Statuses kept in `idx_tx_active`.
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// The legal transition table of 06-pipeline.md §3.2.
    pub fn can_transition_to(self, to: TxStatus) -> bool {
        use TxStatus::*;
        matches!(
            (self, to),
            (Pending, Queued | Cancelled | Failed | Expired)
                | (Queued, Executing | Cancelled | Expired | Failed)
                | (Executing, Submitted | Failed)
                | (Submitted, Confirmed | Failed | Expired)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_bad_values_fail() {
        for s in TxStatus::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<TxStatus>(&json).unwrap(), *s);
            assert_eq!(s.as_str().parse::<TxStatus>().unwrap(), *s);
        }
        assert!(serde_json::from_str::<TxStatus>("\"BOGUS\"").is_err());
        assert!(serde_json::from_str::<Chain>("\"Solana\"").is_err());
        assert!("bitcoin".parse::<Chain>().is_err());
    }

    #[test]
    fn tiers_are_ordered() {
        assert!(Tier::Instant < Tier::Notify && Tier::Notify < Tier::Delay && Tier::Delay < Tier::Approval);
    }

    #[test]
    fn terminal_statuses_have_no_exits() {
        for from in TxStatus::ALL {
            for to in TxStatus::ALL {
                if from.is_terminal() {
                    assert!(!from.can_transition_to(*to), "{from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn devnet_is_solana_only() {
        assert!(Network::Devnet.valid_for(Chain::Solana));
        assert!(!Network::Devnet.valid_for(Chain::Ethereum));
        assert!(Network::Testnet.valid_for(Chain::Ethereum));
    }
}
