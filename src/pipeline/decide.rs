//! Stages 2–4 as a pure function of the decision snapshot (06-pipeline.md §4): agent status,
//! session constraints (04-auth.md §4.2) and the policy stage. It runs inside
//! `decide_transaction`'s write transaction, so the usage and reservations it reads cannot change
//! before the reservation it leads to is written.

use serde_json::json;
use waiaas_storage::{
    AgentStatus, AllowedOperation, Amount, AuditEvent, AuditSeverity, Chain, DecisionOutcome, DecisionSnapshot,
    SessionConstraints, SessionRecord, Tier, TransactionRecord, TxType,
};

use crate::error::{ApiError, ErrorCode};

/// A session-constraint refusal: `details.code` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConstraintDenial {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn listed(list: &Option<Vec<String>>, value: Option<&str>, chain: Chain) -> bool {
    match (list, value) {
        (None, _) => true,
        (Some(_), None) => true,
        (Some(l), Some(v)) => l.iter().any(|x| match chain {
            Chain::Ethereum => x.eq_ignore_ascii_case(v),
            Chain::Solana => x == v,
        }),
    }
}

fn op_allowed(c: &SessionConstraints, op: AllowedOperation) -> bool {
    c.allowed_operations.as_ref().is_none_or(|ops| ops.contains(&op))
}

/// The list constraints for one (top-level or child) row, in the spec's order.
fn list_checks(c: &SessionConstraints, r: &TransactionRecord) -> Option<ConstraintDenial> {
    let deny = |code: &'static str, what: &str, v: &Option<String>| {
        Some(ConstraintDenial {
            code,
            message: format!("{what} {} is not allowed by this session", v.as_deref().unwrap_or("")),
        })
    };
    let chain = r.chain;
    if matches!(r.tx_type, TxType::Transfer | TxType::TokenTransfer)
        && !listed(&c.allowed_destinations, r.to_address.as_deref(), chain)
    {
        return deny("SESSION_DESTINATION_DENIED", "destination", &r.to_address);
    }
    if matches!(r.tx_type, TxType::TokenTransfer | TxType::Approve)
        && !listed(&c.allowed_tokens, r.token_mint.as_deref(), chain)
    {
        return deny("SESSION_TOKEN_NOT_ALLOWED", "token", &r.token_mint);
    }
    if r.tx_type == TxType::ContractCall && !listed(&c.allowed_contracts, r.contract_address.as_deref(), chain) {
        return deny("SESSION_CONTRACT_NOT_ALLOWED", "contract", &r.contract_address);
    }
    if r.tx_type == TxType::Approve && !listed(&c.allowed_spenders, r.spender_address.as_deref(), chain) {
        return deny("SESSION_SPENDER_NOT_ALLOWED", "spender", &r.spender_address);
    }
    None
}

/// 04-auth.md §4.2: limits count usage plus the session's in-flight reservations.
pub(crate) fn session_check(
    s: &SessionRecord,
    in_flight: u64,
    reserved: Amount,
    tx: &TransactionRecord,
    children: &[TransactionRecord],
) -> Option<ConstraintDenial> {
    let c = &s.constraints;
    let native = tx.native_amount;
    if let Some(max) = c.max_amount_per_tx
        && native > max
    {
        return Some(ConstraintDenial {
            code: "SESSION_LIMIT_PER_TX",
            message: format!("amount {native} exceeds maxAmountPerTx {max}"),
        });
    }
    if let Some(max) = c.max_total_amount {
        let total = s.usage.total_amount.checked_add(reserved).and_then(|t| t.checked_add(native));
        if total.is_err() || total.is_ok_and(|t| t > max) {
            return Some(ConstraintDenial {
                code: "SESSION_LIMIT_TOTAL",
                message: format!(
                    "used {} + in flight {reserved} + {native} exceeds maxTotalAmount {max}",
                    s.usage.total_amount
                ),
            });
        }
    }
    if let Some(max) = c.max_transactions
        && s.usage.total_tx + in_flight >= max
    {
        return Some(ConstraintDenial {
            code: "SESSION_LIMIT_TX_COUNT",
            message: format!("{} confirmed + {in_flight} in flight reach maxTransactions {max}", s.usage.total_tx),
        });
    }
    let ops_ok = op_allowed(c, AllowedOperation::for_tx(tx.tx_type))
        && children.iter().all(|ch| op_allowed(c, AllowedOperation::for_tx(ch.tx_type)));
    if !ops_ok {
        return Some(ConstraintDenial {
            code: "SESSION_OPERATION_DENIED",
            message: format!("{} is not an allowed operation of this session", tx.tx_type),
        });
    }
    if tx.tx_type == TxType::Batch { children.iter().find_map(|ch| list_checks(c, ch)) } else { list_checks(c, tx) }
}

/// The policy stage. The policy engine (07-policy.md) plugs in here; until it does, a request
/// that passed the session constraints is INSTANT, as the spec says for a request no policy
/// applies to.
fn policy_tier(_snap: &DecisionSnapshot) -> (Tier, serde_json::Value) {
    (Tier::Instant, json!({"tier": "INSTANT", "policyId": null, "reason": "no policy stage applied"}))
}

/// Stages 2–4 for one PENDING row.
pub(crate) fn evaluate(snap: &DecisionSnapshot, actor: &str) -> DecisionOutcome {
    let tx = &snap.tx;
    let base =
        |name: &str| AuditEvent::new(name, actor.to_string()).agent(tx.agent_id).session(tx.session_id).tx(tx.id);
    let status_code = match snap.agent.status {
        AgentStatus::Active => None,
        AgentStatus::Suspended => Some("AGENT_SUSPENDED"),
        AgentStatus::Terminated => Some("AGENT_TERMINATED"),
    };
    if let Some(code) = status_code {
        return DecisionOutcome::Cancel {
            error: code.into(),
            denial: None,
            audits: vec![base("TX_CANCELLED").detail("error", code)],
        };
    }
    if let Some(s) = &snap.session
        && let Some(d) = session_check(s, snap.session_in_flight, snap.session_reserved, tx, &snap.children)
    {
        return DecisionOutcome::Cancel {
            error: d.code.into(),
            denial: Some(json!({"code": d.code, "message": d.message})),
            audits: vec![
                base("TX_SESSION_CHECK")
                    .severity(AuditSeverity::Warning)
                    .detail("code", d.code)
                    .detail("passed", false),
            ],
        };
    }
    let (tier, decision) = policy_tier(snap);
    DecisionOutcome::Queue {
        tier,
        queue_expires_at: None,
        decision,
        approval_owner: None,
        audits: vec![base("TX_QUEUED").detail("tier", tier.as_str())],
    }
}

/// The API error for a cancelled decision (06-pipeline.md §4).
pub(crate) fn denial_error(error: &str, denial: Option<&serde_json::Value>) -> ApiError {
    match error {
        "AGENT_SUSPENDED" => ApiError::new(ErrorCode::AgentSuspended, "The agent is suspended"),
        "AGENT_TERMINATED" => ApiError::new(ErrorCode::AgentTerminated, "The agent is terminated"),
        code if code.starts_with("SESSION_") => {
            let message = denial.and_then(|d| d["message"].as_str()).unwrap_or("session constraint violated");
            ApiError::new(ErrorCode::SessionLimitExceeded, message.to_string()).detail("code", code)
        }
        other => ApiError::new(ErrorCode::PolicyDenied, format!("denied: {other}")),
    }
}
