//! The engine's invariants (07-policy.md §12) as property tests over random policy sets and
//! requests, and the rules validator against every field of every type.

use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;
use waiaas_storage::{
    AgentRecord, Amount, Chain, Network, OwnerState, PolicyRecord, PolicyType, Tier, TransactionRecord, TxType, Window,
};

use super::engine::{Allow, Context, Decision, Defaults, Op, evaluate};
use super::rules::{Policy, parse};
use super::usd::Prices;

const ADDRS: [&str; 4] = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
    "0x4444444444444444444444444444444444444444",
];

fn agent(owner: OwnerState) -> AgentRecord {
    let mut a = AgentRecord::new(Uuid::from_u128(7), "a".into(), Chain::Ethereum, Network::Testnet, None, 0);
    a.public_key = ADDRS[0].into();
    if owner != OwnerState::None {
        a.owner_address = Some(ADDRS[3].into());
        a.owner_verified = owner == OwnerState::Locked;
    }
    a
}

/// A request row the way stage 1 fills it.
fn row(kind: TxType, to: usize, amount: u64) -> TransactionRecord {
    let a = agent(OwnerState::None);
    let mut r = TransactionRecord::pending(Uuid::from_u128(99), &a, None, kind, json!({}), 0);
    r.amount = Amount::from_u64(amount);
    let addr = ADDRS[to % ADDRS.len()].to_string();
    match kind {
        TxType::Transfer => {
            r.native_amount = r.amount;
            r.to_address = Some(addr);
        }
        TxType::TokenTransfer => {
            r.to_address = Some(addr.clone());
            r.token_mint = Some(ADDRS[(to + 1) % ADDRS.len()].into());
        }
        TxType::ContractCall => {
            r.native_amount = r.amount;
            r.contract_address = Some(addr);
            r.request = json!({"calldata": "0xa9059cbb00"});
        }
        TxType::Approve => {
            r.spender_address = Some(addr);
            r.token_mint = Some(ADDRS[(to + 1) % ADDRS.len()].into());
        }
        TxType::Batch => {}
    }
    r
}

fn ctx<'a>(policies: &'a [Policy], owner: OwnerState, prices: &'a Prices) -> Context<'a> {
    Context {
        chain: Chain::Ethereum,
        owner,
        policies,
        rate_1h: Window::default(),
        rate_24h: Window::default(),
        now: 1_750_000_000,
        defaults: Defaults { delay_seconds: 300, approval_timeout: 3600 },
        notifications_available: true,
        prices,
    }
}

fn record(
    n: u128,
    agent: Option<Uuid>,
    chain: Option<Chain>,
    kind: PolicyType,
    rules: Value,
    priority: i32,
) -> PolicyRecord {
    let (_, rules) = parse(kind, &rules, Some(Chain::Ethereum)).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
    PolicyRecord { agent_id: agent, chain, priority, ..PolicyRecord::new(Uuid::from_u128(n), kind, rules, n as u64) }
}

/// The engine's view of `records` for the test agent: scope-resolved, typed.
fn effective(records: &[PolicyRecord], a: &AgentRecord) -> Vec<Policy> {
    waiaas_storage::scope::effective(a, records).iter().map(|p| Policy::from_record(p).unwrap()).collect()
}

fn decide(
    records: &[PolicyRecord],
    owner: OwnerState,
    r: &TransactionRecord,
    children: &[TransactionRecord],
) -> Decision {
    let a = agent(owner);
    let policies = effective(records, &a);
    let prices = Prices::default();
    let kids: Vec<Op<'_>> = children.iter().map(Op::of).collect();
    evaluate(&ctx(&policies, owner, &prices), &Op::of(r), &kids)
}

fn tier(d: &Decision) -> Option<Tier> {
    match d {
        Decision::Allow(Allow { tier, .. }) => Some(*tier),
        Decision::Deny(_) => None,
    }
}

fn spending(n: u128, t: [u64; 3], priority: i32) -> PolicyRecord {
    let mut t = t;
    t.sort_unstable();
    record(
        n,
        None,
        Some(Chain::Ethereum),
        PolicyType::SpendingLimit,
        json!({"instant_max": t[0].to_string(), "notify_max": t[1].to_string(), "delay_max": t[2].to_string()}),
        priority,
    )
}

