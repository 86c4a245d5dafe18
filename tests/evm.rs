//! The EVM immediate path against a real anvil node (05-chains.md §2, 06-pipeline.md; the EVM
//! lines of ACC-130 … ACC-150 and the INSTANT lines of ACC-151 … ACC-176). Balances and
//! allowances are read back from the node with `cast`, never from the daemon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::api::{ETH, send};
use crate::support::evm::{
    allowance, balance, cast_out, daemon, deploy_token, funded_agent, nonce, num, send_eth, token_balance,
};
use crate::support::nodes::Anvil;
use crate::support::owner::{EVM_ADDR_1, EVM_KEY_0};
use crate::support::rpc_proxy::RpcProxy;
use crate::support::{Opts, TestDaemon, text};

/// A recipient with no history on anvil.
const TO: &str = "0x000000000000000000000000000000000000bEEF";

// ACC-149, ACC-147, ACC-155, ACC-162, ACC-164: every EVM type reaches CONFIRMED and the node shows
// exactly the requested changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_evm_type_confirms_with_exact_on_chain_effects() {
    let anvil = Anvil::start();
    let rpc = anvil.url.clone();
    let token = deploy_token(&rpc);
    // Token transfers are NOTIFY without a USD price: they need notifications available.
    let d = daemon(&rpc, &[crate::support::sink::notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (agent, t) = funded_agent(&d, &rpc, 10, json!({})).await;
    d.permit(agent["id"].as_str().unwrap(), &[&token], &[&token], &[EVM_ADDR_1]).await;
    let me = agent["address"].as_str().unwrap().to_string();
    cast_out(&[
        "send",
        "--rpc-url",
        &rpc,
        "--private-key",
        EVM_KEY_0,
        &token,
        "mint(address,uint256)",
        &me,
        "1000000000",
    ]);

    // Native transfer.
    let before = balance(&rpc, TO);
    let (st, v) = send(&d, &t, json!({"to": TO.to_lowercase(), "amount": ETH.to_string()})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["tier"].as_str(), v["type"].as_str()),
        (Some("CONFIRMED"), Some("INSTANT"), Some("TRANSFER"))
    );
    assert!(v["txHash"].as_str().unwrap().starts_with("0x") && v["estimatedFee"].is_string() && v["fee"].is_string());
    assert_eq!(balance(&rpc, TO) - before, ETH);
    // ACC-144: gas = ceil(estimate × 1.1) (21000 for a plain transfer), priority = max(2 gwei,
    // node suggestion), maxFee = 2 × base fee of the block the build saw + priority, and the
    // estimate is gasLimit × maxFee.
    let tx: Value =
        serde_json::from_str(&cast_out(&["tx", v["txHash"].as_str().unwrap(), "--json", "--rpc-url", &rpc])).unwrap();
    let hexu = |x: &Value| u128::from_str_radix(x.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let (gas, max_fee, prio) = (hexu(&tx["gas"]), hexu(&tx["maxFeePerGas"]), hexu(&tx["maxPriorityFeePerGas"]));
    let suggestion = hexu(&crate::support::nodes::rpc_blocking(&rpc, "eth_maxPriorityFeePerGas", json!([])));
    let parent = hexu(&tx["blockNumber"]) - 1;
    let block: Value =
        crate::support::nodes::rpc_blocking(&rpc, "eth_getBlockByNumber", json!([format!("0x{parent:x}"), false]));
    let base = hexu(&block["baseFeePerGas"]);
    assert_eq!(gas, 23_100);
    assert_eq!(prio, suggestion.max(2_000_000_000));
    assert_eq!(max_fee, 2 * base + prio);
    assert_eq!(v["estimatedFee"], (gas * max_fee).to_string());

    // ERC-20 transfer.
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "TOKEN_TRANSFER", "to": TO, "amount": "5000000", "token": {"mint": token, "decimals": 6}}),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(token_balance(&rpc, &token, TO), 5_000_000);
    assert_eq!(token_balance(&rpc, &token, &me), 995_000_000);
    // Wrong decimals: refused before anything is signed.
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "TOKEN_TRANSFER", "to": TO, "amount": "1", "token": {"mint": token, "decimals": 18}}),
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INVALID_TOKEN_MINT")), "{v}");

    // Approve, then approve again over a non-zero allowance (reset first), then revoke.
    let (st, v) =
        send(&d, &t, json!({"type": "APPROVE", "token": {"mint": token}, "spender": EVM_ADDR_1, "amount": "7"})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["methodSignature"].as_str()),
        (200, Some("CONFIRMED"), Some("0x095ea7b3 (approve)")),
        "{v}"
    );
    assert_eq!(allowance(&rpc, &token, &me, EVM_ADDR_1), 7);
    let n0 = nonce(&rpc, &me);
    let (st, v) =
        send(&d, &t, json!({"type": "APPROVE", "token": {"mint": token}, "spender": EVM_ADDR_1, "amount": "9"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(allowance(&rpc, &token, &me, EVM_ADDR_1), 9);
    assert_eq!(nonce(&rpc, &me), n0 + 2, "approve(0) then approve(9)");
    let reset_tx_id = v["transactionId"].as_str().unwrap().to_string();
    let (st, _) =
        send(&d, &t, json!({"type": "APPROVE", "token": {"mint": token}, "spender": EVM_ADDR_1, "amount": "0"})).await;
    assert_eq!(st, 200);
    assert_eq!(allowance(&rpc, &token, &me, EVM_ADDR_1), 0);
    assert_eq!(nonce(&rpc, &me), n0 + 3, "a revoke needs no reset");

    // Contract call with value.
    let pings = |rpc: &str| num(&cast_out(&["call", &token, "pings()(uint256)", "--rpc-url", rpc]));
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "CONTRACT_CALL", "contractAddress": token, "calldata": "0x5c36b186", "value": "12345"}),
    )
    .await;
    assert_eq!(
        (st, v["status"].as_str(), v["methodSignature"].as_str()),
        (200, Some("CONFIRMED"), Some("0x5c36b186")),
        "{v}"
    );
    assert_eq!(pings(&rpc), 1);
    assert_eq!(balance(&rpc, &token), 12_345);

    // Usage: six confirmed, native total = 1 ETH + 12345 wei (tokens and approvals add 0).
    let (_, s) = d.bearer("GET", "/v1/sessions", &t, None).await;
    let usage = &s["sessions"][0]["usageStats"];
    assert_eq!(usage["totalTx"], 6);
    assert_eq!(usage["totalAmount"], (ETH + 12_345).to_string());
    // ACC-229: every timestamp the API gave out is ISO-8601 UTC, every amount a decimal string.
    let (_, list) = d.bearer("GET", "/v1/transactions?limit=10", &t, None).await;
    let (_, one) = d.bearer("GET", &format!("/v1/transactions/{reset_tx_id}"), &t, None).await;
    let (_, bal) = d.bearer("GET", "/v1/wallet/balance", &t, None).await;
    for body in [&list, &one, &bal, &s] {
        assert_api_formats(body, "");
    }
    let mut d = d;
    d.terminate();
    let row = d.store().get_transaction(reset_tx_id.parse().unwrap()).unwrap().unwrap();
    assert!(row.metadata["resetTxHash"].as_str().unwrap().starts_with("0x"));
    assert_ne!(row.metadata["resetTxHash"], json!(row.tx_hash), "the row's hash is the real approve's");
    assert_eq!(row.reserved_amount, None);
}

