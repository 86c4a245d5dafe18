//! Which policies apply to an agent (07-policy.md §2): candidates by level, the most specific
//! level per type wins, and single-valued types keep only their top-priority policy.
//!
//! One implementation: the decision snapshot resolves the policies it hands the engine with
//! it, and the daemon's views (`GET /v1/agents/:id` marks each policy effective or not) call the
//! same functions.

use crate::enums::PolicyType;
use crate::records::{AgentRecord, PolicyRecord};

/// How specific a policy is for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Agent-specific.
    Agent = 1,
    /// Global for the agent's chain.
    Chain = 2,
    /// Global for all chains.
    Global = 3,
}

impl Level {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Agent => "agent",
            Level::Chain => "chain",
            Level::Global => "global",
        }
    }
}

/// The level of `p` for `agent`, or `None` when it does not apply to the agent at all.
pub fn level(p: &PolicyRecord, agent: &AgentRecord) -> Option<Level> {
    if p.chain.is_some_and(|c| c != agent.chain) {
        return None;
    }
    match (p.agent_id, p.chain) {
        (Some(a), _) if a == agent.id => Some(Level::Agent),
        (Some(_), _) => None,
        (None, Some(_)) => Some(Level::Chain),
        (None, None) => Some(Level::Global),
    }
}

/// Types where only one policy (highest priority, ties: newest) is used.
fn single_valued(t: PolicyType) -> bool {
    matches!(t, PolicyType::SpendingLimit | PolicyType::ApproveAmountLimit | PolicyType::ApproveTierOverride)
}

/// Every policy that concerns `agent`, with its level and whether the engine uses it.
pub fn for_agent<'a>(agent: &AgentRecord, all: &'a [PolicyRecord]) -> Vec<(&'a PolicyRecord, Level, bool)> {
    let scoped: Vec<(&PolicyRecord, Level)> = all.iter().filter_map(|p| level(p, agent).map(|l| (p, l))).collect();
    let winner = |t: PolicyType| {
        let best_level = scoped.iter().filter(|(p, _)| p.enabled && p.policy_type == t).map(|(_, l)| *l).min()?;
        let kept = scoped.iter().filter(move |(p, l)| p.enabled && p.policy_type == t && *l == best_level);
        Some((best_level, kept.max_by_key(|(p, _)| (p.priority, p.created_at, p.id)).map(|(p, _)| p.id)))
    };
    scoped
        .iter()
        .map(|(p, l)| {
            let effective = p.enabled
                && match winner(p.policy_type) {
                    Some((best, top)) => *l == best && (!single_valued(p.policy_type) || top == Some(p.id)),
                    None => false,
                };
            (*p, *l, effective)
        })
        .collect()
}

/// The policies the engine uses for `agent`, highest priority first (ties: newest first).
pub fn effective(agent: &AgentRecord, all: &[PolicyRecord]) -> Vec<PolicyRecord> {
    let mut out: Vec<PolicyRecord> =
        for_agent(agent, all).into_iter().filter(|(_, _, effective)| *effective).map(|(p, _, _)| p.clone()).collect();
    out.sort_by_key(|p| std::cmp::Reverse((p.priority, p.created_at, p.id)));
    out
}
