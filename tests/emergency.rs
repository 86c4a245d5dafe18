//! The emergency controls (issue #14, 08-killswitch-autostop.md) against real nodes: the kill
//! switch under load, concurrent activations, two-step recovery with independent owner
//! signatures (eth-account, the fake Ledger through the CLI), restarts while not NORMAL,
//! withdraw on anvil and surfnet-local, AutoStop and bad input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use waiaas_storage::{AgentStatus, TxStatus};

use crate::support::api::{ETH, code, id, wait_agent};
use crate::support::evm::{balance, cast_out, deploy_token, nonce};
use crate::support::nodes::{Anvil, Surfnet};
use crate::support::owner::{EVM_ADDR_0, EVM_KEY_0, EVM_KEY_1, Msg, daemon_now, sol_owner};
use crate::support::rpc_proxy::RpcProxy;
use crate::support::{Opts, TestDaemon, run, text};

async fn activate(d: &TestDaemon, reason: &str) -> (u16, Value) {
    d.master("POST", "/v1/admin/kill-switch", Some(json!({"reason": reason}))).await
}

async fn ks(d: &TestDaemon) -> Value {
    let (st, v) = d.master("GET", "/v1/admin/kill-switch", None).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn recover(d: &TestDaemon, password: Option<&str>, owner: Option<&str>) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(p) = password {
        headers.push(("X-Master-Password", p.to_string()));
    }
    if let Some(o) = owner {
        headers.push(("Authorization", format!("Bearer {o}")));
    }
    d.call("POST", "/v1/admin/recover", &headers, Some(json!({}))).await
}

