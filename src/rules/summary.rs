//! The approval summary (04-auth.md §7.2): what an `approve_tx` message says will execute, e.g.
//! `send 0.5 ETH to 0xAbCdEf...1234 on ethereum testnet`. The owner reads it on the wallet or
//! Ledger screen; the daemon recomputes it from the stored row when verifying and refuses a
//! message whose summary differs, so what is signed is what executes.
//!
//! One function for the daemon and the CLI (which gets it through the pending-approvals
//! listing, itself computed here). The text is ASCII limited to the characters EIP-4361 allows in
//! a statement, so wallets still recognise the message as a sign-in.

use waiaas_storage::{Amount, Chain, TransactionRecord, TxType};

use crate::base::units::format_units;

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

fn native_decimals(chain: Chain) -> u8 {
    match chain {
        Chain::Solana => 9,
        Chain::Ethereum => 18,
    }
}

/// A token amount: in human units when the request named the decimals, else in base units.
fn token_amount(amount: Amount, decimals: Option<u8>, token: &str) -> String {
    match decimals {
        Some(d) => format!("{} {}", format_units(amount, d, ""), short(token)),
        None => format!("{amount} base units of {}", short(token)),
    }
}

/// The summary of a stored transaction row, `native` being the chain's coin symbol.
pub(crate) fn approval_summary(row: &TransactionRecord, native: &str) -> String {
    let native = statement_safe(native);
    let coin = |a: Amount| format_units(a, native_decimals(row.chain), &native);
    let on = format!("on {} {}", row.chain, row.network);
    let addr = |a: &Option<String>| short(a.as_deref().unwrap_or("?"));
    let decimals = row.request["token"]["decimals"].as_u64().map(|d| d as u8);
    let token = row.token_mint.as_deref().unwrap_or("?");
    let text = match row.tx_type {
        TxType::Transfer => format!("send {} to {} {on}", coin(row.amount), addr(&row.to_address)),
        TxType::TokenTransfer => {
            format!("send {} to {} {on}", token_amount(row.amount, decimals, token), addr(&row.to_address))
        }
        TxType::ContractCall => {
            let method = match row.chain {
                Chain::Ethereum => {
                    row.request["calldata"].as_str().and_then(|c| c.get(..10)).unwrap_or("0x").to_string()
                }
                Chain::Solana => "program".to_string(),
            };
            format!("call {} {method} value {} {on}", addr(&row.contract_address), coin(row.native_amount))
        }
        TxType::Approve => {
            let how_much = if row.amount >= crate::rules::policy::rules::unlimited_threshold(row.chain) {
                format!("unlimited {}", short(token))
            } else {
                token_amount(row.amount, decimals, token)
            };
            format!("approve {} for {how_much} {on}", addr(&row.spender_address))
        }
        TxType::Batch => {
            let n = row.request["instructions"].as_array().map_or(0, Vec::len);
            format!("batch of {n} instructions moving {} {on}", coin(row.native_amount))
        }
    };
    statement_safe(&text)
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
    }
}
