//! The transaction types of a send body (06-pipeline.md §2.2), described once: each type's
//! fields, which of them it requires, on which chain, and what the type means.
//!
//! Three readers take their shape from this table, so a new type or field is described here and
//! nowhere else:
//! - the body parser (`request.rs`) refuses any field a type does not list, on the agent's chain;
//! - the OpenAPI document (`http::openapi_schemas`) builds the send-body schema from it;
//! - the MCP server (`cli::mcp`) builds its sending tools' input schemas and bodies from it.
//!
//! What a field *means* (address normalisation, amount rules, hex or base64 payloads) stays in
//! the parser; a unit test there walks this table and checks that the parser agrees with it.

use serde_json::{Map, Value, json};
use waiaas_storage::{Chain, TxType};

/// What a field holds, as a JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An address of the agent's chain.
    Address,
    /// A decimal integer string in the smallest unit.
    Amount,
    /// `{mint, decimals?}`: a token address and its decimals (0–18).
    Token,
    /// 0x-hex bytes (EVM calldata).
    Hex,
    /// Base64 bytes (Solana instruction data).
    Base64,
    /// Solana account metas: `[{pubkey, isSigner, isWritable}]`.
    Accounts,
    /// BATCH instructions: each a send body of another type.
    Instructions,
}

impl Shape {
    /// The JSON schema of a value of this shape.
    pub(crate) fn schema(self) -> Value {
        let text = |d: &str| json!({"type": "string", "description": d});
        match self {
            Shape::Address => text("an address of the agent's chain"),
            Shape::Amount => json!({"type": "string", "pattern": "^(0|[1-9][0-9]*)$",
                                    "description": "a decimal integer string in the smallest unit"}),
            Shape::Token => json!({"type": "object", "additionalProperties": false, "required": ["mint"],
                                   "properties": {"mint": text("the token's address (ERC-20 contract or SPL mint)"),
                                                  "decimals": {"type": "integer", "minimum": 0, "maximum": 18}}}),
            Shape::Hex => text("0x-hex bytes"),
            Shape::Base64 => text("base64 bytes"),
            Shape::Accounts => json!({"type": "array", "items": {"type": "object", "additionalProperties": false,
                                      "required": ["pubkey", "isSigner", "isWritable"],
                                      "properties": {"pubkey": {"type": "string"}, "isSigner": {"type": "boolean"},
                                                     "isWritable": {"type": "boolean"}}}}),
            Shape::Instructions => json!({"type": "array", "items": {"type": "object"},
                                          "description": "2-20 send bodies of other types (Solana)"}),
        }
    }
}

/// Whether a type needs a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Required,
    Optional,
    /// Required on this chain, not a field of the type on the other.
    RequiredOn(Chain),
    /// Optional on this chain, not a field of the type on the other.
    OptionalOn(Chain),
}

impl Need {
    /// Whether the field belongs to the type on `chain`.
    pub(crate) fn applies_to(self, chain: Chain) -> bool {
        match self {
            Need::Required | Need::Optional => true,
            Need::RequiredOn(c) | Need::OptionalOn(c) => c == chain,
        }
    }

    /// Whether it must be present on `chain`.
    #[cfg(test)]
    pub(crate) fn required_on(self, chain: Chain) -> bool {
        matches!(self, Need::Required) || self == Need::RequiredOn(chain)
    }
}

/// One field of a type: its API name (camelCase), shape and need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    pub(crate) need: Need,
}

const fn f(name: &'static str, shape: Shape, need: Need) -> Field {
    Field { name, shape, need }
}

/// One transaction type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub(crate) tx_type: TxType,
    /// What it does, for the API document and the MCP tools.
    pub(crate) doc: &'static str,
    /// Its own fields (`type`, `memo` and `priority` belong to every type: [`COMMON`]).
    pub(crate) fields: &'static [Field],
    /// The chains it exists on.
    pub(crate) chains: &'static [Chain],
}

use Need::*;
use Shape::*;

const BOTH: &[Chain] = &[Chain::Solana, Chain::Ethereum];