fn owner() -> impl Strategy<Value = OwnerState> {
    prop_oneof![Just(OwnerState::None), Just(OwnerState::Grace), Just(OwnerState::Locked)]
}

fn tier_s() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("INSTANT"), Just("NOTIFY"), Just("DELAY"), Just("APPROVAL")]
}

fn addr_list() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(ADDRS.to_vec(), 0..=4)
}

/// A random policy of any type that applies to this agent and request shapes.
fn any_policy() -> impl Strategy<Value = (PolicyType, Value)> {
    prop_oneof![
        proptest::array::uniform3(0u64..2000).prop_map(|mut t| {
            t.sort_unstable();
            (
                PolicyType::SpendingLimit,
                json!({"instant_max": t[0].to_string(), "notify_max": t[1].to_string(), "delay_max": t[2].to_string()}),
            )
        }),
        addr_list().prop_map(|l| (PolicyType::Whitelist, json!({"allowed_addresses": l}))),
        (0u64..3, 0u64..3).prop_map(|(h, d)| (PolicyType::RateLimit, json!({"max_tx_per_hour": h, "max_tx_per_day": d}))),
        (addr_list(), any::<bool>(), any::<bool>()).prop_map(|(l, notify, native)| {
            let tokens: Vec<Value> = l.iter().map(|m| json!({"mint": m})).collect();
            (
                PolicyType::AllowedTokens,
                json!({"tokens": tokens, "unknown_token_action": if notify {"notify"} else {"deny"}, "allow_native": native}),
            )
        }),
        (addr_list(), tier_s()).prop_map(|(l, t)| {
            let c: Vec<Value> = l.iter().map(|a| json!({"address": a})).collect();
            (PolicyType::ContractWhitelist, json!({"contracts": c, "contract_call_default_tier": t}))
        }),
        addr_list().prop_map(|l| {
            let s: Vec<Value> = l.iter().map(|a| json!({"address": a})).collect();
            (PolicyType::ApprovedSpenders, json!({"spenders": s}))
        }),
        (0u64..2000, any::<bool>()).prop_map(|(m, b)| (
            PolicyType::ApproveAmountLimit,
            json!({"max_amount": m.to_string(), "unlimited_blocked": b, "unlimited_threshold": "1500"})
        )),
        (tier_s(), 0u64..2000, tier_s()).prop_map(|(d, m, t)| (
            PolicyType::ApproveTierOverride,
            json!({"default_tier": d, "amount_tiers": [{"max_amount": m.to_string(), "tier": t}]})
        )),
    ]
}

/// A random policy set: each policy agent-level, chain-level or global, distinct priorities.
fn policy_set() -> impl Strategy<Value = Vec<PolicyRecord>> {
    proptest::collection::vec((any_policy(), 0u8..3), 0..8).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .map(|(i, ((kind, rules), level))| {
                let (agent, chain) = match level {
                    0 => (Some(Uuid::from_u128(7)), None),
                    1 => (None, Some(Chain::Ethereum)),
                    _ => (None, None),
                };
                record(i as u128 + 1, agent, chain, kind, rules, i as i32 * 3)
            })
            .collect()
    })
}

