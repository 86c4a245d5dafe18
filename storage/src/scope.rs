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

/// Every policy that concerns `agent`, with its level and whether the engine uses it. One pass
/// finds, per type, the most specific level and (for single-valued types) the top policy; a
/// second marks each policy — linear in the number of policies.
pub fn for_agent<'a>(agent: &AgentRecord, all: &'a [PolicyRecord]) -> Vec<(&'a PolicyRecord, Level, bool)> {
    use std::collections::HashMap;
    let scoped: Vec<(&PolicyRecord, Level)> = all.iter().filter_map(|p| level(p, agent).map(|l| (p, l))).collect();
    // Per type: the best level, then the top policy at that level.
    let mut best: HashMap<PolicyType, Level> = HashMap::new();
    for (p, l) in scoped.iter().filter(|(p, _)| p.enabled) {
        best.entry(p.policy_type).and_modify(|b| *b = (*b).min(*l)).or_insert(*l);
    }
    let mut top: HashMap<PolicyType, &PolicyRecord> = HashMap::new();
    for (p, _) in scoped.iter().filter(|(p, l)| p.enabled && best.get(&p.policy_type) == Some(l)) {
        top.entry(p.policy_type)
            .and_modify(|t| {
                if (p.priority, p.created_at, p.id) > (t.priority, t.created_at, t.id) {
                    *t = p;
                }
            })
            .or_insert(p);
    }
    scoped
        .iter()
        .map(|(p, l)| {
            let effective = p.enabled
                && best.get(&p.policy_type) == Some(l)
                && (!single_valued(p.policy_type) || top.get(&p.policy_type).is_some_and(|t| t.id == p.id));
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

/// [`effective`] on owned records, without copying them (the decision snapshot).
pub fn keep_effective(agent: &AgentRecord, all: Vec<PolicyRecord>) -> Vec<PolicyRecord> {
    let keep: Vec<bool> = for_agent(agent, &all).into_iter().map(|(_, _, effective)| effective).collect();
    // `for_agent` yields the policies that concern the agent, in order; line them up again.
    let mut flags = keep.into_iter();
    let mut out: Vec<PolicyRecord> =
        all.into_iter().filter(|p| level(p, agent).is_some() && flags.next().unwrap_or(false)).collect();
    out.sort_by_key(|p| std::cmp::Reverse((p.priority, p.created_at, p.id)));
    out
}