/// Every type a send body can have, TRANSFER (the default when `type` is absent) first.
pub(crate) const KINDS: &[Kind] = &[
    Kind {
        tx_type: TxType::Transfer,
        doc: "Send the native coin.",
        fields: &[f("to", Address, Required), f("amount", Amount, Required)],
        chains: BOTH,
    },
    Kind {
        tx_type: TxType::TokenTransfer,
        doc: "Send a token (ERC-20, SPL or Token-2022).",
        fields: &[f("to", Address, Required), f("amount", Amount, Required), f("token", Token, Required)],
        chains: BOTH,
    },
    Kind {
        tx_type: TxType::ContractCall,
        doc: "Call a contract (EVM calldata and value) or a program (Solana instruction data and accounts).",
        fields: &[
            f("contractAddress", Address, Required),
            f("calldata", Hex, RequiredOn(Chain::Ethereum)),
            f("value", Amount, Optional),
            f("programId", Address, OptionalOn(Chain::Solana)),
            f("instructionData", Base64, RequiredOn(Chain::Solana)),
            f("accounts", Accounts, RequiredOn(Chain::Solana)),
        ],
        chains: BOTH,
    },
    Kind {
        tx_type: TxType::Approve,
        doc: "Let a spender move up to an amount of a token (0 revokes).",
        fields: &[f("token", Token, Required), f("spender", Address, Required), f("amount", Amount, Required)],
        chains: BOTH,
    },
    Kind {
        tx_type: TxType::Batch,
        doc: "Several instructions in one transaction (Solana).",
        fields: &[f("instructions", Instructions, Required)],
        chains: &[Chain::Solana],
    },
];

/// A field every type takes: its name and its JSON schema.
pub(crate) type CommonField = (&'static str, fn() -> Value);

/// Fields every type takes.
pub(crate) const COMMON: &[CommonField] = &[
    ("memo", || json!({"type": "string", "maxLength": 200})),
    ("priority", || json!({"type": "string", "enum": ["low", "medium", "high"]})),
];

/// The kind of `t`.
pub(crate) fn kind(t: TxType) -> &'static Kind {
    KINDS.iter().find(|k| k.tx_type == t).expect("every TxType is in KINDS")
}

impl Kind {
    /// The field named `name`, when the type has it.
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The send-body schema of the API document: one object over the fields of every type, `type`
/// an enum of [`KINDS`], and a description that lists each type's fields.
pub(crate) fn send_body_schema() -> Value {
    let mut props = Map::new();
    props.insert(
        "type".into(),
        json!({"type": "string", "enum": KINDS.iter().map(|k| k.tx_type.as_str()).collect::<Vec<_>>()}),
    );
    for k in KINDS {
        for field in k.fields {
            props.entry(field.name).or_insert_with(|| field.shape.schema());
        }
    }
    for (name, schema) in COMMON {
        props.insert((*name).into(), schema());
    }
    let lines: Vec<String> = KINDS
        .iter()
        .map(|k| {
            let fields: Vec<String> = k
                .fields
                .iter()
                .map(|f| match f.need {
                    Required => f.name.to_string(),
                    Optional => format!("{}?", f.name),
                    RequiredOn(c) => format!("{} ({c})", f.name),
                    OptionalOn(c) => format!("{}? ({c})", f.name),
                })
                .collect();
            format!("{}: {} {}", k.tx_type, fields.join(", "), k.doc)
        })
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": format!("`type` defaults to TRANSFER; each type takes its own fields. {}", lines.join(" ")),
        "properties": props,
    })
}

/// snake_case of a camelCase API field name: the MCP tools' spelling.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tx_type_is_described_once() {
        for t in TxType::ALL {
            assert_eq!(KINDS.iter().filter(|k| k.tx_type == *t).count(), 1, "{t}");
        }
        assert_eq!(KINDS[0].tx_type, TxType::Transfer, "the default type comes first");
        assert_eq!(snake("contractAddress"), "contract_address");
    }
}
