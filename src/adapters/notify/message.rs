//! The notification model (10-notifications-clients.md §1, §3): events, their levels and how
//! they are delivered, and one constructor per event so every emitter builds the same text.
//!
//! Content rules: no keys, seeds, passwords, session tokens or channel secrets; addresses
//! shortened; amounts in human units; approval and rejection named as CLI commands, never links.

use serde_json::{Map, Value, json};
use uuid::Uuid;
use waiaas_storage::{AgentRecord, AuditEventType, Chain, NotificationLevel, SessionRecord, TransactionRecord, TxType};

use crate::base::clock::iso;
use crate::base::units::format_units;

/// Every event a channel can receive.
// The transaction-tier, kill-switch recovery and AutoStop events are emitted by the issues that
// build those tiers; their constructors exist now so each emitter has one call to make.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Event {
    TxNotify,
    TxDelayQueued,
    TxDowngradedDelay,
    TxDelayExecuted,
    TxApprovalRequest,
    TxApprovalExpired,
    TxConfirmed,
    TxFailed,
    /// Beyond the spec's list: a queued DELAY/APPROVAL transaction was rejected or cancelled.
    TxCancelled,
    KillSwitchActivated,
    KillSwitchRecovered,
    AutoStopTriggered,
    OwnerRemoved,
    SessionCreated,
    SessionRevoked,
    SessionRenewed,
    SessionRenewalRejected,
    SessionExpiringSoon,
    ChannelUnhealthy,
    Test,
    /// The signed probe a WEBHOOK health check sends.
    HealthCheck,
}

/// What an event is about: chat formats pick an icon by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    Transaction,
    Emergency,
    Session,
    System,
}

impl Event {
    /// The audit event this notification reports, where there is one: the notification then
    /// carries the audit event's own name, so the two never drift apart.
    pub(crate) fn audit(self) -> Option<AuditEventType> {
        Some(match self {
            Event::TxConfirmed => AuditEventType::TxConfirmed,
            Event::TxFailed => AuditEventType::TxFailed,
            Event::TxCancelled => AuditEventType::TxCancelled,
            Event::KillSwitchActivated => AuditEventType::KillSwitchActivated,
            Event::KillSwitchRecovered => AuditEventType::KillSwitchRecovered,
            Event::OwnerRemoved => AuditEventType::OwnerRemoved,
            Event::SessionRevoked => AuditEventType::SessionRevoked,
            Event::SessionRenewed => AuditEventType::SessionRenewed,
            _ => return None,
        })
    }

    /// The events that tell the owner a transaction is queued for them: one of them delivered
    /// means the owner was told (the pending-approvals listing's `ownerNotified`).
    pub(crate) const QUEUED_NOTICES: [Event; 3] =
        [Event::TxApprovalRequest, Event::TxDelayQueued, Event::TxDowngradedDelay];

    /// The wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        let own = match self {
            Event::TxNotify => "TX_NOTIFY",
            Event::TxDelayQueued => "TX_DELAY_QUEUED",
            Event::TxDowngradedDelay => "TX_DOWNGRADED_DELAY",
            Event::TxDelayExecuted => "TX_DELAY_EXECUTED",
            Event::TxApprovalRequest => "TX_APPROVAL_REQUEST",
            Event::TxApprovalExpired => "TX_APPROVAL_EXPIRED",
            Event::AutoStopTriggered => "AUTO_STOP_TRIGGERED",
            Event::SessionCreated => "SESSION_CREATED",
            Event::SessionRenewalRejected => "SESSION_RENEWAL_REJECTED",
            Event::SessionExpiringSoon => "SESSION_EXPIRING_SOON",
            Event::ChannelUnhealthy => "CHANNEL_UNHEALTHY",
            Event::Test => "TEST",
            Event::HealthCheck => "HEALTH_CHECK",
            Event::TxConfirmed
            | Event::TxFailed
            | Event::TxCancelled
            | Event::KillSwitchActivated
            | Event::KillSwitchRecovered
            | Event::OwnerRemoved
            | Event::SessionRevoked
            | Event::SessionRenewed => "",
        };
        self.audit().map_or(own, AuditEventType::as_str)
    }

    /// What the event is about.
    pub(crate) fn topic(self) -> Topic {
        match self {
            Event::TxNotify
            | Event::TxDelayQueued
            | Event::TxDowngradedDelay
            | Event::TxDelayExecuted
            | Event::TxApprovalRequest
            | Event::TxApprovalExpired
            | Event::TxConfirmed
            | Event::TxFailed
            | Event::TxCancelled => Topic::Transaction,
            Event::KillSwitchActivated | Event::KillSwitchRecovered | Event::AutoStopTriggered => Topic::Emergency,
            Event::SessionCreated
            | Event::SessionRevoked
            | Event::SessionRenewed
            | Event::SessionRenewalRejected
            | Event::SessionExpiringSoon => Topic::Session,
            Event::OwnerRemoved | Event::ChannelUnhealthy | Event::Test | Event::HealthCheck => Topic::System,
        }
    }
}

