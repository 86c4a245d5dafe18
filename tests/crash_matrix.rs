//! The process crash matrix (issue #21): the daemon kills itself with SIGKILL (the
//! `WAIAAS_FAILPOINT` failpoints, see `src/base/failpoint.rs`) at each point of the send path —
//! after the decision, after the signature, after the checkpoint's fsync, after the submit, after
//! the outcome record but before it is durable — 20 times per point, at 1 and at 16 concurrent
//! senders, on anvil behind an RPC proxy that records every raw transaction it forwards. Each
//! crash is followed by a restart (start-up recovery), and the next round's senders first retry
//! the requests that got no answer with the same idempotency keys, as a client would.
//!
//! After every restart: every transaction the node holds that the proxy forwarded has its hash
//! in the database. At the end, after a last retry of every key and with every row settled:
//! each idempotency key landed at most once (each key has its own amount), the agent's nonces
//! on chain are contiguous with nothing stuck in the mempool, every landed transaction is a
//! CONFIRMED row of the same amount, balances are exact to the wei (values plus fees), no row
//! is left non-final, and the audit chain verifies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::evm::{balance, funded_agent};
use crate::support::nodes::{Anvil, rpc_blocking};
use crate::support::rpc_proxy::RpcProxy;
use crate::support::{Opts, TestDaemon};

const TO: &str = "0x000000000000000000000000000000000000c0de";
/// Key `i` sends `BASE + i` wei: an amount on chain names its key.
const BASE: u128 = 1_000_000;
const POINTS: [&str; 5] = ["after_decide", "after_sign", "after_checkpoint", "after_submit", "after_outcome"];
const ROUNDS: usize = 20;

/// xorshift64*, seeded from the clock and printed, so a failing order can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn opts(proxy: &RpcProxy, failpoint: Option<String>) -> Opts {
    Opts {
        dev: true,
        config: vec![
            (
                "rpc",
                format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337\nrequest_timeout = 10", proxy.url),
            ),
            (
                "security",
                "rate_limit_tx_rpm = 100\nmax_sessions_per_agent = 16\nrate_limit_global_ip_rpm = 10000\nrate_limit_session_rpm = 5000"
                    .to_string(),
            ),
        ],
        env: failpoint.into_iter().map(|f| ("WAIAAS_FAILPOINT".to_string(), f)).collect(),
        ..Opts::default()
    }
}

/// Every top-level row of the agent, through the API.
async fn rows(d: &TestDaemon, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/transactions?limit=100&cursor={c}"),
            None => "/v1/transactions?limit=100".to_string(),
        };
        let (st, v) = d.bearer("GET", &path, token, None).await;
        assert_eq!(st, 200, "{v}");
        out.extend(v["transactions"].as_array().unwrap().iter().cloned());
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn assert_node_hashes_are_stored(anvil: &Anvil, proxy: &RpcProxy, rows: &[Value], when: &str) {
    let stored: HashSet<String> =
        rows.iter().filter_map(|r| r["txHash"].as_str()).map(|h| h.to_ascii_lowercase()).collect();
    for h in proxy.held_by(&anvil.url) {
        assert!(stored.contains(&h), "{when}: the node holds {h}, the database does not");
    }
}

/// One send with an idempotency key. The answer as `status code` (or `status` and the row's
/// status), None when the daemon died under it.
async fn fire(http: reqwest::Client, url: String, token: String, key: usize) -> Option<String> {
    let body = json!({"to": TO, "amount": (BASE + key as u128).to_string()});
    let r =
        http.post(url).bearer_auth(token).header("Idempotency-Key", format!("crash-{key}")).json(&body).send().await;
    let r = r.ok()?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.ok()?;
    Some(match v["code"].as_str() {
        Some(code) => format!("{status} {code}"),
        None => format!("{status} {}", v["status"].as_str().unwrap_or("")),
    })
}