/// Both recovery steps for a daemon with no owner anywhere (the 86,400 s wait on the dev clock).
async fn recover_without_owner(d: &TestDaemon) -> Value {
    let (st, v) = recover(d, Some(d.password()), None).await;
    assert_eq!((st, v["waitSeconds"].as_u64()), (202, Some(86_400)), "{v}");
    d.advance(86_401).await;
    let (st, v) = recover(d, Some(d.password()), None).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// The `recover` message for the owner, with the kill-switch status's recovery nonce (the
/// guard refuses `/v1/nonce` while the switch is on).
async fn recover_msg(d: &TestDaemon, chain: &str, owner: &str, chain_id: &str) -> Msg {
    let status = ks(d).await;
    let now = daemon_now(d).await;
    Msg {
        domain: format!("127.0.0.1:{}", d.port),
        account: if chain == "solana" { "Solana" } else { "Ethereum" },
        address: owner.into(),
        action: "recover".into(),
        target: "system".into(),
        chain_id: chain_id.into(),
        nonce: status["recoveryNonce"]["nonce"].as_str().unwrap().to_string(),
        issued_at: crate::support::owner::iso(now),
        expires: crate::support::owner::iso(now + 300),
        summary: None,
    }
}

async fn counters(d: &TestDaemon) -> (u64, u64) {
    let (_, s) = d.master("GET", "/v1/admin/status", None).await;
    (s["resources"]["argon2Runs"].as_u64().unwrap(), s["resources"]["keyDecryptions"].as_u64().unwrap())
}

/// Whether the delay-queue and approval-timeout workers exist (`/v1/admin/status` lists the
/// workers that were started).
async fn queue_workers(d: &TestDaemon) -> (bool, bool) {
    let (_, s) = d.master("GET", "/v1/admin/status", None).await;
    let w = s["workers"].as_object().expect("a worker map");
    (w.contains_key("delay-queue"), w.contains_key("approval-timeout"))
}

/// An EVM agent whose owner (anvil's account 0) is verified (LOCKED) with eth-account.
async fn locked_evm_agent(d: &TestDaemon, rpc: &str, eth: u128) -> Value {
    let a = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
    let m = Msg::new(d, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{}", id(&a)), "31337").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.evm(EVM_KEY_0), None).await;
    assert_eq!(st, 200, "{v}");
    if eth > 0 {
        crate::support::nodes::rpc_blocking(
            rpc,
            "anvil_setBalance",
            json!([a["address"].as_str().unwrap(), format!("0x{:x}", eth * ETH)]),
        );
    }
    a
}

async fn session(d: &TestDaemon, agent: &Value) -> String {
    d.create_session(&id(agent), json!({})).await["token"].as_str().unwrap().to_string()
}

fn restart_dir(d: &mut TestDaemon) -> tempfile::TempDir {
    d.terminate();
    std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap())
}

// ACC-206, ACC-207: activation under load on anvil. Eight clients send INSTANT transfers (the
// node's broadcast answer delayed 300 ms, so signed rows are in flight) while 50 DELAY and
// APPROVAL rows wait; then the switch is activated. Afterwards every session is revoked,
// every queued row is CANCELLED with its reservation released, every agent is suspended, and
// the chain holds exactly the rows that were signed: each signed row landed, nothing unsigned
// did, and a row that reached the signing step after the commit failed KEYSTORE_LOCKED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_under_load_cancels_queued_work_and_signs_nothing_after_it() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let d = Arc::new(
        crate::support::evm::daemon(
            &proxy.url,
            &[("security", "max_pending_tx = 100".into()), crate::support::sink::notifications_on()],
        )
        .await,
    );
    let _sink = d.sink_channel().await;
    d.allow_hourly(100_000).await;
    let queued_agent = locked_evm_agent(&d, &anvil.url, 10).await;
    d.policy(json!({"agentId": id(&queued_agent), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": "0", "notify_max": "0", "delay_max": "1000000", "delay_seconds": 3600, "approval_timeout": 3600}}))
        .await;
    let qt = session(&d, &queued_agent).await;
    for i in 0..50 {
        let amount = if i % 2 == 0 { "1000" } else { "2000000" };
        let (st, v) = crate::support::api::send(
            &d,
            &qt,
            json!({"to": "0x000000000000000000000000000000000000dEaD", "amount": amount}),
        )
        .await;
        assert_eq!((st, v["status"].as_str()), (202, Some("QUEUED")), "{v}");
    }
    let mut clients = Vec::new();
    for _ in 0..8 {
        let a = locked_evm_agent(&d, &anvil.url, 10).await;
        let t = session(&d, &a).await;
        clients.push((a, t));
    }
    proxy.delay("eth_sendRawTransaction", Duration::from_millis(300));
    let mut tasks = Vec::new();
    for (_, t) in clients.clone() {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            loop {
                let (st, v) = crate::support::api::send(
                    &d,
                    &t,
                    json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}),
                )
                .await;
                if st != 200 {
                    return (ok, st, v);
                }
                ok += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    let (st, v) = activate(&d, "load test").await;
    let response_ms = started.elapsed().as_millis();
    assert_eq!(st, 200, "{v}");
    assert!(v["transactionsCancelled"].as_u64().unwrap() >= 50, "{v}");
    assert_eq!(v["agentsSuspended"], 9, "{v}");
    assert_eq!(v["sessionsRevoked"].as_u64().unwrap(), 9, "one session per agent: {v}");
    crate::support::report(&format!(
        "kill switch under load: response {response_ms} ms, cascade {} ms, {} rows cancelled",
        v["cascadeDurationMs"], v["transactionsCancelled"]
    ));
    let mut sent = 0;
    for t in tasks {
        let (ok, st, v) = t.await.unwrap();
        assert!(
            (st == 401 && code(&v) == Some("SESSION_REVOKED"))
                || (st == 503 && code(&v) == Some("SYSTEM_LOCKED"))
                || code(&v) == Some("KEYSTORE_LOCKED")
                || code(&v) == Some("KILL_SWITCH"),
            "a client stopped with {st} {v}"
        );
        sent += ok;
    }
    // Signed rows still in the proxy's delay land; then the database is the witness.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health: Value = d.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "locked");
    let mut d = Arc::try_unwrap(d).ok().expect("no other handle");
    d.terminate();
    let store = d.store();
    let agents = store.list_agents().unwrap();
    assert!(agents.iter().all(
        |a| a.status == AgentStatus::Suspended && a.suspension_reason.as_deref() == Some("KILL_SWITCH: load test")
    ));
    let sessions = store.list_sessions(None).unwrap();
    assert!(sessions.iter().all(|s| s.revoked_at.is_some()), "every session revoked");
    let (rows, _) =
        store.list_transactions(queued_agent["id"].as_str().unwrap().parse().unwrap(), None, None, 100, false).unwrap();
    assert_eq!(rows.len(), 50);
    for r in &rows {
        assert_eq!((r.status, r.error.as_deref(), r.reserved_amount), (TxStatus::Cancelled, Some("KILL_SWITCH"), None));
    }
    let mut landed_total = 0;
    for (a, _) in &clients {
        let (rows, _) =
            store.list_transactions(a["id"].as_str().unwrap().parse().unwrap(), None, None, 100, false).unwrap();
        let signed: Vec<_> = rows.iter().filter(|r| r.metadata.contains_key("signedTx")).collect();
        for r in &rows {
            match r.status {
                TxStatus::Confirmed => assert!(r.metadata.contains_key("signedTx")),
                TxStatus::Cancelled => assert_eq!((r.error.as_deref(), r.reserved_amount), (Some("KILL_SWITCH"), None)),
                TxStatus::Failed => {
                    assert_eq!(r.error.as_deref(), Some("KEYSTORE_LOCKED"), "{r:?}");
                    assert!(!r.metadata.contains_key("signedTx"), "a failed row was never signed");
                }
                s => panic!("{} left {s}", r.id),
            }
        }
        assert!(signed.iter().all(|r| r.status == TxStatus::Confirmed), "every signed row landed");
        let on_chain = nonce(&anvil.url, a["address"].as_str().unwrap());
        assert_eq!(on_chain, signed.len() as u64, "the chain holds exactly the signed rows");
        landed_total += on_chain;
    }
    assert!(landed_total >= sent as u64 && sent > 0, "{landed_total} landed, {sent} answered 200");
    crate::support::report(&format!(
        "kill switch under load: {sent} INSTANT sends answered before, {landed_total} landed"
    ));
}

// Issue #21 crash matrix, the kill switch: ten times, while four clients send INSTANT transfers
// (the node's broadcast answer delayed, so signed rows are in flight) and three DELAY rows wait,
// the switch is activated into a daemon armed to SIGKILL itself right after the activation and
// its cascade commit (`WAIAAS_FAILPOINT=after_kill_switch`). The restart comes up ACTIVATED
// (restricted), and the owner-less two-step recovery brings it back. At the end, with every row
// settled: every queued row was CANCELLED by the cascade and never reached the chain, every row
// that was signed landed exactly once (nonces = signed rows), no row is left non-final, every
// transaction the node holds is in the database, and the audit chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_inside_kill_switch_activations_lose_nothing() {
    use std::os::unix::process::ExitStatusExt;
    const QUEUE_TO: &str = "0x000000000000000000000000000000000000dEaD";
    const SEND_TO: &str = "0x000000000000000000000000000000000000f00d";
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let o = |failpoint: Option<&str>| {
        let mut o = crate::support::evm::opts(&anvil, &[]);
        o.config = vec![
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", proxy.url)),
            ("security", "rate_limit_tx_rpm = 100\nmax_pending_tx = 100".to_string()),
            crate::support::sink::notifications_on(),
        ];
        o.env = failpoint.map(|f| ("WAIAAS_FAILPOINT".to_string(), f.to_string())).into_iter().collect();
        o
    };
    let mut d = TestDaemon::start(o(None)).await;
    let _sink = d.sink_channel().await;
    let (queued_agent, _) = crate::support::evm::funded_agent(&d, &anvil.url, 10, json!({})).await;
    d.policy(json!({"agentId": id(&queued_agent), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": "0", "notify_max": "0", "delay_max": "1000000", "delay_seconds": 3600,
        "approval_timeout": 3600}}))
        .await;
    let (sender, _) = crate::support::evm::funded_agent(&d, &anvil.url, 10, json!({})).await;
    proxy.delay("eth_sendRawTransaction", Duration::from_millis(150));
    let mut queued = Vec::new();
    for round in 0..10 {
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        d.kill9();
        d = TestDaemon::start_in(dir, o(Some("after_kill_switch"))).await;
        // Sessions do not survive an activation: fresh ones each round.
        let qt = session(&d, &queued_agent).await;
        for _ in 0..3 {
            let (st, v) = crate::support::api::send(&d, &qt, json!({"to": QUEUE_TO, "amount": "1000"})).await;
            assert_eq!((st, v["status"].as_str()), (202, Some("QUEUED")), "round {round}: {v}");
            queued.push(v["transactionId"].as_str().unwrap().to_string());
        }
        let st = session(&d, &sender).await;
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (http, url, t) = (d.http.clone(), d.url("/v1/transactions/send"), st.clone());
                tokio::spawn(async move {
                    // Until the daemon dies under it.
                    while let Ok(r) =
                        http.post(&url).bearer_auth(&t).json(&json!({"to": SEND_TO, "amount": "1"})).send().await
                    {
                        let _ = r.bytes().await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let activation = d
            .http
            .post(d.url("/v1/admin/kill-switch"))
            .header("X-Master-Password", d.password())
            .json(&json!({"reason": format!("crash round {round}")}))
            .send();
        let answered = tokio::spawn(activation);
        let status = d.wait_exit(Duration::from_secs(60)).expect("the activation reached the failpoint");
        assert_eq!(status.signal(), Some(9));
        assert!(answered.await.unwrap().is_err(), "round {round}: the daemon died before it answered");
        for s in senders {
            s.await.unwrap();
        }
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        d = TestDaemon::start_in(dir, o(None)).await;
        assert_eq!(ks(&d).await["status"], "ACTIVATED", "round {round}: the activation was durable");
        recover_without_owner(&d).await;
    }
    proxy.clear();
    // Let the confirmation worker settle whatever was in flight.
    let st = session(&d, &sender).await;
    let mut settled = false;
    for _ in 0..60 {
        let (_, v) = d.bearer("GET", "/v1/transactions?limit=100&status=SUBMITTED", &st, None).await;
        if v["transactions"].as_array().is_some_and(Vec::is_empty) {
            settled = true;
            break;
        }
        d.advance(11).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(settled, "SUBMITTED rows never settled");
    let (st, v) = d.master("GET", "/v1/admin/audit-log/verify", None).await;
    assert_eq!((st, &v["valid"]), (200, &json!(true)), "{v}");
    d.terminate();
    let store = d.store();
    let (qrows, _) = store.list_transactions(id(&queued_agent).parse().unwrap(), None, None, 1000, false).unwrap();
    assert_eq!(qrows.len(), queued.len());
    for r in &qrows {
        assert_eq!((r.status, r.error.as_deref(), r.reserved_amount), (TxStatus::Cancelled, Some("KILL_SWITCH"), None));
    }
    assert_eq!(balance(&anvil.url, QUEUE_TO), 0, "no queued row reached the chain");
    let (rows, _) = store.list_transactions(id(&sender).parse().unwrap(), None, None, 10_000, false).unwrap();
    let signed: Vec<_> = rows.iter().filter(|r| r.metadata.contains_key("signedTx")).collect();
    for r in &rows {
        assert!(r.status.is_terminal(), "{} left {:?}", r.id, r.status);
    }
    assert!(signed.iter().all(|r| r.status == TxStatus::Confirmed), "every signed row landed");
    let landed = nonce(&anvil.url, sender["address"].as_str().unwrap());
    assert_eq!(landed, signed.len() as u64, "the chain holds exactly the signed rows, once each");
    assert_eq!(balance(&anvil.url, SEND_TO), landed as u128);
    let hashes: std::collections::HashSet<String> =
        rows.iter().filter_map(|r| r.tx_hash.as_deref()).map(str::to_ascii_lowercase).collect();
    for h in proxy.held_by(&anvil.url) {
        assert!(hashes.contains(&h), "the node holds {h}, the database does not");
    }
    assert!(landed >= 10, "transfers were in flight in the rounds: {landed} landed");
}

// ACC-208: of 20 concurrent activations exactly one succeeds; the others get 409
// KILL_SWITCH_ACTIVE (passed the guard before it switched on) or 503 SYSTEM_LOCKED. 100 runs,
// each followed by a full recovery on the dev clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_twenty_concurrent_activations_exactly_one_succeeds() {
    let d = Arc::new(TestDaemon::start(Opts { dev: true, ..Opts::default() }).await);
    d.create_agent(json!({"name": "race"})).await;
    let (mut conflicts, mut locked) = (0, 0);
    for run in 0..100 {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move { activate(&d, &format!("run {run} caller {i}")).await }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                (200, _) => wins += 1,
                (409, v) if code(&v) == Some("KILL_SWITCH_ACTIVE") => conflicts += 1,
                (503, v) if code(&v) == Some("SYSTEM_LOCKED") => locked += 1,
                (st, v) => panic!("run {run}: {st} {v}"),
            }
        }
        assert_eq!(wins, 1, "run {run}");
        recover_without_owner(&d).await;
        // The audit log is outside the guard's allow-list: read after recovery.
        assert_eq!(d.audit_all("KILL_SWITCH_ACTIVATED").await.len(), run + 1, "one cascade per run");
    }
    crate::support::report(&format!(
        "20 concurrent activations x 100 runs: 100 won, {conflicts} got 409, {locked} got 503"
    ));
}

// ACC-209, ACC-211, ACC-212, ACC-213, ACC-214, ACC-215, ACC-216, ACC-217: recovery end to end
// with an eth-account owner signature on anvil: recover in NORMAL is 409; the guard's
// allow-list; step 1 without a signature is 403, with one 202 and 1,800 s; step 2 early is
// 409 with the remaining seconds; a wrong password rolls back to ACTIVATED; afterwards only
// the KILL_SWITCH-suspended agents are active again, old sessions stay revoked, and a new
// session signs and lands. Then five wrong passwords lock recovery out for 30 minutes, across a
// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_end_to_end_with_an_eth_account_owner() {
    let anvil = Anvil::start();
    let o = crate::support::evm::opts(&anvil, &[]);
    let mut d = TestDaemon::start(o.clone()).await;
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, code(&v)), (409, Some("KILL_SWITCH_NOT_ACTIVE")), "{v}");
    let owned = locked_evm_agent(&d, &anvil.url, 5).await;
    let manual = d.create_agent(json!({"chain": "ethereum", "name": "manual"})).await;
    assert_eq!(d.master("POST", &format!("/v1/agents/{}/suspend", id(&manual)), Some(json!({}))).await.0, 200);
    let old_session = session(&d, &owned).await;
    let (st, v) = d.master("POST", "/v1/owner/kill-switch", Some(json!({"reason": "owner pressed it"}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ks(&d).await["actor"], "owner");

    // The guard (ACC-209).
    for (m, p) in [("POST", "/v1/sessions"), ("POST", "/v1/agents"), ("GET", "/v1/nonce")] {
        let (st, v) = d.master(m, p, Some(json!({}))).await;
        assert_eq!((st, code(&v)), (503, Some("SYSTEM_LOCKED")), "{m} {p}: {v}");
    }
    let (st, v) = d.bearer("GET", "/v1/wallet/balance", &old_session, None).await;
    assert_eq!((st, code(&v)), (503, Some("SYSTEM_LOCKED")), "{v}");
    let (st, v) = activate(&d, "again").await;
    assert_eq!((st, code(&v)), (503, Some("SYSTEM_LOCKED")), "{v}");
    let h: Value = d.get("/health").await.json().await.unwrap();
    assert_eq!(h["status"], "locked");
    assert_eq!(d.master("GET", "/v1/admin/status", None).await.0, 200);

    // Step 1 (ACC-212): an owner exists, so a `recover` signature is required.
    let status = ks(&d).await;
    assert_eq!(status["owners"][0]["address"], EVM_ADDR_0, "{status}");
    assert_eq!(status["owners"][0]["chainIds"][0], "31337", "{status}");
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_AUTH_REQUIRED")), "{v}");
    // A signature by someone else, or for another action, changes nothing.
    let m = recover_msg(&d, "ethereum", EVM_ADDR_0, "31337").await;
    let (st, v) =
        recover(&d, Some(d.password()), Some(&m.payload(&crate::support::owner::evm_sign(EVM_KEY_1, &m.text())))).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_SIGNATURE")), "{v}");
    let mut wrong_action = recover_msg(&d, "ethereum", EVM_ADDR_0, "31337").await;
    wrong_action.action = "approve_tx".into();
    let (st, v) = recover(&d, Some(d.password()), Some(&wrong_action.evm(EVM_KEY_0))).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_ACTION_MISMATCH")), "{v}");
    assert_eq!(ks(&d).await["status"], "ACTIVATED");
    // The password from the body when the header is absent (ACC-217).
    let m = recover_msg(&d, "ethereum", EVM_ADDR_0, "31337").await;
    let (st, v) = d
        .call(
            "POST",
            "/v1/admin/recover",
            &[("Authorization", format!("Bearer {}", m.evm(EVM_KEY_0)))],
            Some(json!({"masterPassword": d.password()})),
        )
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["waitSeconds"].as_u64(), v["hasOwner"].as_bool()),
        (202, Some("RECOVERING"), Some(1800), Some(true)),
        "{v}"
    );
    // The same signed message again: the nonce is spent.
    let (st, _) = recover(&d, Some(d.password()), Some(&m.evm(EVM_KEY_0))).await;
    assert_ne!(st, 200);

    // Step 2 early (ACC-213), then a wrong password rolls back (ACC-215).
    d.advance(1000).await;
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, code(&v)), (409, Some("RECOVERY_WAIT_REQUIRED")), "{v}");
    let remaining = v["details"]["remainingSeconds"].as_u64().unwrap();
    assert!((795..=800).contains(&remaining), "{v}");
    let (st, v) = recover(&d, Some("not the password"), None).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_MASTER_PASSWORD")), "{v}");
    assert_eq!(ks(&d).await["status"], "ACTIVATED", "rolled back");
    // Start again and finish.
    let m = recover_msg(&d, "ethereum", EVM_ADDR_0, "31337").await;
    assert_eq!(recover(&d, Some(d.password()), Some(&m.evm(EVM_KEY_0))).await.0, 202);
    d.advance(1801).await;
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, v["recovered"].as_bool(), v["agentsReactivated"].as_u64()), (200, Some(true), Some(1)), "{v}");
    assert_eq!(d.audit("KILL_SWITCH_RECOVERY_FAILED").await.len(), 1);

    // ACC-214.
    let (_, a) = d.master("GET", &format!("/v1/agents/{}", id(&owned)), None).await;
    assert_eq!(a["status"], "ACTIVE");
    let (_, m) = d.master("GET", &format!("/v1/agents/{}", id(&manual)), None).await;
    assert_eq!(m["status"], "SUSPENDED", "a manual suspension stays");
    let (st, v) = d.bearer("GET", "/v1/wallet/balance", &old_session, None).await;
    assert_eq!((st, code(&v)), (401, Some("SESSION_REVOKED")));
    let t = session(&d, &owned).await;
    let (st, v) =
        crate::support::api::send(&d, &t, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "7"}))
            .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "signing works again: {v}");
    assert_eq!(balance(&anvil.url, "0x000000000000000000000000000000000000bEEF") % 1000, 7);

    // ACC-216: five wrong passwords, then 429 for 30 minutes, also after a restart.
    assert_eq!(activate(&d, "lockout").await.0, 200);
    for i in 0..5 {
        let (st, v) = recover(&d, Some("wrong"), None).await;
        assert_eq!((st, code(&v)), (401, Some("INVALID_MASTER_PASSWORD")), "attempt {i}: {v}");
    }
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, code(&v)), (429, Some("TOO_MANY_ATTEMPTS")), "{v}");
    let lockout_until = |v: Value| {
        chrono::DateTime::parse_from_rfc3339(v["recovery"]["lockoutUntil"].as_str().unwrap()).unwrap().timestamp()
    };
    let lockout = lockout_until(ks(&d).await) - daemon_now(&d).await;
    assert!((1790..=1800).contains(&lockout), "30 minutes: {lockout}");
    let dir = restart_dir(&mut d);
    // The restarted daemon's dev clock starts without the offset the first one had.
    let d = TestDaemon::start_in(dir, o).await;
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, code(&v)), (429, Some("TOO_MANY_ATTEMPTS")), "the lockout is stored: {v}");
    let lockout = lockout_until(ks(&d).await) - daemon_now(&d).await;
    d.advance((lockout - 10) as u64).await;
    assert_eq!(recover(&d, Some(d.password()), None).await.0, 429, "still locked 10 s before the end");
    d.advance(11).await;
    let m = recover_msg(&d, "ethereum", EVM_ADDR_0, "31337").await;
    assert_eq!(recover(&d, Some(d.password()), Some(&m.evm(EVM_KEY_0))).await.0, 202, "after the lockout");
}

