//! Two replicas on one PostgreSQL database against a real chain (13-postgres-ha.md §8, §9):
//! what happens to money when the leader is paused, loses the database or is killed in the
//! middle of sends. Everything is checked on anvil, not on what the daemons say.
//!
//! Replica `b` is a copy of `a`'s configuration (the same database URL); its `keystore/` is
//! empty like `a`'s, because the key files are in the database.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::evm::funded_agent;
use crate::support::nodes::{Anvil, rpc_blocking};
use crate::support::pg::OwnCluster;
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
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 1463877633::oid AND objid = 0::oid AND objsubid = 2",
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

/// Key `k` sends `BASE + k` wei: an amount on chain names its key.
const BASE: u128 = 1_000_000;

/// Which of the replicas leads now, if one does.
async fn leader<'a>(replicas: &[&'a TestDaemon]) -> Option<&'a TestDaemon> {
    for d in replicas {
        if let Some((st, v)) = ready(d).await
            && leads(st, &v)
        {
            return Some(d);
        }
    }
    None
}

/// Retries `keys` (agent `k % tokens.len()`) on whichever replica leads until each gets a final
/// answer (anything but a 503 or no answer); returns the answers.
async fn retry_until_answered(
    replicas: &[&TestDaemon],
    tokens: &[String],
    keys: impl IntoIterator<Item = usize>,
) -> BTreeMap<String, u32> {
    let mut answers = BTreeMap::new();
    for k in keys {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "key {k} never got a final answer");
            let Some(d) = leader(replicas).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match fire_at(&d.http, d.port, &tokens[k % tokens.len()], k).await {
                // The rate-limit windows start over on a new leader; a client waits them out.
                Some((429, _, _)) => tokio::time::sleep(Duration::from_secs(1)).await,
                Some((st, what, _)) if st != 503 => {
                    *answers.entry(format!("{st} {what}")).or_default() += 1;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    answers
}

/// Every agent's transaction rows, through the leader's API, once none is in flight (the
/// daemon clock is advanced past the confirmation interval while waiting).
async fn settled_rows(d: &TestDaemon, tokens: &[String]) -> Vec<Value> {
    let final_status =
        |r: &Value| matches!(r["status"].as_str(), Some("CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED"));
    for _ in 0..60 {
        let mut all = Vec::new();
        for t in tokens {
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/transactions?limit=100&cursor={c}"),
                    None => "/v1/transactions?limit=100".to_string(),
                };
                let (st, v) = d.bearer("GET", &path, t, None).await;
                assert_eq!(st, 200, "{v}");
                all.extend(v["transactions"].as_array().unwrap().iter().cloned());
                match v["nextCursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
        }
        if all.iter().all(final_status) {
            return all;
        }
        d.advance(11).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("rows never settled");
}

/// What the chain holds from `agents`, checked against the rows: each key landed at most once,
/// each agent's nonces are exactly `0..n`, nothing waits in the mempool, and every mined
/// transaction is a CONFIRMED row's stored hash. Returns how many landed.
fn check_chain(rpc: &str, agents: &[String], rows: &[Value]) -> usize {
    let stored: HashMap<String, &Value> =
        rows.iter().filter_map(|r| Some((r["txHash"].as_str()?.to_ascii_lowercase(), r))).collect();
    let mut per_amount: HashMap<u128, u32> = HashMap::new();
    let mut landed = 0;
    for a in agents {
        let mined = mined_from(rpc, a);
        let mut nonces: Vec<u64> = mined.iter().map(|m| m.1).collect();
        nonces.sort_unstable();
        assert_eq!(nonces, (0..mined.len() as u64).collect::<Vec<_>>(), "{a}: nonces 0..n, no gap, no duplicate");
        let pending = hex(&rpc_blocking(rpc, "eth_getTransactionCount", json!([a, "pending"])));
        assert_eq!(pending as usize, mined.len(), "{a}: nothing stuck in the mempool");
        for (hash, _, value) in &mined {
            let row = stored.get(hash).unwrap_or_else(|| panic!("{a}: mined {hash} is no row's signed transaction"));
            assert_eq!(row["status"], "CONFIRMED", "{row}");
            *per_amount.entry(*value).or_default() += 1;
        }
        landed += mined.len();
    }
    let twice: Vec<_> = per_amount.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "keys landed more than once (amount → count): {twice:?}");
    let confirmed = rows.iter().filter(|r| r["status"] == "CONFIRMED").count();
    assert_eq!(confirmed, landed, "every CONFIRMED row landed");
    landed
}

// ACC-310: the database stops (`pg_ctl stop -m fast`) in the middle of sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_send_is_retryable_and_heals_by_itself() {
    let cluster = OwnCluster::start();
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    // A heartbeat of 1 s: the leader notices the database gone at its next ping, so sends in
    // that window meet the database itself (DATABASE_UNAVAILABLE) rather than the leader guard.
    let mut opts = replica(&proxy.url, None, Some(&cluster));
    for (section, lines) in &mut opts.config {
        if *section == "database" {
            *lines = "leader_check_ms = 1000\nconnect_timeout = 2".to_string();
        }
    }
    let a = TestDaemon::start(opts).await;
    let mut agents = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (agent, token) = funded_agent(&a, &anvil.url, 10, json!({})).await;
        agents.push(agent["address"].as_str().unwrap().to_string());
        tokens.push(token);
    }
    let b = a.second_replica(replica(&proxy.url, None, None)).await;
    let replicas = [&a, &b];

    // Four senders keep sending new keys to a; the database stops once 8 have confirmed.
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let confirmed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (next, stop, confirmed) = (next.clone(), stop.clone(), confirmed.clone());
        let (http, port, tokens) = (a.http.clone(), a.port, tokens.clone());
        senders.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = fire_at(&http, port, &tokens[k % tokens.len()], k).await.unwrap_or((
                    0,
                    "no answer".to_string(),
                    true,
                ));
                if answer.1 == "CONFIRMED" {
                    confirmed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                // A client backs off after a 503.
                let pause = if answer.0 == 503 || answer.0 == 0 { 200 } else { 20 };
                seen.push((k, answer));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            seen
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while confirmed.load(std::sync::atomic::Ordering::SeqCst) < 8 {
        assert!(Instant::now() < deadline, "sends never confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let epoch_before = ready(&a).await.unwrap().1["epoch"].as_u64().unwrap();
    let down_at = next.load(std::sync::atomic::Ordering::SeqCst);
    cluster.down();
    // Both replicas stop being ready; sends during the outage get retryable 503s.
    for d in replicas {
        until_ready(d, Duration::from_secs(10), "503 while the database is down", |st, v| {
            st == 503 && v["role"] == "standby"
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answers: Vec<(usize, (u16, String, bool))> = Vec::new();
    for s in senders {
        answers.extend(s.await.unwrap());
    }
    let during: Vec<_> = answers.iter().filter(|(k, _)| *k >= down_at).collect();
    assert!(!during.is_empty());
    for (k, (st, what, retryable)) in &during {
        assert!(
            *st == 503 && *retryable && (what == "DATABASE_UNAVAILABLE" || what == "NOT_LEADER"),
            "key {k} during the outage: {st} {what} retryable={retryable}"
        );
    }
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    for (_, (st, what, _)) in &answers {
        *tally.entry(format!("{st} {what}")).or_default() += 1;
    }
    assert!(tally.keys().any(|k| k == "503 DATABASE_UNAVAILABLE"), "a send saw the database go: {tally:?}");
    assert!(tally.keys().all(|k| k == "200 CONFIRMED" || k.starts_with("503 ")), "{tally:?}");

    // The database comes back: one replica leads again, at a higher epoch, within 10 s.
    let up_at = Instant::now();
    cluster.up();
    let led = loop {
        if let Some(d) = leader(&replicas).await {
            break d;
        }
        assert!(up_at.elapsed() < Duration::from_secs(10), "no leader 10 s after the database came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let epoch_after = ready(led).await.unwrap().1["epoch"].as_u64().unwrap();
    crate::support::report(&format!(
        "ACC-310: a replica led {} ms after the database came back (epoch {epoch_before} → {epoch_after}); answers {tally:?}",
        up_at.elapsed().as_millis()
    ));
    assert!(epoch_after > epoch_before);

    // Every key that got no final answer is retried with its key; then the chain decides.
    let unanswered: Vec<usize> =
        answers.iter().filter(|(_, (st, _, _))| *st == 503 || *st == 0).map(|(k, _)| *k).collect();
    let retried = retry_until_answered(&replicas, &tokens, unanswered.iter().copied()).await;
    let led = leader(&replicas).await.expect("a leader");
    let rows = settled_rows(led, &tokens).await;
    let landed = check_chain(&anvil.url, &agents, &rows);
    assert!(landed >= 8, "{landed}");
    let (st, v) = led.master("GET", "/v1/admin/audit-log/verify", None).await;
    assert_eq!((st, &v["valid"]), (200, &json!(true)), "{v}");
    eprintln!("ACC-310: {} keys retried: {retried:?}; {landed} landed, none twice", unanswered.len());
}

/// One send of key `key` (amount `BASE + key`, `Idempotency-Key: ha-<key>`) to the daemon on
/// `port`: `(status, code or row status, retryable)`, None when nothing answered.
async fn fire_at(http: &reqwest::Client, port: u16, token: &str, key: usize) -> Option<(u16, String, bool)> {
    let body = json!({"to": TO, "amount": (BASE + key as u128).to_string()});
    let r = http
        .post(format!("http://127.0.0.1:{port}/v1/transactions/send"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("ha-{key}"))
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.ok()?;
    let what = v["code"].as_str().or(v["status"].as_str()).unwrap_or("").to_string();
    Some((status, what, v["retryable"].as_bool().unwrap_or(false)))
}

/// An agent's client: its keys one after another; a 503 or no answer is retried with the same
/// key on the other replica, as the spec tells clients to.
async fn soak_client(ports: [u16; 2], token: String, keys: std::ops::Range<usize>) -> Vec<(usize, String)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut which = 0;
    let mut out = Vec::new();
    for k in keys {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "key {k} never got a final answer");
            match fire_at(&http, ports[which], &token, k).await {
                Some((429, _, _)) => tokio::time::sleep(Duration::from_secs(1)).await,
                Some((st, what, _)) if st != 503 => {
                    out.push((k, format!("{st} {what}")));
                    break;
                }
                _ => {
                    which ^= 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    out
}

const SOAK_AGENTS: usize = 8;
const SOAK_SENDS: usize = 40;
/// Each agent's session may move this much: 35 sends at most, so some of the 40 are refused.
const SOAK_CAP: u128 = 35_500_000;

// ACC-307, ACC-308: the soak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_leader_killed_at_three_points_loses_and_duplicates_nothing() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    // Who dies where: a at after_decide, then b at after_checkpoint_signed, then a (restarted)
    // at after_broadcast; each time at its 25th pass while leading.
    // What each replica is armed with at its next (re)start, by replica.
    let mut plans = [
        vec![Some("after_broadcast:25"), None].into_iter(),
        vec![Some("after_checkpoint_signed:25"), None].into_iter(),
    ];
    let a = TestDaemon::start(replica(&proxy.url, Some("after_decide:25"), None)).await;
    let mut agents = Vec::new();
    let mut tokens = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..SOAK_AGENTS {
        let (agent, _) = funded_agent(&a, &anvil.url, 10, json!({})).await;
        let s = a
            .create_session(
                agent["id"].as_str().unwrap(),
                json!({"constraints": {"maxTotalAmount": SOAK_CAP.to_string()}}),
            )
            .await;
        agents.push(agent["address"].as_str().unwrap().to_string());
        tokens.push(s["token"].as_str().unwrap().to_string());
        sessions.push(s["sessionId"].as_str().unwrap().to_string());
    }
    let env = |fp: Option<&str>| fp.map(|f| ("WAIAAS_FAILPOINT".to_string(), f.to_string())).into_iter().collect();
    let b = a.second_replica(Opts { dev: true, env: env(plans[1].next().unwrap()), ..Opts::default() }).await;
    let ports = [a.port, b.port];
    let mut replicas = [a, b];

    let clients: Vec<_> = (0..SOAK_AGENTS)
        .map(|i| tokio::spawn(soak_client(ports, tokens[i].clone(), i * SOAK_SENDS..(i + 1) * SOAK_SENDS)))
        .collect();
    let mut failovers = Vec::new();
    while !clients.iter().all(|c| c.is_finished()) {
        for i in 0..2 {
            let Some(status) = replicas[i].child.as_mut().unwrap().try_wait().unwrap() else { continue };
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "replica {i} died by its failpoint: {}", replicas[i].stderr_text());
            // The other one takes over while this one is down.
            let took = until_ready(&replicas[1 - i], Duration::from_secs(5), "takeover under load", leads).await;
            failovers.push(took.as_millis());
            crate::support::report(&format!("ACC-307: failover {} ms under load", took.as_millis()));
            let dir = std::mem::replace(&mut replicas[i].dir, tempfile::tempdir().unwrap());
            // The database goes with the daemon value that holds it (dropping it drops the database).
            let pg = replicas[i].pg.take();
            let next = plans[i].next().flatten();
            replicas[i] = TestDaemon::start_in(
                dir,
                Opts { dev: true, postgres: true, port: Some(ports[i]), env: env(next), ..Opts::default() },
            )
            .await;
            replicas[i].pg = pg;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    for c in clients {
        for (_, a) in c.await.unwrap() {
            *answers.entry(a).or_default() += 1;
        }
    }
    assert_eq!(failovers.len(), 3, "the leader died at each of the three points: {answers:?}");

    // Every key once more: a replay is the stored or recovered answer, never "in progress".
    let [a, b] = &replicas;
    let led = leader(&[a, b]).await.expect("a leader");
    let http = reqwest::Client::new();
    for k in 0..SOAK_AGENTS * SOAK_SENDS {
        let (st, what, _) = fire_at(&http, led.port, &tokens[k / SOAK_SENDS], k).await.expect("an answer");
        assert_ne!(st, 409, "key {k}: {what}");
        assert_ne!(st, 503, "key {k}: {what}");
    }
    let rows = settled_rows(led, &tokens).await;
    let landed = check_chain(&anvil.url, &agents, &rows);
    // Caps: on chain and in the sessions' usage.
    for (i, a) in agents.iter().enumerate() {
        let sent: u128 = mined_from(&anvil.url, a).iter().map(|m| m.2).sum();
        assert!(sent <= SOAK_CAP, "{a}: {sent} moved past the cap {SOAK_CAP}");
        let (st, s) = led.master("GET", &format!("/v1/sessions/{}", sessions[i]), None).await;
        assert_eq!(st, 200, "{s}");
        let used: u128 = s["usageStats"]["totalAmount"].as_str().unwrap().parse().unwrap();
        assert!(used <= SOAK_CAP, "{s}");
    }
    // The nonce table agrees with the chain.
    let db = replicas[0].pg.as_ref().unwrap();
    for a in &agents {
        let pending = hex(&rpc_blocking(&anvil.url, "eth_getTransactionCount", json!([a, "pending"])));
        let next = db.sql(&format!("SELECT next FROM evm_nonces WHERE address = '{}'", a.to_ascii_lowercase()));
        assert_eq!(next, pending.to_string(), "{a}: evm_nonces.next is the chain's pending count");
    }
    // The audit chain verifies across all four epochs, and its seq has no gap.
    let (st, v) = led.master("GET", "/v1/admin/audit-log/verify", None).await;
    assert_eq!((st, &v["valid"]), (200, &json!(true)), "{v}");
    assert_eq!(db.sql("SELECT count(*) = max(seq) AND min(seq) = 1 FROM audit_log"), "t", "seq gap-free");
    assert_eq!(db.sql("SELECT epoch FROM leader"), "4");
    eprintln!(
        "ACC-307: {} keys, {landed} landed once, none twice; failovers {failovers:?} ms; answers {answers:?}",
        SOAK_AGENTS * SOAK_SENDS
    );
}

// ACC-312: what lives in the shared database survives failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_survives_failover() {
    use crate::support::owner::{EVM_ADDR_0, EVM_KEY_0, Msg, nonce};
    let anvil = Anvil::start();
    let mut a = TestDaemon::start(replica(&anvil.url, None, None)).await;
    // b starts before the agent exists: it must find the key in the database when it leads.
    let b = a.second_replica(Opts { dev: true, ..Opts::default() }).await;
    let (agent, token) = funded_agent(&a, &anvil.url, 10, json!({"owner": EVM_ADDR_0})).await;
    let agent_id = agent["id"].as_str().unwrap().to_string();
    // a issues a SIWE nonce.
    let issued = nonce(&a).await;
    // Five wrong master passwords on a lock masterAuth.
    let wrong =
        |d: &TestDaemon| d.http.get(d.url("/v1/admin/status")).header("X-Master-Password", "not the password").send();
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(wrong(&a).await.unwrap().status().as_u16());
    }
    assert_eq!(codes, [401; 5]);
    assert_eq!(wrong(&a).await.unwrap().status().as_u16(), 429, "a locked itself");

    a.kill9();
    until_ready(&b, Duration::from_secs(5), "b leads", leads).await;
    // The agent created on a signs on b.
    let (st, body) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "777"})).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("CONFIRMED")), "{body}");
    // The lockout a started holds on b, even for the right password.
    let (st, v) = b.master("GET", "/v1/admin/status", None).await;
    assert_eq!((st, v["code"].as_str()), (429, Some("MASTER_PASSWORD_LOCKED")), "{v}");
    // a's nonce is accepted once by b.
    let mut m = Msg::new(&b, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{agent_id}"), "31337").await;
    m.nonce = issued;
    let signed = m.evm(EVM_KEY_0);
    let verify = async || b.bearer("POST", &format!("/v1/owner/agents/{agent_id}/verify"), &signed, None).await;
    let (st, v) = verify().await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = verify().await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_NONCE")), "{v}");
    // No key file on disk in either data directory.
    for d in [&a, &b] {
        let files: Vec<_> =
            std::fs::read_dir(d.dir.path().join("keystore")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(files.is_empty(), "{:?}: {files:?}", d.dir.path());
    }
    let db = a.pg.as_ref().unwrap();
    assert_eq!(db.sql("SELECT count(*) FROM keys"), "1");
    assert_eq!(db.sql("SELECT count(*) FROM keystore_master"), "1");
}

// ACC-304: `db copy` moves a redb deployment onto PostgreSQL; a second copy into the now
// non-empty target exits 1 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_a_redb_deployment_onto_postgres() {
    use crate::support::{cli, config_append, run, text};
    let anvil = Anvil::start();
    let mut d = crate::support::evm::daemon_on(&anvil.url, &[crate::support::sink::notifications_on()], false).await;
    // DELAY needs a notification channel; the sink's rows are copied too.
    let _sink = d.sink_channel().await;
    let (agent, token) = funded_agent(&d, &anvil.url, 10, json!({})).await;
    let (_, broke) = funded_agent(&d, &anvil.url, 0, json!({})).await;
    d.policy(json!({"agentId": agent["id"], "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": "1000000000000000", "notify_max": "1000000000000000", "delay_max": "10000000000000000",
        "delay_seconds": 3600, "approval_timeout": 3600}}))
        .await;
    // Rows in four statuses, and at least 200 audit rows.
    let send =
        async |t: &str, amount: &str| crate::support::api::send(&d, t, json!({"to": TO, "amount": amount})).await;
    let (st, v) = send(&broke, "1").await;
    assert!(st >= 400 || v["status"] == "FAILED", "{v}");
    let (st, queued) = send(&token, "5000000000000000").await;
    assert_eq!((st, queued["status"].as_str()), (202, Some("QUEUED")), "{queued}");
    let (st, v) = send(&token, "5000000000000001").await;
    assert_eq!(st, 202, "{v}");
    let (st, r) =
        d.master("POST", &format!("/v1/owner/reject/{}", v["transactionId"].as_str().unwrap()), Some(json!({}))).await;
    assert_eq!(st, 200, "{r}");
    for i in 0..100 {
        let (st, v) = send(&token, &(1000 + i).to_string()).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
        let (_, verify) = d.master("GET", "/v1/admin/audit-log/verify", None).await;
        if verify["headSeq"].as_u64().unwrap() >= 200 {
            break;
        }
    }
    let status = d.terminate();
    assert!(status.success());
    let source = d.store();
    let head = source.verify_audit().unwrap();
    assert!(head.valid && head.head_seq >= 200, "{head:?}");
    drop(source);

    // The target: a fresh database, migrated, then copied into.
    let db = crate::support::pg::FreshDb::new();
    let migrator = tempfile::tempdir().unwrap();
    let mut c = cli(migrator.path());
    c.args(["db", "migrate"]).env("WAIAAS_DATABASE_BACKEND", "postgres").env("WAIAAS_DATABASE_URL", &db.url);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let copy = || {
        let mut c = cli(d.dir.path());
        c.args(["db", "copy", "--to", &db.url, "--json"]);
        run(c, Duration::from_secs(120))
    };
    let out = copy();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["auditHead"]["seq"].as_u64(), report["auditHead"]["hash"].as_str()),
        (Some(head.head_seq), Some(head.head_hash.as_str())),
        "{report}"
    );
    let statuses = db.sql("SELECT string_agg(DISTINCT status, ',') FROM transactions");
    eprintln!("ACC-304: copied {report} (statuses {statuses})");
    assert_eq!(statuses, "CANCELLED,CONFIRMED,FAILED,QUEUED");
    // Again: the target is not empty now; exit 1 and nothing changes.
    let before = db.sql(
        "SELECT (SELECT count(*) FROM audit_log), (SELECT epoch FROM leader), (SELECT count(*) FROM transactions)",
    );
    let out = copy();
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("Target database is not empty"), "{}", text(&out.stderr));
    assert_eq!(
        db.sql(
            "SELECT (SELECT count(*) FROM audit_log), (SELECT epoch FROM leader), (SELECT count(*) FROM transactions)"
        ),
        before
    );

    // The same directory, now on the target.
    config_append(d.dir.path(), "database", &format!("backend = \"postgres\"\nurl = \"{}\"", db.url));
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let mut d = TestDaemon::start_in(dir, Opts { dev: true, postgres: true, ..Opts::default() }).await;
    d.pg = Some(db);
    until_ready(&d, Duration::from_secs(10), "the copy's daemon leads", leads).await;
    let (st, v) = d.master("GET", "/v1/admin/audit-log/verify", None).await;
    assert_eq!((st, &v["valid"]), (200, &json!(true)), "{v}");
    assert!(v["headSeq"].as_u64().unwrap() > head.head_seq, "the takeover appended to the copied chain: {v}");
    // The pre-copy session token works, the DELAY row still waits, and the keystore agent signs.
    let (st, row) =
        d.bearer("GET", &format!("/v1/transactions/{}", queued["transactionId"].as_str().unwrap()), &token, None).await;
    assert_eq!((st, row["status"].as_str()), (200, Some("QUEUED")), "{row}");
    let (st, v) = crate::support::api::send(&d, &token, json!({"to": TO, "amount": "4242"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let mined = mined_from(&anvil.url, agent["address"].as_str().unwrap());
    assert!(mined.iter().any(|m| m.2 == 4242), "the transfer is on chain");
}

// ACC-313: a Ledger agent is pinned to the replica whose host has the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_agent_signs_only_on_its_pinned_replica() {
    use waiaas_backends::ledger::fake::FakeDevice;
    let anvil = Anvil::start();
    let fake = FakeDevice::default();
    fake.set_bogus_v(true);
    let server = fake.serve_tcp().unwrap();
    let mut opts = replica(&anvil.url, None, None);
    opts.config
        .push(("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"\nconfirm_timeout = 10", server.address())));
    opts.config.push(crate::support::sink::notifications_on());
    let mut a = TestDaemon::start(opts).await;
    let _sink = a.sink_channel().await;
    let (agent, token) = funded_agent(&a, &anvil.url, 2, json!({"backend": "ledger"})).await;
    a.policy(json!({"agentId": agent["id"], "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": "1000000000000000", "notify_max": "1000000000000000", "delay_max": "10000000000000000",
        "delay_seconds": 60, "approval_timeout": 3600}}))
        .await;
    let (st, queued) = crate::support::api::send(&a, &token, json!({"to": TO, "amount": "5000000000000000"})).await;
    assert_eq!((st, queued["status"].as_str()), (202, Some("QUEUED")), "{queued}");
    let queued_id = queued["transactionId"].as_str().unwrap().to_string();
    let a_id = ready(&a).await.unwrap().1["replicaId"].as_str().unwrap().to_string();

    // b leads; the device would answer it too (same configuration), but the pin says no.
    let mut b = a.second_replica(Opts { dev: true, ..Opts::default() }).await;
    let db_url = a.pg.as_ref().unwrap().url.clone();
    let sql = |q: &str| crate::support::pg::psql(&db_url, q);
    assert!(a.terminate().success());
    until_ready(&b, Duration::from_secs(5), "b leads", leads).await;
    let rows_before = sql("SELECT count(*) FROM transactions");
    let (st, v) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "1000"})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["retryable"].as_bool()),
        (503, Some("SIGNER_UNAVAILABLE"), Some(true)),
        "{v}"
    );
    assert_eq!(v["details"]["pinnedReplicaId"].as_str(), Some(a_id.as_str()), "{v}");
    assert_eq!(sql("SELECT count(*) FROM transactions"), rows_before, "nothing recorded");
    // Its DELAY row is due on b's clock, and stays QUEUED.
    b.advance(120).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sql(&format!("SELECT status FROM transactions WHERE id = '{queued_id}'")), "QUEUED");
    assert!(
        fake.log().is_empty() || !fake.log().iter().any(|(_, apdu)| apdu[1] == 0x04),
        "b never asked the device to sign"
    );

    // a leads again: the row executes on the device.
    let dir = std::mem::replace(&mut a.dir, tempfile::tempdir().unwrap());
    let pg = a.pg.take();
    let mut a = TestDaemon::start_in(dir, Opts { dev: true, postgres: true, ..Opts::default() }).await;
    a.pg = pg;
    assert!(b.terminate().success());
    until_ready(&a, Duration::from_secs(5), "a leads again", leads).await;
    a.advance(120).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = sql(&format!("SELECT status FROM transactions WHERE id = '{queued_id}'"));
        if status == "CONFIRMED" {
            break;
        }
        assert!(Instant::now() < deadline, "the DELAY row is {status} on a");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (The fake device's first address is anvil's funded account, so its funding is there too.)
    let mined = mined_from(&anvil.url, agent["address"].as_str().unwrap());
    assert_eq!(mined.iter().filter(|m| m.2 == 5_000_000_000_000_000).count(), 1, "{mined:?}");
    assert!(!mined.iter().any(|m| m.2 == 1000), "the refused send never reached the chain: {mined:?}");
}

