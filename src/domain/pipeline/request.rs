//! Stage 1 validation (06-pipeline.md §2.1–2.3): the send body becomes a canonical request —
//! type explicit, defaults filled, EVM addresses EIP-55, amounts in canonical decimal — plus the
//! row fields and the adapter's build request. Nothing is written before this succeeds.
//!
//! The canonical request is itself a valid send body, and it is what stage 5 builds from: every
//! execution — inline or, later, from the DELAY worker or after an owner's approval — parses the
//! stored `transactions.request` again with [`rebuild`], so a queued transaction is built exactly
//! the way the request that queued it would have been.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use waiaas_storage::{AgentRecord, Amount, Chain, TxType};

use super::kinds::{self, Kind};
use crate::adapters::chains::types::{AccountMetaSpec, BuildRequest, CallBody, Priority, TokenRef};
use crate::base::error::ErrorCode;
use crate::base::validation::{Invalid, parse_json};

/// A validated request.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) kind: TxType,
    /// The canonical request stored in `transactions.request`.
    pub(crate) canonical: Value,
    pub(crate) request_hash: [u8; 32],
    pub(crate) fields: RowFields,
    /// BATCH: one entry per instruction.
    pub(crate) children: Vec<RowFields>,
    pub(crate) build: BuildRequest,
    pub(crate) priority: Priority,
}

/// The row columns a request fills (02-storage.md §3.4).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowFields {
    pub(crate) kind: Option<TxType>,
    pub(crate) amount: Amount,
    pub(crate) native_amount: Amount,
    pub(crate) to_address: Option<String>,
    pub(crate) token_mint: Option<String>,
    pub(crate) contract_address: Option<String>,
    pub(crate) method_signature: Option<String>,
    pub(crate) spender_address: Option<String>,
    pub(crate) approved_amount: Option<Amount>,
}

fn invalid(path: &str, message: impl Into<String>) -> Invalid {
    Invalid::value(path, message)
}

/// A canonical non-negative integer string (storage's `Amount` rule: digits only, no leading
/// zeros), positive where the field requires it, within `u64` on Solana.
fn amount(path: &str, s: &str, chain: Chain, positive: bool) -> Result<Amount, Invalid> {
    let a = Amount::parse(s).map_err(|e| {
        invalid(path, format!("{path} must be a decimal integer string in smallest units, got {s:?} ({e})"))
    })?;
    if positive && a.is_zero() {
        return Err(invalid(path, format!("{path} must be greater than 0")));
    }
    if chain == Chain::Solana && a.to_u64().is_none() {
        return Err(invalid(path, format!("{path} exceeds u64 (Solana amounts are u64)")));
    }
    Ok(a)
}

