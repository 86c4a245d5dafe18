//! Response shapes shared by several routes (09-api.md §4 "Shared objects").

use serde_json::{Value, json};
use waiaas_storage::{AgentRecord, Chain, SessionRecord, TransactionRecord};

use crate::clock::iso;

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
