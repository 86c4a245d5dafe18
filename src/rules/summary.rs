//! The approval summary (04-auth.md §7.2): what an `approve_tx` message says will execute, e.g.
//! `send 0.5 ETH to 0xAbCdEf...1234 on ethereum testnet`. The owner reads it on the wallet or
//! Ledger screen; the daemon recomputes it from the stored row when verifying and refuses a
//! message whose summary differs, so what is signed is what executes.
//!
//! One function for the daemon and the CLI (which gets it through the pending-approvals
//! listing, itself computed here). The text is ASCII limited to the characters EIP-4361 allows in
//! a statement, so wallets still recognise the message as a sign-in.

use std::fmt;

use waiaas_storage::{Amount, Chain, TransactionRecord, TxType};

use crate::base::units::format_units;

/// What a summary says. Every field is one word of statement-safe characters (`?` when nothing
/// of it is left), so the text splits on spaces back into exactly these fields:
/// `Summary::parse(&s.to_string()) == Some(s)` for any row (the `approval_summary` fuzz target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) what: What,
    pub(crate) chain: String,
    pub(crate) network: String,
}

/// The action, by transaction type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    /// `send <quantity> to <address>` (TRANSFER, TOKEN_TRANSFER).
    Send { amount: Quantity, to: String },
    /// `call <contract> <selector> value <quantity>`.
    Call { contract: String, method: String, value: Quantity },
    /// `approve <spender> for <quantity>`.
    Approve { spender: String, amount: Quantity },
    /// `batch of <n> instructions moving <quantity>`.
    Batch { count: usize, moving: Quantity },
}

/// An amount as the owner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Quantity {
    /// `0.5 ETH`, `2.5 0x5FbD...0aa3`: a decimal and its unit.
    Units { value: String, unit: String },
    /// `2500000 base units of 0x5FbD...0aa3`: a token whose decimals the request did not name.
    Base { value: String, token: String },
    /// `unlimited 0x5FbD...0aa3`.
    Unlimited { token: String },
}

/// `0xAbCdEf...1234`: the first 6 and the last 4 characters.
fn short(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 13 {
        return address.to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// Keeps only what an EIP-4361 statement may contain.
fn statement_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || " -._~:/?#[]@!$&'()*+,;=".contains(*c)).collect()
}

/// One word of the summary: statement-safe, no spaces, never empty.
fn word(s: &str) -> String {
    let w: String = statement_safe(s).chars().filter(|c| *c != ' ').collect();
    if w.is_empty() { "?".into() } else { w }
}

/// Whether `w` is one word as [`word`] makes it.
fn is_word(w: &str) -> bool {
    !w.is_empty() && word(w) == w
}

fn native_decimals(chain: Chain) -> u8 {
    match chain {
        Chain::Solana => 9,
        Chain::Ethereum => 18,
    }
}

/// A token amount: in human units when the request named the decimals, else in base units.
fn token_amount(amount: Amount, decimals: Option<u8>, token: &str) -> Quantity {
    match decimals {
        Some(d) => Quantity::Units { value: format_units(amount, d, ""), unit: token.to_string() },
        None => Quantity::Base { value: amount.to_string(), token: token.to_string() },
    }
}

impl Summary {
    /// The summary of a stored transaction row, `native` being the chain's coin symbol.
    pub(crate) fn of(row: &TransactionRecord, native: &str) -> Summary {
        let native = word(native);
        let coin = |a: Amount| Quantity::Units {
            value: format_units(a, native_decimals(row.chain), ""),
            unit: native.clone(),
        };
        let addr = |a: &Option<String>| short(&word(a.as_deref().unwrap_or("?")));
        let decimals = row.request["token"]["decimals"].as_u64().map(|d| d as u8);
        let token = short(&word(row.token_mint.as_deref().unwrap_or("?")));
        let what = match row.tx_type {
            TxType::Transfer => What::Send { amount: coin(row.amount), to: addr(&row.to_address) },
            TxType::TokenTransfer => {
                What::Send { amount: token_amount(row.amount, decimals, &token), to: addr(&row.to_address) }
            }
            TxType::ContractCall => {
                let method = match row.chain {
                    Chain::Ethereum => row.request["calldata"].as_str().and_then(|c| c.get(..10)).unwrap_or("0x"),
                    Chain::Solana => "program",
                };
                What::Call {
                    contract: addr(&row.contract_address),
                    method: word(method),
                    value: coin(row.native_amount),
                }
            }
            TxType::Approve => {
                let amount = if row.amount >= crate::rules::policy::rules::unlimited_threshold(row.chain) {
                    Quantity::Unlimited { token }
                } else {
                    token_amount(row.amount, decimals, &token)
                };
                What::Approve { spender: addr(&row.spender_address), amount }
            }
            TxType::Batch => What::Batch {
                count: row.request["instructions"].as_array().map_or(0, Vec::len),
                moving: coin(row.native_amount),
            },
        };
        Summary { what, chain: word(&row.chain.to_string()), network: word(&row.network.to_string()) }
    }