// ACC-210: restarts during ACTIVATED and during RECOVERING start restricted: the password is
// verified (one Argon2id run), no key file is decrypted (the counters of /v1/admin/status) and
// no DELAY or approval worker runs; then recovery still works and unlocks the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_not_normal_is_restricted_and_recovery_still_works() {
    let anvil = Anvil::start();
    let o = crate::support::evm::opts(&anvil, &[]);
    let mut d = TestDaemon::start(o.clone()).await;
    for i in 0..3 {
        d.create_agent(json!({"name": format!("k{i}"), "chain": "ethereum"})).await;
    }
    let dir = restart_dir(&mut d);
    let mut d = TestDaemon::start_in(dir, o.clone()).await;
    assert_eq!(counters(&d).await, (1, 3), "a normal start: one Argon2id run, three keys decrypted");
    assert_eq!(queue_workers(&d).await, (true, true), "a normal start runs the DELAY and approval workers");
    assert_eq!(activate(&d, "restart test").await.0, 200);
    let dir = restart_dir(&mut d);
    let mut d = TestDaemon::start_in(dir, o.clone()).await;
    // 01-daemon.md §6: a restricted start verifies the password (one Argon2id run) and
    // decrypts no key file.
    assert_eq!(counters(&d).await, (1, 0), "restricted start: password verified, nothing decrypted");
    assert_eq!(queue_workers(&d).await, (false, false), "no DELAY or approval worker in restricted mode");
    assert!(d.stdout_text().contains("restricted") || d.stderr_text().contains("restricted"));
    assert_eq!(ks(&d).await["status"], "ACTIVATED");
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!(st, 202, "{v}");
    let dir = restart_dir(&mut d);
    let d = TestDaemon::start_in(dir, o).await;
    assert_eq!(counters(&d).await, (1, 0), "restricted in RECOVERING too");
    assert_eq!(queue_workers(&d).await, (false, false));
    assert_eq!(ks(&d).await["status"], "RECOVERING");
    d.advance(86_401).await;
    let (st, v) = recover(&d, Some(d.password()), None).await;
    assert_eq!((st, v["agentsReactivated"].as_u64()), (200, Some(3)), "{v}");
    let (_, decrypted) = counters(&d).await;
    assert_eq!(decrypted, 3, "step 2 decrypted the three keys");
    assert_eq!(queue_workers(&d).await, (true, true), "recovery started the execution workers");
    let (st, v) = d.master("POST", "/v1/agents", Some(json!({"name": "after", "chain": "ethereum"}))).await;
    assert_eq!(st, 201, "{v}");
}