/// An address of the agent's chain, normalised (EIP-55 on EVM).
fn address(path: &str, s: &str, chain: Chain) -> Result<String, Invalid> {
    crate::base::address::normalize(chain, s)
        .ok_or_else(|| invalid(path, format!("{s:?} is not a valid {chain} address")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIn {
    mint: String,
    decimals: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccountIn {
    pubkey: String,
    is_signer: bool,
    is_writable: bool,
}

/// Every field any type may carry; each type then checks which ones it got.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BodyIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    to: Option<String>,
    amount: Option<String>,
    token: Option<TokenIn>,
    contract_address: Option<String>,
    calldata: Option<String>,
    value: Option<String>,
    program_id: Option<String>,
    instruction_data: Option<String>,
    accounts: Option<Vec<AccountIn>>,
    spender: Option<String>,
    instructions: Option<Vec<Value>>,
    memo: Option<String>,
    priority: Option<String>,
}

fn require<'a, T>(v: &'a Option<T>, path: &str) -> Result<&'a T, Invalid> {
    v.as_ref().ok_or_else(|| Invalid::field(path, "required", format!("{path} is required")))
}

impl BodyIn {
    /// The type-specific fields and whether each is present (`type`, `memo` and `priority`
    /// belong to every type).
    fn type_fields(&self) -> [(&'static str, bool); 11] {
        [
            ("to", self.to.is_some()),
            ("amount", self.amount.is_some()),
            ("token", self.token.is_some()),
            ("contractAddress", self.contract_address.is_some()),
            ("calldata", self.calldata.is_some()),
            ("value", self.value.is_some()),
            ("programId", self.program_id.is_some()),
            ("instructionData", self.instruction_data.is_some()),
            ("accounts", self.accounts.is_some()),
            ("spender", self.spender.is_some()),
            ("instructions", self.instructions.is_some()),
        ]
    }
}

/// Refuses every type-specific field that is not a field of `kind` on `chain` (the table in
/// `kinds`).
fn allow_only(b: &BodyIn, kind: &Kind, chain: Chain) -> Result<(), Invalid> {
    let extra = b
        .type_fields()
        .into_iter()
        .find(|(name, present)| *present && !kind.field(name).is_some_and(|f| f.need.applies_to(chain)));
    match extra {
        Some((name, _)) => {
            let on = if kind.field(name).is_some() { format!(" on {chain}") } else { String::new() };
            Err(Invalid::field(name, "unrecognized_keys", format!("{name} is not a field of {}{on}", kind.tx_type)))
        }
        None => Ok(()),
    }
}

struct One {
    canonical: Map<String, Value>,
    fields: RowFields,
    build: BuildRequest,
}

fn token(t: &TokenIn, chain: Chain, path: &str) -> Result<(TokenRef, Value), Invalid> {
    let mint = address(&format!("{path}.mint"), &t.mint, chain)?;
    if t.decimals.is_some_and(|d| d > 18) {
        return Err(invalid(&format!("{path}.decimals"), "decimals must be 0-18"));
    }
    let mut v = json!({"mint": mint});
    if let Some(d) = t.decimals {
        v["decimals"] = json!(d);
    }
    Ok((TokenRef { address: mint, decimals: t.decimals }, v))
}

/// One instruction (or a whole non-batch request) of `kind`.
fn one(b: &BodyIn, kind: TxType, agent: &AgentRecord, memo: Option<&str>, prefix: &str) -> Result<One, Invalid> {
    let chain = agent.chain;
    let from = agent.public_key.clone();
    let p = |f: &str| format!("{prefix}{f}");
    let mut c = Map::new();
    c.insert("type".into(), json!(kind.as_str()));
    let mut fields = RowFields { kind: Some(kind), ..RowFields::default() };
    let build = match kind {
        TxType::Transfer => {
            allow_only(b, kinds::kind(kind), chain)?;
            let to = address(&p("to"), require(&b.to, &p("to"))?, chain)?;
            let amount = amount(&p("amount"), require(&b.amount, &p("amount"))?, chain, true)?;
            c.insert("to".into(), json!(to));
            c.insert("amount".into(), json!(amount.to_string()));
            fields.amount = amount;
            fields.native_amount = amount;
            fields.to_address = Some(to.clone());
            BuildRequest::Transfer { from, to, amount, memo: memo.map(str::to_string) }
        }
        TxType::TokenTransfer => {
            allow_only(b, kinds::kind(kind), chain)?;
            let to = address(&p("to"), require(&b.to, &p("to"))?, chain)?;
            let amount = amount(&p("amount"), require(&b.amount, &p("amount"))?, chain, true)?;
            let (tref, tv) = token(require(&b.token, &p("token"))?, chain, &p("token"))?;
            c.insert("to".into(), json!(to));
            c.insert("amount".into(), json!(amount.to_string()));
            c.insert("token".into(), tv);
            fields.amount = amount;
            fields.to_address = Some(to.clone());
            fields.token_mint = Some(tref.address.clone());
            BuildRequest::TokenTransfer { from, to, amount, token: tref, memo: memo.map(str::to_string) }
        }
        TxType::ContractCall => {
            allow_only(b, kinds::kind(kind), chain)?;
            let contract = address(&p("contractAddress"), require(&b.contract_address, &p("contractAddress"))?, chain)?;
            c.insert("contractAddress".into(), json!(contract));
            let (value, body) = match chain {
                Chain::Ethereum => {
                    let data = require(&b.calldata, &p("calldata"))?;
                    let bytes = data
                        .strip_prefix("0x")
                        .and_then(|h| hex::decode(h).ok())
                        .ok_or_else(|| invalid(&p("calldata"), "calldata must be 0x-hex"))?;
                    if bytes.len() < 4 {
                        return Err(invalid(&p("calldata"), "calldata must hold at least a 4-byte selector"));
                    }
                    let value = amount(&p("value"), b.value.as_deref().unwrap_or("0"), chain, false)?;
                    c.insert("calldata".into(), json!(format!("0x{}", hex::encode(&bytes))));
                    c.insert("value".into(), json!(value.to_string()));
                    fields.method_signature = Some(format!("0x{}", hex::encode(&bytes[..4])));
                    (value, CallBody::Evm { calldata: bytes })
                }
                Chain::Solana => {
                    if let Some(pid) = &b.program_id
                        && address(&p("programId"), pid, chain)? != contract
                    {
                        return Err(invalid(&p("programId"), "programId must equal contractAddress"));
                    }
                    if b.value.as_deref().is_some_and(|v| v != "0") {
                        return Err(invalid(&p("value"), "value must be absent or \"0\" on Solana"));
                    }
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(require(&b.instruction_data, &p("instructionData"))?)
                        .map_err(|_| invalid(&p("instructionData"), "instructionData must be base64"))?;
                    if data.len() > 1232 {
                        return Err(invalid(&p("instructionData"), "instructionData decodes to more than 1232 bytes"));
                    }
                    let accounts = require(&b.accounts, &p("accounts"))?;
                    if accounts.is_empty() || accounts.len() > 64 {
                        return Err(invalid(&p("accounts"), "accounts must hold 1-64 entries"));
                    }
                    let mut metas = Vec::new();
                    let mut canon = Vec::new();
                    for (i, a) in accounts.iter().enumerate() {
                        let pk = address(&p(&format!("accounts[{i}].pubkey")), &a.pubkey, chain)?;
                        if a.is_signer && pk != agent.public_key {
                            return Err(invalid(
                                &p(&format!("accounts[{i}].isSigner")),
                                "only the agent's own address may sign",
                            ));
                        }
                        canon.push(json!({"pubkey": pk, "isSigner": a.is_signer, "isWritable": a.is_writable}));
                        metas.push(AccountMetaSpec { pubkey: pk, is_signer: a.is_signer, is_writable: a.is_writable });
                    }
                    c.insert("instructionData".into(), json!(base64::engine::general_purpose::STANDARD.encode(&data)));
                    c.insert("accounts".into(), Value::Array(canon));
                    c.insert("value".into(), json!("0"));
                    (Amount::ZERO, CallBody::Solana { instruction_data: data, accounts: metas })
                }
            };
            fields.amount = value;
            fields.native_amount = value;
            fields.contract_address = Some(contract.clone());
            BuildRequest::ContractCall { from, to: contract, value, body, memo: memo.map(str::to_string) }
        }
        TxType::Approve => {
            allow_only(b, kinds::kind(kind), chain)?;
            let (tref, tv) = token(require(&b.token, &p("token"))?, chain, &p("token"))?;
            let spender = address(&p("spender"), require(&b.spender, &p("spender"))?, chain)?;
            let amount = amount(&p("amount"), require(&b.amount, &p("amount"))?, chain, false)?;
            c.insert("token".into(), tv);
            c.insert("spender".into(), json!(spender));
            c.insert("amount".into(), json!(amount.to_string()));
            fields.amount = amount;
            fields.token_mint = Some(tref.address.clone());
            fields.spender_address = Some(spender.clone());
            fields.approved_amount = Some(amount);
            fields.method_signature =
                Some(if chain == Chain::Ethereum { "0x095ea7b3 (approve)".into() } else { "ApproveChecked".into() });
            if chain == Chain::Ethereum {
                fields.contract_address = Some(tref.address.clone());
            }
            BuildRequest::Approve { from, token: tref, spender, amount }
        }
        TxType::Batch => unreachable!("batches are handled by validate"),
    };
    Ok(One { canonical: c, fields, build })
}

fn parse_type(s: Option<&str>, path: &str) -> Result<TxType, Invalid> {
    match s {
        None => Ok(TxType::Transfer),
        Some(t) => t.parse().map_err(|_| Invalid::field(path, "invalid_enum_value", format!("unknown type {t:?}"))),
    }
}

/// The SHA-256 of the canonical JSON (sorted keys, compact).
pub(crate) fn hash(v: &Value) -> [u8; 32] {
    let mut s = String::new();
    waiaas_storage::audit::canonical_json(v, &mut s).expect("request JSON is canonicalisable");
    Sha256::digest(s.as_bytes()).into()
}

/// What stage 5 builds from a stored row: its canonical request parsed again.
pub(crate) fn rebuild(request: &Value, agent: &AgentRecord) -> Result<(BuildRequest, Priority), Invalid> {
    let bytes = serde_json::to_vec(request).map_err(|e| invalid("", format!("the stored request: {e}")))?;
    let v = validate(&bytes, agent)?;
    Ok((v.build, v.priority))
}

/// Validates a send body for `agent`.
pub(crate) fn validate(bytes: &[u8], agent: &AgentRecord) -> Result<Validated, Invalid> {
    let b: BodyIn = parse_json(if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes })?;
    let kind = parse_type(b.kind.as_deref(), "type")?;
    if let Some(m) = &b.memo
        && (m.chars().count() > 200 || m.len() > 256)
    {
        return Err(invalid("memo", "memo must be at most 200 characters and 256 bytes"));
    }
    let priority = match b.priority.as_deref() {
        None => Priority::Medium,
        Some(p) => Priority::parse(p)
            .ok_or_else(|| Invalid::field("priority", "invalid_enum_value", "priority must be low, medium or high"))?,
    };
    let memo = b.memo.as_deref();
    if !kinds::kind(kind).chains.contains(&agent.chain) {
        return Err(Invalid::with_code(ErrorCode::BatchNotSupported, "Batches are Solana only"));
    }
    let (mut canonical, fields, children, build) = if kind == TxType::Batch {
        allow_only(&b, kinds::kind(TxType::Batch), agent.chain)?;
        let items = require(&b.instructions, "instructions")?;
        if items.len() > 20 {
            return Err(Invalid::with_code(
                ErrorCode::BatchSizeExceeded,
                format!("{} instructions; at most 20", items.len()),
            ));
        }
        if items.len() < 2 {
            return Err(invalid("instructions", "a batch needs 2-20 instructions"));
        }
        let mut canon = Vec::new();
        let mut children = Vec::new();
        let mut builds = Vec::new();
        let mut native = Amount::ZERO;
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("instructions[{i}].");
            let ib: BodyIn = parse_json(&serde_json::to_vec(item).expect("JSON")).map_err(|e| {
                let msg = e.issues.first().map(|i| i.message.clone()).unwrap_or(e.message);
                Invalid::value(&prefix, msg)
            })?;
            if ib.memo.is_some() || ib.priority.is_some() {
                return Err(invalid(&format!("{prefix}memo"), "batch instructions carry no memo or priority"));
            }
            let k = parse_type(ib.kind.as_deref(), &format!("{prefix}type"))?;
            if k == TxType::Batch {
                return Err(invalid(&format!("{prefix}type"), "batches do not nest"));
            }
            let o = one(&ib, k, agent, None, &prefix)?;
            native = native
                .checked_add(o.fields.native_amount)
                .map_err(|_| invalid("instructions", "native amounts overflow"))?;
            canon.push(Value::Object(o.canonical));
            children.push(o.fields);
            builds.push(o.build);
        }
        let mut c = Map::new();
        c.insert("type".into(), json!("BATCH"));
        c.insert("instructions".into(), Value::Array(canon));
        let fields =
            RowFields { kind: Some(TxType::Batch), amount: native, native_amount: native, ..RowFields::default() };
        let build = BuildRequest::Batch {
            from: agent.public_key.clone(),
            instructions: builds,
            memo: memo.map(str::to_string),
        };
        (c, fields, children, build)
    } else {
        let o = one(&b, kind, agent, memo, "")?;
        (o.canonical, o.fields, Vec::new(), o.build)
    };
    if let Some(m) = memo {
        canonical.insert("memo".into(), json!(m));
    }
    canonical.insert("priority".into(), json!(b.priority.as_deref().unwrap_or("medium")));
    let canonical = Value::Object(canonical);
    Ok(Validated { kind, request_hash: hash(&canonical), canonical, fields, children, build, priority })
}

