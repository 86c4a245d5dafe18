//! Typed rules of the ten policy types (07-policy.md §3), parsed from the stored JSON.
//!
//! [`parse`] is the one validator: the policy routes call it before anything is written (every
//! problem becomes an `INVALID_RULES` issue naming `rules.<field>`), and the decision calls it
//! again on the stored rows, which therefore always parse. It also returns the normalised JSON
//! that is stored: USD thresholds as decimal strings, `amount_tiers` sorted ascending,
//! addresses as the chain stores them (EIP-55 on EVM).
//!
//! Fields with a configured default (`delay_seconds`, `approval_timeout`) stay `None` when
//! absent and are resolved at decision time, so changing `[security].policy_defaults_*` applies
//! to existing policies.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use waiaas_storage::{Amount, Chain, PolicyRecord, PolicyType, Tier};

use crate::base::error::ErrorCode;
use crate::base::validation::{Invalid, Issue};

/// One effective policy with typed rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    pub(crate) id: Uuid,
    pub(crate) priority: i32,
    /// An agent's own policy (else a global one): named in the tier reason an owner reads.
    pub(crate) agent: bool,
    pub(crate) rules: Rules,
}

impl Policy {
    pub(crate) fn kind(&self) -> PolicyType {
        self.rules.kind()
    }

    /// A stored policy. Rows were validated when written, so a failure here means the row was
    /// changed behind the daemon's back; the caller treats it as an internal error.
    pub(crate) fn from_record(p: &PolicyRecord) -> Result<Policy, Invalid> {
        let rules = read_rules(p.policy_type, &p.rules, p.chain, true)?;
        Ok(Policy { id: p.id, priority: p.priority, agent: p.agent_id.is_some(), rules })
    }
}

/// The rules of one policy, by type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rules {
    SpendingLimit(SpendingLimit),
    Whitelist(Whitelist),
    TimeRestriction(TimeRestriction),
    RateLimit(RateLimit),
    AllowedTokens(AllowedTokens),
    ContractWhitelist(ContractWhitelist),
    MethodWhitelist(MethodWhitelist),
    ApprovedSpenders(ApprovedSpenders),
    ApproveAmountLimit(ApproveAmountLimit),
    ApproveTierOverride(ApproveTierOverride),
}

impl Rules {
    pub(crate) fn kind(&self) -> PolicyType {
        match self {
            Rules::SpendingLimit(_) => PolicyType::SpendingLimit,
            Rules::Whitelist(_) => PolicyType::Whitelist,
            Rules::TimeRestriction(_) => PolicyType::TimeRestriction,
            Rules::RateLimit(_) => PolicyType::RateLimit,
            Rules::AllowedTokens(_) => PolicyType::AllowedTokens,
            Rules::ContractWhitelist(_) => PolicyType::ContractWhitelist,
            Rules::MethodWhitelist(_) => PolicyType::MethodWhitelist,
            Rules::ApprovedSpenders(_) => PolicyType::ApprovedSpenders,
            Rules::ApproveAmountLimit(_) => PolicyType::ApproveAmountLimit,
            Rules::ApproveTierOverride(_) => PolicyType::ApproveTierOverride,
        }
    }
}

/// Inclusive upper bounds of INSTANT, NOTIFY and DELAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds<T> {
    pub(crate) instant: T,
    pub(crate) notify: T,
    pub(crate) delay: T,
}

impl<T: PartialOrd + Clone> Thresholds<T> {
    /// The bound a value in `tier` crossed (`None` for INSTANT: it crossed none), with its
    /// rule name.
    pub(crate) fn crossed(&self, tier: Tier) -> Option<(&'static str, T)> {
        match tier {
            Tier::Instant => None,
            Tier::Notify => Some(("instant_max", self.instant.clone())),
            Tier::Delay => Some(("notify_max", self.notify.clone())),
            Tier::Approval => Some(("delay_max", self.delay.clone())),
        }
    }
}