/// How a message reaches the channels (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The highest-priority channel that accepts it (fallback down the list).
    Notify,
    /// Every enabled channel in parallel.
    Broadcast,
}

/// The metadata line of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) agent_name: Option<String>,
    pub(crate) tx_id: Option<Uuid>,
    pub(crate) session_id: Option<Uuid>,
    /// Human units.
    pub(crate) amount: Option<String>,
    pub(crate) symbol: Option<String>,
    /// Destination (full; chat formats shorten it).
    pub(crate) to: Option<String>,
    pub(crate) tier: Option<String>,
    /// The row's page in the owner console (11-owner-console.md §6); carries no token.
    pub(crate) console_url: Option<String>,
}

impl Meta {
    /// The metadata object of the WEBHOOK body (absent fields left out).
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v));
            }
        };
        put("agentId", self.agent_id.map(|x| x.to_string()));
        put("agentName", self.agent_name.clone());
        put("txId", self.tx_id.map(|x| x.to_string()));
        put("sessionId", self.session_id.map(|x| x.to_string()));
        put("amount", self.amount.clone());
        put("symbol", self.symbol.clone());
        put("to", self.to.clone());
        put("tier", self.tier.clone());
        put("consoleUrl", self.console_url.clone());
        Value::Object(m)
    }

    /// `(label, value)` pairs for chat fields, addresses and ids shortened.
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        if let Some(t) = self.tx_id {
            f.push(("Transaction", short_id(&t)));
        }
        if let Some(a) = &self.agent_name {
            f.push(("Agent", a.clone()));
        }
        if let Some(a) = &self.amount {
            f.push((
                "Amount",
                match &self.symbol {
                    Some(s) => format!("{a} {s}"),
                    None => a.clone(),
                },
            ));
        }
        if let Some(t) = &self.to {
            f.push(("To", short_address(t)));
        }
        if let Some(t) = &self.tier {
            f.push(("Tier", t.clone()));
        }
        if let Some(s) = self.session_id {
            f.push(("Session", short_id(&s)));
        }
        f
    }
}

/// A notification (§1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) event: Event,
    pub(crate) level: NotificationLevel,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) reference_id: Option<String>,
    pub(crate) metadata: Meta,
    pub(crate) created_at: u64,
}

impl Message {
    fn new(
        event: Event,
        level: NotificationLevel,
        title: impl Into<String>,
        body: impl Into<String>,
        now: u64,
    ) -> Message {
        Message {
            event,
            level,
            title: title.into(),
            body: body.into(),
            reference_id: None,
            metadata: Meta::default(),
            created_at: now,
        }
    }

    fn reference(mut self, r: impl Into<String>) -> Message {
        self.reference_id = Some(r.into());
        self
    }

    /// How this message is delivered (§3).
    pub(crate) fn delivery(&self) -> Delivery {
        match self.event {
            Event::TxApprovalRequest
            | Event::KillSwitchActivated
            | Event::KillSwitchRecovered
            | Event::OwnerRemoved => Delivery::Broadcast,
            Event::AutoStopTriggered if self.level == NotificationLevel::Critical => Delivery::Broadcast,
            _ => Delivery::Notify,
        }
    }