// ACC-212 through the CLI: `waiaas kill-switch recover --ledger` signs the `recover` message on
// the fake Ledger (the owner's key), prints the wait, and the second call completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_recovery_with_the_owner_on_a_ledger() {
    let anvil = Anvil::start();
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let ledger = ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", server.address()));
    let d = TestDaemon::start(crate::support::evm::opts(&anvil, &[ledger])).await;
    assert_eq!(fake.eth_address("44'/60'/0'/0/0"), EVM_ADDR_0);
    locked_evm_agent(&d, &anvil.url, 0).await;
    let cli = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        run(c, Duration::from_secs(60))
    };
    let out = cli(&["kill-switch", "activate", "--reason", "cli test"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = cli(&["kill-switch", "status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((status["status"].as_str(), status["actor"].as_str()), (Some("ACTIVATED"), Some("admin")));
    let before = fake.signatures();
    let out = cli(&["kill-switch", "recover", "--ledger"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("1800 s"), "{}", text(&out.stdout));
    assert_eq!(fake.signatures(), before + 1, "the device signed once");
    d.advance(1801).await;
    let out = cli(&["kill-switch", "recover", "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((done["recovered"].as_bool(), done["agentsReactivated"].as_u64()), (Some(true), Some(1)));
    // Recover in NORMAL through the CLI: exit 1 with the code.
    let out = cli(&["kill-switch", "recover"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("KILL_SWITCH_NOT_ACTIVE"), "{}", text(&out.stderr));
}

/// Gas paid by the transactions `hashes` (receipts from anvil).
fn gas_paid(rpc: &str, hashes: &[Value]) -> u128 {
    hashes
        .iter()
        .map(|h| {
            let r: Value =
                serde_json::from_str(&cast_out(&["receipt", h.as_str().unwrap(), "--json", "--rpc-url", rpc])).unwrap();
            let hex = |f: &str| u128::from_str_radix(r[f].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
            hex("gasUsed") * hex("effectiveGasPrice")
        })
        .sum()
}

fn token_balance(rpc: &str, token: &str, addr: &str) -> u128 {
    let out = cast_out(&["call", token, "balanceOf(address)(uint256)", addr, "--rpc-url", rpc]);
    out.split_whitespace().next().unwrap().parse().unwrap()
}

// ACC-218, ACC-219 on anvil: withdraw during ACTIVATED decrypts only that agent's key with the
// request's password and moves the ETH (minus the fees paid, to the last wei) and the named
// ERC-20 in full to the owner; GRACE owner 403, no owner 404; a token transfer the node refuses gives 207 with
// that entry while the native part still moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_on_anvil_moves_exact_balances_and_reports_partial_failures() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let token = deploy_token(&anvil.url);
    let d = crate::support::evm::daemon(&proxy.url, &[]).await;
    let owner_before = balance(&anvil.url, EVM_ADDR_0);
    let a = locked_evm_agent(&d, &anvil.url, 3).await;
    let b = locked_evm_agent(&d, &anvil.url, 2).await;
    let grace = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
    let none = d.create_agent(json!({"chain": "ethereum"})).await;
    for x in [&a, &b] {
        let addr = x["address"].as_str().unwrap();
        cast_out(&[
            "send",
            "--rpc-url",
            &anvil.url,
            "--private-key",
            EVM_KEY_0,
            &token,
            "mint(address,uint256)",
            addr,
            "5000000",
        ]);
    }
    let owner_after_setup = balance(&anvil.url, EVM_ADDR_0);
    assert!(owner_after_setup < owner_before);
    assert_eq!(activate(&d, "withdraw test").await.0, 200);
    let (_, decrypted_before) = counters(&d).await;
    let body = json!({"tokens": [token]});
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&grace)), Some(body.clone())).await;
    assert_eq!((st, code(&v)), (403, Some("WITHDRAW_LOCKED_ONLY")), "{v}");
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&none)), Some(body.clone())).await;
    assert_eq!((st, code(&v)), (404, Some("NO_OWNER")), "{v}");
    let (st, v) = d
        .call(
            "POST",
            &format!("/v1/owner/agents/{}/withdraw", id(&a)),
            &[("X-Master-Password", "wrong".into())],
            Some(body.clone()),
        )
        .await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_MASTER_PASSWORD")), "{v}");

    let me = a["address"].as_str().unwrap();
    let agent_eth = balance(&anvil.url, me);
    let owner_eth = balance(&anvil.url, EVM_ADDR_0);
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&a)), Some(body.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(counters(&d).await.1 - decrypted_before, 1, "only this agent's key was decrypted");
    let hashes = v["txHashes"].as_array().unwrap().clone();
    assert_eq!(hashes.len(), 2, "{v}");
    let fees = gas_paid(&anvil.url, &hashes);
    let native: u128 = v["nativeRecovered"].as_str().unwrap().parse().unwrap();
    assert_eq!(balance(&anvil.url, EVM_ADDR_0) - owner_eth, native, "the owner got exactly nativeRecovered");
    assert_eq!(agent_eth, native + fees + balance(&anvil.url, me), "the agent paid only fees beyond it");
    // Issue #22: the native transfer is priced as a sweep (gas limit = its estimate, the whole
    // max fee as the price), so nothing is left behind — before, 2,100 × maxFeePerGas stayed.
    assert_eq!(balance(&anvil.url, me), 0, "the withdrawal emptied the account");
    assert_eq!(token_balance(&anvil.url, &token, me), 0);
    assert_eq!(token_balance(&anvil.url, &token, EVM_ADDR_0), 5_000_000);
    assert_eq!(v["tokensRecovered"][0]["amount"], "5000000");

    // Partial: the node refuses the first broadcast (the token transfer).
    proxy.fail("eth_sendRawTransaction", 1, -32000, "refused by the test node");
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&b)), Some(body)).await;
    assert_eq!(st, 207, "{v}");
    assert_eq!(v["failed"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["failed"][0]["mint"].as_str().unwrap().eq_ignore_ascii_case(&token), "{v}");
    assert_eq!(token_balance(&anvil.url, &token, b["address"].as_str().unwrap()), 5_000_000, "the token stayed");
    assert!(v["nativeRecovered"].as_str().unwrap().parse::<u128>().unwrap() > ETH, "{v}");
    // The CLI (`agent withdraw`) finishes the job once the node accepts again: exit 0.
    let b_addr = b["address"].as_str().unwrap();
    crate::support::nodes::rpc_blocking(&anvil.url, "anvil_setBalance", json!([b_addr, format!("0x{:x}", ETH)]));
    let mut c = d.cli();
    c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(["agent", "withdraw", &id(&b), "--token", &token, "--json"]);
    let out = run(c, Duration::from_secs(120));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["tokensRecovered"][0]["amount"], "5000000", "{cli}");
    assert_eq!(token_balance(&anvil.url, &token, b_addr), 0);
    // The audit log (outside the guard's allow-list) from the stopped daemon's database.
    let mut d = d;
    d.terminate();
    let store = d.store();
    let full = store.audit_by_event("FUND_WITHDRAWN").unwrap();
    assert_eq!(full.len(), 2, "a, then b through the CLI");
    assert_eq!(full[0].agent_id.map(|x| x.to_string()), Some(id(&a)));
    assert_eq!(store.audit_by_event("FUND_PARTIALLY_WITHDRAWN").unwrap().len(), 1);
}