    /// Reads a summary back; `None` for any text [`Summary`]'s `Display` does not produce.
    pub(crate) fn parse(text: &str) -> Option<Summary> {
        let words: Vec<&str> = text.split(' ').collect();
        let [body @ .., "on", chain, network] = words.as_slice() else { return None };
        let what = match body {
            ["send", q @ .., "to", to] => What::Send { amount: Quantity::parse(q)?, to: to.to_string() },
            ["call", contract, method, "value", q @ ..] => {
                What::Call { contract: contract.to_string(), method: method.to_string(), value: Quantity::parse(q)? }
            }
            ["approve", spender, "for", q @ ..] => {
                What::Approve { spender: spender.to_string(), amount: Quantity::parse(q)? }
            }
            ["batch", "of", n, "instructions", "moving", q @ ..] => {
                let count: usize = n.parse().ok().filter(|c: &usize| c.to_string() == *n)?;
                What::Batch { count, moving: Quantity::parse(q)? }
            }
            _ => return None,
        };
        let words_ok = match &what {
            What::Send { to, .. } => is_word(to),
            What::Call { contract, method, .. } => is_word(contract) && is_word(method),
            What::Approve { spender, .. } => is_word(spender),
            What::Batch { .. } => true,
        };
        (words_ok && is_word(chain) && is_word(network)).then(|| Summary {
            what,
            chain: chain.to_string(),
            network: network.to_string(),
        })
    }
}

impl Quantity {
    fn parse(words: &[&str]) -> Option<Quantity> {
        let is_number =
            |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.') && w.matches('.').count() <= 1;
        let q = match words {
            ["unlimited", token] => Quantity::Unlimited { token: token.to_string() },
            [value, unit] if is_number(value) => Quantity::Units { value: value.to_string(), unit: unit.to_string() },
            [value, "base", "units", "of", token] if is_number(value) => {
                Quantity::Base { value: value.to_string(), token: token.to_string() }
            }
            _ => return None,
        };
        let last = words.last().expect("matched a non-empty slice");
        is_word(last).then_some(q)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Units { value, unit } => write!(f, "{value} {unit}"),
            Quantity::Base { value, token } => write!(f, "{value} base units of {token}"),
            Quantity::Unlimited { token } => write!(f, "unlimited {token}"),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            What::Send { amount, to } => write!(f, "send {amount} to {to}")?,
            What::Call { contract, method, value } => write!(f, "call {contract} {method} value {value}")?,
            What::Approve { spender, amount } => write!(f, "approve {spender} for {amount}")?,
            What::Batch { count, moving } => write!(f, "batch of {count} instructions moving {moving}")?,
        }
        write!(f, " on {} {}", self.chain, self.network)
    }
}

/// The summary text of a stored transaction row, `native` being the chain's coin symbol.
pub(crate) fn approval_summary(row: &TransactionRecord, native: &str) -> String {
    Summary::of(row, native).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use waiaas_storage::{AgentRecord, Network};

    use super::*;

    fn row(chain: Chain, kind: TxType, request: serde_json::Value) -> TransactionRecord {
        let a = AgentRecord::new(uuid::Uuid::nil(), "a".into(), chain, Network::Testnet, None, 0);
        TransactionRecord::pending(uuid::Uuid::nil(), &a, None, kind, request, 0)
    }

    #[test]
    fn every_type_reads_as_the_spec_shows() {
        let mut t = row(Chain::Ethereum, TxType::Transfer, json!({}));
        t.amount = Amount::parse("500000000000000000").unwrap();
        t.to_address = Some("0xAbCdEf0000000000000000000000000000001234".into());
        assert_eq!(approval_summary(&t, "ETH"), "send 0.5 ETH to 0xAbCd...1234 on ethereum testnet");
        let mut t = row(Chain::Ethereum, TxType::TokenTransfer, json!({"token": {"decimals": 6}}));
        t.amount = Amount::from_u64(2_500_000);
        t.to_address = Some("0x1111111111111111111111111111111111112222".into());
        t.token_mint = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
        assert_eq!(approval_summary(&t, "ETH"), "send 2.5 0x5FbD...0aa3 to 0x1111...2222 on ethereum testnet");
        t.request = json!({});
        assert_eq!(
            approval_summary(&t, "ETH"),
            "send 2500000 base units of 0x5FbD...0aa3 to 0x1111...2222 on ethereum testnet"
        );
        let mut t = row(Chain::Ethereum, TxType::ContractCall, json!({"calldata": "0x5c36b18600"}));
        t.contract_address = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
        t.native_amount = Amount::from_u64(12345);
        assert_eq!(
            approval_summary(&t, "ETH"),
            "call 0x5FbD...0aa3 0x5c36b186 value 0.000000000000012345 ETH on ethereum testnet"
        );
        let mut t = row(Chain::Solana, TxType::Approve, json!({"token": {"decimals": 6}}));
        t.network = Network::Devnet;
        t.amount = Amount::from_u64(u64::MAX);
        t.spender_address = Some("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into());
        t.token_mint = Some("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v".into());
        assert_eq!(approval_summary(&t, "SOL"), "approve 9WzDXw...AWWM for unlimited EPjFWd...Dt1v on solana devnet");
        let mut t = row(Chain::Solana, TxType::Batch, json!({"instructions": [{}, {}, {}]}));
        t.network = Network::Devnet;
        t.native_amount = Amount::from_u64(1_500_000_000);
        assert_eq!(approval_summary(&t, "SOL"), "batch of 3 instructions moving 1.5 SOL on solana devnet");
        assert_eq!(statement_safe("é<>\"x"), "x");
        // Every field is one word, whatever the row holds, so the text parses back.
        let mut t = row(Chain::Ethereum, TxType::Transfer, json!({}));
        t.to_address = Some("a b\u{e9}".into());
        let text = approval_summary(&t, "E T H");
        assert_eq!(text, "send 0 ETH to ab on ethereum testnet");
        assert_eq!(Summary::parse(&text), Some(Summary::of(&t, "E T H")));
        t.to_address = Some("\u{e9}".into());
        assert_eq!(approval_summary(&t, ""), "send 0 ? to ? on ethereum testnet");
        for bad in
            ["", "send 1 ETH to x on ethereum", "send 1 ETH to  on a b", "batch of 01 instructions moving 1 ETH on a b"]
        {
            assert_eq!(Summary::parse(bad), None, "{bad}");
        }
    }
}