    /// The deduplication key `<event>:<referenceId>`, when the message has a reference.
    pub(crate) fn dedup_key(&self) -> Option<String> {
        // The level is part of it: an AutoStop warning and the suspension that follows share
        // their reference (agent and rule) and are two messages.
        self.reference_id.as_ref().map(|r| format!("{}:{r}:{}", self.event.as_str(), self.level.as_str()))
    }

    // --- Transactions ------------------------------------------------------------------------

    fn tx(
        event: Event,
        level: NotificationLevel,
        title: &str,
        body: String,
        row: &TransactionRecord,
        who: &TxParty,
        now: u64,
    ) -> Message {
        let mut m = Message::new(event, level, title, body, now).reference(row.id.to_string());
        m.metadata = Meta {
            agent_id: Some(row.agent_id),
            agent_name: Some(who.agent_name.clone()),
            tx_id: Some(row.id),
            session_id: row.session_id,
            amount: Some(who.amount.clone()),
            symbol: who.symbol.clone(),
            to: row.to_address.clone().or_else(|| row.contract_address.clone()).or_else(|| row.spender_address.clone()),
            tier: row.tier.map(|t| t.as_str().to_string()),
            console_url: None,
        };
        m
    }

    /// Adds the row's owner-console link as `metadata.consoleUrl` and a last body line, when the
    /// console is reachable at a known base (11-owner-console.md §6).
    fn with_console_link(mut self, row: &TransactionRecord, who: &TxParty) -> Message {
        if let Some(base) = &who.console_base {
            let url = format!("{base}/owner/#/tx/{}", row.id);
            self.body = format!("{}\nReview in the owner console: {url}", self.body);
            self.metadata.console_url = Some(url);
        }
        self
    }

    /// `TX_NOTIFY`: a NOTIFY-tier transaction was submitted.
    pub(crate) fn tx_notify(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let body = format!("{} sent {} on {}.", who.agent_name, who.describe(row), who.network);
        Message::tx(Event::TxNotify, NotificationLevel::Info, "Transaction sent", body, row, who, now)
    }

    /// `TX_DELAY_QUEUED`: a DELAY-tier transaction waits until `execute_at`.
    pub(crate) fn tx_delay_queued(row: &TransactionRecord, who: &TxParty, execute_at: u64, now: u64) -> Message {
        let body = format!(
            "{} queued {}; it executes at {} unless rejected: waiaas owner reject {}",
            who.agent_name,
            who.describe(row),
            iso(execute_at),
            row.id
        );
        Message::tx(Event::TxDelayQueued, NotificationLevel::Info, "Transaction delayed", body, row, who, now)
            .with_console_link(row, who)
    }

    /// `TX_DOWNGRADED_DELAY`: an APPROVAL tier became DELAY because the owner is not verified.
    pub(crate) fn tx_downgraded_delay(row: &TransactionRecord, who: &TxParty, execute_at: u64, now: u64) -> Message {
        let body = format!(
            "{} queued {}, which needs owner approval, as a delay because no verified owner exists; it executes at {} \
             unless rejected: waiaas owner reject {}. Register or verify the owner: waiaas agent set-owner / waiaas \
             agent verify-owner",
            who.agent_name,
            who.describe(row),
            iso(execute_at),
            row.id
        );
        Message::tx(
            Event::TxDowngradedDelay,
            NotificationLevel::Info,
            "Approval downgraded to delay",
            body,
            row,
            who,
            now,
        )
    }

    /// `TX_DELAY_EXECUTED`: a DELAY-tier transaction was submitted after its cooldown.
    pub(crate) fn tx_delay_executed(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let body = format!("The delayed {} of {} was sent.", who.describe(row), who.agent_name);
        Message::tx(Event::TxDelayExecuted, NotificationLevel::Info, "Delayed transaction sent", body, row, who, now)
    }

    /// `TX_APPROVAL_REQUEST`: an APPROVAL-tier transaction waits for the owner until `deadline`.
    pub(crate) fn tx_approval_request(row: &TransactionRecord, who: &TxParty, deadline: u64, now: u64) -> Message {
        let body = format!(
            "{} requests {}. Approve before {}: waiaas owner approve {} — or reject: waiaas owner reject {}",
            who.agent_name,
            who.describe(row),
            iso(deadline),
            row.id,
            row.id
        );
        Message::tx(Event::TxApprovalRequest, NotificationLevel::Warning, "Approval required", body, row, who, now)
            .with_console_link(row, who)
    }

