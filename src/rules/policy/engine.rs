//! The evaluation (07-policy.md §4–8): effective typed policies and one request in, a
//! [`Decision`] out. Pure: the clock reading, the rate counts, notification availability and
//! the prices are all inputs.
//!
//! Order: the per-type checks (ALLOWED_TOKENS, CONTRACT_WHITELIST, METHOD_WHITELIST,
//! APPROVED_SPENDERS, APPROVE_AMOUNT_LIMIT, WHITELIST), TIME_RESTRICTION, RATE_LIMIT, the tier,
//! the downgrade (once), restricted mode. A denial ends the evaluation, except in a BATCH's
//! first phase, which collects the violation of every instruction.

use chrono::{Datelike, Timelike};
use rust_decimal::Decimal;
use uuid::Uuid;
use waiaas_storage::{Amount, Chain, OwnerState, PolicyType, Tier, TransactionRecord, TxType, Window};

use super::rules::{Policy, Rules, SpendingLimit};
use super::usd::{self, Prices, UsdEvaluation};

/// Why a policy refused a request. The HTTP code of each is the caller's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenialKind {
    TokenNotAllowed,
    ContractCallDisabled,
    ContractNotWhitelisted,
    MethodNotWhitelisted,
    ApproveDisabled,
    SpenderNotApproved,
    UnlimitedApproveBlocked,
    ApproveAmountExceeded,
    WhitelistDenied,
    /// TIME_RESTRICTION.
    OutsideAllowedTime,
    RateLimited,
    /// Restricted mode: a tier above INSTANT while notifications are unavailable.
    NotificationsUnavailable,
    BatchViolation,
}

/// A rate-limit denial's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateDenial {
    /// `"1h"` or `"24h"`.
    pub(crate) window: &'static str,
    pub(crate) limit: u64,
    /// Seconds until the oldest counted transaction leaves the window.
    pub(crate) retry_after: u64,
}

/// One instruction's violation inside a BATCH.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Violation {
    pub(crate) index: u32,
    pub(crate) tx_type: TxType,
    pub(crate) policy_type: Option<PolicyType>,
    pub(crate) kind: DenialKind,
    pub(crate) reason: String,
}

/// A refusal, with what the denial body and the stored `metadata.denial` report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Denial {
    pub(crate) kind: DenialKind,
    pub(crate) policy_id: Option<Uuid>,
    pub(crate) policy_type: Option<PolicyType>,
    pub(crate) reason: String,
    pub(crate) violations: Vec<Violation>,
    pub(crate) detail: Detail,
}

/// What one kind of denial adds to its details.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Detail {
    #[default]
    None,
    /// RATE_LIMIT: the window.
    Rate(RateDenial),
    /// Restricted mode: the tier that was refused.
    Tier(Tier),
    /// ALLOWED_TOKENS: the token refused (`"native"` for the chain's coin).
    Token(String),
}

impl Denial {
    fn new(kind: DenialKind, policy: Option<&Policy>, policy_type: PolicyType, reason: impl Into<String>) -> Denial {
        Denial {
            kind,
            policy_id: policy.map(|p| p.id),
            policy_type: Some(policy_type),
            reason: reason.into(),
            violations: Vec::new(),
            detail: Detail::None,
        }
    }
}

/// An allowed request's tier and what set it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allow {
    pub(crate) tier: Tier,
    /// The policy that set the final tier (none when no policy did).
    pub(crate) policy_id: Option<Uuid>,
    /// Its type, and why it gave this tier in one line an owner reads, e.g.
    /// `SPENDING_LIMIT (agent): 10 ETH is above delay_max 5 ETH` (11-owner-console.md §4.2).
    pub(crate) policy_type: Option<PolicyType>,
    pub(crate) reason: Option<String>,
    /// DELAY: the cooldown.
    pub(crate) delay_seconds: Option<u64>,
    /// APPROVAL: the deadline.
    pub(crate) approval_timeout_seconds: Option<u64>,
    pub(crate) downgraded: bool,
    pub(crate) original_tier: Option<Tier>,
    pub(crate) usd: Option<UsdEvaluation>,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Allow(Allow),
    Deny(Denial),
}

/// Config values the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// `[security].policy_defaults_delay_seconds`.
    pub(crate) delay_seconds: u64,
    /// `[security].policy_defaults_approval_timeout`.
    pub(crate) approval_timeout: u64,
}

