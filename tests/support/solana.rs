//! Solana helpers on the local node: fresh and existing addresses, balances read over RPC, SPL
//! and Token-2022 mints, and a dev daemon pointed at the node with a funded agent.

use crate::support::nodes::rpc_blocking;
use crate::support::{Opts, TestDaemon};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use spl_token_2022_interface::extension::{BaseStateWithExtensionsMut, ExtensionType, StateWithExtensionsMut};
use std::time::Duration;

use super::api::SOL;

/// The SPL Token, Token-2022 and Memo programs.
pub(crate) const TOKEN: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
pub(crate) const TOKEN_2022: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
pub(crate) const MEMO: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

pub(crate) fn fresh_address() -> String {
    Pubkey::new_unique().to_string()
}

/// A recipient that already exists (rent-exempt), so small transfers to it are legal: the
/// runtime refuses to leave a new account below the rent-exempt minimum.
pub(crate) fn existing_address(url: &str) -> String {
    let a = fresh_address();
    rpc(url, "requestAirdrop", json!([a, SOL]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while balance(url, &a) < SOL {
        assert!(std::time::Instant::now() < deadline, "airdrop to {a} did not land");
        std::thread::sleep(Duration::from_millis(50));
    }
    a
}

pub(crate) fn rpc(url: &str, method: &str, params: Value) -> Value {
    rpc_blocking(url, method, params)
}

pub(crate) fn balance(url: &str, addr: &str) -> u64 {
    rpc(url, "getBalance", json!([addr, {"commitment": "confirmed"}]))["value"].as_u64().unwrap()
}

pub(crate) fn ata(owner: &str, mint: &str, program: &str) -> String {
    spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
        &owner.parse().unwrap(),
        &mint.parse().unwrap(),
        &program.parse().unwrap(),
    )
    .to_string()
}

pub(crate) fn token_balance(url: &str, account: &str) -> Option<u64> {
    let v = rpc(url, "getAccountInfo", json!([account, {"encoding": "jsonParsed", "commitment": "confirmed"}]));
    v["value"]["data"]["parsed"]["info"]["tokenAmount"]["amount"].as_str().map(|a| a.parse().unwrap())
}

/// A mint account of `program` with `decimals` and the given Token-2022 extensions.
pub(crate) fn create_mint(url: &str, program: &str, decimals: u8, extensions: &[ExtensionType]) -> String {
    use spl_token_2022_interface::state::Mint;
    let mint = fresh_address();
    let data = if extensions.is_empty() {
        // COption<Pubkey> authority (none) | supply u64 | decimals | initialized | freeze (none)
        let mut d = vec![0u8; 82];
        d[36..44].copy_from_slice(&1_000_000_000_000u64.to_le_bytes());
        d[44] = decimals;
        d[45] = 1;
        d
    } else {
        let len = ExtensionType::try_calculate_account_len::<Mint>(extensions).unwrap();
        let mut buf = vec![0u8; len];
        let mut state = StateWithExtensionsMut::<Mint>::unpack_uninitialized(&mut buf).unwrap();
        for e in extensions {
            match e {
                ExtensionType::TransferFeeConfig => {
                    state
                        .init_extension::<spl_token_2022_interface::extension::transfer_fee::TransferFeeConfig>(true)
                        .unwrap();
                }
                ExtensionType::TransferHook => {
                    state
                        .init_extension::<spl_token_2022_interface::extension::transfer_hook::TransferHook>(true)
                        .unwrap();
                }
                other => panic!("no builder for {other:?}"),
            }
        }
        state.base.decimals = decimals;
        state.base.is_initialized = true;
        state.base.supply = 1_000_000_000_000;
        state.pack_base();
        state.init_account_type().unwrap();
        buf
    };
    let rent = rpc(url, "getMinimumBalanceForRentExemption", json!([data.len()])).as_u64().unwrap();
    rpc(url, "surfnet_setAccount", json!([mint, {"lamports": rent, "data": hex::encode(&data), "owner": program}]));
    mint
}

/// Gives `owner` a token account of `mint` holding `amount`.
pub(crate) fn fund_tokens(url: &str, owner: &str, mint: &str, program: &str, amount: u64) {
    rpc(url, "surfnet_setTokenAccount", json!([owner, mint, {"amount": amount}, program]));
}

pub(crate) async fn daemon(rpc_url: &str, extra: &[(&'static str, String)]) -> TestDaemon {
    let mut config = vec![
        ("rpc", format!("solana_devnet = \"{rpc_url}\"")),
        ("security", "rate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000".to_string()),
    ];
    config.extend(extra.iter().cloned());
    TestDaemon::start(Opts { dev: true, config, ..Opts::default() }).await
}

/// A Solana agent with `sol` SOL and a session token.
pub(crate) async fn funded_agent(d: &TestDaemon, node: &str, sol: u64, body: Value) -> (Value, String) {
    let agent = d.create_agent(body).await;
    let address = agent["address"].as_str().unwrap();
    rpc(node, "requestAirdrop", json!([address, sol * SOL]));
    for _ in 0..100 {
        if balance(node, address) >= sol * SOL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    (agent, s["token"].as_str().unwrap().to_string())
}

pub(crate) fn logs(node: &str, sig: &str) -> Vec<String> {
    let tx = rpc(
        node,
        "getTransaction",
        json!([sig, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]),
    );
    tx["meta"]["logMessages"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

pub(crate) fn fee_of(node: &str, sig: &str) -> u64 {
    let tx = rpc(
        node,
        "getTransaction",
        json!([sig, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]),
    );
    tx["meta"]["fee"].as_u64().unwrap()
}