/// The node's pool: how many of `from`'s transactions are pending (ready) and queued.
fn pool_of(rpc: &str, from: &str) -> (usize, usize) {
    let content = rpc_blocking(rpc, "txpool_content", json!([]));
    let count = |part: &str| {
        content[part]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(addr, _)| addr.eq_ignore_ascii_case(from))
            .map(|(_, by_nonce)| by_nonce.as_object().map_or(0, |m| m.len()))
            .sum()
    };
    (count("pending"), count("queued"))
}

// ACC-308, with 13-postgres-ha.md §6.2 step 4: a nonce gap found at takeover gets a NOOP. The
// gap is made the one way the spec's repair is for: a transaction the node lost whose row will
// never be sent, below one the node holds back. (No API path leaves that state: a nonce is
// released only before the node took it, under the agent's execution lock; so the test drops
// the first transaction from anvil's pool and marks its row FAILED while no daemon runs.)
// The NOOP is a system 0-value self-transfer at exactly the missing nonce; it unblocks the
// held-back transaction, both are mined, `evm_nonces.next` equals the chain, and RATE_LIMIT
// does not count the NOOP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_gap_is_filled_by_a_noop_at_takeover() {
    let anvil = Anvil::start();
    let mut a = TestDaemon::start(replica(&anvil.url, None, None)).await;
    let (agent, token) = funded_agent(&a, &anvil.url, 10, json!({})).await;
    let addr = agent["address"].as_str().unwrap().to_string();
    let agent_id = agent["id"].as_str().unwrap().to_string();
    a.policy(json!({"agentId": agent_id, "type": "RATE_LIMIT", "rules": {"max_tx_per_hour": 3}})).await;
    let db_url = a.pg.as_ref().unwrap().url.clone();
    let sql = |q: &str| crate::support::pg::psql(&db_url, q);

    // Two sends reach the node's pool without being mined (nonces 0 and 1).
    rpc_blocking(&anvil.url, "evm_setAutomine", json!([false]));
    let mut senders = Vec::new();
    for amount in ["111", "222"] {
        let (http, port, token) = (a.http.clone(), a.port, token.clone());
        senders.push(tokio::spawn(async move {
            http.post(format!("http://127.0.0.1:{port}/v1/transactions/send"))
                .bearer_auth(token)
                .json(&json!({"to": TO, "amount": amount}))
                .send()
                .await
        }));
        let want = if amount == "111" { 1 } else { 2 };
        let started = Instant::now();
        while pool_of(&anvil.url, &addr).0 < want {
            assert!(started.elapsed() < Duration::from_secs(20), "send {amount} never reached the pool");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    a.kill9();
    for s in senders {
        s.abort();
    }
    // The node loses nonce 0, and its row is given up: nonce 1 is held back behind a gap.
    let content = rpc_blocking(&anvil.url, "txpool_content", json!([]));
    let mine = content["pending"].as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case(&addr)).unwrap().1;
    let (lost, held) =
        (mine["0"]["hash"].as_str().unwrap().to_string(), mine["1"]["hash"].as_str().unwrap().to_string());
    // anvil drops what depends on the lost transaction too; the node gets nonce 1 back the way
    // a peer would gossip it, from the row's signed bytes.
    rpc_blocking(&anvil.url, "anvil_dropTransaction", json!([lost]));
    let raw =
        sql("SELECT record->'metadata'->>'signedTx' FROM transactions WHERE record->'request'->>'amount' = '222'");
    rpc_blocking(&anvil.url, "eth_sendRawTransaction", json!([raw.trim()]));
    assert_eq!(pool_of(&anvil.url, &addr), (0, 1), "nonce 1 waits behind the gap");
    let edited = sql(
        "UPDATE transactions SET record = record || '{\"status\": \"FAILED\", \"error\": \"GIVEN_UP\", \"reserved_amount\": null}'::jsonb
          WHERE record->'request'->>'amount' = '111' RETURNING id",
    );
    assert_eq!(edited.lines().count(), 1, "{edited}");

    // The restarted replica takes over: recovery, resync, then the NOOP.
    let b = a.second_replica(replica(&anvil.url, None, None)).await;
    until_ready(&b, Duration::from_secs(10), "b leads", leads).await;
    assert_eq!(pool_of(&anvil.url, &addr), (2, 0), "the NOOP at 0 released nonce 1");
    rpc_blocking(&anvil.url, "evm_mine", json!([]));
    rpc_blocking(&anvil.url, "evm_setAutomine", json!([true]));

    let rows = settled_rows(&b, std::slice::from_ref(&token)).await;
    let fill = sql("SELECT id, record->>'session_id', record->>'tx_type', record->>'amount', record->>'status',
                record->'metadata'->>'nonce', record->>'tx_hash'
           FROM transactions WHERE record->'metadata'->>'nonceFill' = 'true'");
    let f: Vec<&str> = fill.split('|').collect();
    assert_eq!(f.len(), 7, "exactly one NOOP row: {fill}");
    assert_eq!(&f[1..6], ["", "TRANSFER", "0", "CONFIRMED", "0"], "no session, 0, confirmed, nonce 0: {fill}");
    let noop_hash = f[6].trim().to_ascii_lowercase();
    let mined = mined_from(&anvil.url, &addr);
    let by_nonce: BTreeMap<u64, &(String, u64, u128)> = mined.iter().map(|m| (m.1, m)).collect();
    assert_eq!(by_nonce.keys().copied().collect::<Vec<_>>(), [0, 1], "{mined:?}");
    assert_eq!((&by_nonce[&0].0, by_nonce[&0].2), (&noop_hash, 0), "nonce 0 is the NOOP");
    let noop_tx = rpc_blocking(&anvil.url, "eth_getTransactionByHash", json!([noop_hash]));
    assert!(noop_tx["to"].as_str().unwrap().eq_ignore_ascii_case(&addr), "a self-transfer: {noop_tx}");
    assert_eq!(by_nonce[&1].0, held.to_ascii_lowercase(), "nonce 1 is the held-back send");
    assert!(!mined.iter().any(|m| m.0 == lost.to_ascii_lowercase()), "the lost one never lands");
    let held_row = rows.iter().find(|r| r["amount"] == "222").expect("the held-back row");
    assert_eq!(held_row["status"], "CONFIRMED", "{held_row}");
    let next = sql(&format!("SELECT next FROM evm_nonces WHERE address = '{}'", addr.to_ascii_lowercase()));
    let pending = hex(&rpc_blocking(&anvil.url, "eth_getTransactionCount", json!([addr, "pending"])));
    assert_eq!((next.trim(), pending), ("2", 2), "evm_nonces.next equals the chain's pending count");
    let audited = |event: &str| sql(&format!("SELECT record->>'actor' FROM audit_log WHERE event_type = '{event}'"));
    assert_eq!(audited("NONCE_GAP_FILLED").trim(), "system");
    assert!(!audited("NONCE_RESYNCED").trim().is_empty(), "the resync that found the gap is audited");

    // RATE_LIMIT (3 an hour) counts the two sends, not the NOOP: one more passes, then no more.
    let (st, v) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "333"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "the NOOP is not counted: {v}");
    let (st, v) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "444"})).await;
    assert_eq!((st, v["code"].as_str()), (429, Some("RATE_LIMIT_EXCEEDED")), "{v}");
    println!("NOOP {noop_hash} filled nonce 0; held-back {held} mined at 1");
}