/// Everything besides the request.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub(crate) chain: Chain,
    pub(crate) owner: OwnerState,
    /// The effective policies (§2), highest priority first.
    pub(crate) policies: &'a [Policy],
    pub(crate) rate_1h: Window,
    pub(crate) rate_24h: Window,
    pub(crate) now: u64,
    pub(crate) defaults: Defaults,
    /// §8: `[notifications].enabled` and at least `min_channels` enabled channels.
    pub(crate) notifications_available: bool,
    pub(crate) prices: &'a Prices,
}

/// One request (or one BATCH instruction) as the policies see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Op<'a> {
    pub(crate) kind: TxType,
    pub(crate) to: Option<&'a str>,
    /// TRANSFER/TOKEN_TRANSFER amount, APPROVE allowance, CONTRACT_CALL value.
    pub(crate) amount: Amount,
    /// Native coin moved (BATCH: the sum of its instructions').
    pub(crate) native: Amount,
    pub(crate) token: Option<&'a str>,
    pub(crate) contract: Option<&'a str>,
    /// EVM CONTRACT_CALL: the first four calldata bytes.
    pub(crate) selector: Option<[u8; 4]>,
    pub(crate) spender: Option<&'a str>,
}

impl<'a> Op<'a> {
    /// The policy view of a stored (or about to be stored) transaction row.
    pub(crate) fn of(r: &'a TransactionRecord) -> Op<'a> {
        let selector = (r.tx_type == TxType::ContractCall)
            .then(|| r.request["calldata"].as_str())
            .flatten()
            .and_then(|c| c.strip_prefix("0x"))
            .and_then(|h| h.get(..8))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 4]>::try_from(b).ok());
        Op {
            kind: r.tx_type,
            to: r.to_address.as_deref(),
            amount: r.amount,
            native: r.native_amount,
            token: r.token_mint.as_deref(),
            contract: r.contract_address.as_deref(),
            selector,
            spender: r.spender_address.as_deref(),
        }
    }
}

/// The highest tier seen so far, the policy that raised it there and why.
#[derive(Debug, Clone)]
struct Tiering {
    tier: Tier,
    policy: Option<Uuid>,
    policy_type: Option<PolicyType>,
    reason: Option<String>,
}

impl Tiering {
    fn raise(&mut self, tier: Tier, policy: Option<Uuid>) {
        if tier > self.tier {
            self.tier = tier;
            self.policy = policy;
            self.policy_type = None;
            self.reason = None;
        }
    }

    /// As [`raise`](Self::raise), with the policy's type and the reason it gives this tier
    /// (`reason` is built only when the tier is raised).
    fn raise_because(&mut self, tier: Tier, policy: &Policy, reason: impl FnOnce() -> String) {
        if tier > self.tier {
            self.tier = tier;
            self.policy = Some(policy.id);
            self.policy_type = Some(policy.kind());
            self.reason =
                Some(format!("{} ({}): {}", policy.kind(), if policy.agent { "agent" } else { "global" }, reason()));
        }
    }
}

/// `amount` in the chain's native unit, for a reason line.
fn native_text(chain: Chain, amount: &Amount) -> String {
    match chain {
        Chain::Solana => crate::base::units::format_units(*amount, 9, "SOL"),
        Chain::Ethereum => crate::base::units::format_units(*amount, 18, "ETH"),
    }
}

impl Context<'_> {
    fn all(&self, kind: PolicyType) -> impl Iterator<Item = &Policy> {
        self.policies.iter().filter(move |p| p.kind() == kind)
    }

    /// The single policy of a single-valued type (the list is already resolved and sorted).
    fn one(&self, kind: PolicyType) -> Option<&Policy> {
        self.all(kind).next()
    }

    fn spending_limit(&self) -> Option<(&Policy, &SpendingLimit)> {
        self.one(PolicyType::SpendingLimit).and_then(|p| match &p.rules {
            Rules::SpendingLimit(s) => Some((p, s)),
            _ => None,
        })
    }

    fn listed(&self, list: &[String], address: Option<&str>) -> bool {
        address.is_some_and(|a| crate::base::address::listed(self.chain, list, a))
    }
}