/// Walks a response: keys ending in `At` hold ISO-8601 UTC strings (`…Z`), amount-like keys hold
/// decimal strings (never JSON numbers, which lose precision above 2^53).
fn assert_api_formats(v: &Value, path: &str) {
    const AMOUNTS: [&str; 9] = [
        "amount",
        "nativeAmount",
        "approvedAmount",
        "reservedAmount",
        "fee",
        "estimatedFee",
        "balance",
        "totalAmount",
        "value",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                if k.ends_with("At") && !x.is_null() {
                    let s = x.as_str().unwrap_or_else(|| panic!("{p} is not a string: {x}"));
                    assert!(s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(), "{p} = {s}");
                } else if AMOUNTS.contains(&k.as_str()) && !x.is_null() {
                    let s = x.as_str().unwrap_or_else(|| panic!("{p} is not a string: {x}"));
                    assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()), "{p} = {s}");
                } else {
                    assert_api_formats(x, &p);
                }
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| assert_api_formats(x, &format!("{path}[{i}]"))),
        _ => {}
    }
}

/// Imports `key` as an agent through a V3 keystore that cast writes (so the test holds the key
/// in the clear); asserts 201 and returns the agent.
async fn import_with_cast(d: &TestDaemon, key: &str, password: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    cast_out(&["wallet", "import", "k", "--private-key", key, "--unsafe-password", password, "--keystore-dir", out]);
    let v3: Value = serde_json::from_slice(&std::fs::read(dir.path().join("k")).unwrap()).unwrap();
    let (st, agent) = d.master("POST", "/v1/agents/import", Some(json!({"keystore": v3, "password": password}))).await;
    assert_eq!(st, 201, "{agent}");
    agent
}

// ACC-145, issue 5: fifty concurrent sends from one agent all confirm, with consecutive nonces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sends_confirm_with_consecutive_nonces() {
    fifty_concurrent_sends(false).await;
}

// The same on PostgreSQL (13-postgres-ha.md): one leader, the whole send path through PgStore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sends_confirm_with_consecutive_nonces_on_postgres() {
    fifty_concurrent_sends(true).await;
}

