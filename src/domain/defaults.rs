//! What `init` seeds: the two global SPENDING_LIMIT policies (07-policy.md §10) and the three
//! global AutoStop rules (08-killswitch-autostop.md §6.2).

use serde_json::json;
use waiaas_storage::{AutoStopAction, AutoStopRuleRecord, AutoStopRuleType, Chain, PolicyRecord, PolicyType};

use crate::base::clock::Clock;

pub(crate) fn default_policies(clock: &Clock) -> Vec<PolicyRecord> {
    let now = clock.now();
    let spending = |chain: Chain, instant: &str, notify: &str, delay: &str| {
        let rules = json!({
            "instant_max": instant,
            "notify_max": notify,
            "delay_max": delay,
            "delay_seconds": 300,
            "approval_timeout": 3600,
        });
        PolicyRecord { chain: Some(chain), ..PolicyRecord::new(clock.new_id(), PolicyType::SpendingLimit, rules, now) }
    };
    vec![
        spending(Chain::Solana, "1000000000", "10000000000", "50000000000"),
        spending(Chain::Ethereum, "100000000000000000", "1000000000000000000", "5000000000000000000"),
    ]
}

pub(crate) fn default_auto_stop_rules(clock: &Clock) -> Vec<AutoStopRuleRecord> {
    let now = clock.now();
    let rule = |rule_type, config| {
        AutoStopRuleRecord::new(clock.new_id(), rule_type, config, AutoStopAction::SuspendAgent, now)
    };
    vec![
        rule(AutoStopRuleType::ConsecutiveFailures, json!({"threshold": 3})),
        rule(
            AutoStopRuleType::DailyLimitThreshold,
            json!({"warnPercent": 80, "stopPercent": 100, "dailyMax": {"solana": "50000000000", "ethereum": "5000000000000000000"}}),
        ),
        rule(AutoStopRuleType::HourlyRate, json!({"maxTxPerHour": 50})),
    ]
}