/// Steps 2–7 for one operation: a denial, or the tier floors the checks add (an unknown token
/// allowed with NOTIFY; a whitelisted contract's default tier).
fn check(ctx: &Context<'_>, op: &Op<'_>, floors: &mut Tiering) -> Result<(), Denial> {
    let chain = ctx.chain;
    // 2. ALLOWED_TOKENS.
    match op.kind {
        TxType::TokenTransfer => {
            let mut any = false;
            for p in ctx.all(PolicyType::AllowedTokens) {
                let Rules::AllowedTokens(r) = &p.rules else { continue };
                any = true;
                let listed = op.token.is_some_and(|t| r.tokens.iter().any(|e| e.mint.names(chain, t)));
                if listed {
                    continue;
                }
                if r.notify_unknown {
                    floors.raise(Tier::Notify, Some(p.id));
                    continue;
                }
                let mut d = Denial::new(
                    DenialKind::TokenNotAllowed,
                    Some(p),
                    PolicyType::AllowedTokens,
                    format!("token {} is not in the allowed tokens", op.token.unwrap_or("")),
                );
                d.detail = Detail::Token(op.token.unwrap_or_default().to_string());
                return Err(d);
            }
            if !any {
                let mut d = Denial::new(
                    DenialKind::TokenNotAllowed,
                    None,
                    PolicyType::AllowedTokens,
                    "token transfers need an ALLOWED_TOKENS policy listing the token",
                );
                d.detail = Detail::Token(op.token.unwrap_or_default().to_string());
                return Err(d);
            }
        }
        TxType::Transfer => {
            for p in ctx.all(PolicyType::AllowedTokens) {
                if let Rules::AllowedTokens(r) = &p.rules
                    && !r.allow_native
                {
                    let mut d = Denial::new(
                        DenialKind::TokenNotAllowed,
                        Some(p),
                        PolicyType::AllowedTokens,
                        "native transfers are not allowed (allow_native: false)",
                    );
                    d.detail = Detail::Token("native".into());
                    return Err(d);
                }
            }
        }
        _ => {}
    }
    if op.kind == TxType::ContractCall {
        // 3. CONTRACT_WHITELIST.
        let mut any = false;
        for p in ctx.all(PolicyType::ContractWhitelist) {
            let Rules::ContractWhitelist(r) = &p.rules else { continue };
            any = true;
            let listed = op.contract.is_some_and(|c| r.contracts.iter().any(|e| e.names(chain, c)));
            if !listed {
                return Err(Denial::new(
                    DenialKind::ContractNotWhitelisted,
                    Some(p),
                    PolicyType::ContractWhitelist,
                    format!("contract {} is not whitelisted", op.contract.unwrap_or("")),
                ));
            }
            floors.raise(r.default_tier, Some(p.id));
        }
        if !any {
            return Err(Denial::new(
                DenialKind::ContractCallDisabled,
                None,
                PolicyType::ContractWhitelist,
                "contract calls need a CONTRACT_WHITELIST policy listing the contract",
            ));
        }
        // 4. METHOD_WHITELIST (EVM only).
        if chain == Chain::Ethereum {
            for p in ctx.all(PolicyType::MethodWhitelist) {
                let Rules::MethodWhitelist(r) = &p.rules else { continue };
                let Some(contract) = op.contract else { continue };
                let entries: Vec<_> =
                    r.methods.iter().filter(|m| crate::base::address::same(chain, &m.address, contract)).collect();
                if !entries.is_empty() && !entries.iter().any(|m| Some(m.selector) == op.selector) {
                    let sel = op.selector.map(|s| format!("0x{}", hex::encode(s))).unwrap_or_default();
                    return Err(Denial::new(
                        DenialKind::MethodNotWhitelisted,
                        Some(p),
                        PolicyType::MethodWhitelist,
                        format!("method {sel} is not whitelisted for contract {contract}"),
                    ));
                }
            }
        }
    }
    if op.kind == TxType::Approve {
        // 5. APPROVED_SPENDERS.
        let mut any = false;
        for p in ctx.all(PolicyType::ApprovedSpenders) {
            let Rules::ApprovedSpenders(r) = &p.rules else { continue };
            any = true;
            if !op.spender.is_some_and(|s| r.spenders.iter().any(|e| e.names(chain, s))) {
                return Err(Denial::new(
                    DenialKind::SpenderNotApproved,
                    Some(p),
                    PolicyType::ApprovedSpenders,
                    format!("spender {} is not approved", op.spender.unwrap_or("")),
                ));
            }
        }
        if !any {
            return Err(Denial::new(
                DenialKind::ApproveDisabled,
                None,
                PolicyType::ApprovedSpenders,
                "approvals need an APPROVED_SPENDERS policy listing the spender",
            ));
        }
        // 6. APPROVE_AMOUNT_LIMIT (a revoke always passes).
        if let Some(p) = ctx.one(PolicyType::ApproveAmountLimit)
            && let Rules::ApproveAmountLimit(r) = &p.rules
            && !op.amount.is_zero()
        {
            if r.unlimited_blocked && op.amount >= r.threshold(chain) {
                return Err(Denial::new(
                    DenialKind::UnlimitedApproveBlocked,
                    Some(p),
                    PolicyType::ApproveAmountLimit,
                    "unlimited approvals are blocked",
                ));
            }
            if let Some(max) = r.max_amount
                && op.amount > max
            {
                return Err(Denial::new(
                    DenialKind::ApproveAmountExceeded,
                    Some(p),
                    PolicyType::ApproveAmountLimit,
                    format!("approval {} exceeds max_amount {max}", op.amount),
                ));
            }
        }
    }
    // 7. WHITELIST.
    if matches!(op.kind, TxType::Transfer | TxType::TokenTransfer) {
        for p in ctx.all(PolicyType::Whitelist) {
            let Rules::Whitelist(r) = &p.rules else { continue };
            if !r.allowed_addresses.is_empty() && !ctx.listed(&r.allowed_addresses, op.to) {
                return Err(Denial::new(
                    DenialKind::WhitelistDenied,
                    Some(p),
                    PolicyType::Whitelist,
                    format!("destination {} is not whitelisted", op.to.unwrap_or("")),
                ));
            }
        }
    }
    Ok(())
}