// 13-postgres-ha.md §6.2 step 4: an account whose node cannot be read at takeover is not
// resynced, and its sends get 503 ADAPTER_NOT_AVAILABLE, recording nothing, until a resync
// succeeds; the first send after the node answers again resyncs and goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_the_takeover_could_not_resync_waits_for_its_node() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let mut a = TestDaemon::start(replica(&proxy.url, None, None)).await;
    let (agent, token) = funded_agent(&a, &anvil.url, 10, json!({})).await;
    let addr = agent["address"].as_str().unwrap().to_string();
    let (st, v) = crate::support::api::send(&a, &token, json!({"to": TO, "amount": "5"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let db = a.pg.as_ref().unwrap().url.clone();
    let rows = || crate::support::pg::psql(&db, "SELECT count(*) FROM transactions");

    // The node stops answering nonce reads; the leader dies; b takes over without a resync.
    proxy.fail("eth_getTransactionCount", 1_000_000, -32603, "the node is down");
    let b = a.second_replica(replica(&proxy.url, None, None)).await;
    a.kill9();
    until_ready(&b, Duration::from_secs(10), "b leads", leads).await;
    let before = rows();
    let (st, v) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "6"})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["retryable"].as_bool()),
        (503, Some("ADAPTER_NOT_AVAILABLE"), Some(true)),
        "{v}"
    );
    assert_eq!(v["details"]["transactionId"], Value::Null, "{v}");
    assert_eq!(rows(), before, "nothing recorded");

    proxy.clear();
    let (st, v) = crate::support::api::send(&b, &token, json!({"to": TO, "amount": "7"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let nonces: Vec<u64> = mined_from(&anvil.url, &addr).iter().map(|m| m.1).collect();
    assert_eq!(nonces, [0, 1]);
}
