//! Stages 2–4 as a pure function of the decision snapshot (06-pipeline.md §4): agent status,
//! session constraints (04-auth.md §4.2) and the policy stage. It runs inside
//! `decide_transaction`'s write transaction, so the usage and reservations it reads cannot change
//! before the reservation it leads to is written.
//!
//! Its result is a typed [`Decided`] value: the tier, or a [`Refusal`] saying exactly why the
//! request was cancelled. The storage outcome (error string, denial record, audit rows) is
//! derived from that value in one place ([`Decided::outcome`]).

use serde_json::{Map, Value, json};
use waiaas_storage::{
    AgentStatus, AllowedOperation, Amount, AuditEvent, AuditSeverity, Chain, DecisionOutcome, DecisionSnapshot,
    SessionConstraints, SessionRecord, Tier, TransactionRecord, TxType,
};

use crate::error::{Coded, ErrorCode, details};

/// Which session constraint refused a request (04-auth.md §4.2), in check order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionLimit {
    PerTx,
    Total,
    TxCount,
    OperationDenied,
    DestinationDenied,
    TokenNotAllowed,
    ContractNotAllowed,
    SpenderNotAllowed,
}

impl SessionLimit {
    /// The `details.code` / `transactions.error` spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionLimit::PerTx => "SESSION_LIMIT_PER_TX",
            SessionLimit::Total => "SESSION_LIMIT_TOTAL",
            SessionLimit::TxCount => "SESSION_LIMIT_TX_COUNT",
            SessionLimit::OperationDenied => "SESSION_OPERATION_DENIED",
            SessionLimit::DestinationDenied => "SESSION_DESTINATION_DENIED",
            SessionLimit::TokenNotAllowed => "SESSION_TOKEN_NOT_ALLOWED",
            SessionLimit::ContractNotAllowed => "SESSION_CONTRACT_NOT_ALLOWED",
            SessionLimit::SpenderNotAllowed => "SESSION_SPENDER_NOT_ALLOWED",
        }
    }
}

/// A session-constraint refusal: which limit and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConstraintDenial {
    pub(crate) limit: SessionLimit,
    pub(crate) message: String,
}

/// Why stages 2–4 cancelled a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// The agent is SUSPENDED or TERMINATED.
    AgentInactive(AgentStatus),
    /// A session constraint.
    Session(ConstraintDenial),
}

impl Refusal {
    /// `transactions.error` for the cancelled row.
    pub(crate) fn error(&self) -> &'static str {
        match self {
            Refusal::AgentInactive(AgentStatus::Terminated) => "AGENT_TERMINATED",
            Refusal::AgentInactive(_) => "AGENT_SUSPENDED",
            Refusal::Session(d) => d.limit.as_str(),
        }
    }

    /// `sessionCheck.code` of a dry run: the constraint, when one refused.
    pub(crate) fn session_code(&self) -> Option<&'static str> {
        match self {
            Refusal::Session(d) => Some(d.limit.as_str()),
            _ => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::AgentInactive(AgentStatus::Terminated) => f.write_str("The agent is terminated"),
            Refusal::AgentInactive(_) => f.write_str("The agent is suspended"),
            Refusal::Session(d) => f.write_str(&d.message),
        }
    }
}

impl Coded for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::AgentInactive(AgentStatus::Terminated) => ErrorCode::AgentTerminated,
            Refusal::AgentInactive(_) => ErrorCode::AgentSuspended,
            Refusal::Session(_) => ErrorCode::SessionLimitExceeded,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            Refusal::Session(d) => details([("code", d.limit.as_str().into())]),
            Refusal::AgentInactive(_) => Map::new(),
        }
    }
}

/// What stages 2–4 decided: a tier, or a refusal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decided {
    Allowed { tier: Tier },
    Refused(Refusal),
}

impl Decided {
    /// What the decision transaction writes for this decision about `tx`.
    pub(crate) fn outcome(&self, tx: &TransactionRecord, actor: &str) -> DecisionOutcome {
        let base =
            |name: &str| AuditEvent::new(name, actor.to_string()).agent(tx.agent_id).session(tx.session_id).tx(tx.id);
        match self {
            Decided::Allowed { tier } => DecisionOutcome::Queue {
                tier: *tier,
                queue_expires_at: None,
                decision: json!({"tier": tier.as_str(), "policyId": null, "reason": "no policy stage applied"}),
                approval_owner: None,
                audits: vec![base("TX_QUEUED").detail("tier", tier.as_str())],
            },
            Decided::Refused(r @ Refusal::AgentInactive(_)) => DecisionOutcome::Cancel {
                error: r.error().into(),
                denial: None,
                audits: vec![base("TX_CANCELLED").detail("error", r.error())],
            },
            Decided::Refused(r @ Refusal::Session(d)) => DecisionOutcome::Cancel {
                error: r.error().into(),
                denial: Some(json!({"code": d.limit.as_str(), "message": d.message})),
                audits: vec![
                    base("TX_SESSION_CHECK")
                        .severity(AuditSeverity::Warning)
                        .detail("code", d.limit.as_str())
                        .detail("passed", false),
                ],
            },
        }
    }
}