async fn run_matrix(senders: usize) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash matrix, {senders} sender(s): seed {seed}");
    let mut rng = Rng(seed);
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let mut d = TestDaemon::start(opts(&proxy, None)).await;
    let (agent, token) = funded_agent(&d, &anvil.url, 10, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let funded = balance(&anvil.url, &me);
    let first_block = rpc_blocking(&anvil.url, "eth_blockNumber", json!([]));
    let first_block = u64::from_str_radix(first_block.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    // One session per sender (at least four): each session's rate limit stays far away.
    let mut tokens = vec![token.clone()];
    for _ in 1..senders.max(4) {
        let s = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
        tokens.push(s["token"].as_str().unwrap().to_string());
    }
    let tokens = Arc::new(tokens);
    let mut next_key = 0usize;
    let mut crashed: Vec<usize> = Vec::new();
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();

    for point in POINTS {
        for round in 0..ROUNDS {
            let pass = 1 + rng.below(senders as u64);
            let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
            d.kill9();
            d = TestDaemon::start_in(dir, opts(&proxy, Some(format!("{point}:{pass}")))).await;
            let when = format!("{point} round {round}, after restart");
            assert_node_hashes_are_stored(&anvil, &proxy, &rows(&d, &token).await, &when);

            // The crashed round's requests again (same keys), then this round's new ones.
            let mut keys = std::mem::take(&mut crashed);
            keys.extend(next_key..next_key + senders);
            next_key += senders;
            let url = d.url("/v1/transactions/send");
            let jobs: Vec<_> = keys
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let (http, url, t) = (d.http.clone(), url.clone(), tokens[i % senders].clone());
                    tokio::spawn(fire(http, url, t, k))
                })
                .collect();
            let status = d.wait_exit(Duration::from_secs(90));
            let status = status.unwrap_or_else(|| panic!("{point}:{pass} was never reached"));
            assert_eq!(status.signal(), Some(9), "{point}:{pass}: died by the failpoint's SIGKILL");
            // A client retries what it got no answer to.
            for (j, k) in jobs.into_iter().zip(keys) {
                let a = j.await.unwrap().unwrap_or_else(|| "none".to_string());
                if a == "none" {
                    crashed.push(k);
                }
                *answers.entry(a).or_default() += 1;
            }
        }
    }

    // Last restart, no failpoint: every key once more, then let every row settle.
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    d = TestDaemon::start_in(dir, opts(&proxy, None)).await;
    assert_node_hashes_are_stored(&anvil, &proxy, &rows(&d, &token).await, "final restart");
    let url = d.url("/v1/transactions/send");
    for chunk in (0..next_key).collect::<Vec<_>>().chunks(senders) {
        let jobs: Vec<_> = chunk
            .iter()
            .map(|&k| tokio::spawn(fire(d.http.clone(), url.clone(), tokens[k % tokens.len()].clone(), k)))
            .collect();
        for j in jobs {
            let a = j.await.unwrap().unwrap_or_else(|| "none".to_string());
            *answers.entry(format!("final {a}")).or_default() += 1;
        }
    }
    // Once restarted, a retried key is answered (the row as recovery left it), never left
    // "in progress" by a process that no longer exists.
    let unanswered: Vec<_> = answers.iter().filter(|(a, _)| a.starts_with("final 409")).collect();
    assert!(unanswered.is_empty(), "final retries still in progress: {unanswered:?}");
    let mut all = rows(&d, &token).await;
    for _ in 0..60 {
        if all.iter().all(|r| matches!(r["status"].as_str(), Some("CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED"))) {
            break;
        }
        d.advance(11).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        all = rows(&d, &token).await;
    }
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for r in &all {
        let e = r["error"].as_str().unwrap_or("").split(':').next().unwrap_or("").to_string();
        *outcomes.entry(format!("{} {e}", r["status"].as_str().unwrap_or("?"))).or_default() += 1;
    }
    eprintln!("crash matrix, {senders} sender(s): answers {answers:?}, rows {outcomes:?}");
    let stuck: Vec<_> = all
        .iter()
        .filter(|r| !matches!(r["status"].as_str(), Some("CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED")))
        .collect();
    assert!(stuck.is_empty(), "rows left non-final: {stuck:?}");
    assert_node_hashes_are_stored(&anvil, &proxy, &all, "settled");

    // What landed: every transaction from the agent, block by block.
    let last = rpc_blocking(&anvil.url, "eth_blockNumber", json!([]));
    let last = u64::from_str_radix(last.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let hex = |v: &Value| u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let (mut landed, mut nonces, mut fees) = (Vec::new(), Vec::new(), 0u128);
    for n in first_block + 1..=last {
        let block = rpc_blocking(&anvil.url, "eth_getBlockByNumber", json!([format!("{n:#x}"), true]));
        for t in block["transactions"].as_array().unwrap() {
            if !t["from"].as_str().unwrap().eq_ignore_ascii_case(&me) {
                continue;
            }
            let receipt = rpc_blocking(&anvil.url, "eth_getTransactionReceipt", json!([t["hash"]]));
            assert_eq!(receipt["status"], "0x1", "{t}");
            fees += hex(&receipt["gasUsed"]) * hex(&receipt["effectiveGasPrice"]);
            nonces.push(hex(&t["nonce"]) as u64);
            landed.push((t["hash"].as_str().unwrap().to_ascii_lowercase(), hex(&t["value"])));
        }
    }
    // Each key at most once.
    let mut per_key: HashMap<u128, u32> = HashMap::new();
    for (_, v) in &landed {
        *per_key.entry(*v).or_default() += 1;
    }
    let twice: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "keys landed more than once (amount → count): {twice:?}");
    // Nonces contiguous from 0, nothing pending behind a gap.
    nonces.sort_unstable();
    assert_eq!(nonces, (0..landed.len() as u64).collect::<Vec<_>>(), "contiguous nonces");
    let pending = rpc_blocking(&anvil.url, "eth_getTransactionCount", json!([me, "pending"]));
    assert_eq!(hex(&pending) as usize, landed.len(), "nothing stuck in the mempool");
    // Every landed transaction is a CONFIRMED row of the same amount, and the other way round.
    let by_hash: HashMap<String, &Value> =
        all.iter().filter_map(|r| Some((r["txHash"].as_str()?.to_ascii_lowercase(), r))).collect();
    for (h, v) in &landed {
        let r = by_hash.get(h).unwrap_or_else(|| panic!("landed {h} has no row"));
        assert_eq!((r["status"].as_str(), r["amount"].as_str()), (Some("CONFIRMED"), Some(v.to_string().as_str())));
    }
    let confirmed: Vec<&Value> = all.iter().filter(|r| r["status"] == "CONFIRMED").collect();
    assert_eq!(confirmed.len(), landed.len(), "every CONFIRMED row landed");
    // Balances to the wei.
    let sent: u128 = landed.iter().map(|(_, v)| v).sum();
    assert_eq!(balance(&anvil.url, TO), sent, "the receiver got exactly the landed values");
    assert_eq!(balance(&anvil.url, &me), funded - sent - fees, "the agent paid exactly values + fees");
    // Not vacuous: at least the keys whose crash came after the checkpoint landed.
    assert!(landed.len() >= 3 * ROUNDS, "{} of {next_key} keys landed", landed.len());
    let (st, v) = d.master("GET", "/v1/admin/audit-log/verify", None).await;
    assert_eq!((st, &v["valid"]), (200, &json!(true)), "{v}");
    eprintln!("crash matrix, {senders} sender(s): {} keys, {} landed once, none twice", next_key, landed.len());
}

// ACC-170, ACC-171, ACC-172 and issue #21: kill -9 at each send-path failpoint, ×20, one sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_one_sender() {
    run_matrix(1).await;
}

// ACC-170, ACC-171, ACC-172 and issue #21: kill -9 at each send-path failpoint, ×20, sixteen
// concurrent senders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_sixteen_senders() {
    run_matrix(16).await;
}