/// Steps 8–9, once per request.
fn time_and_rate(ctx: &Context<'_>) -> Result<(), Denial> {
    for p in ctx.all(PolicyType::TimeRestriction) {
        let Rules::TimeRestriction(r) = &p.rules else { continue };
        let Some(utc) = chrono::DateTime::from_timestamp(ctx.now as i64, 0) else { continue };
        let local = utc.with_timezone(&r.timezone);
        let (h, d) = (local.hour() as u8, local.weekday().num_days_from_sunday() as u8);
        let hour_ok = match r.allowed_hours {
            None => true,
            Some((s, e)) if s < e => s <= h && h < e,
            Some((s, e)) if s > e => h >= s || h < e,
            Some(_) => true,
        };
        let day_ok = r.allowed_days.is_empty() || r.allowed_days.contains(&d);
        if !hour_ok || !day_ok {
            return Err(Denial::new(
                DenialKind::OutsideAllowedTime,
                Some(p),
                PolicyType::TimeRestriction,
                format!("transactions are not allowed at {} ({})", local.format("%a %H:%M"), r.timezone.name()),
            ));
        }
    }
    for p in ctx.all(PolicyType::RateLimit) {
        let Rules::RateLimit(r) = &p.rules else { continue };
        for (limit, w, window, secs) in
            [(r.max_tx_per_hour, ctx.rate_1h, "1h", 3600u64), (r.max_tx_per_day, ctx.rate_24h, "24h", 86_400)]
        {
            if limit > 0 && w.count >= limit {
                let retry_after = w.oldest.map_or(secs, |o| (o + secs).saturating_sub(ctx.now)).max(1);
                let mut d = Denial::new(
                    DenialKind::RateLimited,
                    Some(p),
                    PolicyType::RateLimit,
                    format!("{} transactions in the last {window} reach the limit of {limit}", w.count),
                );
                d.detail = Detail::Rate(RateDenial { window, limit, retry_after });
                return Err(d);
            }
        }
    }
    Ok(())
}

/// A USD value and how trustworthy its prices were.
#[derive(Debug, Clone, Copy)]
struct Priced {
    value: Decimal,
    price: Decimal,
    stale: bool,
    moved: bool,
    source: usd::Source,
}

impl Priced {
    /// Two valuations of one request added up (a BATCH): stale or moved if either was.
    fn plus(self, other: Priced) -> Priced {
        Priced {
            value: self.value.checked_add(other.value).unwrap_or(Decimal::MAX),
            stale: self.stale || other.stale,
            moved: self.moved || other.moved,
            ..self
        }
    }

    fn evaluation(&self) -> UsdEvaluation {
        UsdEvaluation { value: self.value, price: self.price, stale: self.stale, source: self.source }
    }
}

/// The native coin's USD value, when priced.
fn native_usd(ctx: &Context<'_>, native: Amount) -> Option<Priced> {
    let q = ctx.prices.native?;
    let decimals = match ctx.chain {
        Chain::Solana => 9,
        Chain::Ethereum => 18,
    };
    Some(Priced {
        value: usd::value(native, decimals, q.price),
        price: q.price,
        stale: q.stale,
        moved: q.moved,
        source: q.source,
    })
}