    /// `TX_APPROVAL_EXPIRED`: nobody approved in time.
    pub(crate) fn tx_approval_expired(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let body =
            format!("The approval request for {} of {} expired; nothing was sent.", who.describe(row), who.agent_name);
        Message::tx(Event::TxApprovalExpired, NotificationLevel::Warning, "Approval expired", body, row, who, now)
    }

    /// `TX_CONFIRMED`: a DELAY- or APPROVAL-tier transaction confirmed.
    pub(crate) fn tx_confirmed(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let body = format!("{} of {} is confirmed.", who.describe(row), who.agent_name);
        Message::tx(Event::TxConfirmed, NotificationLevel::Info, "Transaction confirmed", body, row, who, now)
    }

    /// `TX_FAILED`: a decided transaction ended FAILED or EXPIRED.
    pub(crate) fn tx_failed(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let error = row.error.clone().unwrap_or_else(|| "unknown error".into());
        let body = format!("{} of {} did not go through: {error}.", who.describe(row), who.agent_name);
        Message::tx(Event::TxFailed, NotificationLevel::Warning, "Transaction failed", body, row, who, now)
    }

    /// `TX_CANCELLED` (an addition to the spec's events): a queued DELAY or APPROVAL
    /// transaction ended CANCELLED (rejected by the owner, or cancelled by the kill switch).
    pub(crate) fn tx_cancelled(row: &TransactionRecord, who: &TxParty, now: u64) -> Message {
        let error = row.error.clone().unwrap_or_else(|| "cancelled".into());
        let body = format!("{} of {} was cancelled ({error}); nothing was sent.", who.describe(row), who.agent_name);
        Message::tx(Event::TxCancelled, NotificationLevel::Info, "Transaction cancelled", body, row, who, now)
    }

    // --- System ------------------------------------------------------------------------------

    /// `KILL_SWITCH_ACTIVATED`.
    pub(crate) fn kill_switch_activated(reason: &str, actor: &str, at: u64) -> Message {
        let body = format!(
            "The kill switch was activated by {actor}: {reason}. Sessions are revoked, queued transactions cancelled and \
             agents suspended. Recover with: waiaas kill-switch recover"
        );
        Message::new(Event::KillSwitchActivated, NotificationLevel::Critical, "Kill switch activated", body, at)
            .reference(iso(at))
    }

    /// `KILL_SWITCH_RECOVERED`.
    pub(crate) fn kill_switch_recovered(agents_reactivated: u64, at: u64) -> Message {
        let body = format!("The kill switch was recovered; {agents_reactivated} agents are active again.");
        Message::new(Event::KillSwitchRecovered, NotificationLevel::Warning, "Kill switch recovered", body, at)
            .reference(iso(at))
    }

    /// `AUTO_STOP_TRIGGERED`: WARNING for a warning, CRITICAL for a suspension or kill switch.
    pub(crate) fn auto_stop_triggered(
        agent: &AgentRecord,
        rule: Uuid,
        rule_type: &str,
        action: &str,
        description: &str,
        critical: bool,
        now: u64,
    ) -> Message {
        let level = if critical { NotificationLevel::Critical } else { NotificationLevel::Warning };
        let body = format!("AutoStop {rule_type} on {}: {description} (action {action}).", agent.name);
        let mut m = Message::new(Event::AutoStopTriggered, level, "AutoStop triggered", body, now)
            .reference(format!("{}:{rule}", agent.id));
        m.metadata.agent_id = Some(agent.id);
        m.metadata.agent_name = Some(agent.name.clone());
        m
    }

    /// `OWNER_REMOVED`.
    pub(crate) fn owner_removed(agent: &AgentRecord, previous: &str, now: u64) -> Message {
        let body = format!(
            "The owner {} of {} was removed: approvals become delays and withdrawals are disabled.",
            short_address(previous),
            agent.name
        );
        let mut m = Message::new(Event::OwnerRemoved, NotificationLevel::Warning, "Owner removed", body, now)
            .reference(agent.id.to_string());
        m.metadata.agent_id = Some(agent.id);
        m.metadata.agent_name = Some(agent.name.clone());
        m
    }

