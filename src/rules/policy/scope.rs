//! Which policies apply to an agent: the resolution itself lives in `waiaas_storage::scope` (the
//! decision snapshot uses it), re-exported here with what the daemon derives from it.

pub(crate) use waiaas_storage::scope::for_agent;
use waiaas_storage::{AgentRecord, PolicyRecord, PolicyType};

/// A token an agent's effective ALLOWED_TOKENS policies list (for its chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedToken {
    pub(crate) mint: String,
    pub(crate) symbol: String,
    pub(crate) decimals: Option<u8>,
}

/// The tokens the agent's effective ALLOWED_TOKENS policies list: the asset hints for balances
/// and sweeps (07-policy.md §3).
pub(crate) fn allowed_tokens(agent: &AgentRecord, policies: &[PolicyRecord]) -> Vec<AllowedToken> {
    let mut out = Vec::new();
    for (p, _, effective) in for_agent(agent, policies) {
        if !effective || p.policy_type != PolicyType::AllowedTokens {
            continue;
        }
        for t in p.rules["tokens"].as_array().into_iter().flatten() {
            let chain_ok = t["chain"].as_str().is_none_or(|c| c == agent.chain.as_str());
            if let (Some(mint), true) = (t["mint"].as_str(), chain_ok) {
                out.push(AllowedToken {
                    mint: mint.to_string(),
                    symbol: t["symbol"].as_str().unwrap_or_default().to_string(),
                    decimals: t["decimals"].as_u64().map(|d| d as u8),
                });
            }
        }
    }
    out
}
