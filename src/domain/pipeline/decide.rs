//! Stages 2–4 as a pure function of the decision snapshot (06-pipeline.md §4): agent status,
//! session constraints (04-auth.md §4.2), the policy engine (07-policy.md) and the pending
//! limit. It runs inside `decide_transaction`'s write transaction, so the usage, reservations,
//! rate counts and policies it reads cannot change before the reservation it leads to is
//! written.
//!
//! Its result is a typed [`Decided`] value: the policy engine's allowance, or a [`Refusal`]
//! saying exactly why the request was cancelled. The storage outcome (error string, denial
//! record, audit rows) is derived from that value in one place ([`Decided::outcome`]), and so
//! is the mapping of policy denials onto the API's error codes.

use serde_json::{Map, Value, json};
use waiaas_storage::{
    AgentStatus, AllowedOperation, Amount, AuditEvent, AuditEventType, AuditSeverity, Chain, DecisionOutcome,
    DecisionSnapshot, SessionConstraints, SessionRecord, Tier, TransactionRecord, TxType,
};

use crate::base::error::{Coded, ErrorCode, details};
use crate::rules::policy::engine::{Allow, Denial, DenialKind, Detail};
use crate::rules::policy::usd::Prices;
use crate::rules::policy::{Context, Decision, Defaults, Op, Policy};

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
    /// A policy (07-policy.md §11).
    Policy(Box<Denial>),
    /// A DELAY/APPROVAL tier while the agent already has `max` queued (06-pipeline.md §4.5);
    /// `retry_after`: seconds until the first of them ends at the latest (issue #22).
    PendingLimit { max: u64, retry_after: u64 },
}

impl Refusal {
    /// `transactions.error` for the cancelled row.
    pub(crate) fn error(&self) -> &'static str {
        match self {
            Refusal::AgentInactive(AgentStatus::Terminated) => "AGENT_TERMINATED",
            Refusal::AgentInactive(_) => "AGENT_SUSPENDED",
            Refusal::Session(d) => d.limit.as_str(),
            Refusal::Policy(_) => "POLICY_VIOLATION",
            Refusal::PendingLimit { .. } => "PENDING_TX_LIMIT_EXCEEDED",
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
            Refusal::Policy(d) if d.kind == DenialKind::NotificationsUnavailable => write!(
                f,
                "Only INSTANT transactions are allowed until notifications are available (this one is {}): \
                 set [notifications] enabled = true and add min_channels channels (waiaas channel add)",
                match d.detail {
                    Detail::Tier(t) => t.as_str(),
                    _ => "above INSTANT",
                }
            ),
            Refusal::Policy(d) => f.write_str(&d.reason),
            Refusal::PendingLimit { max, .. } => {
                write!(f, "The agent already has {max} queued DELAY/APPROVAL transactions (max_pending_tx)")
            }
        }
    }
}

/// The API code of each policy denial (07-policy.md §11).
pub(crate) fn denial_code(kind: DenialKind) -> ErrorCode {
    match kind {
        DenialKind::TokenNotAllowed => ErrorCode::TokenNotAllowed,
        DenialKind::ContractCallDisabled => ErrorCode::ContractCallDisabled,
        DenialKind::ContractNotWhitelisted => ErrorCode::ContractNotWhitelisted,
        DenialKind::MethodNotWhitelisted => ErrorCode::MethodNotWhitelisted,
        DenialKind::ApproveDisabled => ErrorCode::ApproveDisabled,
        DenialKind::SpenderNotApproved => ErrorCode::SpenderNotApproved,
        DenialKind::UnlimitedApproveBlocked => ErrorCode::UnlimitedApproveBlocked,
        DenialKind::ApproveAmountExceeded => ErrorCode::ApproveAmountExceeded,
        DenialKind::WhitelistDenied => ErrorCode::WhitelistDenied,
        DenialKind::OutsideAllowedTime | DenialKind::NotificationsUnavailable => ErrorCode::PolicyDenied,
        DenialKind::RateLimited => ErrorCode::RateLimitExceeded,
        DenialKind::BatchViolation => ErrorCode::BatchPolicyViolation,
    }
}