    // --- Sessions ----------------------------------------------------------------------------

    fn session(
        event: Event,
        level: NotificationLevel,
        title: &str,
        body: String,
        s: &SessionRecord,
        agent: &str,
        now: u64,
    ) -> Message {
        let mut m = Message::new(event, level, title, body, now).reference(s.id.to_string());
        m.metadata.agent_id = Some(s.agent_id);
        m.metadata.agent_name = Some(agent.to_string());
        m.metadata.session_id = Some(s.id);
        m
    }

    /// `SESSION_CREATED`.
    pub(crate) fn session_created(s: &SessionRecord, agent: &str, now: u64) -> Message {
        let body = format!("A session for {agent} was issued; it expires at {}.", iso(s.expires_at));
        Message::session(Event::SessionCreated, NotificationLevel::Info, "Session created", body, s, agent, now)
    }

    /// `SESSION_REVOKED`.
    pub(crate) fn session_revoked(s: &SessionRecord, agent: &str, now: u64) -> Message {
        let body = format!("A session of {agent} was revoked.");
        Message::session(Event::SessionRevoked, NotificationLevel::Info, "Session revoked", body, s, agent, now)
    }

    /// `SESSION_RENEWED` (reference `<sessionId>:<renewalCount>`).
    pub(crate) fn session_renewed(s: &SessionRecord, agent: &str, now: u64) -> Message {
        let body = format!(
            "A session of {agent} was renewed ({}/{}); it now expires at {}. Revoke it within {} s to reject the \
             renewal: waiaas session revoke {}",
            s.renewal_count,
            s.max_renewals,
            iso(s.expires_at),
            s.constraints.renewal_reject_window,
            s.id
        );
        let mut m =
            Message::session(Event::SessionRenewed, NotificationLevel::Info, "Session renewed", body, s, agent, now);
        m.reference_id = Some(format!("{}:{}", s.id, s.renewal_count));
        m
    }

    /// `SESSION_RENEWAL_REJECTED`.
    pub(crate) fn session_renewal_rejected(s: &SessionRecord, agent: &str, now: u64) -> Message {
        let body = format!("A renewed session of {agent} was revoked within its reject window.");
        Message::session(
            Event::SessionRenewalRejected,
            NotificationLevel::Warning,
            "Session renewal rejected",
            body,
            s,
            agent,
            now,
        )
    }

    /// `SESSION_EXPIRING_SOON`: few renewals or little absolute lifetime left.
    pub(crate) fn session_expiring_soon(s: &SessionRecord, agent: &str, now: u64) -> Message {
        let body = format!(
            "A session of {agent} ends at {} ({} of {} renewals used); create a new one before then: waiaas session \
             create --agent {agent}",
            iso(s.absolute_expires_at),
            s.renewal_count,
            s.max_renewals
        );
        Message::session(
            Event::SessionExpiringSoon,
            NotificationLevel::Warning,
            "Session expiring soon",
            body,
            s,
            agent,
            now,
        )
    }

    // --- Channels ----------------------------------------------------------------------------

    /// `CHANNEL_UNHEALTHY`: a channel failed three health checks in a row.
    pub(crate) fn channel_unhealthy(channel: Uuid, name: &str, now: u64) -> Message {
        let body = format!("The notification channel {name} failed three health checks in a row.");
        Message::new(Event::ChannelUnhealthy, NotificationLevel::Warning, "Notification channel unhealthy", body, now)
            .reference(channel.to_string())
    }

    /// `TEST`.
    pub(crate) fn test(channel: Uuid, name: &str, now: u64) -> Message {
        let body = format!("This is a test message for the channel {name}.");
        Message::new(Event::Test, NotificationLevel::Info, "WAIaaS test notification", body, now)
            .reference(channel.to_string())
    }

    /// The WEBHOOK health probe.
    pub(crate) fn health_check(now: u64) -> Message {
        Message::new(Event::HealthCheck, NotificationLevel::Info, "Health check", "WAIaaS channel health check", now)
    }
}