fn request() -> impl Strategy<Value = TransactionRecord> {
    (
        prop_oneof![
            Just(TxType::Transfer),
            Just(TxType::TokenTransfer),
            Just(TxType::ContractCall),
            Just(TxType::Approve)
        ],
        0usize..4,
        0u64..2500,
    )
        .prop_map(|(k, to, amount)| row(k, to, amount))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    // §12: tiers are monotonic in the amount.
    #[test]
    fn tiers_are_monotonic_in_the_amount(t in proptest::array::uniform3(0u64..1000), a in 0u64..1200, b in 0u64..1200, o in owner()) {
        let ps = [spending(1, t, 0)];
        let (lo, hi) = (a.min(b), a.max(b));
        let tl = tier(&decide(&ps, o, &row(TxType::Transfer, 1, lo), &[])).unwrap();
        let th = tier(&decide(&ps, o, &row(TxType::Transfer, 1, hi), &[])).unwrap();
        prop_assert!(tl <= th, "{lo} → {tl}, {hi} → {th}");
    }

    // §12: boundaries are inclusive upper bounds.
    #[test]
    fn boundaries_are_inclusive(t in proptest::array::uniform3(1u64..1000)) {
        let mut s = t;
        s.sort_unstable();
        let ps = [spending(1, t, 0)];
        let at = |amount| tier(&decide(&ps, OwnerState::Locked, &row(TxType::Transfer, 1, amount), &[])).unwrap();
        prop_assert_eq!(at(s[0]), Tier::Instant);
        prop_assert_eq!(at(s[2] + 1), Tier::Approval);
        if s[1] > s[0] { prop_assert_eq!(at(s[0] + 1), Tier::Notify); prop_assert_eq!(at(s[1]), Tier::Notify); }
        if s[2] > s[1] { prop_assert_eq!(at(s[1] + 1), Tier::Delay); prop_assert_eq!(at(s[2]), Tier::Delay); }
    }

    // §12: no request is tiered below the SPENDING_LIMIT tier of its native amount (the
    // downgrade aside, which turns APPROVAL into DELAY), and the downgrade never leaves
    // APPROVAL for an owner that is not LOCKED.
    #[test]
    fn never_below_the_native_tier_and_no_approval_without_a_locked_owner(
        ps in policy_set(), r in request(), o in owner()
    ) {
        let d = decide(&ps, o, &r, &[]);
        let a = agent(o);
        let eff = effective(&ps, &a);
        let native = eff.iter().find_map(|p| match &p.rules {
            super::rules::Rules::SpendingLimit(s) => Some(s.native.tier(&r.native_amount)),
            _ => None,
        }).unwrap_or(Tier::Instant);
        if let Some(t) = tier(&d) {
            let floor = if o == OwnerState::Locked { native } else { native.min(Tier::Delay) };
            prop_assert!(t >= floor, "{:?} {} tiered {t}, below {floor}", r.tx_type, r.native_amount);
            if o != OwnerState::Locked { prop_assert!(t != Tier::Approval); }
        }
    }

    // §12: a batch is never tiered lower than any of its instructions alone, and is denied
    // when any of them alone is denied.
    #[test]
    fn a_batch_is_at_least_its_strictest_instruction(
        ps in policy_set(), kids in proptest::collection::vec(request(), 1..5), o in owner()
    ) {
        let ps: Vec<PolicyRecord> = ps.into_iter().filter(|p| p.policy_type != PolicyType::RateLimit).collect();
        let mut parent = row(TxType::Batch, 0, 0);
        let mut native = Amount::ZERO;
        for k in &kids { native = native.checked_add(k.native_amount).unwrap(); }
        parent.native_amount = native;
        let batch = decide(&ps, o, &parent, &kids);
        for k in &kids {
            match (tier(&decide(&ps, o, k, &[])), tier(&batch)) {
                (None, b) => prop_assert!(b.is_none(), "instruction denied alone, batch allowed"),
                (Some(alone), Some(b)) => prop_assert!(b >= alone, "batch {b} below its {:?} at {alone}", k.tx_type),
                (Some(_), None) => {}
            }
        }
    }

    // A denial by a rule is never turned into an allow by adding less specific (global)
    // policies. (A denial for a *missing* policy — no ALLOWED_TOKENS, CONTRACT_WHITELIST or
    // APPROVED_SPENDERS — is lifted by a global one on purpose: that is how an owner allows
    // tokens, calls and approvals for every agent.)
    #[test]
    fn less_specific_policies_never_undo_a_denial(
        agent_level in proptest::collection::vec(any_policy(), 1..5),
        global in proptest::collection::vec(any_policy(), 0..5),
        r in request(), o in owner()
    ) {
        let mut ps: Vec<PolicyRecord> = agent_level.into_iter().enumerate()
            .map(|(i, (k, v))| record(i as u128 + 1, Some(Uuid::from_u128(7)), None, k, v, 10 + i as i32)).collect();
        match decide(&ps, o, &r, &[]) {
            Decision::Deny(d) if d.policy_id.is_some() => {}
            _ => return Ok(()),
        }
        let n = ps.len() as u128;
        ps.extend(global.into_iter().enumerate().map(|(i, (k, v))| record(n + i as u128 + 1, None, Some(Chain::Ethereum), k, v, -(i as i32))));
        prop_assert!(tier(&decide(&ps, o, &r, &[])).is_none(), "adding global policies allowed a denied request");
    }

    // The decision does not depend on the order the policies were created in.
    #[test]
    fn creation_order_does_not_matter(ps in policy_set(), r in request(), o in owner(), seed in any::<u64>()) {
        let mut shuffled = ps.clone();
        // Reassign ids and creation times in another order; priorities (distinct) stay.
        let mut order: Vec<usize> = (0..shuffled.len()).collect();
        order.sort_by_key(|i| (seed.wrapping_mul(*i as u64 + 1)).rotate_left(17));
        for (new_pos, &i) in order.iter().enumerate() {
            shuffled[i].id = Uuid::from_u128(1000 + new_pos as u128);
            shuffled[i].created_at = 1000 + new_pos as u64;
        }
        let strip = |d: Decision| match d {
            Decision::Allow(a) => Ok(a.tier),
            Decision::Deny(d) => Err(d.kind),
        };
        prop_assert_eq!(strip(decide(&ps, o, &r, &[])), strip(decide(&shuffled, o, &r, &[])));
    }
}