async fn fifty_concurrent_sends(postgres: bool) {
    let anvil = Anvil::start();
    let rpc = anvil.url.clone();
    let d = Arc::new(crate::support::evm::daemon_on(&rpc, &[], postgres).await);
    let (agent, t) = funded_agent(&d, &rpc, 100, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (d, t) = (d.clone(), t.clone());
            tokio::spawn(async move { send(&d, &t, json!({"to": TO, "amount": (1000 + i).to_string()})).await })
        })
        .collect();
    let mut hashes = Vec::new();
    for task in tasks {
        let (st, v) = task.await.unwrap();
        let errors: Vec<String> = d
            .stdout
            .lock()
            .unwrap()
            .iter()
            .chain(d.stderr.lock().unwrap().iter())
            .filter(|l| l.contains("ERROR") || l.contains("panic"))
            .take(3)
            .cloned()
            .collect();
        assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v} {errors:?}");
        hashes.push(v["txHash"].as_str().unwrap().to_string());
    }
    eprintln!("50 concurrent sends confirmed in {:?}", started.elapsed());
    let mut nonces: Vec<u64> = hashes
        .iter()
        .map(|h| {
            let tx: Value = serde_json::from_str(&cast_out(&["tx", h, "--json", "--rpc-url", &rpc])).unwrap();
            u64::from_str_radix(tx["nonce"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (0..50).collect::<Vec<_>>(), "consecutive, no gaps, none reused");
    assert_eq!(nonce(&rpc, &me), 50);
}

// ACC-146, issue 5: a transaction from the same key outside the daemon takes the nonce just
// before our submit; the STALE path resets the tracker and rebuilds once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_taken_outside_the_daemon_is_recovered_once() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let d = daemon(&proxy.url, &[]).await;
    // An agent whose key we also hold: import a V3 keystore cast writes for anvil's key #3.
    let key = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
    let agent = import_with_cast(&d, key, "v3 password 1234").await;
    let me = agent["address"].as_str().unwrap().to_string();
    let t = d.create_session(agent["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let n0 = nonce(&anvil.url, &me);
    // Just before the daemon's first submit, the same key spends that nonce elsewhere.
    let upstream = anvil.url.clone();
    proxy.before("eth_sendRawTransaction", move || {
        cast_out(&["send", "--rpc-url", &upstream, "--private-key", key, TO, "--value", "1"]);
    });
    let before = balance(&anvil.url, TO);
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1000"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(proxy.count("eth_sendRawTransaction"), 2, "one rejected submit, one after the rebuild");
    assert_eq!(balance(&anvil.url, TO) - before, 1001, "both landed, each once");
    assert_eq!(nonce(&anvil.url, &me), n0 + 2);
    let mut d = d;
    d.terminate();
    let row = d.store().get_transaction(v["transactionId"].as_str().unwrap().parse().unwrap()).unwrap().unwrap();
    assert_eq!(row.metadata["retryCount"], 1);
    assert_eq!(row.metadata["nonce"], json!(n0 + 1));
}

// Failures with their codes, categories and final states; reservations released
// (ACC-148, ACC-152, ACC-169, issue 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_codes_and_release_reservations() {
    let anvil = Anvil::start();
    let rpc = anvil.url.clone();
    let token = deploy_token(&rpc);
    let d = daemon(&rpc, &[]).await;
    let (agent, t) = funded_agent(&d, &rpc, 1, json!({})).await;
    d.permit(agent["id"].as_str().unwrap(), &[&token], &[&token], &[EVM_ADDR_1]).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let row = |v: &Value| v["details"]["transactionId"].as_str().unwrap().to_string();
    let detail = async |id: &str| d.bearer("GET", &format!("/v1/transactions/{id}"), &t, None).await.1;

    // A revert predicted by the node: 422, nothing signed (no checkpoint), FAILED, released.
    let (st, v) =
        send(&d, &t, json!({"type": "CONTRACT_CALL", "contractAddress": token, "calldata": "0xa9cc4718"})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["category"].as_str()),
        (422, Some("SIMULATION_FAILED"), Some("PERMANENT")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("always fails"), "{v}");
    let failed = detail(&row(&v)).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str(), failed["reservedAmount"].as_null()),
        (Some("FAILED"), Some("SIMULATION_FAILED"), Some(()))
    );
    // More than the balance.
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": (5 * ETH).to_string()})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["category"].as_str()),
        (400, Some("INSUFFICIENT_BALANCE"), Some("PERMANENT")),
        "{v}"
    );
    assert_eq!(detail(&row(&v)).await["status"], "FAILED");
    // Bad addresses never become rows.
    let (_, list_before) = d.bearer("GET", "/v1/transactions", &t, None).await;
    for bad in ["0x1234", "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"]
    {
        let (st, v) = send(&d, &t, json!({"to": bad, "amount": "1"})).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{bad}: {v}");
    }
    let (_, list_after) = d.bearer("GET", "/v1/transactions", &t, None).await;
    assert_eq!(list_before["transactions"], list_after["transactions"]);
    assert_eq!(nonce(&rpc, &me), 0, "nothing reached the chain");

    // The node goes away mid-test: network errors are retried, then the row fails with 503.
    drop(anvil);
    let started = Instant::now();
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["category"].as_str()),
        (503, Some("NETWORK_ERROR"), Some("TRANSIENT")),
        "{v}"
    );
    assert!(started.elapsed() >= Duration::from_secs(7), "1 + 2 + 4 s of backoff before giving up");
    assert_eq!(detail(&row(&v)).await["reservedAmount"], Value::Null);
    // Now the adapter is known to be down: refused up front, and /health says so.
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("ADAPTER_NOT_AVAILABLE")), "{v}");
    assert_eq!(detail(&row(&v)).await["error"], "ADAPTER_NOT_AVAILABLE");
    let (_, h) = d.call("GET", "/health", &[], None).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["services"]["adapters"]["ethereum/testnet"]["status"], "disconnected");
}