/// What a transaction message says about who moved what.
#[derive(Debug, Clone)]
pub(crate) struct TxParty {
    pub(crate) agent_name: String,
    #[allow(dead_code)]
    pub(crate) network: String,
    /// The amount in human units where the decimals are known, else smallest units.
    pub(crate) amount: String,
    pub(crate) symbol: Option<String>,
    /// Where the owner console is published (`http://127.0.0.1:<port>` or `public_url`), when
    /// it is enabled and reachable at a known address.
    pub(crate) console_base: Option<String>,
}

impl TxParty {
    /// The party of `row` sent by `agent`; `native_symbol` is the chain's coin (SOL, or the
    /// configured EVM symbol).
    pub(crate) fn of(row: &TransactionRecord, agent: &AgentRecord, native_symbol: &str) -> TxParty {
        let native_decimals = match agent.chain {
            Chain::Solana => 9,
            Chain::Ethereum => 18,
        };
        let (amount, symbol) = match row.tx_type {
            TxType::TokenTransfer | TxType::Approve => {
                let decimals = row.request["token"]["decimals"].as_u64().map(|d| d as u8);
                let mint = row.token_mint.as_deref().map(short_address);
                match decimals {
                    Some(d) => (format_units(row.amount, d, ""), mint),
                    None => (row.amount.to_string(), mint.map(|m| format!("units of {m}"))),
                }
            }
            _ => (format_units(row.native_amount, native_decimals, ""), Some(native_symbol.to_string())),
        };
        TxParty {
            agent_name: agent.name.clone(),
            network: format!("{}/{}", agent.chain, agent.network),
            amount,
            symbol,
            console_base: None,
        }
    }

    /// `a transfer of 1.5 SOL to 9WzD…AWWM`.
    fn describe(&self, row: &TransactionRecord) -> String {
        let what = match row.tx_type {
            TxType::Transfer => "a transfer",
            TxType::TokenTransfer => "a token transfer",
            TxType::ContractCall => "a contract call",
            TxType::Approve => "a token approval",
            TxType::Batch => "a batch",
        };
        let amount = match &self.symbol {
            Some(s) => format!("{} {s}", self.amount),
            None => self.amount.clone(),
        };
        match row.to_address.as_deref().or(row.contract_address.as_deref()).or(row.spender_address.as_deref()) {
            Some(to) => format!("{what} of {amount} to {}", short_address(to)),
            None => format!("{what} of {amount}"),
        }
    }
}

/// `9WzD…AWWM`: the first and last four characters (chat formats).
pub(crate) fn short_address(a: &str) -> String {
    let chars: Vec<char> = a.chars().collect();
    if chars.len() <= 10 {
        return a.to_string();
    }
    format!("{}…{}", chars[..4].iter().collect::<String>(), chars[chars.len() - 4..].iter().collect::<String>())
}

/// The first eight characters of an id.
fn short_id(id: &Uuid) -> String {
    id.to_string()[..8].to_string()
}

/// The WEBHOOK body (§2): `{id, event, level, title, body, referenceId, metadata, createdAt}`.
pub(crate) fn webhook_body(m: &Message, id: Uuid) -> Value {
    json!({
        "id": id,
        "event": m.event.as_str(),
        "level": m.level.as_str(),
        "title": m.title,
        "body": m.body,
        "referenceId": m.reference_id,
        "metadata": m.metadata.to_json(),
        "createdAt": iso(m.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_shortened_and_delivery_follows_the_event() {
        assert_eq!(short_address("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"), "9WzD…AWWM");
        assert_eq!(short_address("short"), "short");
        let m = Message::kill_switch_activated("test", "admin", 1_700_000_000);
        assert_eq!((m.delivery(), m.level), (Delivery::Broadcast, NotificationLevel::Critical));
        // The spec's `<event>:<referenceId>` plus the level: the same for every event whose
        // level is fixed, and keeps an AutoStop warning from swallowing the suspension after it.
        assert_eq!(m.dedup_key().as_deref(), Some("KILL_SWITCH_ACTIVATED:2023-11-14T22:13:20Z:CRITICAL"));
        let t = Message::test(Uuid::nil(), "x", 0);
        assert_eq!(t.delivery(), Delivery::Notify);
    }
}