/// `details` of a policy denial, also stored as `metadata.denial` (with its code).
pub(crate) fn denial_details(d: &Denial) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(id) = d.policy_id {
        m.insert("policyId".into(), json!(id.to_string()));
    }
    if let Some(t) = d.policy_type {
        m.insert("policyType".into(), json!(t.as_str()));
    }
    m.insert("reason".into(), json!(d.reason));
    match &d.detail {
        Detail::Rate(r) => {
            m.insert("stage".into(), json!("policy"));
            m.insert("window".into(), json!(r.window));
            m.insert("limit".into(), json!(r.limit));
            m.insert("retryAfter".into(), json!(r.retry_after));
        }
        Detail::Tier(t) => {
            m.insert("tier".into(), json!(t.as_str()));
        }
        Detail::Token(t) => {
            m.insert("token".into(), json!(t));
        }
        Detail::None => {}
    }
    if !d.violations.is_empty() {
        let v: Vec<Value> = d
            .violations
            .iter()
            .map(|v| {
                json!({
                    "index": v.index,
                    "type": v.tx_type.as_str(),
                    "policyType": v.policy_type.map(|t| t.as_str()),
                    "code": denial_code(v.kind).as_str(),
                    "reason": v.reason,
                })
            })
            .collect();
        m.insert("violations".into(), Value::Array(v));
    }
    m
}

impl Coded for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::AgentInactive(AgentStatus::Terminated) => ErrorCode::AgentTerminated,
            Refusal::AgentInactive(_) => ErrorCode::AgentSuspended,
            Refusal::Session(_) => ErrorCode::SessionLimitExceeded,
            Refusal::Policy(d) => denial_code(d.kind),
            Refusal::PendingLimit { .. } => ErrorCode::PendingTxLimitExceeded,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            Refusal::Session(d) => details([("code", d.limit.as_str().into())]),
            Refusal::Policy(d) => denial_details(d),
            Refusal::PendingLimit { max, retry_after } => {
                details([("limit", (*max).into()), ("retryAfter", (*retry_after).into())])
            }
            Refusal::AgentInactive(_) => Map::new(),
        }
    }

    /// A RATE_LIMIT denial says when the oldest counted transaction leaves the window.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::Policy(d) => match d.detail {
                Detail::Rate(r) => Some(r.retry_after),
                _ => None,
            },
            Refusal::PendingLimit { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What stages 2–4 decided: the policy engine's allowance, or a refusal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decided {
    Allowed(Allow),
    Refused(Refusal),
}

/// `metadata.decision` of an allowed row, and the dry runs' view of the same decision.
pub(crate) fn decision_json(a: &Allow) -> Value {
    let mut v = json!({
        "tier": a.tier.as_str(),
        "policyId": a.policy_id.map(|id| id.to_string()),
        "policyType": a.policy_type.map(|t| t.as_str()),
        "reason": a.reason,
        "downgraded": a.downgraded,
    });
    if let Some(s) = a.delay_seconds {
        v["delaySeconds"] = json!(s);
    }
    if let Some(s) = a.approval_timeout_seconds {
        v["approvalTimeoutSeconds"] = json!(s);
    }
    if let Some(t) = a.original_tier {
        v["originalTier"] = json!(t.as_str());
    }
    if let Some(u) = &a.usd {
        v["usd"] = u.to_json();
    }
    v
}