// ---------------------------------------------------------------------------- validation

/// `(type, rules, the path the issue must name)` for wrong types, out-of-range values, unknown
/// fields and unordered thresholds of every rules field of every type.
fn bad_rules() -> Vec<(PolicyType, Value, &'static str)> {
    use PolicyType::*;
    let sl = |patch: Value| {
        let mut v = json!({"instant_max": "1", "notify_max": "2", "delay_max": "3"});
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    vec![
        (SpendingLimit, json!({"notify_max": "2", "delay_max": "3"}), "rules.instant_max"),
        (SpendingLimit, sl(json!({"instant_max": 1})), "rules.instant_max"),
        (SpendingLimit, sl(json!({"notify_max": "0x2"})), "rules.notify_max"),
        (SpendingLimit, sl(json!({"delay_max": "-3"})), "rules.delay_max"),
        (SpendingLimit, sl(json!({"notify_max": "0"})), "rules.notify_max"),
        (SpendingLimit, sl(json!({"delay_max": "1"})), "rules.delay_max"),
        (SpendingLimit, sl(json!({"delay_seconds": 59})), "rules.delay_seconds"),
        (SpendingLimit, sl(json!({"delay_seconds": "300"})), "rules.delay_seconds"),
        (SpendingLimit, sl(json!({"approval_timeout": 299})), "rules.approval_timeout"),
        (SpendingLimit, sl(json!({"approval_timeout": 86_401})), "rules.approval_timeout"),
        (
            SpendingLimit,
            sl(json!({"instant_max_usd": "10", "notify_max_usd": "5", "delay_max_usd": "20"})),
            "rules.notify_max_usd",
        ),
        (SpendingLimit, sl(json!({"instant_max_usd": "10"})), "rules.notify_max_usd"),
        (
            SpendingLimit,
            sl(json!({"instant_max_usd": "0", "notify_max_usd": "5", "delay_max_usd": "20"})),
            "rules.instant_max_usd",
        ),
        (
            SpendingLimit,
            sl(json!({"instant_max_usd": true, "notify_max_usd": "5", "delay_max_usd": "20"})),
            "rules.instant_max_usd",
        ),
        (
            SpendingLimit,
            sl(json!({"instant_max_usd": "ten", "notify_max_usd": "5", "delay_max_usd": "20"})),
            "rules.instant_max_usd",
        ),
        (SpendingLimit, sl(json!({"max": "1"})), "rules.max"),
        (
            Whitelist,
            json!({"allowed_addresses": "0x1111111111111111111111111111111111111111"}),
            "rules.allowed_addresses",
        ),
        (Whitelist, json!({"allowed_addresses": ["nope"]}), "rules.allowed_addresses[0]"),
        (Whitelist, json!({"allowed_address": []}), "rules.allowed_address"),
        (TimeRestriction, json!({"allowed_hours": {"start": 24, "end": 6}}), "rules.allowed_hours.start"),
        (TimeRestriction, json!({"allowed_hours": {"start": 22}}), "rules.allowed_hours.end"),
        (TimeRestriction, json!({"allowed_hours": {"start": 1, "end": 2, "x": 1}}), "rules.allowed_hours.x"),
        (TimeRestriction, json!({"allowed_hours": "22-6"}), "rules.allowed_hours"),
        (TimeRestriction, json!({"allowed_days": [7]}), "rules.allowed_days[0]"),
        (TimeRestriction, json!({"allowed_days": 1}), "rules.allowed_days"),
        (TimeRestriction, json!({"timezone": "Mars/Olympus"}), "rules.timezone"),
        (TimeRestriction, json!({"timezone": 9}), "rules.timezone"),
        (TimeRestriction, json!({"days": [1]}), "rules.days"),
        (RateLimit, json!({"max_tx_per_hour": -1}), "rules.max_tx_per_hour"),
        (RateLimit, json!({"max_tx_per_hour": 1.5}), "rules.max_tx_per_hour"),
        (RateLimit, json!({"max_tx_per_day": "5"}), "rules.max_tx_per_day"),
        (RateLimit, json!({"max_per_hour": 5}), "rules.max_per_hour"),
        (AllowedTokens, json!({"tokens": [{}]}), "rules.tokens[0].mint"),
        (AllowedTokens, json!({"tokens": [{"mint": "x"}]}), "rules.tokens[0].mint"),
        (AllowedTokens, json!({"tokens": [{"mint": ADDRS[1], "chain": "solana"}]}), "rules.tokens[0].chain"),
        (AllowedTokens, json!({"tokens": [{"mint": ADDRS[1], "decimals": 19}]}), "rules.tokens[0].decimals"),
        (AllowedTokens, json!({"tokens": [{"mint": ADDRS[1], "extra": 1}]}), "rules.tokens[0].extra"),
        (AllowedTokens, json!({"tokens": {}}), "rules.tokens"),
        (AllowedTokens, json!({"unknown_token_action": "allow"}), "rules.unknown_token_action"),
        (AllowedTokens, json!({"allow_native": "yes"}), "rules.allow_native"),
        (ContractWhitelist, json!({"contracts": [{"address": 5}]}), "rules.contracts[0].address"),
        (
            ContractWhitelist,
            json!({"contracts": [{"address": ADDRS[1], "label": "x".repeat(101)}]}),
            "rules.contracts[0].label",
        ),
        (ContractWhitelist, json!({"contract_call_default_tier": "SOMETIMES"}), "rules.contract_call_default_tier"),
        (ContractWhitelist, json!({"contract": []}), "rules.contract"),
        (
            MethodWhitelist,
            json!({"methods": [{"address": ADDRS[1], "selector": "0x1234"}]}),
            "rules.methods[0].selector",
        ),
        (MethodWhitelist, json!({"methods": [{"address": ADDRS[1]}]}), "rules.methods[0].selector"),
        (
            MethodWhitelist,
            json!({"methods": [{"address": "bad", "selector": "0x12345678"}]}),
            "rules.methods[0].address",
        ),
        (
            MethodWhitelist,
            json!({"methods": [{"address": ADDRS[1], "selector": "0x12345678", "name": 1}]}),
            "rules.methods[0].name",
        ),
        (ApprovedSpenders, json!({"spenders": [{"address": ADDRS[1], "chain": "bitcoin"}]}), "rules.spenders[0].chain"),
        (ApprovedSpenders, json!({"spenders": "all"}), "rules.spenders"),
        (ApproveAmountLimit, json!({"max_amount": 5}), "rules.max_amount"),
        (ApproveAmountLimit, json!({"unlimited_blocked": 1}), "rules.unlimited_blocked"),
        (ApproveAmountLimit, json!({"unlimited_threshold": "0"}), "rules.unlimited_threshold"),
        (ApproveAmountLimit, json!({"limit": "5"}), "rules.limit"),
        (ApproveTierOverride, json!({"default_tier": "LATER"}), "rules.default_tier"),
        (ApproveTierOverride, json!({"amount_tiers": [{"max_amount": "5"}]}), "rules.amount_tiers[0].tier"),
        (
            ApproveTierOverride,
            json!({"amount_tiers": [{"max_amount": 5, "tier": "DELAY"}]}),
            "rules.amount_tiers[0].max_amount",
        ),
        (
            ApproveTierOverride,
            json!({"amount_tiers": [{"max_amount": "5", "tier": "DELAY", "x": 1}]}),
            "rules.amount_tiers[0].x",
        ),
        (ApproveTierOverride, json!("APPROVAL"), "rules"),
    ]
}

#[test]
fn every_bad_rules_field_is_named() {
    for (kind, rules, path) in bad_rules() {
        let e = parse(kind, &rules, Some(Chain::Ethereum)).expect_err(&format!("{kind} {rules} was accepted"));
        assert_eq!(e.code, crate::base::error::ErrorCode::InvalidRules, "{kind} {rules}");
        assert!(
            e.issues.iter().any(|i| i.path == path),
            "{kind} {rules}: expected an issue at {path}, got {:?}",
            e.issues
        );
    }
}

#[test]
fn stored_rules_are_normalised() {
    let (_, v) = parse(
        PolicyType::SpendingLimit,
        &json!({"instant_max": "1", "notify_max": "2", "delay_max": "3", "instant_max_usd": 10.5, "notify_max_usd": "100", "delay_max_usd": 1000}),
        None,
    )
    .unwrap();
    assert_eq!((v["instant_max_usd"].as_str(), v["delay_max_usd"].as_str()), (Some("10.5"), Some("1000")));
    assert!(v.get("delay_seconds").is_none(), "defaults are resolved at decision time");
    let (_, v) = parse(
        PolicyType::ApproveTierOverride,
        &json!({"amount_tiers": [{"max_amount": "100", "tier": "DELAY"}, {"max_amount": "5", "tier": "INSTANT"}]}),
        None,
    )
    .unwrap();
    assert_eq!(v["amount_tiers"][0]["max_amount"], "5", "sorted ascending");
    assert_eq!(v["default_tier"], "APPROVAL");
    let lower = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let (_, v) = parse(PolicyType::Whitelist, &json!({"allowed_addresses": [lower]}), Some(Chain::Ethereum)).unwrap();
    assert_eq!(v["allowed_addresses"][0], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    assert!(parse(PolicyType::MethodWhitelist, &json!({}), Some(Chain::Solana)).is_err(), "EVM only");
}

#[test]
fn time_restriction_wraps_midnight_in_the_timezone() {
    // 2025-06-15 is a Sunday. 22 → 6 in Asia/Seoul (UTC+9).
    let p = [record(
        1,
        None,
        None,
        PolicyType::TimeRestriction,
        json!({"allowed_hours": {"start": 22, "end": 6}, "timezone": "Asia/Seoul"}),
        0,
    )];
    let at = |h_utc: i64| {
        let now = chrono::DateTime::parse_from_rfc3339("2025-06-15T00:00:00Z").unwrap().timestamp() + h_utc * 3600;
        let a = agent(OwnerState::Locked);
        let policies = effective(&p, &a);
        let prices = Prices::default();
        let mut c = ctx(&policies, OwnerState::Locked, &prices);
        c.now = now as u64;
        let r = row(TxType::Transfer, 1, 1);
        tier(&evaluate(&c, &Op::of(&r), &[])).is_some()
    };
    // Seoul hours 23, 5 and 6 are UTC 14, 20 and 21.
    assert!(at(14), "23:00 allowed");
    assert!(at(20), "05:00 allowed");
    assert!(!at(21), "06:00 denied");
    assert!(!at(3), "12:00 denied");
}
