//! AutoStop (08-killswitch-autostop.md §6): rules that watch what agents do and warn, suspend an
//! agent or trip the kill switch.
//!
//! The pipeline only *feeds* events (`TX_COMPLETED`, `TX_FAILED`, `POLICY_VIOLATION`) into a
//! bounded channel after the relevant commit — `try_send`, never waiting — and one consumer task
//! evaluates them, so AutoStop never sits on a response path. Rules are cached in memory and
//! reloaded after every change through the API and every 300 s.
//!
//! Rule configs are typed and validated here (`INVALID_RULES`); the history a rule needs comes
//! from bounded storage reads (`waiaas_storage::ops::autostop`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{Datelike, Timelike};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;
use waiaas_storage::{
    AgentRecord, AgentStatus, Amount, AuditEvent, AuditEventType, AuditSeverity, AutoStopAction, AutoStopRuleRecord,
    AutoStopRuleType, Chain, KillSwitchActor, OpCtx, RuleChange, StoreError, TransactionRecord,
};

use crate::adapters::notify::{Message, Notifier};
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::domain::emergency::killswitch::KillSwitch;
use crate::runtime::Db;

/// What happened to a transaction, as AutoStop hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Reached CONFIRMED.
    Completed,
    /// Reached FAILED.
    Failed,
    /// Denied at the decision.
    PolicyViolation,
}

#[derive(Debug, Clone)]
pub(crate) struct AutoStopEvent {
    pub(crate) kind: EventKind,
    pub(crate) row: TransactionRecord,
}

/// The pipeline's side of the channel: hands an event over and returns at once.
#[derive(Clone)]
pub(crate) struct AutoStopFeed(mpsc::Sender<AutoStopEvent>);

impl AutoStopFeed {
    /// A feed and the receiver the AutoStop task drains.
    pub(crate) fn channel() -> (AutoStopFeed, mpsc::Receiver<AutoStopEvent>) {
        let (tx, rx) = mpsc::channel(4096);
        (AutoStopFeed(tx), rx)
    }

    /// Queues an event; when the queue is full the event is dropped with a warning (AutoStop
    /// must never hold up a send).
    pub(crate) fn observe(&self, kind: EventKind, row: &TransactionRecord) {
        if self.0.try_send(AutoStopEvent { kind, row: row.clone() }).is_err() {
            tracing::warn!("AutoStop queue full: dropped a {kind:?} event for tx {}", row.id);
        }
    }
}

// ------------------------------------------------------------------------------- rule configs