impl Decided {
    /// What the decision transaction writes for this decision about the snapshot's row.
    pub(crate) fn outcome(&self, snap: &DecisionSnapshot, actor: &str) -> DecisionOutcome {
        let tx = &snap.tx;
        let base = |name: AuditEventType| {
            AuditEvent::new(name, actor.to_string()).agent(tx.agent_id).session(tx.session_id).tx(tx.id)
        };
        match self {
            Decided::Allowed(a) => {
                let mut queued = base(AuditEventType::TxQueued).detail("tier", a.tier.as_str());
                if let Some(id) = a.policy_id {
                    queued = queued.detail("policyId", id.to_string());
                }
                if let Some(u) = &a.usd {
                    queued = queued.detail("usd", u.to_json());
                }
                let mut audits = vec![queued];
                if a.downgraded {
                    audits.push(
                        base(AuditEventType::TxDowngraded)
                            .detail("originalTier", Tier::Approval.as_str())
                            .detail("tier", a.tier.as_str())
                            .detail("ownerState", snap.agent.owner_state().as_str()),
                    );
                }
                let wait = a.delay_seconds.or(a.approval_timeout_seconds);
                DecisionOutcome::Queue {
                    tier: a.tier,
                    queue_expires_at: wait.map(|w| snap.now + w),
                    decision: decision_json(a),
                    approval_owner: (a.tier == Tier::Approval).then(|| snap.agent.owner_address.clone()).flatten(),
                    audits,
                }
            }
            Decided::Refused(r @ (Refusal::AgentInactive(_) | Refusal::PendingLimit { .. })) => {
                DecisionOutcome::Cancel {
                    error: r.error().into(),
                    denial: None,
                    audits: vec![base(AuditEventType::TxCancelled).detail("error", r.error())],
                }
            }
            Decided::Refused(r @ Refusal::Session(d)) => DecisionOutcome::Cancel {
                error: r.error().into(),
                denial: Some(json!({"code": d.limit.as_str(), "message": d.message})),
                audits: vec![
                    base(AuditEventType::TxSessionCheck)
                        .severity(AuditSeverity::Warning)
                        .detail("code", d.limit.as_str())
                        .detail("passed", false),
                ],
            },
            Decided::Refused(Refusal::Policy(d)) => {
                let mut denial = denial_details(d);
                denial.insert("code".into(), json!(denial_code(d.kind).as_str()));
                let mut audit = base(AuditEventType::PolicyViolation).severity(AuditSeverity::Warning);
                for (k, v) in &denial {
                    audit = audit.detail(k, v.clone());
                }
                DecisionOutcome::Cancel {
                    error: "POLICY_VIOLATION".into(),
                    denial: Some(Value::Object(denial)),
                    audits: vec![audit],
                }
            }
        }
    }
}

fn listed(list: &Option<Vec<String>>, value: Option<&str>, chain: Chain) -> bool {
    match (list, value) {
        (None, _) | (Some(_), None) => true,
        (Some(l), Some(v)) => crate::base::address::listed(chain, l, v),
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

/// What the decision reads besides the snapshot: configuration and prices.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    pub(crate) defaults: Defaults,
    /// `[notifications].enabled`.
    pub(crate) notifications_enabled: bool,
    /// `[notifications].min_channels`.
    pub(crate) min_channels: u64,
    /// `[security].max_pending_tx`.
    pub(crate) max_pending_tx: u64,
    pub(crate) prices: Prices,
}

/// The snapshot's policies, typed. A stored policy that does not parse was changed behind the
/// daemon's back: the decision fails closed.
pub(crate) fn typed(records: &[waiaas_storage::PolicyRecord]) -> Result<Vec<Policy>, waiaas_storage::StoreError> {
    records
        .iter()
        .map(|p| {
            Policy::from_record(p).map_err(|_| waiaas_storage::StoreError::Invariant("a stored policy does not parse"))
        })
        .collect()
}

/// Stages 2–4 for one PENDING row, with `policies` as the effective policy set (the
/// snapshot's, or an owner's candidate set in a dry run).
pub(crate) fn evaluate(snap: &DecisionSnapshot, policies: &[Policy], inputs: &Inputs) -> Decided {
    let tx = &snap.tx;
    if snap.agent.status != AgentStatus::Active {
        return Decided::Refused(Refusal::AgentInactive(snap.agent.status));
    }
    if let Some(s) = &snap.session
        && let Some(d) = session_check(s, snap.session_in_flight, snap.session_reserved, tx, &snap.children)
    {
        return Decided::Refused(Refusal::Session(d));
    }
    let ctx = Context {
        chain: snap.agent.chain,
        owner: snap.agent.owner_state(),
        policies,
        rate_1h: snap.rate_1h,
        rate_24h: snap.rate_24h,
        now: snap.now,
        defaults: inputs.defaults,
        notifications_available: inputs.notifications_enabled && snap.enabled_channels >= inputs.min_channels,
        prices: &inputs.prices,
    };
    let children: Vec<Op<'_>> = snap.children.iter().map(Op::of).collect();
    match crate::rules::policy::evaluate(&ctx, &Op::of(tx), &children) {
        Decision::Deny(d) => Decided::Refused(Refusal::Policy(Box::new(d))),
        Decision::Allow(a)
            if matches!(a.tier, Tier::Delay | Tier::Approval) && snap.queued_pending >= inputs.max_pending_tx =>
        {
            // At least 1 s: a row past its end is being run or expired by a worker right now.
            let retry_after = snap.queued_ends_at.map_or(1, |end| end.saturating_sub(snap.now).max(1));
            Decided::Refused(Refusal::PendingLimit { max: inputs.max_pending_tx, retry_after })
        }
        Decision::Allow(a) => Decided::Allowed(a),
    }
}