/// A token amount's USD value, when the token is priced.
fn token_usd(ctx: &Context<'_>, op: &Op<'_>) -> Option<Priced> {
    let (q, decimals) = ctx.prices.token(ctx.chain, op.token?)?;
    Some(Priced {
        value: usd::value(op.amount, decimals, q.price),
        price: q.price,
        stale: q.stale,
        moved: q.moved,
        source: q.source,
    })
}

/// §5 for native coin: the SPENDING_LIMIT tier of `native` (INSTANT without a SPENDING_LIMIT),
/// raised by the USD tier of `priced` when the limit has USD thresholds and a value is known.
fn spending_tier(
    ctx: &Context<'_>,
    native: Amount,
    priced: Option<Priced>,
    tiering: &mut Tiering,
) -> Option<UsdEvaluation> {
    let (p, sl) = ctx.spending_limit()?;
    let tier = sl.native.tier(&native);
    tiering.raise_because(tier, p, || match sl.native.crossed(tier) {
        Some((name, bound)) => {
            format!("{} is above {name} {}", native_text(ctx.chain, &native), native_text(ctx.chain, &bound))
        }
        None => String::new(),
    });
    if tiering.policy.is_none() {
        tiering.policy = Some(p.id);
    }
    let (thresholds, priced) = (sl.usd.as_ref()?, priced?);
    let usd_tier = usd::tier(thresholds, priced.value, priced.stale, priced.moved);
    tiering.raise_because(usd_tier, p, || match thresholds.crossed(usd_tier) {
        Some((name, bound)) if usd_tier == thresholds.tier(&priced.value) => {
            format!("${} is above usd_{name} ${bound}", priced.value.round_dp(2))
        }
        _ => format!("${} is priced from a stale or moved quote", priced.value.round_dp(2)),
    });
    Some(priced.evaluation())
}

/// A TOKEN_TRANSFER's USD tier, when the SPENDING_LIMIT has USD thresholds and the token a price.
fn token_tier<'a>(ctx: &'a Context<'_>, op: &Op<'_>) -> Option<(Tier, &'a Policy, Priced)> {
    let (p, sl) = ctx.spending_limit()?;
    let thresholds = sl.usd.as_ref()?;
    let priced = token_usd(ctx, op)?;
    Some((usd::tier(thresholds, priced.value, priced.stale, priced.moved), p, priced))
}

/// APPROVE's tier: the override, or APPROVAL without one.
fn approve_tier<'a>(ctx: &'a Context<'_>, op: &Op<'_>) -> (Tier, Option<&'a Policy>) {
    match ctx.one(PolicyType::ApproveTierOverride) {
        Some(p) => match &p.rules {
            Rules::ApproveTierOverride(r) => (r.tier(op.amount), Some(p)),
            _ => (Tier::Approval, None),
        },
        None => (Tier::Approval, None),
    }
}

/// The tier of one non-batch request (§6).
fn single_tier(ctx: &Context<'_>, op: &Op<'_>, tiering: &mut Tiering) -> Option<UsdEvaluation> {
    match op.kind {
        TxType::Transfer | TxType::ContractCall => spending_tier(ctx, op.native, native_usd(ctx, op.native), tiering),
        TxType::TokenTransfer => match token_tier(ctx, op) {
            Some((t, p, priced)) => {
                tiering.raise_because(t, p, || format!("the token transfer is worth ${}", priced.value.round_dp(2)));
                if tiering.policy.is_none() {
                    tiering.policy = Some(p.id);
                }
                Some(priced.evaluation())
            }
            None => {
                tiering.raise(Tier::Notify, None);
                if tiering.tier == Tier::Notify && tiering.reason.is_none() {
                    tiering.reason = Some("a token transfer without a USD price is NOTIFY".into());
                }
                None
            }
        },
        TxType::Approve => {
            let (t, p) = approve_tier(ctx, op);
            match p {
                Some(p) => tiering.raise_because(t, p, || format!("an approval of {} base units is {t}", op.amount)),
                None => {
                    tiering.raise(t, None);
                    if tiering.tier == t {
                        tiering.reason = Some("an approval without an APPROVE_TIER_OVERRIDE is APPROVAL".into());
                    }
                }
            }
            if tiering.policy.is_none() {
                tiering.policy = p.map(|p| p.id);
            }
            None
        }
        TxType::Batch => None,
    }
}