fn default_tz() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsecutiveFailures {
    threshold: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hours {
    start: u8,
    end: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TimeWindow {
    allowed_hours: Hours,
    #[serde(default)]
    allowed_days: Vec<u8>,
    #[serde(default = "default_tz")]
    timezone: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DailyLimit {
    warn_percent: u64,
    stop_percent: u64,
    daily_max: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HourlyRate {
    max_tx_per_hour: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Anomaly {
    same_address_warn: u64,
    same_address_stop: u64,
}

/// A rule's config, typed.
#[derive(Debug, Clone)]
enum Config {
    ConsecutiveFailures(ConsecutiveFailures),
    Time(TimeWindow, chrono_tz::Tz),
    Daily(DailyLimit),
    Hourly(HourlyRate),
    Anomaly(Anomaly),
}

fn rules_error(path: &str, message: impl Into<String>) -> Invalid {
    let mut e = Invalid::value(path, message);
    e.code = ErrorCode::InvalidRules;
    e
}

/// Validates `config` for a rule of `kind` (§6.2); `INVALID_RULES` naming `config.<field>`.
fn parse_config(kind: AutoStopRuleType, config: &Value) -> Result<Config, Invalid> {
    let typed = |e: Invalid| {
        let mut e = e.under("config");
        e.code = ErrorCode::InvalidRules;
        e
    };
    let c = match kind {
        AutoStopRuleType::ConsecutiveFailures => {
            let c: ConsecutiveFailures = crate::base::validation::from_value(config).map_err(typed)?;
            if !(1..=20).contains(&c.threshold) {
                return Err(rules_error("config.threshold", "threshold must be 1-20"));
            }
            Config::ConsecutiveFailures(c)
        }
        AutoStopRuleType::TimeRestriction => {
            let c: TimeWindow = crate::base::validation::from_value(config).map_err(typed)?;
            if c.allowed_hours.start > 23 || c.allowed_hours.end > 23 {
                return Err(rules_error("config.allowedHours", "hours are 0-23"));
            }
            if c.allowed_days.iter().any(|d| *d > 6) {
                return Err(rules_error("config.allowedDays", "days are 0 (Sunday) to 6"));
            }
            let tz = chrono_tz::Tz::from_str(&c.timezone)
                .map_err(|_| rules_error("config.timezone", format!("{:?} is not an IANA time zone", c.timezone)))?;
            Config::Time(c, tz)
        }
        AutoStopRuleType::DailyLimitThreshold => {
            let c: DailyLimit = crate::base::validation::from_value(config).map_err(typed)?;
            for (f, v) in [("warnPercent", c.warn_percent), ("stopPercent", c.stop_percent)] {
                if !(1..=1000).contains(&v) {
                    return Err(rules_error(&format!("config.{f}"), "percentages are 1-1000"));
                }
            }
            if c.warn_percent > c.stop_percent {
                return Err(rules_error("config.warnPercent", "warnPercent must be ≤ stopPercent"));
            }
            for (chain, amount) in &c.daily_max {
                if Chain::from_str(chain).is_err() {
                    return Err(rules_error(&format!("config.dailyMax.{chain}"), "keys are solana or ethereum"));
                }
                if Amount::parse(amount).map_or(true, |a| a.is_zero()) {
                    return Err(rules_error(&format!("config.dailyMax.{chain}"), "a positive decimal amount string"));
                }
            }
            Config::Daily(c)
        }
        AutoStopRuleType::HourlyRate => {
            let c: HourlyRate = crate::base::validation::from_value(config).map_err(typed)?;
            if c.max_tx_per_hour < 1 {
                return Err(rules_error("config.maxTxPerHour", "must be at least 1"));
            }
            Config::Hourly(c)
        }
        AutoStopRuleType::AnomalyPattern => {
            let c: Anomaly = crate::base::validation::from_value(config).map_err(typed)?;
            if c.same_address_warn < 1 || c.same_address_stop < 1 {
                return Err(rules_error("config.sameAddressWarn", "counts must be at least 1"));
            }
            if c.same_address_warn > c.same_address_stop {
                return Err(rules_error("config.sameAddressWarn", "sameAddressWarn must be ≤ sameAddressStop"));
            }
            Config::Anomaly(c)
        }
    };
    Ok(c)
}

fn severity(a: AutoStopAction) -> u8 {
    match a {
        AutoStopAction::Warn => 1,
        AutoStopAction::SuspendAgent => 2,
        AutoStopAction::KillSwitch => 3,
    }
}

/// One rule's verdict about one event.
#[derive(Debug, Clone)]
struct Outcome {
    action: AutoStopAction,
    rule: Uuid,
    rule_type: AutoStopRuleType,
    description: String,
}

// --------------------------------------------------------------------------------- service

/// Why a rule operation did not apply; nothing was written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuleError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Rule {0} not found")]
    NotFound(Uuid),
    #[error("Agent {0} not found")]
    AgentNotFound(Uuid),
    #[error("A rule of this type already exists for this scope")]
    Duplicate,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RuleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique { .. } => RuleError::Duplicate,
            e => RuleError::Store(e),
        }
    }
}

impl Coded for RuleError {
    fn code(&self) -> ErrorCode {
        match self {
            RuleError::Invalid(e) => e.code(),
            RuleError::NotFound(_) => ErrorCode::RuleNotFound,
            RuleError::AgentNotFound(_) => ErrorCode::AgentNotFound,
            RuleError::Duplicate => ErrorCode::DuplicateResource,
            RuleError::Store(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            RuleError::Invalid(e) => e.details(),
            RuleError::NotFound(id) => details([("resource", "auto_stop_rule".into()), ("id", id.to_string().into())]),
            RuleError::AgentNotFound(id) => details([("resource", "agent".into()), ("id", id.to_string().into())]),
            _ => Map::new(),
        }
    }
}

/// A rule to create.
#[derive(Debug, Clone)]
pub(crate) struct NewRule {
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) kind: AutoStopRuleType,
    pub(crate) config: Value,
    pub(crate) action: AutoStopAction,
    pub(crate) enabled: bool,
}

/// The AutoStop service: rule management, the cache and the evaluation task.
pub(crate) struct AutoStop {
    db: Db,
    clock: Clock,
    notifier: Arc<Notifier>,
    kill_switch: Arc<KillSwitch>,
    /// Enabled rules with their configs parsed once, at load.
    rules: RwLock<Vec<(AutoStopRuleRecord, Config)>>,
    /// (agent, rule) → when a WARN was last sent (at most once an hour).
    warned: Mutex<HashMap<(Uuid, Uuid), u64>>,
}

impl AutoStop {
    /// The service, with its consumer task draining `events`.
    pub(crate) fn start(
        db: Db,
        clock: Clock,
        notifier: Arc<Notifier>,
        kill_switch: Arc<KillSwitch>,
        mut events: mpsc::Receiver<AutoStopEvent>,
    ) -> Arc<AutoStop> {
        let a =
            Arc::new(AutoStop { db, clock, notifier, kill_switch, rules: RwLock::default(), warned: Mutex::default() });
        let me = Arc::downgrade(&a);
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let Some(a) = me.upgrade() else { return };
                if let Err(e) = a.evaluate(&ev).await {
                    tracing::warn!("AutoStop: cannot evaluate tx {}: {e}", ev.row.id);
                }
            }
        });
        a
    }

    /// Reloads the rule cache from storage: the enabled rules, each config parsed here once
    /// (one that does not parse — written before a validation change — is skipped, logged).
    pub(crate) async fn reload(&self) -> Result<(), StoreError> {
        let rules = self.db.call(|s| s.list_auto_stop_rules()).await?;
        let parsed = rules
            .into_iter()
            .filter(|r| r.enabled)
            .filter_map(|r| match parse_config(r.rule_type, &r.config) {
                Ok(c) => Some((r, c)),
                Err(e) => {
                    tracing::warn!("AutoStop rule {} does not parse ({e}); skipped", r.id);
                    None
                }
            })
            .collect();
        *self.rules.write().expect("rules lock") = parsed;
        Ok(())
    }

    /// Every rule, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<AutoStopRuleRecord>, StoreError> {
        self.db.call(|s| s.list_auto_stop_rules()).await
    }

    /// Creates a rule (`AUTO_STOP_RULE_CREATED`); a second one for the same scope and type is
    /// `DUPLICATE_RESOURCE`.
    pub(crate) async fn create(&self, new: NewRule, actor: &str) -> Result<AutoStopRuleRecord, RuleError> {
        parse_config(new.kind, &new.config)?;
        if let Some(a) = new.agent_id
            && self.db.call(move |s| s.get_agent(a)).await?.is_none()
        {
            return Err(RuleError::AgentNotFound(a));
        }
        let now = self.clock.now();
        let r = AutoStopRuleRecord {
            agent_id: new.agent_id,
            enabled: new.enabled,
            ..AutoStopRuleRecord::new(self.clock.new_id(), new.kind, new.config, new.action, now)
        };
        let (stored, ctx) = (r.clone(), OpCtx::new(actor, now));
        self.db.call(move |s| s.insert_auto_stop_rule(&stored, &ctx)).await?;
        self.reload().await?;
        Ok(r)
    }

    /// Changes a rule's config, action or enabled flag (`AUTO_STOP_RULE_UPDATED`).
    pub(crate) async fn update(
        &self,
        id: Uuid,
        change: RuleChange,
        actor: &str,
    ) -> Result<AutoStopRuleRecord, RuleError> {
        let current = self.db.call(move |s| s.get_auto_stop_rule(id)).await?.ok_or(RuleError::NotFound(id))?;
        if let Some(c) = &change.config {
            parse_config(current.rule_type, c)?;
        }
        let ctx = OpCtx::new(actor, self.clock.now());
        let r = self.db.call(move |s| s.update_auto_stop_rule(id, &change, &ctx)).await?;
        self.reload().await?;
        Ok(r)
    }

    /// Deletes a rule (`AUTO_STOP_RULE_DELETED`).
    pub(crate) async fn delete(&self, id: Uuid, actor: &str) -> Result<AutoStopRuleRecord, RuleError> {
        let ctx = OpCtx::new(actor, self.clock.now());
        let r = match self.db.call(move |s| s.delete_auto_stop_rule(id, &ctx)).await {
            Err(StoreError::NotFound { .. }) => return Err(RuleError::NotFound(id)),
            r => r?,
        };
        self.reload().await?;
        Ok(r)
    }

    /// §6.1: for each type, the agent's own enabled rule, else the global enabled one.
    fn effective(&self, agent: Uuid) -> Vec<(AutoStopRuleRecord, Config)> {
        let rules = self.rules.read().expect("rules lock");
        AutoStopRuleType::ALL
            .iter()
            .filter_map(|t| {
                let of_type =
                    |scope: Option<Uuid>| rules.iter().find(|(r, _)| r.rule_type == *t && r.agent_id == scope).cloned();
                // Only an enabled agent rule replaces the global one (§6.1).
                of_type(Some(agent)).or_else(|| of_type(None))
            })
            .collect()
    }

    /// Evaluates one event: every applicable rule, then the most severe outcome acted on.
    async fn evaluate(&self, ev: &AutoStopEvent) -> Result<(), StoreError> {
        let agent_id = ev.row.agent_id;
        let Some(agent) = self.db.read(|s| s.get_agent(agent_id))? else { return Ok(()) };
        if agent.status == AgentStatus::Terminated {
            return Ok(());
        }
        let now = self.clock.now();
        let mut outcomes = Vec::new();
        for (rule, config) in self.effective(agent.id) {
            let hit = |action: AutoStopAction, description: String| Outcome {
                action,
                rule: rule.id,
                rule_type: rule.rule_type,
                description,
            };
            match (&config, ev.kind) {
                (Config::ConsecutiveFailures(c), EventKind::Failed) => {
                    let threshold = c.threshold;
                    let n = self.db.read(|s| s.consecutive_failures(agent_id, threshold))?;
                    if n >= threshold {
                        outcomes.push(hit(rule.action, format!("{n} consecutive failed transactions")));
                    }
                }
                (Config::Time(w, tz), _) if !in_window(w, *tz, ev.row.created_at) => {
                    outcomes.push(hit(rule.action, "a transaction outside the allowed hours".into()));
                }
                (Config::Daily(c), EventKind::Completed) => {
                    let Some(max) = c.daily_max.get(agent.chain.as_str()).and_then(|m| Amount::parse(m).ok()) else {
                        continue;
                    };
                    let sum = self.db.read(|s| s.autonomous_volume_on_day(agent_id, now))?;
                    let pct = percent(sum, max);
                    if pct >= c.stop_percent as u128 {
                        outcomes.push(hit(
                            rule.action,
                            format!("{pct}% of the daily maximum confirmed today without an owner's approval"),
                        ));
                    } else if pct >= c.warn_percent as u128 {
                        outcomes.push(hit(
                            AutoStopAction::Warn,
                            format!("{pct}% of the daily maximum confirmed today without an owner's approval"),
                        ));
                    }
                }
                (Config::Hourly(c), _) => {
                    let (since, cap) = (now.saturating_sub(3600), c.max_tx_per_hour + 1);
                    let n = self.db.read(|s| s.created_since(agent_id, since, cap))?;
                    if n > c.max_tx_per_hour {
                        outcomes
                            .push(hit(rule.action, format!("more than {} transactions in an hour", c.max_tx_per_hour)));
                    }
                }
                (Config::Anomaly(c), EventKind::Completed) => {
                    // Only the confirmed row's address gained a transfer; every other address's
                    // count can only have fallen since its own last confirmation was evaluated.
                    let Some(to) = ev.row.to_address.clone() else { continue };
                    let (since, cap) = (now.saturating_sub(3600), c.same_address_stop);
                    let top = self.db.read(|s| s.autonomous_transfers_to_since(agent_id, &to, since, cap))?;
                    if top >= c.same_address_stop {
                        outcomes.push(hit(rule.action, format!("{top} confirmed transfers to one address in an hour")));
                    } else if top >= c.same_address_warn {
                        outcomes.push(hit(
                            AutoStopAction::Warn,
                            format!("{top} confirmed transfers to one address in an hour"),
                        ));
                    }
                }
                _ => {}
            }
        }
        let Some(worst) = outcomes.into_iter().max_by_key(|o| severity(o.action)) else { return Ok(()) };
        if agent.status == AgentStatus::Suspended && worst.action != AutoStopAction::KillSwitch {
            return Ok(());
        }
        self.act(&agent, worst, now).await
    }

    /// AUTO_STOP_TRIGGERED to the owner: a WARN is notified, the rest broadcast (`critical`).
    fn announce(&self, agent: &AgentRecord, o: &Outcome, action: &str, critical: bool, now: u64) {
        let m =
            Message::auto_stop_triggered(agent, o.rule, o.rule_type.as_str(), action, &o.description, critical, now);
        self.notifier.emit(m);
    }

    async fn act(&self, agent: &AgentRecord, o: Outcome, now: u64) -> Result<(), StoreError> {
        crate::runtime::metrics::get().autostop(o.rule_type.as_str(), o.action.as_str());
        let reason = format!("auto_stop: {} - {}", o.rule_type.as_str(), o.description);
        let ctx = OpCtx::new("auto_stop", now);
        match o.action {
            AutoStopAction::Warn => {
                {
                    let mut w = self.warned.lock().expect("warned lock");
                    if w.get(&(agent.id, o.rule)).is_some_and(|t| now < t + 3600) {
                        return Ok(());
                    }
                    w.insert((agent.id, o.rule), now);
                }
                let ev = AuditEvent::new(AuditEventType::AutoStopWarn, "auto_stop")
                    .severity(AuditSeverity::Warning)
                    .agent(agent.id)
                    .detail("ruleId", o.rule.to_string())
                    .detail("type", o.rule_type.as_str())
                    .detail("reason", reason.clone());
                self.db.call(move |s| s.append_audit(ev, &ctx)).await?;
                self.announce(agent, &o, "WARN", false, now);
            }
            AutoStopAction::SuspendAgent => {
                let (id, rule, r) = (agent.id, o.rule, reason.clone());
                if self.db.call(move |s| s.auto_stop_suspend(id, &r, rule, &ctx)).await? {
                    tracing::warn!("agent {} suspended: {reason}", agent.id);
                    self.announce(agent, &o, "SUSPEND_AGENT", true, now);
                }
            }
            AutoStopAction::KillSwitch => {
                let ev = AuditEvent::new(AuditEventType::AutoStopKillSwitch, "auto_stop")
                    .severity(AuditSeverity::Critical)
                    .agent(agent.id)
                    .detail("ruleId", o.rule.to_string())
                    .detail("type", o.rule_type.as_str())
                    .detail("reason", reason.clone());
                let c = ctx.clone();
                self.db.call(move |s| s.append_audit(ev, &c)).await?;
                match self.kill_switch.activate(reason, KillSwitchActor::AutoStop, ctx).await {
                    Ok(_) | Err(crate::domain::emergency::killswitch::KillSwitchError::AlreadyActive) => {}
                    Err(e) => tracing::error!("AutoStop could not activate the kill switch: {e}"),
                }
                self.announce(agent, &o, "KILL_SWITCH", true, now);
            }
        }
        Ok(())
    }
}