// ACC-218 on surfnet-local: SOL minus fees and every SPL balance (the token account closed, its
// rent back) reach a PyNaCl-verified owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_on_surfnet_moves_sol_and_every_token() {
    use crate::support::solana::{balance as sol_balance, create_mint, fund_tokens, rpc};
    let node = Surfnet::start();
    let d = crate::support::solana::daemon(&node.url, &[]).await;
    let (seed, owner) = sol_owner(0x42);
    let (a, _) = crate::support::solana::funded_agent(&d, &node.url, 2, json!({"owner": owner})).await;
    let m = Msg::new(&d, "solana", &owner, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.sol(&seed, "raw"), None).await;
    assert_eq!(st, 200, "{v}");
    let spl = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
    let mint = create_mint(&node.url, spl, 6, &[]);
    let me = a["address"].as_str().unwrap().to_string();
    fund_tokens(&node.url, &me, &mint, spl, 7_000_000);
    let accounts = |who: &str| {
        rpc(&node.url, "getTokenAccountsByOwner", json!([who, {"mint": mint}, {"encoding": "jsonParsed"}]))["value"]
            .as_array()
            .unwrap()
            .clone()
    };
    let agent_ata = accounts(&me)[0].clone();
    let ata_rent = agent_ata["account"]["lamports"].as_u64().unwrap();
    let agent_sol = sol_balance(&node.url, &me);
    let owner_sol = sol_balance(&node.url, &owner);
    assert_eq!(activate(&d, "withdraw sol").await.0, 200);
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&a)), Some(json!({}))).await;
    assert_eq!(st, 200, "{v}");
    let owner_atas = accounts(&owner);
    assert_eq!(owner_atas[0]["account"]["data"]["parsed"]["info"]["tokenAmount"]["amount"], "7000000");
    assert!(accounts(&me).is_empty(), "the agent's token account was closed");
    let new_ata_rent = owner_atas[0]["account"]["lamports"].as_u64().unwrap();
    let fees: u64 = v["txHashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            rpc(&node.url, "getTransaction", json!([s, {"encoding": "json", "maxSupportedTransactionVersion": 0}]))
                ["meta"]["fee"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let owner_gain = sol_balance(&node.url, &owner) - owner_sol;
    let native: u64 = v["nativeRecovered"].as_str().unwrap().parse().unwrap();
    assert_eq!(v["rentRecovered"].as_str().unwrap(), ata_rent.to_string(), "{v}");
    assert_eq!(owner_gain, native + ata_rent, "the SOL and the closed account's rent reached the owner");
    assert_eq!(
        agent_sol,
        native + fees + new_ata_rent + sol_balance(&node.url, &me),
        "the agent paid only the fees and the owner's new token account beyond it"
    );
    assert_eq!(sol_balance(&node.url, &me), 0, "the agent was emptied");
}

async fn rules(d: &TestDaemon) -> Vec<Value> {
    let (st, v) = d.master("GET", "/v1/admin/auto-stop/rules", None).await;
    assert_eq!(st, 200, "{v}");
    v["rules"].as_array().unwrap().clone()
}

/// A webhook channel on the recording receiver, the only one needed (`min_channels = 1`).
async fn hook(d: &TestDaemon, r: &crate::support::receiver::Receiver) {
    let body = json!({"type": "WEBHOOK", "name": "owner",
                      "config": {"url": r.url("/hooks/owner"), "secret": "emergency-webhook-secret-01"}});
    let (st, v) = d.master("POST", "/v1/owner/notification-channels", Some(body)).await;
    assert_eq!(st, 201, "{v}");
}

async fn events(r: &crate::support::receiver::Receiver, event: &str) -> Vec<Value> {
    r.requests_to("/hooks/owner").await.into_iter().filter(|q| q["json"]["event"] == event).collect()
}

const REVERT: &str = "0xa9cc4718";

// ACC-220: three consecutive FAILED transactions (reverting calls on anvil) suspend the
// agent with reason `auto_stop: CONSECUTIVE_FAILURES …` and revoke its sessions without the kill
// switch; a CONFIRMED one in between resets the count. The failing sends are answered at once
// (AutoStop runs after the commit, on its own task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consecutive_failures_suspend_the_agent_and_a_success_resets_the_count() {
    let anvil = Anvil::start();
    let token = deploy_token(&anvil.url);
    let r = crate::support::receiver::Receiver::start();
    let d = crate::support::evm::daemon(&anvil.url, &[crate::support::sink::notifications_on()]).await;
    d.set_default_autostop(true, None).await;
    hook(&d, &r).await;
    let (a, t) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;
    d.permit(&id(&a), &[&token], &[&token], &[]).await;
    let fail = || {
        crate::support::api::send(
            &d,
            &t,
            json!({"type": "CONTRACT_CALL", "contractAddress": token, "calldata": REVERT}),
        )
    };
    let ok = || {
        crate::support::api::send(&d, &t, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}))
    };
    for _ in 0..2 {
        assert_eq!(fail().await.0, 422);
    }
    assert_eq!(ok().await.0, 200);
    for _ in 0..2 {
        assert_eq!(fail().await.0, 422);
    }
    // Also lets the webhook's token bucket (5, then 1 a second) refill for what follows.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = wait_agent(&d, &id(&a), |_| true).await;
    assert_eq!(still["status"], "ACTIVE", "the success reset the count: 2 failures since it");
    let started = Instant::now();
    let (st, v) = fail().await;
    let answered = started.elapsed();
    assert_eq!(st, 422, "{v}");
    let after = wait_agent(&d, &id(&a), |a| a["status"] == "SUSPENDED").await;
    assert_eq!(after["status"], "SUSPENDED", "{after}");
    let reason = after["suspensionReason"].as_str().unwrap();
    assert!(reason.starts_with("auto_stop: CONSECUTIVE_FAILURES"), "{reason}");
    let (st, v) =
        crate::support::api::send(&d, &t, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}))
            .await;
    assert_eq!((st, code(&v)), (401, Some("SESSION_REVOKED")), "{v}");
    assert_eq!(ks(&d).await["status"], "NORMAL", "no kill switch");
    let deadline = Instant::now() + Duration::from_secs(10);
    while events(&r, "AUTO_STOP_TRIGGERED").await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all: Vec<Value> = r.requests_to("/hooks/owner").await.iter().map(|q| q["json"]["event"].clone()).collect();
    assert_eq!(events(&r, "AUTO_STOP_TRIGGERED").await.len(), 1, "{all:?}");
    eprintln!("the third failure was answered in {answered:?}; the suspension followed on the AutoStop task");
}

