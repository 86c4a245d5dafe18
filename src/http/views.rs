//! Response shapes shared by several routes (09-api.md §4 "Shared objects").

use serde_json::{Value, json};
use waiaas_storage::{AgentRecord, Chain, SessionRecord, TransactionRecord};

use crate::adapters::chains::AdapterInfo;
use crate::base::clock::iso;
use crate::domain::emergency::killswitch::KillSwitchView;
use crate::runtime::scheduler::WorkerState;

/// **AgentView**.
pub(crate) fn agent(a: &AgentRecord) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "chain": a.chain.as_str(),
        "network": a.network.as_str(),
        "chainId": a.chain_id,
        "address": a.public_key,
        "backend": a.backend.as_str(),
        "derivationPath": a.derivation_path,
        "status": a.status.as_str(),
        "ownerAddress": a.owner_address,
        "ownerState": a.owner_state().as_str(),
        "ownerVerifiedAt": a.owner_verified_at.map(iso),
        "suspendedAt": a.suspended_at.map(iso),
        "suspensionReason": a.suspension_reason,
        "createdAt": iso(a.created_at),
        "updatedAt": iso(a.updated_at),
        "terminatedAt": a.terminated_at.map(iso),
    })
}

/// The address encoding of a chain.
/// **PolicyView** (09-api.md §4).
pub(crate) fn policy(p: &waiaas_storage::PolicyRecord) -> Value {
    serde_json::json!({
        "id": p.id, "agentId": p.agent_id, "chain": p.chain.map(|c| c.as_str()), "type": p.policy_type.as_str(),
        "rules": p.rules, "priority": p.priority, "enabled": p.enabled,
        "createdAt": crate::base::clock::iso(p.created_at), "updatedAt": crate::base::clock::iso(p.updated_at),
    })
}

pub(crate) fn encoding(chain: Chain) -> &'static str {
    match chain {
        Chain::Solana => "base58",
        Chain::Ethereum => "hex",
    }
}

/// **SessionView**; never a token.
pub(crate) fn session(s: &SessionRecord, agent_name: &str) -> Value {
    json!({
        "id": s.id,
        "agentId": s.agent_id,
        "agentName": agent_name,
        "constraints": s.constraints,
        "usageStats": {
            "totalTx": s.usage.total_tx,
            "totalAmount": s.usage.total_amount.to_string(),
            "lastTxAt": s.usage.last_tx_at.map(iso),
        },
        "expiresAt": iso(s.expires_at),
        "absoluteExpiresAt": iso(s.absolute_expires_at),
        "renewalCount": s.renewal_count,
        "maxRenewals": s.max_renewals,
        "lastRenewedAt": s.last_renewed_at.map(iso),
        "createdAt": iso(s.created_at),
        "revokedAt": s.revoked_at.map(iso),
    })
}

/// **TxSummary**.
pub(crate) fn tx_summary(t: &TransactionRecord) -> Value {
    json!({
        "id": t.id,
        "type": t.tx_type.as_str(),
        "status": t.status.as_str(),
        "tier": t.tier.map(|x| x.as_str()),
        "amount": t.amount.to_string(),
        "toAddress": t.to_address,
        "txHash": t.tx_hash,
        "error": t.error,
        "createdAt": iso(t.created_at),
        "executedAt": t.executed_at.map(iso),
    })
}

/// One adapter in `/health` (`services.adapters["solana/devnet"]`).
pub(crate) fn adapter_health(a: &AdapterInfo) -> Value {
    json!({"status": a.status.as_str(), "latencyMs": a.latency_ms, "lastError": a.last_error})
}

/// One adapter in `/v1/admin/status`.
pub(crate) fn adapter_admin(a: &AdapterInfo) -> Value {
    json!({
        "chain": a.chain.as_str(),
        "network": a.network.as_str(),
        "status": a.status.as_str(),
        "latencyMs": a.latency_ms,
        "chainId": a.chain_id,
        "lastError": a.last_error,
        "lastCheck": a.last_check.map(iso),
    })
}

/// The kill-switch block of `/health`.
pub(crate) fn kill_switch(ks: &KillSwitchView) -> Value {
    json!({
        "active": ks.status != waiaas_storage::KillSwitchStatus::Normal,
        "status": ks.status.as_str(),
        "activatedAt": ks.activated_at.map(iso),
        "reason": ks.reason,
    })
}

/// `{name: {running, lastRunAt, lastError}}` of the workers.
pub(crate) fn workers(states: &std::collections::BTreeMap<&'static str, WorkerState>) -> Value {
    Value::Object(
        states
            .iter()
            .map(|(k, s)| {
                (
                    k.to_string(),
                    json!({"running": s.running, "lastRunAt": s.last_run_at.map(iso), "lastError": s.last_error}),
                )
            })
            .collect(),
    )
}