/// `sum` as a whole percentage of `max` (rounded down).
fn percent(sum: Amount, max: Amount) -> u128 {
    use alloy::primitives::U256;
    if max.is_zero() {
        return 0;
    }
    let p = sum.0.saturating_mul(U256::from(100u8)) / max.0;
    u128::try_from(p).unwrap_or(u128::MAX)
}

/// The TIME_RESTRICTION window rule (same as the policy's).
fn in_window(w: &TimeWindow, tz: chrono_tz::Tz, at: u64) -> bool {
    let Some(utc) = chrono::DateTime::from_timestamp(at as i64, 0) else { return true };
    let local = utc.with_timezone(&tz);
    let (h, d) = (local.hour() as u8, local.weekday().num_days_from_sunday() as u8);
    let (s, e) = (w.allowed_hours.start, w.allowed_hours.end);
    let hour_ok = if s < e {
        s <= h && h < e
    } else if s > e {
        h >= s || h < e
    } else {
        true
    };
    hour_ok && (w.allowed_days.is_empty() || w.allowed_days.contains(&d))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn configs_are_validated_per_type() {
        use AutoStopRuleType::*;
        for (kind, config, path) in [
            (ConsecutiveFailures, json!({"threshold": 0}), "config.threshold"),
            (ConsecutiveFailures, json!({"threshold": 21}), "config.threshold"),
            (ConsecutiveFailures, json!({"threshold": 3, "x": 1}), "config.x"),
            (DailyLimitThreshold, json!({"warnPercent": 90, "stopPercent": 80, "dailyMax": {}}), "config.warnPercent"),
            (DailyLimitThreshold, json!({"warnPercent": 0, "stopPercent": 80, "dailyMax": {}}), "config.warnPercent"),
            (
                DailyLimitThreshold,
                json!({"warnPercent": 80, "stopPercent": 100, "dailyMax": {"bitcoin": "1"}}),
                "config.dailyMax.bitcoin",
            ),
            (
                DailyLimitThreshold,
                json!({"warnPercent": 80, "stopPercent": 100, "dailyMax": {"solana": 5}}),
                "config.dailyMax.solana",
            ),
            (HourlyRate, json!({"maxTxPerHour": 0}), "config.maxTxPerHour"),
            (AnomalyPattern, json!({"sameAddressWarn": 5, "sameAddressStop": 3}), "config.sameAddressWarn"),
            (TimeRestriction, json!({"allowedHours": {"start": 24, "end": 1}}), "config.allowedHours"),
            (
                TimeRestriction,
                json!({"allowedHours": {"start": 2, "end": 1}, "timezone": "Nowhere/City"}),
                "config.timezone",
            ),
        ] {
            let e = parse_config(kind, &config).expect_err(&format!("{kind} {config}"));
            assert_eq!(e.code, ErrorCode::InvalidRules, "{kind} {config}");
            assert!(e.issues.iter().any(|i| i.path == path), "{kind} {config}: {:?}", e.issues);
        }
        parse_config(DailyLimitThreshold, &json!({"warnPercent": 80, "stopPercent": 100, "dailyMax": {"solana": "50000000000", "ethereum": "5000000000000000000"}})).unwrap();
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent(Amount::from_u64(79), Amount::from_u64(100)), 79);
        assert_eq!(percent(Amount::from_u64(4), Amount::from_u64(5)), 80);
        assert_eq!(percent(Amount::from_u64(5), Amount::ZERO), 0);
    }
}