fn listed(list: &Option<Vec<String>>, value: Option<&str>, chain: Chain) -> bool {
    match (list, value) {
        (None, _) | (Some(_), None) => true,
        (Some(l), Some(v)) => crate::address::listed(chain, l, v),
    }
}

/// `BALANCE_CHECK`, when `allowedOperations` is set, gates the balance routes (04-auth.md §4.2).
pub(crate) fn balance_check(c: &SessionConstraints) -> Result<(), ConstraintDenial> {
    if op_allowed(c, AllowedOperation::BalanceCheck) {
        Ok(())
    } else {
        Err(ConstraintDenial {
            limit: SessionLimit::OperationDenied,
            message: "BALANCE_CHECK is not an allowed operation of this session".into(),
        })
    }
}

fn op_allowed(c: &SessionConstraints, op: AllowedOperation) -> bool {
    c.allowed_operations.as_ref().is_none_or(|ops| ops.contains(&op))
}

/// The list constraints for one (top-level or child) row, in the spec's order.
fn list_checks(c: &SessionConstraints, r: &TransactionRecord) -> Option<ConstraintDenial> {
    let deny = |limit: SessionLimit, what: &str, v: &Option<String>| {
        Some(ConstraintDenial {
            limit,
            message: format!("{what} {} is not allowed by this session", v.as_deref().unwrap_or("")),
        })
    };
    let chain = r.chain;
    if matches!(r.tx_type, TxType::Transfer | TxType::TokenTransfer)
        && !listed(&c.allowed_destinations, r.to_address.as_deref(), chain)
    {
        return deny(SessionLimit::DestinationDenied, "destination", &r.to_address);
    }
    if matches!(r.tx_type, TxType::TokenTransfer | TxType::Approve)
        && !listed(&c.allowed_tokens, r.token_mint.as_deref(), chain)
    {
        return deny(SessionLimit::TokenNotAllowed, "token", &r.token_mint);
    }
    if r.tx_type == TxType::ContractCall && !listed(&c.allowed_contracts, r.contract_address.as_deref(), chain) {
        return deny(SessionLimit::ContractNotAllowed, "contract", &r.contract_address);
    }
    if r.tx_type == TxType::Approve && !listed(&c.allowed_spenders, r.spender_address.as_deref(), chain) {
        return deny(SessionLimit::SpenderNotAllowed, "spender", &r.spender_address);
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
            limit: SessionLimit::PerTx,
            message: format!("amount {native} exceeds maxAmountPerTx {max}"),
        });
    }
    if let Some(max) = c.max_total_amount {
        let total = s.usage.total_amount.checked_add(reserved).and_then(|t| t.checked_add(native));
        if total.is_err() || total.is_ok_and(|t| t > max) {
            return Some(ConstraintDenial {
                limit: SessionLimit::Total,
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
            limit: SessionLimit::TxCount,
            message: format!("{} confirmed + {in_flight} in flight reach maxTransactions {max}", s.usage.total_tx),
        });
    }
    let ops_ok = op_allowed(c, AllowedOperation::for_tx(tx.tx_type))
        && children.iter().all(|ch| op_allowed(c, AllowedOperation::for_tx(ch.tx_type)));
    if !ops_ok {
        return Some(ConstraintDenial {
            limit: SessionLimit::OperationDenied,
            message: format!("{} is not an allowed operation of this session", tx.tx_type),
        });
    }
    if tx.tx_type == TxType::Batch { children.iter().find_map(|ch| list_checks(c, ch)) } else { list_checks(c, tx) }
}

/// The policy stage. The policy engine (07-policy.md) plugs in here; until it does, a request
/// that passed the session constraints is INSTANT, as the spec says for a request no policy
/// applies to.
fn policy_tier(_snap: &DecisionSnapshot) -> Tier {
    Tier::Instant
}

/// Stages 2–4 for one PENDING row.
pub(crate) fn evaluate(snap: &DecisionSnapshot) -> Decided {
    let tx = &snap.tx;
    if snap.agent.status != AgentStatus::Active {
        return Decided::Refused(Refusal::AgentInactive(snap.agent.status));
    }
    if let Some(s) = &snap.session
        && let Some(d) = session_check(s, snap.session_in_flight, snap.session_reserved, tx, &snap.children)
    {
        return Decided::Refused(Refusal::Session(d));
    }
    Decided::Allowed { tier: policy_tier(snap) }
}