// ACC-148: a node whose chain id differs from the configured one keeps the adapter down;
// ACC-023: with another network healthy the daemon starts degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_chain_id_keeps_the_adapter_down() {
    let anvil = Anvil::start();
    let other = Anvil::start_with(1337, &[]);
    let d = daemon(&anvil.url, &[]).await;
    let (_, t) = funded_agent(&d, &anvil.url, 1, json!({})).await;
    let mut d = d;
    d.terminate();
    let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap().replace(&anvil.url, &other.url);
    std::fs::write(d.path().join("config.toml"), text).unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    // No adapter of the agents connects, so the start itself fails (01-daemon.md §6 step 4)...
    let mut c = crate::support::cli(dir.path());
    c.args(["start", "--dev", "--port", &crate::support::free_port().to_string()]);
    let out = crate::support::run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    assert!(text_of(&out).contains("chain id mismatch: configured 31337, node reports 1337"), "{}", text_of(&out));
    // ...and with a second, healthy network in use it starts degraded and refuses the agent.
    let solana = crate::support::nodes::Surfnet::start();
    crate::support::config_append(dir.path(), "rpc", &format!("solana_devnet = \"{}\"", solana.url));
    {
        let store = waiaas_storage::Store::open(&dir.path().join("data/waiaas.redb"), 8 << 20).unwrap().0;
        let mut a = store.list_agents().unwrap()[0].clone();
        a.id = uuid::Uuid::now_v7();
        a.name = "sol".into();
        a.chain = waiaas_storage::Chain::Solana;
        a.network = waiaas_storage::Network::Devnet;
        a.chain_id = None;
        a.backend = waiaas_storage::Backend::Ledger;
        a.derivation_path = Some("44'/501'/0'/0'".into());
        a.public_key = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into();
        store.insert_agent(&a, &waiaas_storage::OpCtx::new("test", 1)).unwrap();
    }
    let d = TestDaemon::start_in(dir, Opts { dev: true, ..Opts::default() }).await;
    let (_, h) = d.call("GET", "/health", &[], None).await;
    let evm = &h["services"]["adapters"]["ethereum/testnet"];
    assert_eq!((h["status"].as_str(), evm["status"].as_str()), (Some("degraded"), Some("error")), "{h}");
    assert!(evm["lastError"].as_str().unwrap().contains("chain id mismatch"));
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("ADAPTER_NOT_AVAILABLE")), "{v}");
}

fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

// ACC-167: an RPC_ERROR in simulation is retried three times with 1/2/4 s backoff, then the row
// fails; a transient error that clears in time is invisible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_errors_are_retried_with_backoff() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let d = daemon(&proxy.url, &[]).await;
    let (_, t) = funded_agent(&d, &anvil.url, 1, json!({})).await;
    proxy.fail("eth_call", 2, -32603, "internal error");
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let calls = proxy.count("eth_call");
    proxy.fail("eth_call", 100, -32603, "internal error");
    let started = Instant::now();
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    let took = started.elapsed();
    assert_eq!((st, v["code"].as_str(), v["retryable"].as_bool()), (502, Some("RPC_ERROR"), Some(true)), "{v}");
    assert_eq!(proxy.count("eth_call") - calls, 4, "one try and three retries");
    assert!(took >= Duration::from_secs(7) && took < Duration::from_secs(20), "{took:?}");
    proxy.clear();
}

// ACC-166: stage 5 gives up after its 30 s budget with 408 and a FAILED row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_runs_into_the_stage5_timeout() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let d = daemon(&proxy.url, &[("rpc", "request_timeout = 60".to_string())]).await;
    let (_, t) = funded_agent(&d, &anvil.url, 1, json!({})).await;
    proxy.delay("eth_estimateGas", Duration::from_secs(40));
    let started = Instant::now();
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    let took = started.elapsed();
    assert_eq!((st, v["code"].as_str()), (408, Some("STAGE5_TIMEOUT")), "{v}");
    assert!(took >= Duration::from_secs(29) && took < Duration::from_secs(35), "{took:?}");
    let (_, row) = d
        .bearer("GET", &format!("/v1/transactions/{}", v["details"]["transactionId"].as_str().unwrap()), &t, None)
        .await;
    assert_eq!(row["status"], "FAILED");
    assert!(row["error"].as_str().unwrap().starts_with("STAGE5_TIMEOUT ("), "{row}");
    proxy.clear();
}