/// Phase B of a BATCH (§6): the native sum and the total USD value of all instructions, plus
/// each instruction's own floor. The total is known only when every amount in it is priced.
fn batch_tier(ctx: &Context<'_>, parent: &Op<'_>, children: &[Op<'_>], tiering: &mut Tiering) -> Option<UsdEvaluation> {
    let mut total = if parent.native.is_zero() { None } else { native_usd(ctx, parent.native) };
    let mut complete = parent.native.is_zero() || total.is_some();
    for c in children {
        match c.kind {
            TxType::TokenTransfer => match token_usd(ctx, c) {
                Some(p) if ctx.spending_limit().is_some_and(|(_, s)| s.usd.is_some()) => {
                    total = Some(total.map_or(p, |t: Priced| t.plus(p)));
                }
                _ => {
                    tiering.raise(Tier::Notify, None);
                    complete = false;
                }
            },
            TxType::Approve => match approve_tier(ctx, c) {
                (t, Some(p)) => tiering.raise_because(t, p, || format!("an approval in the batch is {t}")),
                (t, None) => tiering.raise(t, None),
            },
            _ => {}
        }
    }
    spending_tier(ctx, parent.native, total.filter(|_| complete), tiering)
}

/// Evaluates one request: `op` with, for a BATCH, its instructions.
pub(crate) fn evaluate(ctx: &Context<'_>, op: &Op<'_>, children: &[Op<'_>]) -> Decision {
    let mut tiering = Tiering { tier: Tier::Instant, policy: None, policy_type: None, reason: None };
    let usd = if op.kind == TxType::Batch {
        // Phase A: every instruction's checks, all violations collected.
        let mut violations = Vec::new();
        for (i, c) in children.iter().enumerate() {
            if let Err(d) = check(ctx, c, &mut tiering) {
                violations.push(Violation {
                    index: i as u32,
                    tx_type: c.kind,
                    policy_type: d.policy_type,
                    kind: d.kind,
                    reason: d.reason,
                });
            }
        }
        if !violations.is_empty() {
            let n = violations.len();
            return Decision::Deny(Denial {
                kind: DenialKind::BatchViolation,
                policy_id: None,
                policy_type: None,
                reason: format!("{n} instruction{} of the batch violate policies", if n == 1 { "" } else { "s" }),
                violations,
                detail: Detail::None,
            });
        }
        if let Err(d) = time_and_rate(ctx) {
            return Decision::Deny(d);
        }
        batch_tier(ctx, op, children, &mut tiering)
    } else {
        if let Err(d) = check(ctx, op, &mut tiering).and_then(|_| time_and_rate(ctx)) {
            return Decision::Deny(d);
        }
        single_tier(ctx, op, &mut tiering)
    };
    let sl = ctx.spending_limit().map(|(_, s)| s);
    let delay_seconds = sl.and_then(|s| s.delay_seconds).unwrap_or(ctx.defaults.delay_seconds);
    let approval_timeout = sl.and_then(|s| s.approval_timeout).unwrap_or(ctx.defaults.approval_timeout);
    // 11. Downgrade, once, whatever raised the tier to APPROVAL.
    let (mut tier, mut downgraded, mut original) = (tiering.tier, false, None);
    let mut reason = tiering.reason.clone();
    if tier == Tier::Approval && ctx.owner != OwnerState::Locked {
        (tier, downgraded, original) = (Tier::Delay, true, Some(Tier::Approval));
        reason = Some(format!(
            "{}; DELAY instead of APPROVAL until the owner verifies",
            reason.unwrap_or_else(|| "APPROVAL".into())
        ));
    }
    // 12. Restricted mode.
    if tier != Tier::Instant && !ctx.notifications_available {
        return Decision::Deny(Denial {
            kind: DenialKind::NotificationsUnavailable,
            policy_id: tiering.policy,
            policy_type: None,
            reason: "NOTIFICATIONS_UNAVAILABLE".into(),
            violations: Vec::new(),
            detail: Detail::Tier(tier),
        });
    }
    Decision::Allow(Allow {
        tier,
        policy_id: tiering.policy,
        policy_type: tiering.policy_type,
        reason,
        delay_seconds: (tier == Tier::Delay).then_some(delay_seconds.max(60)),
        approval_timeout_seconds: (tier == Tier::Approval).then_some(approval_timeout),
        downgraded,
        original_tier: original,
        usd,
    })
}
