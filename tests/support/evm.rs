//! EVM helpers on a real anvil: `cast` (an independent client) for balances, nonces, tokens and
//! funding, and a dev daemon pointed at the node with a funded agent.

use std::process::Command;

use serde_json::{Value, json};

use super::api::ETH;
use super::nodes::Anvil;
use super::owner::{EVM_KEY_0, cast};
use super::{Opts, TestDaemon, text};

pub(crate) fn cast_out(args: &[&str]) -> String {
    let out = Command::new(cast()).args(args).output().unwrap();
    assert!(out.status.success(), "cast {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A number printed by cast (`123`, or `123 [1.23e2]`).
pub(crate) fn num(s: &str) -> u128 {
    s.split_whitespace().next().unwrap().parse().unwrap()
}

pub(crate) fn balance(rpc: &str, addr: &str) -> u128 {
    num(&cast_out(&["balance", addr, "--rpc-url", rpc]))
}

pub(crate) fn token_balance(rpc: &str, token: &str, addr: &str) -> u128 {
    num(&cast_out(&["call", token, "balanceOf(address)(uint256)", addr, "--rpc-url", rpc]))
}

pub(crate) fn allowance(rpc: &str, token: &str, owner: &str, spender: &str) -> u128 {
    num(&cast_out(&["call", token, "allowance(address,address)(uint256)", owner, spender, "--rpc-url", rpc]))
}

pub(crate) fn nonce(rpc: &str, addr: &str) -> u64 {
    cast_out(&["nonce", addr, "--rpc-url", rpc]).parse().unwrap()
}

pub(crate) fn send_eth(rpc: &str, to: &str, wei: u128) {
    cast_out(&["send", "--rpc-url", rpc, "--private-key", EVM_KEY_0, to, "--value", &wei.to_string()]);
}

/// Deploys the committed TestToken (6 decimals) and returns its address.
pub(crate) fn deploy_token(rpc: &str) -> String {
    let compiled: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/contracts/compiled.json"))
            .unwrap(),
    )
    .unwrap();
    let code = compiled["TestToken"]["bytecode"].as_str().unwrap();
    let out = cast_out(&[
        "send",
        "--json",
        "--rpc-url",
        rpc,
        "--private-key",
        EVM_KEY_0,
        "--create",
        code,
        "constructor(string,string,uint8)",
        "Test Token",
        "TT",
        "6",
    ]);
    let receipt: Value = serde_json::from_str(&out).unwrap();
    receipt["contractAddress"].as_str().unwrap().to_string()
}

/// A dev daemon on `rpc` (chain id 31337) with generous send limits.
pub(crate) async fn daemon(rpc: &str, extra: &[(&'static str, String)]) -> TestDaemon {
    daemon_on(rpc, extra, false).await
}

/// [`daemon`], on PostgreSQL when `postgres`.
pub(crate) async fn daemon_on(rpc: &str, extra: &[(&'static str, String)], postgres: bool) -> TestDaemon {
    let mut config = vec![
        ("rpc", format!("ethereum_testnet = \"{rpc}\"\nethereum_testnet_chain_id = 31337")),
        ("security", "rate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000".to_string()),
    ];
    config.extend(extra.iter().cloned());
    TestDaemon::start(Opts { dev: true, config, postgres, ..Opts::default() }).await
}

/// An EVM agent funded with `eth` ETH and a session token for it.
pub(crate) async fn funded_agent(d: &TestDaemon, rpc: &str, eth: u128, body: Value) -> (Value, String) {
    let mut b = body;
    b["chain"] = json!("ethereum");
    let agent = d.create_agent(b).await;
    send_eth(rpc, agent["address"].as_str().unwrap(), eth * ETH);
    let s = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    (agent, s["token"].as_str().unwrap().to_string())
}

/// A dev daemon's options on `anvil` (chain id 31337) plus `extra` config sections.
pub(crate) fn opts(anvil: &Anvil, extra: &[(&'static str, String)]) -> Opts {
    let mut config = vec![("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url))];
    config.extend(extra.iter().cloned());
    Opts { dev: true, config, ..Opts::default() }
}