// ACC-170, issue 5: kill -9 after the signed checkpoint, before the broadcast answered; the
// restart finishes the transaction exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_checkpoint_and_broadcast_lands_exactly_once() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let o = Opts {
        dev: true,
        config: vec![
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", proxy.url)),
            ("security", "rate_limit_tx_rpm = 100".to_string()),
        ],
        ..Opts::default()
    };
    let mut d = TestDaemon::start(o.clone()).await;
    let (agent, t) = funded_agent(&d, &anvil.url, 1, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    // The broadcast never gets an answer: the daemon is killed while it waits.
    proxy.blackhole(Some("eth_sendRawTransaction"));
    let before = balance(&anvil.url, TO);
    let url = d.url("/v1/transactions/send");
    let t2 = t.clone();
    tokio::spawn(async move {
        let _ = reqwest::Client::new().post(url).bearer_auth(t2).json(&json!({"to": TO, "amount": "777"})).send().await;
    });
    for _ in 0..200 {
        if proxy.count("eth_sendRawTransaction") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(proxy.count("eth_sendRawTransaction"), 1);
    d.kill9();
    proxy.blackhole(None);
    assert_eq!(nonce(&anvil.url, &me), 0, "nothing reached the chain");

    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d = TestDaemon::start_in(dir, o).await;
    let (_, list) = d.bearer("GET", "/v1/transactions", &t, None).await;
    let id = list["transactions"][0]["id"].as_str().unwrap().to_string();
    let (_, row) = d.bearer("GET", &format!("/v1/transactions/{id}"), &t, None).await;
    assert_eq!(row["status"], "SUBMITTED", "startup recovery: signed checkpoint → SUBMITTED (uncertain)");
    // The confirmation worker rebroadcasts the checkpointed bytes and then sees the receipt.
    let mut status = Value::Null;
    for _ in 0..6 {
        d.advance(11).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = d.bearer("GET", &format!("/v1/transactions/{id}"), &t, None).await.1["status"].clone();
        if status == "CONFIRMED" {
            break;
        }
    }
    assert_eq!(status, "CONFIRMED");
    assert_eq!(balance(&anvil.url, TO) - before, 777, "landed once");
    assert_eq!(nonce(&anvil.url, &me), 1);
    let hash = d.bearer("GET", &format!("/v1/transactions/{id}"), &t, None).await.1["txHash"].clone();
    assert_eq!(row["txHash"], hash, "the hash checkpointed before the crash is the one that landed");
}

// Issue 5 / ACC-080 … ACC-083: a Ledger agent (fake device over TCP) signs; rejection and the
// waiting status show; two agents never interleave APDUs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_agents_sign_through_the_fake_device() {
    use waiaas_backends::ledger::fake::{Behavior, FakeDevice};
    let anvil = Anvil::start();
    let fake = FakeDevice::default();
    fake.set_bogus_v(true);
    let server = fake.serve_tcp().unwrap();
    let ledger =
        ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"\nconfirm_timeout = 10", server.address()));
    let d = Arc::new(daemon(&anvil.url, &[ledger]).await);
    let (a, ta) = funded_agent(&d, &anvil.url, 2, json!({"backend": "ledger"})).await;
    d.permit(a["id"].as_str().unwrap(), &[], &[], &[]).await;
    let (b, tb) =
        funded_agent(&d, &anvil.url, 2, json!({"backend": "ledger", "derivationPath": "44'/60'/0'/0/1"})).await;
    assert_ne!(a["address"], b["address"]);
    let before = balance(&anvil.url, TO);
    let (st, v) = send(&d, &ta, json!({"to": TO, "amount": "4242"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(balance(&anvil.url, TO) - before, 4242);
    assert!(fake.log().iter().any(|(_, apdu)| apdu[1] == 0x04), "signed with INS 0x04");

    // Concurrent sends of two agents: serialised on the one device.
    let jobs: Vec<_> = (0..4)
        .map(|i| {
            let (d, t) = (d.clone(), if i % 2 == 0 { ta.clone() } else { tb.clone() });
            tokio::spawn(async move { send(&d, &t, json!({"to": TO, "amount": "1"})).await })
        })
        .collect();
    for j in jobs {
        let (st, v) = j.await.unwrap();
        assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    }
    assert_eq!(fake.interleavings(), 0);

    // The user takes a while: the row shows WAITING_FOR_DEVICE meanwhile.
    fake.set_behavior(Behavior::Approve { delay: Duration::from_secs(3) });
    let (d2, t2) = (d.clone(), ta.clone());
    let pending = tokio::spawn(async move { send(&d2, &t2, json!({"to": TO, "amount": "2"})).await });
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, list) = d.bearer("GET", "/v1/transactions?limit=1", &ta, None).await;
        let Some(id) = list["transactions"][0]["id"].as_str() else { continue };
        let (_, row) = d.bearer("GET", &format!("/v1/transactions/{id}"), &ta, None).await;
        if row["signerStatus"] == "WAITING_FOR_DEVICE" {
            assert_eq!(row["status"], "EXECUTING");
            seen = true;
            break;
        }
    }
    assert!(seen, "WAITING_FOR_DEVICE was never shown");
    assert_eq!(pending.await.unwrap().0, 200);

    // The wrong app open: 503 SIGNER_UNAVAILABLE; nobody answers: 408 SIGNER_TIMEOUT after the
    // confirm timeout (10 s here).
    fake.set_behavior(Behavior::WrongApp);
    let (st, v) = send(&d, &ta, json!({"to": TO, "amount": "3"})).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("SIGNER_UNAVAILABLE")), "{v}");
    fake.set_behavior(Behavior::NeverAnswer);
    let started = Instant::now();
    let (st, v) = send(&d, &ta, json!({"to": TO, "amount": "3"})).await;
    assert_eq!((st, v["code"].as_str()), (408, Some("SIGNER_TIMEOUT")), "{v}");
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
    // Rejected on the device: 403, FAILED with SIGNING_REJECTED.
    fake.set_behavior(Behavior::Reject);
    let (st, v) = send(&d, &ta, json!({"to": TO, "amount": "3"})).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("SIGNING_REJECTED")), "{v}");
    let (_, row) = d
        .bearer("GET", &format!("/v1/transactions/{}", v["details"]["transactionId"].as_str().unwrap()), &ta, None)
        .await;
    assert_eq!((row["status"].as_str(), row["error"].as_str()), (Some("FAILED"), Some("SIGNING_REJECTED")));
    // Nothing signed when the simulation fails.
    fake.set_behavior(Behavior::Approve { delay: Duration::ZERO });
    let signed = fake.signatures();
    // (The default path is anvil's rich account #0: ask for more than it will ever hold.)
    let (st, v) = send(&d, &ta, json!({"to": TO, "amount": (100_000_000 * ETH).to_string()})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INSUFFICIENT_BALANCE")), "{v}");
    assert_eq!(fake.signatures(), signed);
    drop(server);
}

