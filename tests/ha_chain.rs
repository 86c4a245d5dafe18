//! Two replicas on one PostgreSQL database against a real chain (13-postgres-ha.md §8, §9):
//! what happens to money when the leader is paused, loses the database or is killed in the
//! middle of sends. Everything is checked on anvil, not on what the daemons say.
//!
//! Replica `b` is a copy of `a`'s data directory made after the agents exist, because key files
//! still live in each replica's `keystore/` (the `keys` table is not built yet).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::evm::funded_agent;
use crate::support::nodes::{Anvil, rpc_blocking};
use crate::support::pg::{OwnCluster, psql};
use crate::support::rpc_proxy::RpcProxy;
use crate::support::{Opts, TestDaemon, signal};

const TO: &str = "0x000000000000000000000000000000000000c0de";

/// A dev replica on `rpc`, polling the leader lock every 100 ms, with an optional failpoint.
fn replica(rpc: &str, failpoint: Option<&str>, cluster: Option<&OwnCluster>) -> Opts {
    Opts {
        dev: true,
        postgres: true,
        pg_cluster: cluster.map(|c| c.url.clone()),
        config: vec![
            ("rpc", format!("ethereum_testnet = \"{rpc}\"\nethereum_testnet_chain_id = 31337\nrequest_timeout = 10")),
            (
                "security",
                "rate_limit_tx_rpm = 100\nmax_sessions_per_agent = 16\nrate_limit_global_ip_rpm = 10000\nrate_limit_session_rpm = 5000"
                    .to_string(),
            ),
            ("database", "leader_check_ms = 100\nconnect_timeout = 2".to_string()),
        ],
        env: failpoint.into_iter().map(|f| ("WAIAAS_FAILPOINT".to_string(), f.to_string())).collect(),
        ..Opts::default()
    }
}

/// `/ready`'s status and body; None when nothing answers.
async fn ready(d: &TestDaemon) -> Option<(u16, Value)> {
    let r = reqwest::Client::new().get(d.url("/ready")).timeout(Duration::from_secs(2)).send().await.ok()?;
    Some((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

/// Waits until `d`'s `/ready` satisfies `ok`, for at most `limit`; returns how long it took.
async fn until_ready(d: &TestDaemon, limit: Duration, what: &str, ok: impl Fn(u16, &Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if let Some((st, v)) = ready(d).await
            && ok(st, &v)
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what} not within {limit:?}: {:?}", ready(d).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leads(st: u16, v: &Value) -> bool {
    st == 200 && v["role"] == "leader"
}

/// The process state letter of `/proc/<pid>/stat` (`T` = stopped).
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim().chars().next()).unwrap_or('?')
}

fn hex(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Every mined transaction from `from`: (hash, nonce, value).
fn mined_from(rpc: &str, from: &str) -> Vec<(String, u64, u128)> {
    let last = hex(&rpc_blocking(rpc, "eth_blockNumber", json!([]))) as u64;
    let mut out = Vec::new();
    for n in 0..=last {
        let block = rpc_blocking(rpc, "eth_getBlockByNumber", json!([format!("{n:#x}"), true]));
        for t in block["transactions"].as_array().unwrap() {
            if t["from"].as_str().unwrap().eq_ignore_ascii_case(from) {
                out.push((t["hash"].as_str().unwrap().to_ascii_lowercase(), hex(&t["nonce"]) as u64, hex(&t["value"])));
            }
        }
    }
    out
}

// ACC-309: fencing of a paused ex-leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_ex_leader_never_broadcasts_what_it_signed() {
    let anvil = Anvil::start();
    // Both replicas reach the chain through a proxy that counts what it forwards.
    let proxy = RpcProxy::start(&anvil.url);
    let mut a = TestDaemon::start(replica(&proxy.url, Some("after_sign:1:pause"), None)).await;
    let (agent, token) = funded_agent(&a, &anvil.url, 10, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let b = a.second_replica(replica(&proxy.url, None, None)).await;
    let db = a.pg.as_ref().unwrap();
    until_ready(&b, Duration::from_secs(5), "b standby", |st, v| st == 503 && v["role"] == "standby").await;

    // a signs its first send and stops right there, before the signed checkpoint.
    let send = {
        let (http, url, token) = (a.http.clone(), a.url("/v1/transactions/send"), token.clone());
        tokio::spawn(async move {
            let r = http.post(url).bearer_auth(token).json(&json!({"to": TO, "amount": "1111"})).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_state(a.pid()) != 'T' {
        assert!(Instant::now() < deadline, "a never reached after_sign: {:?}", a.stdout_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.sql("SELECT status FROM transactions"), "EXECUTING");

    // Its election connection is cut (the session holding the leader lock), and b takes over.
    let cut = db.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND classid = 1463877633::oid AND objid = 0::oid AND objsubid = 2",
    );
    assert_eq!(cut, "t", "a held the leader lock");
    let failover = until_ready(&b, Duration::from_secs(10), "b leads", leads).await;
    crate::support::report(&format!("ACC-309: b led {} ms after a's election session was cut", failover.as_millis()));
    let epoch_b = ready(&b).await.unwrap().1["epoch"].as_u64().unwrap();
    assert_eq!(epoch_b, 2, "b's epoch follows a's");

    // a carries on from the signature: its checkpoint is fenced, nothing is sent.
    signal(a.pid(), "CONT");
    let (st, body) = send.await.unwrap();
    assert_eq!(
        (st, body["code"].as_str(), body["retryable"].as_bool()),
        (503, Some("NOT_LEADER"), Some(true)),
        "{body}"
    );
    assert_eq!(proxy.count("eth_sendRawTransaction"), 0, "a sent nothing to the chain");
    until_ready(&a, Duration::from_secs(10), "a standby", |st, v| st == 503 && v["role"] == "standby").await;
    assert!(a.child.as_mut().unwrap().try_wait().unwrap().is_none(), "a demoted in process, without exiting");
    assert!(a.stderr_text().contains("Leadership lost"), "{}", a.stderr_text());

    // b's takeover recovery failed the row; the next send reuses the nonce a had signed with.
    let (st, list) = b.bearer("GET", "/v1/transactions", &token, None).await;
    assert_eq!(st, 200, "{list}");
    let rows = list["transactions"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["status"], "FAILED", "{list}");
    assert!(rows[0]["error"].as_str().unwrap_or("").contains("DAEMON_RESTARTED"), "{list}");
    let (st, body) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "2222"})).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("CONFIRMED")), "{body}");
    let mined = mined_from(&anvil.url, &me);
    assert_eq!(mined.len(), 1, "{mined:?}");
    assert_eq!((mined[0].1, mined[0].2), (0, 2222), "b's send took nonce 0, the one a had signed");
    assert_eq!(proxy.count("eth_sendRawTransaction"), 1, "b's send was the only one");
}
