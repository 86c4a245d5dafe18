//! Request and response body schemas of `/doc`, per operation (09-api.md). They are JSON Schema
//! written next to the handlers' shapes and checked against the running daemon by the
//! schemathesis test (tests/clients.rs): a response that differs from its schema fails it.
//!
//! Request schemas are closed (`additionalProperties: false`) where the handler refuses unknown
//! fields; response schemas name the fields every answer carries and allow more.

use serde_json::{Value, json};

use super::routes::Op;

fn s() -> Value {
    json!({"type": "string"})
}
fn ns() -> Value {
    json!({"type": ["string", "null"]})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn b() -> Value {
    json!({"type": "boolean"})
}
fn obj() -> Value {
    json!({"type": "object"})
}
fn arr(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// A closed request object.
fn req(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// An open response object whose `required` fields are always present.
fn res(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

fn agent() -> Value {
    res(
        json!({"id": s(), "name": s(), "chain": s(), "network": s(), "address": s(), "status": s(),
               "ownerAddress": ns(), "ownerState": s()}),
        &["id", "name", "chain", "network", "status"],
    )
}

fn page(key: &str, item: Value) -> Value {
    res(json!({key: arr(item), "nextCursor": ns()}), &[key])
}

fn rule() -> Value {
    res(
        json!({"id": s(), "agentId": ns(), "type": s(), "config": obj(), "action": s(), "enabled": b()}),
        &["id", "type", "config", "action", "enabled"],
    )
}

/// The request body of `op`, when it takes one.
pub(crate) fn request(op: Op) -> Option<Value> {
    Some(match op {
        Op::TxSend | Op::TxDryRun => crate::domain::pipeline::kinds::send_body_schema(),
        Op::SessionCreate => json!({
            "type": "object",
            "properties": {"agentId": s(), "agentName": s(), "constraints": obj(), "expiresIn": int(), "maxRenewals": int(),
                           "renewalRejectWindow": int(), "maxAmountPerTx": s(), "maxTotalAmount": s(), "maxTransactions": int(),
                           "allowedOperations": arr(s()), "allowedDestinations": arr(s()), "allowedTokens": arr(s()),
                           "allowedContracts": arr(s()), "allowedSpenders": arr(s())},
        }),
        Op::AgentCreate => req(
            json!({"name": s(), "chain": {"type": "string", "enum": ["solana", "ethereum"]}, "network": s(),
                   "backend": {"type": "string", "enum": ["keystore", "ledger"]}, "derivationPath": s(), "owner": s(),
                   "ownerAddress": s()}),
            &[],
        ),
        Op::AgentUpdate => req(json!({"name": s(), "owner": ns()}), &[]),
        Op::AgentSuspend => req(json!({"reason": s()}), &[]),
        Op::AgentExport => req(json!({"password": s()}), &["password"]),
        Op::AgentImport => req(json!({"keystore": obj(), "password": s(), "name": s()}), &["keystore", "password"]),
        Op::OwnerReject => req(json!({"reason": s()}), &[]),
        Op::OwnerConnect => req(
            json!({"address": s(), "chain": s(), "wcSessionTopic": s(), "wcPairingTopic": s()}),
            &["address", "chain"],
        ),
        Op::OwnerDisconnect => req(json!({"address": s(), "chain": s()}), &["address", "chain"]),
        Op::ChannelCreate => req(
            json!({"type": {"type": "string", "enum": ["TELEGRAM", "DISCORD", "NTFY", "SLACK", "WEBHOOK"]}, "name": s(),
                   "config": obj(), "priority": int(), "enabled": b()}),
            &["type", "name", "config"],
        ),
        Op::ChannelUpdate => req(json!({"name": s(), "config": obj(), "priority": int(), "enabled": b()}), &[]),
        Op::PolicyCreate => req(
            json!({"agentId": s(), "chain": s(), "type": s(), "rules": obj(), "priority": int(), "enabled": b()}),
            &["type", "rules"],
        ),
        Op::PolicyUpdate => req(json!({"rules": obj(), "priority": int(), "enabled": b()}), &[]),
        Op::PolicyDryRun => req(
            json!({"agentId": s(), "transaction": crate::domain::pipeline::kinds::send_body_schema(), "policies": arr(obj())}),
            &["agentId", "transaction"],
        ),
        Op::KillSwitchActivate | Op::OwnerKillSwitch => {
            req(json!({"reason": {"type": "string", "minLength": 1, "maxLength": 500}}), &["reason"])
        }
        Op::Recover => req(json!({"masterPassword": s()}), &[]),
        Op::Withdraw => req(json!({"scope": {"type": "string", "enum": ["all", "native"]}, "tokens": arr(s())}), &[]),
        Op::RuleCreate => req(
            json!({"agentId": s(), "type": s(), "config": obj(), "action": {"type": "string", "enum": ["WARN", "SUSPEND_AGENT", "KILL_SWITCH"]},
                   "enabled": b()}),
            &["type", "config", "action"],
        ),
        Op::RuleUpdate => req(json!({"config": obj(), "action": s(), "enabled": b()}), &[]),
        Op::OwnerMessage => req(
            json!({"action": {"type": "string", "enum": ["approve_tx", "reject_tx", "verify_owner", "console_login", "kill_switch"]},
                   "target": s(), "chain": {"type": "string", "enum": ["solana", "ethereum"]}, "address": s()}),
            &["action", "target", "chain", "address"],
        ),
        Op::ConsoleLogin => req(json!({}), &[]),
        _ => return None,
    })
}

/// **ConsoleTx** (11-owner-console.md §4.2).
fn console_tx() -> Value {
    res(
        json!({"id": s(), "agentId": s(), "agentName": s(), "type": s(), "status": s(), "tier": ns(), "chain": s(),
               "network": s(), "chainId": {"type": ["integer", "null"]}, "amount": s(), "nativeAmount": s(),
               "formatted": s(), "symbol": s(), "decimals": {"type": ["integer", "null"]}, "toAddress": ns(),
               "newRecipient": b(), "summary": s(), "decision": {"type": ["object", "null"]}, "expiresAt": ns(),
               "createdAt": s()}),
        &[
            "id",
            "agentId",
            "agentName",
            "type",
            "status",
            "chain",
            "network",
            "amount",
            "formatted",
            "summary",
            "createdAt",
        ],
    )
}

/// The success body of `op`, when more is known than "an object".
pub(crate) fn response(op: Op) -> Option<Value> {
    Some(match op {
        Op::WalletAddress => {
            res(json!({"agentId": s(), "address": s(), "chain": s(), "network": s()}), &["address", "chain", "network"])
        }
        Op::WalletBalance => res(
            json!({"address": s(), "balance": s(), "decimals": int(), "symbol": s(), "formatted": s(), "chain": s(), "network": s()}),
            &["address", "balance", "decimals", "symbol"],
        ),
        Op::WalletAssets => res(json!({"assets": arr(obj()), "chain": s(), "network": s()}), &["assets"]),
        Op::TxSend => res(
            json!({"transactionId": s(), "type": s(), "status": s(), "tier": ns(), "txHash": s(), "createdAt": s()}),
            &["transactionId", "status"],
        ),
        Op::TxList | Op::TxPending | Op::PendingApprovals => page("transactions", obj()),
        Op::TxGet => res(json!({"id": s(), "status": s(), "type": s()}), &["id", "status"]),
        Op::SessionCreate => {
            res(json!({"sessionId": s(), "token": s(), "expiresAt": s()}), &["sessionId", "token", "expiresAt"])
        }
        Op::SessionList => page("sessions", obj()),
        Op::SessionRenew => res(json!({"sessionId": s(), "token": s(), "expiresAt": s()}), &["token", "expiresAt"]),
        Op::AgentCreate | Op::AgentGet => agent(),
        Op::AgentList => page("agents", agent()),
        Op::PolicyList => page("policies", obj()),
        Op::ChannelList => res(json!({"channels": arr(obj())}), &["channels"]),
        Op::NotificationLog => page("entries", obj()),
        Op::KillSwitchStatus => res(
            json!({"status": {"type": "string", "enum": ["NORMAL", "ACTIVATED", "RECOVERING"]}, "activatedAt": ns(), "reason": ns(), "actor": ns()}),
            &["status"],
        ),
        Op::KillSwitchActivate | Op::OwnerKillSwitch => res(
            json!({"activated": b(), "timestamp": s(), "sessionsRevoked": int(), "transactionsCancelled": int(),
                   "agentsSuspended": int(), "cascadeDurationMs": int()}),
            &["activated", "sessionsRevoked", "transactionsCancelled", "agentsSuspended"],
        ),
        Op::AdminStatus => res(
            json!({"daemon": obj(), "killSwitch": obj(), "agents": obj(), "sessions": obj(), "transactions": obj(),
                   "adapters": arr(obj()), "workers": obj(), "database": obj(), "resources": obj(),
                   "ledger": res(json!({"transport": s(), "status": s()}), &["transport", "status"])}),
            &[
                "daemon",
                "killSwitch",
                "agents",
                "sessions",
                "transactions",
                "adapters",
                "workers",
                "database",
                "resources",
                "ledger",
            ],
        ),
        Op::RuleList => res(json!({"rules": arr(rule())}), &["rules"]),
        Op::RuleCreate | Op::RuleUpdate => rule(),
        Op::AgentUpdate | Op::AgentSuspend | Op::AgentResume | Op::AgentImport => agent(),
        Op::AgentTerminate => res(
            json!({"id": s(), "status": s(), "terminatedAt": s(), "sessionsRevoked": int(), "transactionsCancelled": int()}),
            &["id", "status", "terminatedAt"],
        ),
        Op::AgentExport => res(json!({"keystore": obj()}), &["keystore"]),
        Op::SessionGet => res(json!({"id": s(), "agentId": s(), "constraints": obj()}), &["id", "agentId"]),
        Op::SessionRevoke => {
            res(json!({"revoked": b(), "sessionId": s(), "revokedAt": s(), "trigger": s()}), &["revoked", "sessionId"])
        }
        Op::OwnerVerify => res(
            json!({"agentId": s(), "ownerAddress": s(), "ownerState": s(), "verifiedAt": ns()}),
            &["agentId", "ownerState"],
        ),
        Op::OwnerApprove => res(
            json!({"transactionId": s(), "status": s(), "approvedAt": s(), "approvedBy": s()}),
            &["transactionId", "status", "approvedAt", "approvedBy"],
        ),
        Op::OwnerReject => res(
            json!({"transactionId": s(), "status": s(), "rejectedAt": s(), "rejectedBy": s(), "reason": ns()}),
            &["transactionId", "status", "rejectedAt"],
        ),
        Op::OwnerConnect => res(
            json!({"connectionId": s(), "address": s(), "chain": s(), "connectedAt": s()}),
            &["connectionId", "address", "chain"],
        ),
        Op::OwnerDisconnect => res(json!({"disconnected": b(), "disconnectedAt": s()}), &["disconnected"]),
        Op::ChannelCreate | Op::ChannelUpdate => res(
            json!({"id": s(), "type": s(), "name": s(), "config": obj(), "priority": int(), "enabled": b()}),
            &["id", "type", "name", "config", "priority", "enabled"],
        ),
        Op::ChannelDisable => res(json!({"id": s(), "enabled": b()}), &["id", "enabled"]),
        Op::PolicyCreate | Op::PolicyGet | Op::PolicyUpdate => res(
            json!({"id": s(), "agentId": ns(), "type": s(), "rules": obj(), "priority": int(), "enabled": b()}),
            &["id", "type", "rules", "priority", "enabled"],
        ),
        Op::PolicyDelete | Op::RuleDelete => res(json!({"deleted": b(), "id": s()}), &["deleted", "id"]),
        // The audit cursor is the last row's sequence number.
        Op::AuditLog => res(json!({"entries": arr(obj()), "nextCursor": {"type": ["integer", "null"]}}), &["entries"]),
        Op::Recover => res(
            json!({"status": s(), "recoveryEligibleAt": s(), "waitSeconds": int(), "hasOwner": b(), "recovered": b(),
                   "agentsReactivated": int()}),
            &[],
        ),
        Op::Withdraw => res(
            json!({"agentId": s(), "destination": s(), "scope": s(), "totalTransactions": int(), "nativeRecovered": s(),
                   "tokensRecovered": arr(obj()), "rentRecovered": s(), "failed": arr(obj()), "txHashes": arr(s())}),
            &["agentId", "destination", "nativeRecovered", "failed", "txHashes"],
        ),
        Op::OwnerStatus => res(
            json!({"connections": arr(obj()), "systemState": s(), "activeSessionCount": int(), "pendingApprovalCount": int(),
                   "walletConnectProjectId": ns()}),
            &["connections", "systemState", "activeSessionCount", "pendingApprovalCount", "walletConnectProjectId"],
        ),
        Op::OwnerDashboard => res(
            json!({"agents": arr(obj()), "todayTxCount": int(), "todayVolume": res(json!({"solana": s(), "ethereum": s()}), &["solana", "ethereum"]),
                   "activeSessions": int(), "pendingApprovals": int(), "systemState": s()}),
            &["agents", "todayTxCount", "todayVolume", "activeSessions", "pendingApprovals", "systemState"],
        ),
        Op::OwnerMessage => res(
            json!({"message": s(), "nonce": s(), "issuedAt": s(), "expirationTime": s()}),
            &["message", "nonce", "issuedAt", "expirationTime"],
        ),
        Op::ConsoleLogin => res(
            json!({"token": s(), "expiresAt": s(), "address": s(), "chain": s()}),
            &["token", "expiresAt", "address", "chain"],
        ),
        Op::MePending => {
            res(json!({"serverTime": s(), "transactions": arr(console_tx())}), &["serverTime", "transactions"])
        }
        Op::MeTransactions => page("transactions", console_tx()),
        Op::MeTransaction => console_tx(),
        Op::MeAgents => res(json!({"agents": arr(agent())}), &["agents"]),
        Op::MePolicies => res(
            json!({"agents": arr(res(json!({"agentId": s(), "agentName": s(), "policies": arr(obj())}), &["agentId", "policies"]))}),
            &["agents"],
        ),
        Op::MeChannels => res(
            json!({"notificationsEnabled": b(), "minChannels": int(), "channels": arr(obj())}),
            &["notificationsEnabled", "minChannels", "channels"],
        ),
        Op::OwnerSettings => res(
            json!({"daemon": obj(), "security": obj(), "notifications": obj(), "autoStop": obj(), "oracle": obj(), "ledger": obj()}),
            &["daemon", "security", "notifications", "autoStop", "oracle", "ledger"],
        ),
        _ => return None,
    })
}