// ACC-221, ACC-222, ACC-224, ACC-225: the default HOURLY_RATE (50) suspends the 51st
// transaction's agent — after that send was answered 200 CONFIRMED: AutoStop acts on committed
// outcomes and never holds a response (the load tool's p50 with and without the default rules,
// docs/benchmarks.md, measures the rest);
// DAILY_LIMIT_THRESHOLD warns once at 80 % of 5 ETH confirmed today and suspends at 100 %; an
// agent rule replaces the global rule of its type; a duplicate is 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_rate_and_daily_limit_rules_act_on_real_transfers() {
    let anvil = Anvil::start();
    let r = crate::support::receiver::Receiver::start();
    let d = crate::support::evm::daemon(&anvil.url, &[crate::support::sink::notifications_on()]).await;
    d.set_default_autostop(true, None).await;
    hook(&d, &r).await;
    let defaults = rules(&d).await;
    let kinds: Vec<(&str, &str)> =
        defaults.iter().map(|r| (r["type"].as_str().unwrap(), r["action"].as_str().unwrap())).collect();
    assert_eq!(kinds.len(), 3, "{defaults:?}");
    assert!(kinds.iter().all(|(_, a)| *a == "SUSPEND_AGENT"), "no default rule uses KILL_SWITCH (ACC-223)");

    // HOURLY_RATE: 50 pass, the 51st trips it.
    let (busy, t) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;
    for i in 0..50 {
        let (st, v) = crate::support::api::send(
            &d,
            &t,
            json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}),
        )
        .await;
        assert_eq!(st, 200, "send {i}: {v}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wait_agent(&d, &id(&busy), |_| true).await["status"], "ACTIVE", "50 in an hour is allowed");
    let (st, v) =
        crate::support::api::send(&d, &t, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}))
            .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "the 51st is answered, not held: {v}");
    let a = wait_agent(&d, &id(&busy), |a| a["status"] == "SUSPENDED").await;
    assert!(a["suspensionReason"].as_str().unwrap().starts_with("auto_stop: HOURLY_RATE"), "{a}");

    // An agent rule replaces the global one: this agent may send 2 an hour.
    let (quick, qt) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;
    let body =
        json!({"agentId": id(&quick), "type": "HOURLY_RATE", "config": {"maxTxPerHour": 2}, "action": "SUSPEND_AGENT"});
    let (st, v) = d.master("POST", "/v1/admin/auto-stop/rules", Some(body.clone())).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = d.master("POST", "/v1/admin/auto-stop/rules", Some(body)).await;
    assert_eq!((st, code(&v)), (409, Some("DUPLICATE_RESOURCE")), "{v}");
    for _ in 0..3 {
        crate::support::api::send(&d, &qt, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}))
            .await;
    }
    let a = wait_agent(&d, &id(&quick), |a| a["status"] == "SUSPENDED").await;
    assert!(a["suspensionReason"].as_str().unwrap().starts_with("auto_stop: HOURLY_RATE"), "{a}");

    // DAILY_LIMIT_THRESHOLD: 4 ETH of 5 warns, 4.5 does not warn again, 5 suspends.
    let (big, bt) = crate::support::evm::funded_agent(&d, &anvil.url, 10, json!({})).await;
    d.policy(json!({"agentId": id(&big), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": (10 * ETH).to_string(), "notify_max": (10 * ETH).to_string(), "delay_max": (10 * ETH).to_string()}}))
        .await;
    let send_eth = |wei: u128| {
        crate::support::api::send(
            &d,
            &bt,
            json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": wei.to_string()}),
        )
    };
    assert_eq!(send_eth(4 * ETH).await.0, 200);
    let warn = |e: &Value| e["json"]["agentId"] == id(&big).as_str() || e["json"].to_string().contains(&id(&big));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events(&r, "AUTO_STOP_TRIGGERED").await.iter().any(warn) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events(&r, "AUTO_STOP_TRIGGERED").await.iter().filter(|e| warn(e)).count(), 1, "warned at 80 %");
    assert_eq!(send_eth(ETH / 2).await.0, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(events(&r, "AUTO_STOP_TRIGGERED").await.iter().filter(|e| warn(e)).count(), 1, "warned once");
    assert_eq!(wait_agent(&d, &id(&big), |_| true).await["status"], "ACTIVE");
    assert_eq!(send_eth(ETH / 2).await.0, 200);
    let a = wait_agent(&d, &id(&big), |a| a["status"] == "SUSPENDED").await;
    assert!(a["suspensionReason"].as_str().unwrap().starts_with("auto_stop: DAILY_LIMIT_THRESHOLD"), "{a}");
}

// ACC-223: a configured KILL_SWITCH rule trips the switch with actor `auto_stop`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_rule_trips_the_switch_as_auto_stop() {
    let anvil = Anvil::start();
    let d = crate::support::evm::daemon(&anvil.url, &[]).await;
    let (a, t) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;
    let body =
        json!({"agentId": id(&a), "type": "HOURLY_RATE", "config": {"maxTxPerHour": 1}, "action": "KILL_SWITCH"});
    assert_eq!(d.master("POST", "/v1/admin/auto-stop/rules", Some(body)).await.0, 201);
    for _ in 0..2 {
        crate::support::api::send(&d, &t, json!({"to": "0x000000000000000000000000000000000000bEEF", "amount": "1"}))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ks(&d).await["status"] == "NORMAL" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = ks(&d).await;
    assert_eq!((s["status"].as_str(), s["actor"].as_str()), (Some("ACTIVATED"), Some("auto_stop")), "{s}");
    assert!(s["reason"].as_str().unwrap().contains("HOURLY_RATE"), "{s}");
}

// Bad input on every emergency route: each gets the spec's code and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_emergency_routes_changes_nothing() {
    let d = TestDaemon::start(Opts { dev: true, ..Opts::default() }).await;
    let a = d.create_agent(json!({"name": "x"})).await;
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "x".repeat(501)}),
        json!({"reason": 5}),
        json!({"reason": "ok", "extra": 1}),
    ] {
        for path in ["/v1/admin/kill-switch", "/v1/owner/kill-switch"] {
            let (st, v) = d.master("POST", path, Some(body.clone())).await;
            assert_eq!((st, code(&v)), (400, Some("VALIDATION_ERROR")), "{path} {body}: {v}");
        }
    }
    let (st, v) = d
        .call("POST", "/v1/admin/kill-switch", &[("X-Master-Password", "wrong".into())], Some(json!({"reason": "r"})))
        .await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_MASTER_PASSWORD")), "{v}");
    let (st, v) = d.call("POST", "/v1/admin/kill-switch", &[], Some(json!({"reason": "r"}))).await;
    assert_eq!((st, code(&v)), (401, Some("MASTER_PASSWORD_REQUIRED")), "{v}");
    assert_eq!(ks(&d).await["status"], "NORMAL");
    // Recover in NORMAL (ACC-211), with or without a password.
    for pw in [Some(d.password()), None, Some("wrong")] {
        let (st, v) = recover(&d, pw, None).await;
        assert_eq!((st, code(&v)), (409, Some("KILL_SWITCH_NOT_ACTIVE")), "{v}");
    }
    // Withdraw: unknown agent, bad scope, unknown field.
    let unknown = "01a20720-0000-7000-8000-000000000000";
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{unknown}/withdraw"), Some(json!({}))).await;
    assert_eq!((st, code(&v)), (404, Some("AGENT_NOT_FOUND")), "{v}");
    let (st, v) =
        d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&a)), Some(json!({"scope": "some"}))).await;
    assert_eq!((st, code(&v)), (400, Some("VALIDATION_ERROR")), "{v}");
    let (st, v) = d.master("POST", &format!("/v1/owner/agents/{}/withdraw", id(&a)), Some(json!({}))).await;
    assert_eq!((st, code(&v)), (404, Some("NO_OWNER")), "{v}");
    // AutoStop rules: bad type, action, config, unknown field, unknown id.
    let before = rules(&d).await;
    for (body, want) in [
        (json!({"type": "NOPE", "config": {}, "action": "WARN"}), "VALIDATION_ERROR"),
        (json!({"type": "HOURLY_RATE", "config": {"maxTxPerHour": 5}, "action": "EXPLODE"}), "VALIDATION_ERROR"),
        (json!({"type": "HOURLY_RATE", "config": {"maxTxPerHour": 0}, "action": "WARN"}), "INVALID_RULES"),
        (json!({"type": "CONSECUTIVE_FAILURES", "config": {"threshold": 21}, "action": "WARN"}), "INVALID_RULES"),
        (json!({"type": "HOURLY_RATE", "config": {"maxTxPerHour": 5, "x": 1}, "action": "WARN"}), "INVALID_RULES"),
        (
            json!({"type": "HOURLY_RATE", "config": {"maxTxPerHour": 5}, "action": "WARN", "more": 1}),
            "VALIDATION_ERROR",
        ),
        (json!({"type": "HOURLY_RATE", "config": {"maxTxPerHour": 5}, "action": "WARN"}), "DUPLICATE_RESOURCE"),
    ] {
        let (st, v) = d.master("POST", "/v1/admin/auto-stop/rules", Some(body.clone())).await;
        assert_eq!(code(&v), Some(want), "{body}: {st} {v}");
    }
    let (st, v) =
        d.master("PUT", &format!("/v1/admin/auto-stop/rules/{unknown}"), Some(json!({"enabled": false}))).await;
    assert_eq!((st, code(&v)), (404, Some("RULE_NOT_FOUND")), "{v}");
    let (st, v) = d.master("DELETE", &format!("/v1/admin/auto-stop/rules/{unknown}"), None).await;
    assert_eq!((st, code(&v)), (404, Some("RULE_NOT_FOUND")), "{v}");
    let first = id(&before[0]);
    let (st, v) =
        d.master("PUT", &format!("/v1/admin/auto-stop/rules/{first}"), Some(json!({"config": {"threshold": 0}}))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(rules(&d).await, before, "nothing changed");
}