/// `Idempotency-Key`: 1–128 characters of `[A-Za-z0-9_.:-]`.
pub(crate) fn idempotency_key(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    match raw {
        None => Ok(None),
        Some(k)
            if !k.is_empty()
                && k.len() <= 128
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)) =>
        {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err(Invalid::field(
            "Idempotency-Key",
            "invalid_string",
            "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ . : -",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waiaas_storage::Network;

    fn agent(chain: Chain) -> AgentRecord {
        let network = if chain == Chain::Solana { Network::Devnet } else { Network::Testnet };
        let mut a = AgentRecord::new(
            uuid::Uuid::now_v7(),
            "a".into(),
            chain,
            network,
            (chain == Chain::Ethereum).then_some(31337),
            0,
        );
        a.public_key = if chain == Chain::Solana {
            "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into()
        } else {
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into()
        };
        a
    }

    fn ok(body: &str, chain: Chain) -> Validated {
        validate(body.as_bytes(), &agent(chain)).unwrap()
    }

    fn err(body: &str, chain: Chain) -> ErrorCode {
        validate(body.as_bytes(), &agent(chain)).unwrap_err().code
    }

    #[test]
    fn canonical_requests_fill_defaults_and_normalise() {
        let v = ok(r#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "1000"}"#, Chain::Ethereum);
        assert_eq!(
            v.canonical,
            json!({"type": "TRANSFER", "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount": "1000", "priority": "medium"})
        );
        assert_eq!(v.fields.native_amount, Amount::from_u64(1000));
        // Same request, other spelling: same hash.
        let w = ok(
            r#"{"amount": "1000", "type": "TRANSFER", "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "priority": "medium"}"#,
            Chain::Ethereum,
        );
        assert_eq!(v.request_hash, w.request_hash);
        let t = ok(
            r#"{"type": "TOKEN_TRANSFER", "to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "5", "token": {"mint": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "decimals": 6}}"#,
            Chain::Ethereum,
        );
        assert_eq!(t.fields.native_amount, Amount::ZERO);
        assert_eq!(t.fields.token_mint.as_deref(), Some("0x5FbDB2315678afecb367f032d93F642f64180aa3"));
    }

    #[test]
    fn bad_requests_are_refused_with_their_codes() {
        let e = Chain::Ethereum;
        for body in [
            r#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "01"}"#,
            r#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "0"}"#,
            r#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "1.5"}"#,
            r#"{"to": "0x70997970C51812dc3a010c7d01b50e0d17dc79c8", "amount": "1"}"#,
            r#"{"to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "1"}"#,
            r#"{"amount": "1"}"#,
            r#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "1", "colour": "red"}"#,
            r#"{"type": "CONTRACT_CALL", "contractAddress": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "calldata": "0x12"}"#,
            r#"{"type": "CONTRACT_CALL", "contractAddress": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "calldata": "0x12345678", "accounts": []}"#,
            r#"{"type": "SWAP"}"#,
            "not json",
        ] {
            assert_eq!(err(body, e), ErrorCode::ValidationError, "{body}");
        }
        let memo = |m: String| {
            format!(r#"{{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "1", "memo": "{m}"}}"#)
        };
        assert_eq!(err(&memo("x".repeat(201)), e), ErrorCode::ValidationError);
        assert_eq!(err(&memo("é".repeat(129)), e), ErrorCode::ValidationError, "200 characters but 258 bytes");
        assert!(validate(memo("x".repeat(200)).as_bytes(), &agent(e)).is_ok());
        assert_eq!(err(r#"{"type": "BATCH", "instructions": []}"#, e), ErrorCode::BatchNotSupported);
        let many = format!(
            r#"{{"type": "BATCH", "instructions": [{}]}}"#,
            vec![r#"{"to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "1"}"#; 21].join(",")
        );
        assert_eq!(err(&many, Chain::Solana), ErrorCode::BatchSizeExceeded);
        assert_eq!(
            err(
                r#"{"to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "18446744073709551616"}"#,
                Chain::Solana
            ),
            ErrorCode::ValidationError
        );
        // A field of another type is named in the error (here `spender` on a TRANSFER).
        let e = validate(
            br#"{"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "amount": "1", "spender": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"}"#,
            &agent(Chain::Ethereum),
        )
        .unwrap_err();
        assert_eq!(e.issues[0].path, "spender", "{:?}", e.issues);
        assert!(idempotency_key(Some("ok-key_1.2:3")).is_ok());
        assert!(idempotency_key(Some("bad key")).is_err());
        assert!(idempotency_key(Some(&"x".repeat(129))).is_err());
    }

    /// The parser agrees with the table in `kinds`: on each chain a type exists on, a body of
    /// exactly its required fields validates; without any one of them it is refused naming that
    /// field; with a field the type does not have there (another type's, or the other chain's)
    /// it is refused as an unknown key naming that field.
    #[test]
    fn the_parser_follows_the_kinds_table() {
        use super::kinds::{KINDS, Shape};
        for chain in [Chain::Solana, Chain::Ethereum] {
            let a = agent(chain);
            let addr = a.public_key.clone();
            let sample = |shape: Shape| match shape {
                Shape::Address => json!(addr),
                Shape::Amount => json!("1"),
                Shape::Token => json!({"mint": addr}),
                Shape::Hex => json!("0xa9059cbb"),
                Shape::Base64 => json!("AQ=="),
                Shape::Accounts => json!([{"pubkey": addr, "isSigner": false, "isWritable": true}]),
                Shape::Instructions => json!([{"to": addr, "amount": "1"}, {"to": addr, "amount": "2"}]),
            };
            let all_fields: Vec<_> = KINDS.iter().flat_map(|k| k.fields.iter()).collect();
            for k in KINDS.iter().filter(|k| k.chains.contains(&chain)) {
                let required: Vec<_> = k.fields.iter().filter(|f| f.need.required_on(chain)).collect();
                let mut body = json!({"type": k.tx_type.as_str()});
                for f in &required {
                    body[f.name] = sample(f.shape);
                }
                let v = validate(body.to_string().as_bytes(), &a);
                assert!(v.is_ok(), "{chain} {}: {body} -> {:?}", k.tx_type, v.err());
                for f in &required {
                    let mut without = body.clone();
                    without.as_object_mut().unwrap().remove(f.name);
                    let e = validate(without.to_string().as_bytes(), &a).expect_err(f.name);
                    assert!(
                        e.issues.iter().any(|i| i.path == f.name),
                        "{chain} {} without {}: {e:?}",
                        k.tx_type,
                        f.name
                    );
                }
                for other in all_fields.iter().filter(|o| !k.field(o.name).is_some_and(|f| f.need.applies_to(chain))) {
                    let mut with = body.clone();
                    with[other.name] = sample(other.shape);
                    let e = validate(with.to_string().as_bytes(), &a).expect_err(other.name);
                    assert!(
                        e.issues.iter().any(|i| i.path == other.name && i.code == "unrecognized_keys"),
                        "{chain} {} with {}: {e:?}",
                        k.tx_type,
                        other.name
                    );
                }
            }
        }
    }
}