impl<T: PartialOrd> Thresholds<T> {
    /// §5: the first bound the value does not exceed; above all three, APPROVAL.
    pub(crate) fn tier(&self, v: &T) -> Tier {
        if *v <= self.instant {
            Tier::Instant
        } else if *v <= self.notify {
            Tier::Notify
        } else if *v <= self.delay {
            Tier::Delay
        } else {
            Tier::Approval
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpendingLimit {
    pub(crate) native: Thresholds<Amount>,
    pub(crate) delay_seconds: Option<u64>,
    pub(crate) approval_timeout: Option<u64>,
    pub(crate) usd: Option<Thresholds<Decimal>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Whitelist {
    pub(crate) allowed_addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeRestriction {
    /// `(start, end)` hours; `None` = every hour.
    pub(crate) allowed_hours: Option<(u8, u8)>,
    /// 0 = Sunday; empty = every day.
    pub(crate) allowed_days: Vec<u8>,
    pub(crate) timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// 0 = unlimited.
    pub(crate) max_tx_per_hour: u64,
    pub(crate) max_tx_per_day: u64,
}

/// An address listed by a policy, optionally for one chain only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) address: String,
    pub(crate) chain: Option<Chain>,
    pub(crate) label: Option<String>,
}

impl Listed {
    /// Whether this entry names `address` for an agent on `chain`.
    pub(crate) fn names(&self, chain: Chain, address: &str) -> bool {
        self.chain.is_none_or(|c| c == chain) && crate::base::address::same(chain, &self.address, address)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenEntry {
    pub(crate) mint: Listed,
    pub(crate) symbol: Option<String>,
    /// An extension of the spec's entry: lets USD valuation and balance listings skip the
    /// on-chain lookup.
    pub(crate) decimals: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedTokens {
    pub(crate) tokens: Vec<TokenEntry>,
    /// `unknown_token_action: "notify"`: unlisted tokens pass with a NOTIFY floor.
    pub(crate) notify_unknown: bool,
    pub(crate) allow_native: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContractWhitelist {
    pub(crate) contracts: Vec<Listed>,
    pub(crate) default_tier: Tier,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MethodEntry {
    pub(crate) address: String,
    pub(crate) selector: [u8; 4],
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MethodWhitelist {
    pub(crate) methods: Vec<MethodEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApprovedSpenders {
    pub(crate) spenders: Vec<Listed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApproveAmountLimit {
    pub(crate) max_amount: Option<Amount>,
    pub(crate) unlimited_blocked: bool,
    /// `None` = the chain's default (EVM 2^255 − 1, Solana 2^63 − 1).
    pub(crate) unlimited_threshold: Option<Amount>,
}

/// The default amount at or above which an approval counts as unlimited: EVM 2^255 − 1,
/// Solana 2^63 − 1 (07-policy.md §3).
pub(crate) fn unlimited_threshold(chain: Chain) -> Amount {
    use alloy::primitives::U256;
    match chain {
        Chain::Ethereum => Amount((U256::from(1u8) << 255) - U256::from(1u8)),
        Chain::Solana => Amount::from_u64(i64::MAX as u64),
    }
}

impl ApproveAmountLimit {
    pub(crate) fn threshold(&self, chain: Chain) -> Amount {
        self.unlimited_threshold.unwrap_or_else(|| unlimited_threshold(chain))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApproveTierOverride {
    pub(crate) default_tier: Tier,
    /// Sorted ascending by amount.
    pub(crate) amount_tiers: Vec<(Amount, Tier)>,
}

impl ApproveTierOverride {
    pub(crate) fn tier(&self, amount: Amount) -> Tier {
        self.amount_tiers.iter().find(|(max, _)| amount <= *max).map_or(self.default_tier, |(_, t)| *t)
    }
}

// ------------------------------------------------------------------------------- the reader

/// Reads one JSON object field by field, collecting every problem with its full path, and
/// reports the fields nobody read as unknown.
struct Reader<'a> {
    obj: Option<&'a Map<String, Value>>,
    path: String,
    read: Vec<&'static str>,
    issues: &'a mut Vec<Issue>,
    /// Reading a stored row: addresses were normalised when it was written.
    stored: bool,
}

impl<'a> Reader<'a> {
    fn new(v: &'a Value, path: String, issues: &'a mut Vec<Issue>, stored: bool) -> Reader<'a> {
        let obj = v.as_object();
        if obj.is_none() {
            issues.push(issue(&path, "invalid_type", format!("{path} must be an object")));
        }
        Reader { obj, path, read: Vec::new(), issues, stored }
    }

    /// A reader for a nested object.
    fn sub<'b>(&'b mut self, v: &'b Value, path: String) -> Reader<'b> {
        Reader::new(v, path, self.issues, self.stored)
    }

    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    fn get(&mut self, field: &'static str) -> Option<&'a Value> {
        self.read.push(field);
        self.obj?.get(field).filter(|v| !v.is_null())
    }

    fn fail(&mut self, field: &str, code: &str, message: impl Into<String>) {
        let p = self.at(field);
        self.issues.push(issue(&p, code, message));
    }

    fn required<T>(&mut self, field: &'static str, v: Option<T>) -> Option<T> {
        if v.is_none() && self.obj.is_some_and(|o| o.get(field).is_none_or(Value::is_null)) {
            self.fail(field, "required", format!("{} is required", self.at(field)));
        }
        v
    }

    fn amount(&mut self, field: &'static str) -> Option<Amount> {
        let v = self.get(field)?;
        let Some(s) = v.as_str() else {
            self.fail(field, "invalid_type", "must be a decimal integer string in smallest units");
            return None;
        };
        match Amount::parse(s) {
            Ok(a) => Some(a),
            Err(e) => {
                self.fail(field, "invalid_value", format!("{s:?} is not a canonical amount in smallest units ({e})"));
                None
            }
        }
    }

    fn usd(&mut self, field: &'static str) -> Option<Decimal> {
        let v = self.get(field)?;
        let parsed = match v {
            Value::String(s) => Decimal::from_str(s).ok(),
            Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
            _ => {
                self.fail(field, "invalid_type", "must be a decimal string (or a JSON number)");
                return None;
            }
        };
        match parsed {
            Some(d) if d > Decimal::ZERO => Some(d.normalize()),
            Some(_) => {
                self.fail(field, "out_of_range", "must be greater than 0");
                None
            }
            None => {
                self.fail(field, "invalid_value", format!("{v} is not a decimal number"));
                None
            }
        }
    }

    fn int(&mut self, field: &'static str, min: u64, max: u64) -> Option<u64> {
        let v = self.get(field)?;
        let n = match (v.as_u64(), v.as_i64()) {
            (Some(n), _) => n,
            (None, Some(_)) => u64::MAX, // a negative integer: reported as out of range
            (None, None) => {
                self.fail(field, "invalid_type", "must be an integer");
                return None;
            }
        };
        if !(min..=max).contains(&n) {
            self.fail(field, "out_of_range", format!("must be {min}–{max}"));
            return None;
        }
        Some(n)
    }

    fn bool(&mut self, field: &'static str) -> Option<bool> {
        let v = self.get(field)?;
        let b = v.as_bool();
        if b.is_none() {
            self.fail(field, "invalid_type", "must be true or false");
        }
        b
    }

    fn string(&mut self, field: &'static str, max_len: usize) -> Option<String> {
        let v = self.get(field)?;
        match v.as_str() {
            Some(s) if s.chars().count() <= max_len => Some(s.to_string()),
            Some(_) => {
                self.fail(field, "out_of_range", format!("must be at most {max_len} characters"));
                None
            }
            None => {
                self.fail(field, "invalid_type", "must be a string");
                None
            }
        }
    }

    fn tier(&mut self, field: &'static str) -> Option<Tier> {
        let v = self.get(field)?;
        match v.as_str().map(Tier::from_str) {
            Some(Ok(t)) => Some(t),
            _ => {
                self.fail(field, "invalid_value", "must be INSTANT, NOTIFY, DELAY or APPROVAL");
                None
            }
        }
    }

    fn chain(&mut self, field: &'static str) -> Option<Chain> {
        let v = self.get(field)?;
        match v.as_str().map(Chain::from_str) {
            Some(Ok(c)) => Some(c),
            _ => {
                self.fail(field, "invalid_value", "must be \"solana\" or \"ethereum\"");
                None
            }
        }
    }

    fn array(&mut self, field: &'static str) -> Option<&'a Vec<Value>> {
        let v = self.get(field)?;
        let a = v.as_array();
        if a.is_none() {
            self.fail(field, "invalid_type", "must be an array");
        }
        a
    }

    /// An address valid for `chain` (or, when the scope has no chain, for either chain),
    /// normalised the way the chain stores it.
    fn address(&mut self, field: &'static str, chain: Option<Chain>) -> Option<String> {
        let s = self.string(field, 128)?;
        let norm = normalized(&s, chain, self.stored);
        if norm.is_none() {
            let what = chain.map_or("an EVM or Solana".to_string(), |c| format!("a valid {c}"));
            self.fail(field, "invalid_value", format!("{s:?} is not {what} address"));
        }
        norm
    }

    /// Reports every field of the object that was not read.
    fn finish(self) {
        let Some(obj) = self.obj else { return };
        for k in obj.keys() {
            if !self.read.contains(&k.as_str()) {
                self.issues.push(issue(
                    &format!("{}.{k}", self.path),
                    "unrecognized_keys",
                    format!("unknown field {k:?}"),
                ));
            }
        }
    }
}

/// `text` as the chain stores it (for a policy without a chain: as either chain stores it), or
/// `None` when it is no address. A stored row's addresses were normalised when it was written
/// (an EIP-55 checksum costs a keccak each), so they are taken as they are.
fn normalized(text: &str, chain: Option<Chain>, stored: bool) -> Option<String> {
    if stored {
        return Some(text.to_string());
    }
    match chain {
        Some(c) => crate::base::address::normalize(c, text),
        None => crate::base::address::normalize(Chain::Ethereum, text)
            .or_else(|| crate::base::address::normalize(Chain::Solana, text)),
    }
}

fn issue(path: &str, code: &str, message: impl Into<String>) -> Issue {
    Issue { path: path.to_string(), code: code.to_string(), message: message.into() }
}

/// The elements of an array field, each read by `f` with its own reader.
fn each<T>(r: &mut Reader<'_>, field: &'static str, mut f: impl FnMut(&mut Reader<'_>) -> Option<T>) -> Option<Vec<T>> {
    let items = r.array(field)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        // Paths only matter for issues, which a stored row does not have.
        let path = if r.stored { String::new() } else { format!("{}[{i}]", r.at(field)) };
        let mut sub = r.sub(item, path);
        let v = if sub.obj.is_some() { f(&mut sub) } else { None };
        sub.finish();
        match v {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn listed(r: &mut Reader<'_>, scope: Option<Chain>) -> Option<Listed> {
    let chain = r.chain("chain");
    if let (Some(c), Some(s)) = (chain, scope)
        && c != s
    {
        r.fail("chain", "invalid_value", format!("the policy is for {s}; this entry says {c}"));
    }
    let address = r.address("address", chain.or(scope));
    let label = r.string("label", 100);
    r.required("address", address).map(|address| Listed { address, chain, label })
}

// -------------------------------------------------------------------------------- parsing

/// Validates `rules` for a policy of `kind` scoped to `chain` (None = all chains). On success,
/// the typed rules and the JSON to store.
pub(crate) fn parse(kind: PolicyType, rules: &Value, chain: Option<Chain>) -> Result<(Rules, Value), Invalid> {
    let rules = read_rules(kind, rules, chain, false)?;
    let stored = to_json(&rules);
    Ok((rules, stored))
}

fn read_rules(kind: PolicyType, rules: &Value, chain: Option<Chain>, stored: bool) -> Result<Rules, Invalid> {
    let mut issues = Vec::new();
    let parsed = {
        let mut r = Reader::new(rules, "rules".into(), &mut issues, stored);
        let v = if r.obj.is_some() { read(kind, &mut r, chain) } else { None };
        r.finish();
        v
    };
    match parsed {
        Some(rules) if issues.is_empty() => Ok(rules),
        _ => Err(Invalid {
            code: ErrorCode::InvalidRules,
            message: format!(
                "Invalid {kind} rules: {}",
                issues.first().map_or("rules are invalid".to_string(), |i| format!("{} {}", i.path, i.message))
            ),
            issues,
        }),
    }
}

fn read(kind: PolicyType, r: &mut Reader<'_>, chain: Option<Chain>) -> Option<Rules> {
    Some(match kind {
        PolicyType::SpendingLimit => {
            let instant = r.amount("instant_max");
            let notify = r.amount("notify_max");
            let delay = r.amount("delay_max");
            let (instant, notify, delay) =
                (r.required("instant_max", instant), r.required("notify_max", notify), r.required("delay_max", delay));
            let delay_seconds = r.int("delay_seconds", 60, 86_400);
            let approval_timeout = r.int("approval_timeout", 300, 86_400);
            let usd = [r.usd("instant_max_usd"), r.usd("notify_max_usd"), r.usd("delay_max_usd")];
            let present = ["instant_max_usd", "notify_max_usd", "delay_max_usd"]
                .map(|f| r.obj.is_some_and(|o| o.get(f).is_some_and(|v| !v.is_null())));
            let usd = match (present.iter().filter(|p| **p).count(), usd) {
                (0, _) => None,
                (3, [Some(i), Some(n), Some(d)]) => {
                    if !(i <= n && n <= d) {
                        r.fail("notify_max_usd", "unordered", "USD thresholds must satisfy instant ≤ notify ≤ delay");
                    }
                    Some(Thresholds { instant: i, notify: n, delay: d })
                }
                (3, _) => None,
                _ => {
                    let missing = ["instant_max_usd", "notify_max_usd", "delay_max_usd"]
                        .iter()
                        .zip(present)
                        .find(|(_, p)| !p)
                        .map(|(f, _)| *f)
                        .unwrap_or("instant_max_usd");
                    r.fail(missing, "required", "give all three USD thresholds or none");
                    None
                }
            };
            let (instant, notify, delay) = (instant?, notify?, delay?);
            if notify < instant {
                r.fail("notify_max", "unordered", "notify_max must be ≥ instant_max");
            }
            if delay < notify {
                r.fail("delay_max", "unordered", "delay_max must be ≥ notify_max");
            }
            Rules::SpendingLimit(SpendingLimit {
                native: Thresholds { instant, notify, delay },
                delay_seconds,
                approval_timeout,
                usd,
            })
        }
        PolicyType::Whitelist => {
            let list = match r.array("allowed_addresses") {
                None => Some(Vec::new()),
                Some(items) => {
                    let mut out = Vec::new();
                    for (i, v) in items.iter().enumerate() {
                        let path = format!("{}[{i}]", r.at("allowed_addresses"));
                        let norm = v.as_str().and_then(|s| normalized(s, chain, r.stored));
                        match norm {
                            Some(a) => out.push(a),
                            None => r.issues.push(issue(&path, "invalid_value", format!("{v} is not an address"))),
                        }
                    }
                    Some(out)
                }
            };
            Rules::Whitelist(Whitelist { allowed_addresses: list? })
        }
        PolicyType::TimeRestriction => {
            let hours = r.get("allowed_hours").map(|v| {
                let path = r.at("allowed_hours");
                let mut sub = r.sub(v, path);
                let (s, e) = (sub.int("start", 0, 23), sub.int("end", 0, 23));
                let (s, e) = (sub.required("start", s), sub.required("end", e));
                sub.finish();
                s.zip(e).map(|(s, e)| (s as u8, e as u8))
            });
            let days = match r.array("allowed_days") {
                None => Vec::new(),
                Some(items) => {
                    let mut out = Vec::new();
                    for (i, v) in items.iter().enumerate() {
                        match v.as_u64().filter(|d| *d <= 6) {
                            Some(d) if !out.contains(&(d as u8)) => out.push(d as u8),
                            Some(_) => {}
                            None => r.issues.push(issue(
                                &format!("{}[{i}]", r.at("allowed_days")),
                                "out_of_range",
                                "days are 0 (Sunday) to 6",
                            )),
                        }
                    }
                    out.sort_unstable();
                    out
                }
            };
            let tz = match r.string("timezone", 64) {
                None => Some(chrono_tz::UTC),
                Some(name) => match name.parse::<chrono_tz::Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        r.fail("timezone", "invalid_value", format!("{name:?} is not an IANA time zone"));
                        None
                    }
                },
            };
            Rules::TimeRestriction(TimeRestriction {
                allowed_hours: match hours {
                    None => None,
                    Some(h) => Some(h?),
                },
                allowed_days: days,
                timezone: tz?,
            })
        }
        PolicyType::RateLimit => Rules::RateLimit(RateLimit {
            max_tx_per_hour: r.int("max_tx_per_hour", 0, 1_000_000).unwrap_or(0),
            max_tx_per_day: r.int("max_tx_per_day", 0, 10_000_000).unwrap_or(0),
        }),
        PolicyType::AllowedTokens => {
            let tokens = match r.obj.and_then(|o| o.get("tokens")) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(_) => each(r, "tokens", |e| {
                    let entry_chain = e.chain("chain");
                    if let (Some(c), Some(s)) = (entry_chain, chain)
                        && c != s
                    {
                        e.fail("chain", "invalid_value", format!("the policy is for {s}; this entry says {c}"));
                    }
                    let mint = e.address("mint", entry_chain.or(chain));
                    let symbol = e.string("symbol", 32);
                    let decimals = e.int("decimals", 0, 18).map(|d| d as u8);
                    e.required("mint", mint).map(|address| TokenEntry {
                        mint: Listed { address, chain: entry_chain, label: None },
                        symbol,
                        decimals,
                    })
                }),
            };
            let action = r.string("unknown_token_action", 16);
            let notify_unknown = match action.as_deref() {
                None | Some("deny") => false,
                Some("notify") => true,
                Some(_) => {
                    r.fail("unknown_token_action", "invalid_value", "must be \"deny\" or \"notify\"");
                    false
                }
            };
            let allow_native = r.bool("allow_native").unwrap_or(true);
            Rules::AllowedTokens(AllowedTokens { tokens: tokens?, notify_unknown, allow_native })
        }
        PolicyType::ContractWhitelist => {
            let contracts = match r.obj.and_then(|o| o.get("contracts")) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(_) => each(r, "contracts", |e| listed(e, chain)),
            };
            let default_tier = r.tier("contract_call_default_tier").unwrap_or(Tier::Approval);
            Rules::ContractWhitelist(ContractWhitelist { contracts: contracts?, default_tier })
        }
        PolicyType::MethodWhitelist => {
            if chain == Some(Chain::Solana) {
                r.issues.push(issue("chain", "invalid_value", "METHOD_WHITELIST applies to EVM only"));
            }
            let methods = match r.obj.and_then(|o| o.get("methods")) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(_) => each(r, "methods", |e| {
                    let address = e.address("address", Some(Chain::Ethereum));
                    let selector = e.string("selector", 10).and_then(|s| {
                        let bytes = s
                            .strip_prefix("0x")
                            .filter(|h| h.len() == 8)
                            .and_then(|h| hex::decode(h).ok())
                            .and_then(|b| <[u8; 4]>::try_from(b).ok());
                        if bytes.is_none() {
                            e.fail("selector", "invalid_value", "must be \"0x\" and 8 hex digits");
                        }
                        bytes
                    });
                    let name = e.string("name", 100);
                    let (address, selector) = (e.required("address", address), e.required("selector", selector));
                    Some(MethodEntry { address: address?, selector: selector?, name })
                }),
            };
            Rules::MethodWhitelist(MethodWhitelist { methods: methods? })
        }
        PolicyType::ApprovedSpenders => {
            let spenders = match r.obj.and_then(|o| o.get("spenders")) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(_) => each(r, "spenders", |e| listed(e, chain)),
            };
            Rules::ApprovedSpenders(ApprovedSpenders { spenders: spenders? })
        }
        PolicyType::ApproveAmountLimit => {
            let max_amount = r.amount("max_amount");
            let unlimited_blocked = r.bool("unlimited_blocked").unwrap_or(true);
            let unlimited_threshold = r.amount("unlimited_threshold");
            if unlimited_threshold.is_some_and(|t| t.is_zero()) {
                r.fail("unlimited_threshold", "out_of_range", "must be greater than 0");
            }
            Rules::ApproveAmountLimit(ApproveAmountLimit { max_amount, unlimited_blocked, unlimited_threshold })
        }
        PolicyType::ApproveTierOverride => {
            let default_tier = r.tier("default_tier").unwrap_or(Tier::Approval);
            let tiers = match r.obj.and_then(|o| o.get("amount_tiers")) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(_) => each(r, "amount_tiers", |e| {
                    let (max, tier) = (e.amount("max_amount"), e.tier("tier"));
                    let (max, tier) = (e.required("max_amount", max), e.required("tier", tier));
                    max.zip(tier)
                }),
            };
            let mut amount_tiers = tiers?;
            amount_tiers.sort_by_key(|(a, _)| *a);
            Rules::ApproveTierOverride(ApproveTierOverride { default_tier, amount_tiers })
        }
    })
}

/// The JSON stored for typed rules: what was given, normalised.
fn to_json(rules: &Rules) -> Value {
    let opt = |v: Option<u64>| v.map_or(Value::Null, |n| json!(n));
    let listed = |l: &Listed| {
        let mut m = Map::new();
        m.insert("address".into(), json!(l.address));
        if let Some(c) = l.chain {
            m.insert("chain".into(), json!(c.as_str()));
        }
        if let Some(label) = &l.label {
            m.insert("label".into(), json!(label));
        }
        Value::Object(m)
    };
    let mut v = match rules {
        Rules::SpendingLimit(s) => {
            let mut v = json!({
                "instant_max": s.native.instant.to_string(),
                "notify_max": s.native.notify.to_string(),
                "delay_max": s.native.delay.to_string(),
                "delay_seconds": opt(s.delay_seconds),
                "approval_timeout": opt(s.approval_timeout),
            });
            if let Some(u) = &s.usd {
                v["instant_max_usd"] = json!(u.instant.to_string());
                v["notify_max_usd"] = json!(u.notify.to_string());
                v["delay_max_usd"] = json!(u.delay.to_string());
            }
            v
        }
        Rules::Whitelist(w) => json!({"allowed_addresses": w.allowed_addresses}),
        Rules::TimeRestriction(t) => {
            let mut v = json!({"allowed_days": t.allowed_days, "timezone": t.timezone.name()});
            if let Some((s, e)) = t.allowed_hours {
                v["allowed_hours"] = json!({"start": s, "end": e});
            }
            v
        }
        Rules::RateLimit(r) => json!({"max_tx_per_hour": r.max_tx_per_hour, "max_tx_per_day": r.max_tx_per_day}),
        Rules::AllowedTokens(a) => json!({
            "tokens": a.tokens.iter().map(|t| {
                let mut m = Map::new();
                m.insert("mint".into(), json!(t.mint.address));
                if let Some(c) = t.mint.chain { m.insert("chain".into(), json!(c.as_str())); }
                if let Some(s) = &t.symbol { m.insert("symbol".into(), json!(s)); }
                if let Some(d) = t.decimals { m.insert("decimals".into(), json!(d)); }
                Value::Object(m)
            }).collect::<Vec<_>>(),
            "unknown_token_action": if a.notify_unknown { "notify" } else { "deny" },
            "allow_native": a.allow_native,
        }),
        Rules::ContractWhitelist(c) => json!({
            "contracts": c.contracts.iter().map(listed).collect::<Vec<_>>(),
            "contract_call_default_tier": c.default_tier.as_str(),
        }),
        Rules::MethodWhitelist(m) => json!({
            "methods": m.methods.iter().map(|e| {
                let mut v = json!({"address": e.address, "selector": format!("0x{}", hex::encode(e.selector))});
                if let Some(n) = &e.name { v["name"] = json!(n); }
                v
            }).collect::<Vec<_>>(),
        }),
        Rules::ApprovedSpenders(s) => {
            json!({"spenders": s.spenders.iter().map(listed).collect::<Vec<_>>()})
        }
        Rules::ApproveAmountLimit(a) => json!({
            "max_amount": a.max_amount.map(|m| m.to_string()),
            "unlimited_blocked": a.unlimited_blocked,
            "unlimited_threshold": a.unlimited_threshold.map(|m| m.to_string()),
        }),
        Rules::ApproveTierOverride(o) => json!({
            "default_tier": o.default_tier.as_str(),
            "amount_tiers": o.amount_tiers.iter().map(|(a, t)| json!({"max_amount": a.to_string(), "tier": t.as_str()})).collect::<Vec<_>>(),
        }),
    };
    // Absent optional values are not stored as nulls.
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}