// ACC-050 through HTTP, ACC-151, ACC-153, ACC-172, ACC-174, ACC-176: constraints under
// concurrency, the stage-1 record, idempotency, dry run and listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_idempotency_dry_run_and_listing() {
    let anvil = Anvil::start();
    let d = Arc::new(daemon(&anvil.url, &[]).await);
    let agent = d.create_agent(json!({"chain": "ethereum"})).await;
    send_eth(&anvil.url, agent["address"].as_str().unwrap(), 10 * ETH);
    let capped = d
        .create_session(agent["id"].as_str().unwrap(), json!({"maxTotalAmount": "5000", "maxAmountPerTx": "2000"}))
        .await;
    let t = capped["token"].as_str().unwrap().to_string();

    // Twenty concurrent sends of 1000 against a total cap of 5000: exactly five pass.
    let jobs: Vec<_> = (0..20)
        .map(|_| {
            let (d, t) = (d.clone(), t.clone());
            tokio::spawn(async move { send(&d, &t, json!({"to": TO, "amount": "1000"})).await })
        })
        .collect();
    let mut ok = 0;
    for j in jobs {
        let (st, v) = j.await.unwrap();
        match st {
            200 => ok += 1,
            403 => assert_eq!(
                (v["code"].as_str(), v["details"]["code"].as_str()),
                (Some("SESSION_LIMIT_EXCEEDED"), Some("SESSION_LIMIT_TOTAL"))
            ),
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(ok, 5);
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "2001"})).await;
    assert_eq!((st, v["details"]["code"].as_str()), (403, Some("SESSION_LIMIT_PER_TX")));
    let (_, row) = d
        .bearer("GET", &format!("/v1/transactions/{}", v["details"]["transactionId"].as_str().unwrap()), &t, None)
        .await;
    assert_eq!((row["status"].as_str(), row["error"].as_str()), (Some("CANCELLED"), Some("SESSION_LIMIT_PER_TX")));

    // Idempotency.
    let t2 = d.create_session(agent["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let post = async |body: Value, key: &str| {
        let r = d
            .http
            .post(d.url("/v1/transactions/send"))
            .bearer_auth(&t2)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        (r.status().as_u16(), replayed, r.json::<Value>().await.unwrap())
    };
    let body = json!({"to": TO, "amount": "31"});
    let (s1, r1, v1) = post(body.clone(), "order-1").await;
    let (s2, r2, v2) = post(body.clone(), "order-1").await;
    assert_eq!((s1, r1, s2, r2), (200, false, 200, true));
    assert_eq!(v1, v2, "the stored response, unchanged");
    let (s3, _, v3) = post(json!({"to": TO, "amount": "32"}), "order-1").await;
    assert_eq!((s3, v3["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));
    let (s4, _, _) = post(body.clone(), "bad key!").await;
    assert_eq!(s4, 400);

    // Dry run: the decision, no row.
    let (_, before) = d.bearer("GET", "/v1/transactions?limit=100", &t2, None).await;
    let (st, dry) = d.bearer("POST", "/v1/transactions/dry-run", &t2, Some(json!({"to": TO, "amount": "5"}))).await;
    assert_eq!(st, 200, "{dry}");
    assert_eq!(
        (dry["allowed"].as_bool(), dry["tier"].as_str(), dry["sessionCheck"]["passed"].as_bool()),
        (Some(true), Some("INSTANT"), Some(true))
    );
    assert!(dry["estimatedFee"].is_string());
    let (_, dry_denied) =
        d.bearer("POST", "/v1/transactions/dry-run", &t, Some(json!({"to": TO, "amount": "3000"}))).await;
    assert_eq!(
        (dry_denied["allowed"].as_bool(), dry_denied["sessionCheck"]["code"].as_str()),
        (Some(false), Some("SESSION_LIMIT_PER_TX"))
    );
    let (_, after) = d.bearer("GET", "/v1/transactions?limit=100", &t2, None).await;
    assert_eq!(before, after);

    // Listing: newest first, pages of `limit`, the agent's rows only.
    let (_, page1) = d.bearer("GET", "/v1/transactions?limit=10", &t2, None).await;
    let all: Vec<Value> = {
        let mut out = page1["transactions"].as_array().unwrap().clone();
        let mut cursor = page1["nextCursor"].clone();
        while let Some(c) = cursor.as_str() {
            let (_, p) = d.bearer("GET", &format!("/v1/transactions?limit=10&cursor={c}"), &t2, None).await;
            out.extend(p["transactions"].as_array().unwrap().iter().cloned());
            cursor = p["nextCursor"].clone();
        }
        out
    };
    assert_eq!(all.len(), 5 + 15 + 1 + 1, "one agent's rows from both sessions");
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    let other = d.create_agent(json!({"chain": "ethereum"})).await;
    let to = d.create_session(other["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let (st, v) = d.bearer("GET", &format!("/v1/transactions/{}", ids[0]), &to, None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("TX_NOT_FOUND")));
    let (_, theirs) = d.bearer("GET", "/v1/transactions", &to, None).await;
    assert_eq!(theirs["transactions"], json!([]));

    // Stage 1 wrote the canonical request and TX_REQUESTED before the decision.
    let audit = d.audit("TX_REQUESTED").await;
    let queued = d.audit("TX_QUEUED").await;
    let first = v1["transactionId"].as_str().unwrap();
    let seq = |rows: &[Value]| rows.iter().find(|r| r["txId"] == first).unwrap()["seq"].as_u64().unwrap();
    assert!(seq(&audit) < seq(&queued));
    let (_, detail) = d.bearer("GET", &format!("/v1/transactions/{first}"), &t2, None).await;
    assert_eq!(detail["toAddress"], TO);
    let _ = Arc::try_unwrap(d).ok().map(|mut d| {
        d.terminate();
        let row = d.store().get_transaction(first.parse().unwrap()).unwrap().unwrap();
        assert_eq!(row.request, json!({"type": "TRANSFER", "to": TO, "amount": "31", "priority": "medium"}));
    });
}

// ACC-156: a transaction that outlasts the 30 s wait answers 200 SUBMITTED; the confirmation
// worker confirms it once the node mines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmined_transaction_is_submitted_then_confirmed_by_the_worker() {
    let anvil = Anvil::start_with(31337, &["--no-mining"]);
    let rpc = anvil.url.clone();
    let d = daemon(&rpc, &[]).await;
    let agent = d.create_agent(json!({"chain": "ethereum"})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    crate::support::nodes::rpc_blocking(&rpc, "anvil_setBalance", json!([me, "0xde0b6b3a7640000"]));
    let t = d.create_session(agent["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let started = Instant::now();
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": "5"})).await;
    assert_eq!((st, v["status"].as_str(), v["tier"].as_str()), (200, Some("SUBMITTED"), Some("INSTANT")), "{v}");
    assert!(started.elapsed() >= Duration::from_secs(29), "waited the whole budget");
    assert!(v["txHash"].is_string());
    crate::support::nodes::rpc_blocking(&rpc, "evm_mine", json!([]));
    let id = v["transactionId"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..5 {
        d.advance(11).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = d.bearer("GET", &format!("/v1/transactions/{id}"), &t, None).await.1["status"].clone();
        if status == "CONFIRMED" {
            break;
        }
    }
    assert_eq!(status, "CONFIRMED");
    assert_eq!(balance(&rpc, TO), 5);
}

// 03-keys.md §8 and 04-auth.md: no secret reaches the daemon's output, its log file or the
// audit log, with our crates logging at `trace`, on the paths that handle secrets: key import,
// signing, session issue, a wrong master password, key export. (Not dev mode: its banner
// prints the fixed, public dev password on purpose.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_or_the_audit_log() {
    secrets_stay_out("text").await;
}

// 12-operations.md §5: the same with `log_format = "json"` — and every line of the log file
// parses as a JSON object with timestamp, level, target and message, and every line logged
// inside a request names its requestId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_name_the_request_and_hold_no_secret() {
    let log = secrets_stay_out("json").await;
    let mut in_requests = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for k in ["timestamp", "level", "target", "message"] {
            assert!(v[k].is_string(), "{k} missing: {line}");
        }
        chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).expect("RFC 3339");
        // The access line of each request starts with its id.
        if let Some(id) = v["message"].as_str().and_then(|m| m.split(' ').next()).filter(|w| w.starts_with("req_")) {
            assert_eq!(v["requestId"].as_str(), Some(id), "{line}");
            in_requests += 1;
        }
    }
    assert!(in_requests >= 10, "{in_requests} request lines");
}

/// The secrets test in one log format; returns the log file.
async fn secrets_stay_out(log_format: &str) -> String {
    let anvil = Anvil::start();
    let receiver = crate::support::receiver::Receiver::start();
    let config = vec![
        ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url)),
        ("daemon", format!("log_level = \"trace\"\nlog_format = \"{log_format}\"")),
        ("notifications", "enabled = true\nmin_channels = 1".to_string()),
    ];
    let d = TestDaemon::start(Opts { config, ..Opts::default() }).await;
    // ACC-242: channel secrets (a bot token, a Discord webhook path, an HMAC secret, an ntfy
    // token) are masked in every response and never logged — also when a send fails.
    let (bot, discord_path, hmac, ntfy) =
        ("777000:BOTsecretTOKEN", "/api/webhooks/99/DISCORDsecretPATH", "HMACsecretVALUE-0123456789", "tk_NTFYsecret");
    let mut responses = Vec::new();
    receiver.behave("/hooks/s", json!({"secret": hmac})).await;
    for (kind, config) in [
        ("TELEGRAM", json!({"botToken": bot, "chatId": "5", "apiBaseUrl": receiver.url("")})),
        ("DISCORD", json!({"webhookUrl": receiver.url(discord_path)})),
        ("WEBHOOK", json!({"url": receiver.url("/hooks/s"), "secret": hmac})),
        ("NTFY", json!({"serverUrl": receiver.url(""), "topic": "secrets", "authToken": ntfy})),
    ] {
        let (st, v) = d
            .master(
                "POST",
                "/v1/owner/notification-channels",
                Some(json!({"type": kind, "name": kind, "config": config})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        responses.push(v);
        responses.push(
            d.master("PUT", &format!("/v1/owner/notification-channels/{id}"), Some(json!({"priority": 1}))).await.1,
        );
        // Every channel fails once, so the error paths are logged too.
        receiver.behave("/", json!({"mode": "fail", "times": 1})).await;
        responses
            .push(d.master("POST", &format!("/v1/owner/notification-channels/{id}/test"), Some(json!({}))).await.1);
        receiver.reset().await;
        receiver.behave("/hooks/s", json!({"secret": hmac})).await;
    }
    responses.push(d.master("GET", "/v1/owner/notification-channels", None).await.1);
    responses.push(d.master("GET", "/v1/owner/notification-log", None).await.1);
    responses.push(d.master("GET", "/v1/admin/status", None).await.1);
    let responses = Value::Array(responses).to_string();
    for secret in [bot, discord_path, "DISCORDsecretPATH", hmac, ntfy] {
        assert!(!responses.contains(secret), "{secret} in an API response: {responses}");
    }
    // A key we know in the clear (anvil's key #4), imported through a cast V3 keystore.
    let key = "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
    let agent = import_with_cast(&d, key, "v3 password 5678").await;
    let aid = agent["id"].as_str().unwrap();
    let token = d.create_session(aid, json!({})).await["token"].as_str().unwrap().to_string();
    let (st, v) = send(&d, &token, json!({"to": TO, "amount": "1000"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let wrong = [("X-Master-Password", "a wrong master password".to_string())];
    assert_eq!(d.call("GET", "/v1/agents", &wrong, None).await.0, 401);
    let export = json!({"password": "export password 9"});
    assert_eq!(d.master("POST", &format!("/v1/agents/{aid}/export"), Some(export)).await.0, 200);

    let config = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
    let jwt_secret =
        config.lines().find_map(|l| l.strip_prefix("jwt_secret = ")).unwrap().trim_matches('"').to_string();
    let mut d = d;
    d.terminate();
    let log_file = std::fs::read_to_string(d.path().join("logs/daemon.log")).unwrap_or_default();
    assert!(log_file.contains("POST /v1/transactions/send 200"), "the daemon's own log file: {log_file}");
    let audit = d.store().audit_rows(0, usize::MAX).unwrap();
    assert!(audit.iter().any(|r| r.event_type == "AGENT_KEY_EXPORTED"), "the whole audit log is read");
    let audit: Vec<String> =
        audit.iter().map(|r| format!("{} {} {}", r.event_type, r.actor, Value::Object(r.details.clone()))).collect();
    let output =
        format!("{}\n{}\n{log_file}\n{}", d.stdout_text(), d.stderr.lock().unwrap().join("\n"), audit.join("\n"))
            .to_lowercase();
    for (what, secret) in [
        ("private key", key.to_string()),
        ("master password", d.password().to_string()),
        ("wrong master password", "a wrong master password".to_string()),
        ("V3 password", "v3 password 5678".to_string()),
        ("export password", "export password 9".to_string()),
        ("session token", token.trim_start_matches("wai_sess_").to_string()),
        ("JWT secret", jwt_secret),
        ("Telegram bot token", bot.to_string()),
        ("Discord webhook path", "DISCORDsecretPATH".to_string()),
        ("webhook HMAC secret", hmac.to_string()),
        ("ntfy token", ntfy.to_string()),
    ] {
        let hit = output.find(&secret.to_lowercase());
        assert!(hit.is_none(), "the {what} leaked: …{}…", &output[hit.unwrap_or(0).saturating_sub(150)..]);
    }
    log_file
}
