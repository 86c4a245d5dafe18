//! DELAY and APPROVAL end to end (06-pipeline.md §7–8, issue #13) on anvil and surfnet-local:
//! the delay worker, owner approvals signed by eth-account and PyNaCl (and the CLI on the fake
//! Ledger), rejects, timeouts, the downgrade, the approval summary, crash recovery, and the races
//! between them — each race run 100 times, with the chain itself as the witness that nothing was
//! signed or landed twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::api::{ETH, SOL, code, id, row, send, wait_row, wait_status};
use crate::support::nodes::{Anvil, Surfnet};
use crate::support::owner::{EVM_ADDR_0, EVM_ADDR_1, EVM_KEY_0, EVM_KEY_1, Msg, evm_sign_many, siwe_parse, sol_owner};
use crate::support::receiver::Receiver;
use crate::support::rpc_proxy::RpcProxy;
use crate::support::sink::notifications_on;
use crate::support::{Opts, TestDaemon, text};

const TO: &str = "0x000000000000000000000000000000000000bEEF";
const SECRET: &str = "queue-webhook-secret-0123";

/// Whether the daemon ever submitted `tx` (its TX_SUBMITTED audit rows).
async fn submissions(d: &TestDaemon, tx: &str) -> usize {
    d.audit_all("TX_SUBMITTED").await.iter().filter(|e| e["txId"] == tx).count()
}

/// The nonce of the on-chain transaction `hash` (cast, not the daemon).
fn chain_nonce(rpc: &str, hash: &str) -> u64 {
    let tx: Value =
        serde_json::from_str(&crate::support::evm::cast_out(&["tx", hash, "--json", "--rpc-url", rpc])).unwrap();
    u64::from_str_radix(tx["nonce"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// An EVM daemon on `rpc` with notifications available through `channels` (or a sink).
async fn evm_daemon(rpc: &str, extra: &[(&'static str, String)]) -> TestDaemon {
    let mut cfg = vec![
        ("rpc", format!("ethereum_testnet = \"{rpc}\"\nethereum_testnet_chain_id = 31337")),
        (
            "security",
            "rate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000\nrate_limit_global_ip_rpm = 10000".to_string(),
        ),
        notifications_on(),
    ];
    cfg.extend(extra.iter().cloned());
    TestDaemon::start(Opts { dev: true, config: cfg, ..Opts::default() }).await
}

/// Webhook channels on the recording receiver, all under `/hooks/<name>`: four of them with
/// falling priorities, because a WEBHOOK channel sends at most 5 at once and 1 a second
/// (10-notifications-clients.md §2) and these tests produce bursts of events; `notify()` falls
/// back to the next channel when one is rate limited.
async fn webhook(d: &TestDaemon, r: &Receiver, name: &str) {
    for i in 0..4 {
        let path = format!("/hooks/{name}-{i}");
        r.behave(&path, json!({"secret": SECRET})).await;
        let body = json!({"type": "WEBHOOK", "name": format!("{name}-{i}"), "priority": 10 - i,
                          "config": {"url": r.url(&path), "secret": SECRET}});
        let (st, v) = d.master("POST", "/v1/owner/notification-channels", Some(body)).await;
        assert_eq!(st, 201, "{v}");
    }
}

/// The events `r` received at `/hooks/<name>` about `tx`, waiting until `want` is among them.
async fn events_for(r: &Receiver, name: &str, tx: &str, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<String> = r
            .requests_to(&format!("/hooks/{name}"))
            .await
            .iter()
            .filter(|q| q["json"]["referenceId"] == tx)
            .map(|q| q["json"]["event"].as_str().unwrap().to_string())
            .collect();
        if got.iter().any(|e| e == want) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An EVM agent whose owner (anvil's account 0) is LOCKED (verified with eth-account), funded,
/// with a session token.
async fn locked_evm_agent(d: &TestDaemon, rpc: &str, eth: u128) -> (Value, String) {
    let a = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
    let m = Msg::new(d, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{}", id(&a)), "31337").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.evm(EVM_KEY_0), None).await;
    assert_eq!(st, 200, "{v}");
    fund(rpc, a["address"].as_str().unwrap(), eth);
    let t = d.create_session(&id(&a), json!({})).await["token"].as_str().unwrap().to_string();
    (a, t)
}

fn fund(rpc: &str, address: &str, eth: u128) {
    crate::support::nodes::rpc_blocking(rpc, "anvil_setBalance", json!([address, format!("0x{:x}", eth * ETH)]));
}

/// An `approve_tx` message for `tx`, with the summary the pending listing shows when `summary`.
async fn approval(d: &TestDaemon, tx: &str, with_summary: bool) -> Msg {
    let mut m = Msg::new(d, "ethereum", EVM_ADDR_0, "approve_tx", &format!("tx:{tx}"), "31337").await;
    if with_summary {
        let item = pending_item(d, tx).await;
        if item.is_null() {
            let (_, all) = d.master("GET", "/v1/owner/pending-approvals?limit=100", None).await;
            let listed: Vec<_> =
                all["transactions"].as_array().map_or(vec![], |a| a.iter().map(|t| t["agentId"].clone()).collect());
            let audit: Vec<Value> = d.audit_all("").await.into_iter().filter(|e| e["txId"] == tx).collect();
            panic!("{tx} is not pending; {} listed ({listed:?}); its audit: {audit:?}", listed.len());
        }
        m.summary = Some(item["summary"].as_str().unwrap().to_string());
    }
    m
}

async fn pending_item(d: &TestDaemon, tx: &str) -> Value {
    let (st, v) = d.master("GET", "/v1/owner/pending-approvals?limit=100", None).await;
    assert_eq!(st, 200, "{v}");
    v["transactions"].as_array().unwrap().iter().find(|t| t["txId"] == tx).cloned().unwrap_or(Value::Null)
}

async fn approve(d: &TestDaemon, tx: &str, bearer: &str) -> (u16, Value) {
    d.bearer("POST", &format!("/v1/owner/approve/{tx}"), bearer, None).await
}

async fn reject(d: &TestDaemon, tx: &str, body: Value) -> (u16, Value) {
    d.master("POST", &format!("/v1/owner/reject/{tx}"), Some(body)).await
}

/// An agent policy making every amount of this agent the given tier band: INSTANT up to
/// `instant` wei, DELAY (with `delay` s) up to `delay_max`, APPROVAL (with `timeout` s) above.
async fn tiers(d: &TestDaemon, agent: &Value, instant: u128, delay_max: u128, delay: u64, timeout: u64) {
    d.policy(json!({"agentId": id(agent), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": instant.to_string(), "notify_max": instant.to_string(), "delay_max": delay_max.to_string(),
        "delay_seconds": delay, "approval_timeout": timeout}}))
        .await;
}

// ACC-158, ACC-159, ACC-248 (DELAY clause): a DELAY transfer is 202 QUEUED with expiresAt and no
// hash, is not signed shortly before its cooldown ends (the dev clock moves the worker's time too), and
// lands within about 10 s after it with a fresh build: an INSTANT send in between took nonce 0,
// so the DELAY transfer is built with nonce 1 at execution. TX_DELAY_QUEUED, TX_DELAY_EXECUTED
// and TX_CONFIRMED reach the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_transfer_waits_its_cooldown_then_lands_with_a_fresh_build() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhook(&d, &r, "owner").await;
    let (a, t) = crate::support::evm::funded_agent(&d, &anvil.url, 5, json!({})).await;
    let me = a["address"].as_str().unwrap().to_string();
    let before = crate::support::evm::balance(&anvil.url, TO);
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": (2 * ETH).to_string()})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["tier"].as_str(), v.get("txHash")),
        (202, Some("QUEUED"), Some("DELAY"), None),
        "{v}"
    );
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().unwrap()).unwrap().timestamp();
    let created = chrono::DateTime::parse_from_rfc3339(v["createdAt"].as_str().unwrap()).unwrap().timestamp();
    assert_eq!(expires - created, 300, "{v}");
    assert!(events_for(&r, "owner", &tx, "TX_DELAY_QUEUED").await.contains(&"TX_DELAY_QUEUED".to_string()));
    // An INSTANT send takes nonce 0 meanwhile.
    assert_eq!(send(&d, &t, json!({"to": TO, "amount": "1000"})).await.0, 200);
    // Five seconds before its deadline on the daemon's clock (the real time spent above counts
    // too, so a fixed 299 s jump could already be past it on a slow machine): the worker runs
    // (woken by the clock) and leaves it alone.
    to_seconds_before(&d, &t, &tx, 5).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rr = row(&d, &t, &tx).await;
    assert_eq!((rr["status"].as_str(), rr["txHash"].clone()), (Some("QUEUED"), Value::Null));
    assert_eq!(submissions(&d, &tx).await, 0, "nothing signed or sent before the deadline");
    assert_eq!(crate::support::evm::nonce(&anvil.url, &me), 1);
    // Past it: executed within about 10 s.
    d.advance(6).await;
    let started = Instant::now();
    let rr = wait_status(&d, &t, &tx, "CONFIRMED").await;
    assert!(started.elapsed() < Duration::from_secs(11), "{:?}", started.elapsed());
    assert_eq!(
        chain_nonce(&anvil.url, rr["txHash"].as_str().unwrap()),
        1,
        "built at execution, after the INSTANT send took nonce 0"
    );
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 2 * ETH + 1000);
    let events = events_for(&r, "owner", &tx, "TX_CONFIRMED").await;
    for e in ["TX_DELAY_QUEUED", "TX_DELAY_EXECUTED", "TX_CONFIRMED"] {
        assert!(events.contains(&e.to_string()), "{e}: {events:?}");
    }
}

// ACC-160, ACC-161, ACC-182: a reject committed before the claim wins — CANCELLED with
// `REJECTED: <reason>` (default OWNER_REJECTED), never signed, TX_CANCELLED sent; rejecting an
// INSTANT row is 409 TX_NOT_PENDING_APPROVAL, a second reject 409 TX_ALREADY_PROCESSED, a reason
// over 500 characters 400, an unknown id 404 — none of them change anything. A DELAY that fails
// at execution ends FAILED (TX_FAILED) and is never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_win_before_the_claim_and_failed_delays_are_not_retried() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhook(&d, &r, "owner").await;
    let (a, t) = crate::support::evm::funded_agent(&d, &anvil.url, 5, json!({})).await;
    let me = a["address"].as_str().unwrap().to_string();
    let queue = async |amount: u128| {
        let (st, v) = send(&d, &t, json!({"to": TO, "amount": amount.to_string()})).await;
        assert_eq!((st, v["tier"].as_str()), (202, Some("DELAY")), "{v}");
        v["transactionId"].as_str().unwrap().to_string()
    };
    let first = queue(2 * ETH).await;
    let (st, v) = reject(&d, &first, json!({})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["reason"].as_str(), v["rejectedBy"].as_str()),
        (200, Some("CANCELLED"), Some("OWNER_REJECTED"), Some("admin")),
        "{v}"
    );
    let second = queue(2 * ETH).await;
    let (st, v) = reject(&d, &second, json!({"reason": "not today"})).await;
    assert_eq!(st, 200, "{v}");
    let rr = row(&d, &t, &second).await;
    assert_eq!(
        (rr["status"].as_str(), rr["error"].as_str(), rr["reservedAmount"].clone()),
        (Some("CANCELLED"), Some("REJECTED: not today"), Value::Null)
    );
    assert!(events_for(&r, "owner", &second, "TX_CANCELLED").await.contains(&"TX_CANCELLED".to_string()));
    // Bad requests change nothing.
    let (_, instant) = send(&d, &t, json!({"to": TO, "amount": "1"})).await;
    let instant = instant["transactionId"].as_str().unwrap();
    for (tx, body, st_want, code_want) in [
        (instant.to_string(), json!({}), 409, "TX_NOT_PENDING_APPROVAL"),
        (second.clone(), json!({}), 409, "TX_ALREADY_PROCESSED"),
        (uuid::Uuid::now_v7().to_string(), json!({}), 404, "TX_NOT_FOUND"),
        ("not-a-uuid".to_string(), json!({}), 404, "TX_NOT_FOUND"),
        (second.clone(), json!({"reason": "x".repeat(501)}), 400, "VALIDATION_ERROR"),
        (second.clone(), json!({"why": "x"}), 400, "VALIDATION_ERROR"),
    ] {
        let before = d.audit("TX_CANCELLED").await.len();
        let (st, v) = reject(&d, &tx, body).await;
        assert_eq!((st, code(&v)), (st_want, Some(code_want)), "{tx}: {v}");
        assert_eq!(d.audit("TX_CANCELLED").await.len(), before);
    }
    assert_eq!(row(&d, &t, &second).await["error"], "REJECTED: not today");
    // The worker passes the rejected rows by.
    d.advance(301).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for tx in [&first, &second] {
        assert_eq!(row(&d, &t, tx).await["status"], "CANCELLED");
        assert_eq!(submissions(&d, tx).await, 0);
    }
    assert_eq!(crate::support::evm::nonce(&anvil.url, &me), 1, "only the INSTANT send was signed");

    // More than the agent holds: the execution fails (insufficient balance), FAILED, no retry.
    let broke = queue(10 * ETH).await;
    d.advance(301).await;
    let rr = wait_status(&d, &t, &broke, "FAILED").await;
    assert_eq!(rr["error"], "INSUFFICIENT_BALANCE", "{rr}");
    assert!(events_for(&r, "owner", &broke, "TX_FAILED").await.contains(&"TX_FAILED".to_string()));
    d.advance(301).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failures = d.audit_all("TX_FAILED").await.into_iter().filter(|e| e["txId"] == broke.as_str()).count();
    assert_eq!(
        (row(&d, &t, &broke).await["status"].as_str(), failures),
        (Some("FAILED"), 1),
        "failed once, never re-queued"
    );
}

// ACC-177, ACC-179, ACC-184 on anvil: above delay_max with a LOCKED owner the transfer is 202
// APPROVAL with a pending_approvals row, listed with agentName, expiresAt and its summary, and
// TX_APPROVAL_REQUEST reaches every channel. An approval signed by eth-account — with the summary
// in the statement, which the PyPI `siwe` parser reads as EIP-4361 — returns 200 EXECUTING and the
// transfer lands with the exact amount. ACC-117 and the binding rules: the signature of A on B,
// a second use, an expired one, another owner's, a `recover` one and a tampered summary are all
// refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evm_approval_signed_by_eth_account_lands_and_binds_to_its_transaction() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhook(&d, &r, "phone").await;
    webhook(&d, &r, "ops").await;
    let (a, t) = locked_evm_agent(&d, &anvil.url, 20).await;
    let before = crate::support::evm::balance(&anvil.url, TO);
    let amount = 6 * ETH + 7;
    let (st, v) = send(&d, &t, json!({"to": TO, "amount": amount.to_string()})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["tier"].as_str(), v["approvalTimeoutSeconds"].as_u64()),
        (202, Some("QUEUED"), Some("APPROVAL"), Some(3600)),
        "{v}"
    );
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let (_, b) = send(&d, &t, json!({"to": TO, "amount": amount.to_string()})).await;
    let other_tx = b["transactionId"].as_str().unwrap().to_string();
    for ch in ["phone", "ops"] {
        assert!(
            events_for(&r, ch, &tx, "TX_APPROVAL_REQUEST").await.contains(&"TX_APPROVAL_REQUEST".to_string()),
            "{ch}"
        );
    }
    let item = pending_item(&d, &tx).await;
    assert_eq!(
        (item["agentName"].as_str(), item["tier"].as_str(), item["expiresAt"].is_string()),
        (a["name"].as_str(), Some("APPROVAL"), true),
        "{item}"
    );
    assert_eq!(item["summary"], "send 6.000000000000000007 ETH to 0x0000...bEEF on ethereum testnet");

    // Binding: every one of these is refused and changes nothing.
    let m_other = approval(&d, &other_tx, false).await;
    let (st, v) = approve(&d, &tx, &m_other.evm(EVM_KEY_0)).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_ACTION_MISMATCH")), "A's signature on B: {v}");
    let mut recover = Msg::new(&d, "ethereum", EVM_ADDR_0, "recover", "system", "31337").await;
    recover.action = "recover".into();
    let (st, v) = approve(&d, &tx, &recover.evm(EVM_KEY_0)).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_ACTION_MISMATCH")), "recover: {v}");
    let mut tampered = approval(&d, &tx, true).await;
    tampered.summary = Some("send 0.000001 ETH to 0x0000...bEEF on ethereum testnet".into());
    let (st, v) = approve(&d, &tx, &tampered.evm(EVM_KEY_0)).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_ACTION_MISMATCH")), "tampered summary: {v}");
    let stranger = approval(&d, &tx, false).await;
    let mut stranger = stranger;
    stranger.address = EVM_ADDR_1.to_string();
    let (st, v) = approve(&d, &tx, &stranger.evm(EVM_KEY_1)).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_MISMATCH")), "another owner: {v}");
    let stale = approval(&d, &tx, false).await;
    let stale_bearer = stale.evm(EVM_KEY_0);
    d.advance(301).await;
    let (st, v) = approve(&d, &tx, &stale_bearer).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_SIGNATURE")), "expired: {v}");
    assert_eq!(row(&d, &t, &tx).await["status"], "QUEUED", "nothing changed");

    // The approval, summary included, made by eth-account.
    let m = approval(&d, &tx, true).await;
    let parsed = siwe_parse(&m.text()).unwrap_or_else(|e| panic!("the siwe package refused the message: {e}"));
    assert_eq!(
        parsed["statement"],
        format!("WAIaaS Owner Action: approve_tx tx:{tx} ({})", item["summary"].as_str().unwrap())
    );
    assert_eq!(
        (parsed["requestId"].as_str(), parsed["chainId"].as_u64()),
        (Some(format!("tx:{tx}").as_str()), Some(31337))
    );
    let bearer = m.evm(EVM_KEY_0);
    let (st, v) = approve(&d, &tx, &bearer).await;
    assert_eq!((st, v["status"].as_str(), v["approvedBy"].as_str()), (200, Some("EXECUTING"), Some(EVM_ADDR_0)), "{v}");
    assert!(v["approvedAt"].is_string());
    wait_status(&d, &t, &tx, "CONFIRMED").await;
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, amount, "the exact amount landed");
    assert_eq!(d.audit("TX_APPROVED").await.iter().filter(|e| e["txId"] == tx.as_str()).count(), 1);
    // A second use of the same signature.
    let (st, v) = approve(&d, &tx, &bearer).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_NONCE")), "replay: {v}");
    assert!(events_for(&r, "phone", &tx, "TX_CONFIRMED").await.contains(&"TX_CONFIRMED".to_string()));
    // The plain form (no summary) still approves.
    let (st, v) = approve(&d, &other_tx, &approval(&d, &other_tx, false).await.evm(EVM_KEY_0)).await;
    assert_eq!(st, 200, "{v}");
    wait_status(&d, &t, &other_tx, "CONFIRMED").await;
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 2 * amount);
    // The pending_approvals rows: both consumed by the owner, with what was signed.
    let mut d = d;
    d.terminate();
    let store = d.store();
    for (x, summary) in [(&tx, true), (&other_tx, false)] {
        let a = store.get_approval(x.parse().unwrap()).unwrap().unwrap();
        assert_eq!((a.owner_address.as_str(), a.approved_by.as_deref()), (EVM_ADDR_0, Some(EVM_ADDR_0)));
        let signed = a.owner_payload.unwrap()["message"].as_str().unwrap().to_string();
        assert_eq!(signed.contains(" (send 6.000000000000000007 ETH"), summary, "{signed}");
    }
}

// The Solana approval: an owner key held by PyNaCl / solders signs the SIWS message (raw and in
// the Ledger off-chain envelope), and an 11.5 SOL transfer lands with the exact amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solana_approval_signed_by_pynacl_lands() {
    let node = Surfnet::start();
    let d = crate::support::solana::daemon(&node.url, &[notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (seed, pubkey) = sol_owner(0x61);
    let a = d.create_agent(json!({"owner": pubkey})).await;
    let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    assert_eq!(
        d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.sol(&seed, "raw"), None).await.0,
        200
    );
    crate::support::solana::rpc(&node.url, "requestAirdrop", json!([a["address"], 110 * SOL]));
    let t = d.create_session(&id(&a), json!({})).await["token"].as_str().unwrap().to_string();
    let to = crate::support::solana::existing_address(&node.url);
    for _ in 0..100 {
        if crate::support::solana::balance(&node.url, a["address"].as_str().unwrap()) >= 110 * SOL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = crate::support::solana::balance(&node.url, &to);
    for (i, mode) in ["raw", "ledger0"].into_iter().enumerate() {
        let amount = 50 * SOL + 1 + i as u64;
        let (st, v) = send(&d, &t, json!({"to": to, "amount": amount.to_string()})).await;
        assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{v}");
        let tx = v["transactionId"].as_str().unwrap().to_string();
        let mut m = Msg::new(&d, "solana", &pubkey, "approve_tx", &format!("tx:{tx}"), "devnet").await;
        m.summary = Some(pending_item(&d, &tx).await["summary"].as_str().unwrap().to_string());
        assert!(m.summary.as_deref().unwrap().starts_with("send 50.00000000"), "{:?}", m.summary);
        let (st, v) = approve(&d, &tx, &m.sol(&seed, mode)).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("EXECUTING")), "{mode}: {v}");
        wait_status(&d, &t, &tx, "CONFIRMED").await;
    }
    assert_eq!(crate::support::solana::balance(&node.url, &to) - before, 100 * SOL + 3, "both amounts, exactly");
}

// ACC-180, ACC-181: approving a DELAY-tier row is 409 TX_NOT_PENDING_APPROVAL, an executed one
// 409 TX_ALREADY_PROCESSED, one past its deadline 410 TX_EXPIRED (and the row becomes EXPIRED),
// an unknown id 404 TX_NOT_FOUND, another agent's row 403 OWNER_MISMATCH. An APPROVAL nobody
// approves is EXPIRED (APPROVAL_TIMEOUT) by the timeout worker, its reservation released, and
// TX_APPROVAL_EXPIRED sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_errors_and_the_timeout() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhook(&d, &r, "owner").await;
    let (a, t) = locked_evm_agent(&d, &anvil.url, 5).await;
    tiers(&d, &a, 100, 1000, 60, 300).await;
    let queue = async |amount: u64| {
        let (st, v) = send(&d, &t, json!({"to": TO, "amount": amount.to_string()})).await;
        assert_eq!(st, 202, "{v}");
        v["transactionId"].as_str().unwrap().to_string()
    };
    let delay = queue(500).await;
    let sign = async |tx: &str| approval(&d, tx, false).await.evm(EVM_KEY_0);
    let (st, v) = approve(&d, &delay, &sign(&delay).await).await;
    assert_eq!((st, code(&v)), (409, Some("TX_NOT_PENDING_APPROVAL")), "{v}");
    let (st, v) = approve(&d, &uuid::Uuid::now_v7().to_string(), &sign(&delay).await).await;
    assert_eq!((st, code(&v)), (404, Some("TX_NOT_FOUND")), "{v}");
    // Another agent (another owner) and its approval.
    let other = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_1})).await;
    let m = Msg::new(&d, "ethereum", EVM_ADDR_1, "verify_owner", &format!("agent:{}", id(&other)), "31337").await;
    assert_eq!(
        d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&other)), &m.evm(EVM_KEY_1), None).await.0,
        200
    );
    let done = queue(5000).await;
    let (st, _) = approve(&d, &done, &sign(&done).await).await;
    assert_eq!(st, 200);
    wait_status(&d, &t, &done, "CONFIRMED").await;
    let (st, v) = approve(&d, &done, &sign(&done).await).await;
    assert_eq!((st, code(&v)), (409, Some("TX_ALREADY_PROCESSED")), "{v}");
    let mut theirs = approval(&d, &done, false).await;
    theirs.address = EVM_ADDR_1.into();
    let (st, v) = approve(&d, &done, &theirs.evm(EVM_KEY_1)).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_MISMATCH")), "{v}");
    // Past the deadline: sign shortly before it passes (on the daemon's clock, so real time
    // spent here cannot carry it past first), approve just after.
    let late = queue(6000).await;
    to_seconds_before(&d, &t, &late, 10).await;
    let bearer = sign(&late).await;
    d.advance(11).await;
    let (st, v) = approve(&d, &late, &bearer).await;
    assert_eq!((st, code(&v)), (410, Some("TX_EXPIRED")), "{v}");
    let rr = row(&d, &t, &late).await;
    assert_eq!((rr["status"].as_str(), rr["error"].as_str()), (Some("EXPIRED"), Some("APPROVAL_TIMEOUT")));
    // The timeout worker, woken by the clock.
    let idle = queue(7000).await;
    assert_eq!(row(&d, &t, &idle).await["reservedAmount"], "7000");
    d.advance(301).await;
    let rr = wait_status(&d, &t, &idle, "EXPIRED").await;
    assert_eq!((rr["error"].as_str(), rr["reservedAmount"].clone()), (Some("APPROVAL_TIMEOUT"), Value::Null));
    let events = events_for(&r, "owner", &idle, "TX_APPROVAL_EXPIRED").await;
    assert!(events.contains(&"TX_APPROVAL_EXPIRED".to_string()), "{events:?}");
    let expired = d.audit("TX_EXPIRED").await.into_iter().filter(|e| e["txId"] == idle.as_str()).count();
    assert_eq!(expired, 1);
}

// ACC-178: above delay_max for an owner that is NONE or GRACE: 202 DELAY, downgraded from
// APPROVAL, with a TX_DOWNGRADED audit row carrying the owner state and TX_DOWNGRADED_DELAY sent.
// ACC-173: with max_pending_tx = 2 a third DELAY-tier request is 429 PENDING_TX_LIMIT_EXCEEDED,
// with a Retry-After (issue #22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_that_are_not_locked_get_a_delay_and_the_pending_limit_holds() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[("security", "max_pending_tx = 2".into())]).await;
    webhook(&d, &r, "owner").await;
    for (owner, state) in [(None, "NONE"), (Some(EVM_ADDR_1), "GRACE")] {
        let mut body = json!({"chain": "ethereum"});
        if let Some(o) = owner {
            body["owner"] = json!(o);
        }
        let a = d.create_agent(body).await;
        fund(&anvil.url, a["address"].as_str().unwrap(), 1);
        let t = d.create_session(&id(&a), json!({})).await["token"].as_str().unwrap().to_string();
        let (st, v) = send(&d, &t, json!({"to": TO, "amount": (6 * ETH).to_string()})).await;
        assert_eq!(
            (st, v["tier"].as_str(), v["downgraded"].as_bool(), v["originalTier"].as_str()),
            (202, Some("DELAY"), Some(true), Some("APPROVAL")),
            "{v}"
        );
        let tx = v["transactionId"].as_str().unwrap().to_string();
        let audit = d.audit("TX_DOWNGRADED").await;
        let e = audit.iter().find(|e| e["txId"] == tx.as_str()).unwrap();
        assert_eq!(
            (e["details"]["ownerState"].as_str(), e["details"]["originalTier"].as_str()),
            (Some(state), Some("APPROVAL"))
        );
        assert!(events_for(&r, "owner", &tx, "TX_DOWNGRADED_DELAY").await.contains(&"TX_DOWNGRADED_DELAY".to_string()));
        if state == "GRACE" {
            let (st, _) = send(&d, &t, json!({"to": TO, "amount": (2 * ETH).to_string()})).await;
            assert_eq!(st, 202, "the second queued one");
            let r = d
                .http
                .post(d.url("/v1/transactions/send"))
                .bearer_auth(&t)
                .json(&json!({"to": TO, "amount": (2 * ETH).to_string()}))
                .send()
                .await
                .unwrap();
            let header = r.headers().get("retry-after").map(|h| h.to_str().unwrap().parse::<u64>().unwrap());
            let (st, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
            assert_eq!((st, code(&v)), (429, Some("PENDING_TX_LIMIT_EXCEEDED")), "{v}");
            // Issue #22: when the first queued row ends at the latest — the 300 s default
            // cooldown, less the seconds this test has run since it was queued.
            assert_eq!(header, v["details"]["retryAfter"].as_u64(), "Retry-After matches the details: {v}");
            assert!(header.is_some_and(|s| (240..=300).contains(&s)), "{header:?}");
            assert_eq!(send(&d, &t, json!({"to": TO, "amount": "1"})).await.0, 200, "INSTANT is not limited");
        }
    }
}

// ACC-084 (approve half): `waiaas owner approve` on the fake Ledger signs the SIWE message with
// INS 0x08 (EVM) — the statement with the summary, as the device shows it — and the approval
// lands; `--prepare-only` then `--message-file … --signature …` (cast) works too; `owner pending`
// and `owner reject` mirror the routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_cli_approves_on_the_fake_ledger_and_offline() {
    let anvil = Anvil::start();
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let d =
        evm_daemon(&anvil.url, &[("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", server.address()))])
            .await;
    let _sink = d.sink_channel().await;
    let (a, t) = locked_evm_agent(&d, &anvil.url, 20).await;
    let cli = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        crate::support::run(c, Duration::from_secs(60))
    };
    let before = crate::support::evm::balance(&anvil.url, TO);
    let (_, v) = send(&d, &t, json!({"to": TO, "amount": (6 * ETH).to_string()})).await;
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let out = cli(&["owner", "pending", "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let pending: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pending["transactions"][0]["txId"], tx.as_str());
    let out = cli(&["owner", "pending"]);
    assert!(text(&out.stdout).contains(&tx) && text(&out.stdout).contains("send 6 ETH"), "{}", text(&out.stdout));
    let out = cli(&["owner", "approve", &tx, "--ledger"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(fake.log().iter().any(|(_, apdu)| apdu[1] == 0x08), "SIGN_PERSONAL_MESSAGE (INS 0x08)");
    wait_status(&d, &t, &tx, "CONFIRMED").await;

    // Offline, with cast as the signer.
    let (_, v) = send(&d, &t, json!({"to": TO, "amount": (7 * ETH).to_string()})).await;
    let tx2 = v["transactionId"].as_str().unwrap().to_string();
    let path = d.path().join("approve.txt");
    let out = cli(&["owner", "approve", &tx2, "--prepare-only", "--message-out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let message = std::fs::read_to_string(&path).unwrap();
    let sig = crate::support::owner::cast_sign(EVM_KEY_0, &message);
    let out = cli(&["owner", "approve", &tx2, "--message-file", path.to_str().unwrap(), "--signature", &sig, "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let approved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(approved["status"], "EXECUTING");
    wait_status(&d, &t, &tx2, "CONFIRMED").await;
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 13 * ETH);

    // Reject through the CLI; approving a DELAY through it is refused with the code.
    tiers(&d, &a, 0, 10 * ETH, 60, 3600).await;
    let (_, v) = send(&d, &t, json!({"to": TO, "amount": "5"})).await;
    let tx3 = v["transactionId"].as_str().unwrap().to_string();
    let out = cli(&["owner", "approve", &tx3, "--ledger"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("TX_NOT_PENDING_APPROVAL"), "{}", text(&out.stderr));
    let out = cli(&["owner", "reject", &tx3, "--reason", "from the cli", "--json"]);
    let rejected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((rejected["status"].as_str(), rejected["reason"].as_str()), (Some("CANCELLED"), Some("from the cli")));
    // What the Ledger signed: the statement with the summary.
    let mut d = d;
    d.terminate();
    let a = d.store().get_approval(tx.parse().unwrap()).unwrap().unwrap();
    let signed = a.owner_payload.unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        signed.contains(&format!("approve_tx tx:{tx} (send 6 ETH to 0x0000...bEEF on ethereum testnet)")),
        "{signed}"
    );
}

// The Speculos emulator runs Ledger's Boilerplate app, which has no message signing: `owner
// approve --ledger` against it stops with the device's answer, signs nothing and leaves the
// transaction waiting, and the owner can still approve another way before the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_speculos_the_approval_stops_cleanly_at_the_boilerplate_app() {
    let anvil = Anvil::start();
    let sp = crate::support::nodes::Speculos::start(None);
    let d = evm_daemon(
        &anvil.url,
        &[(
            "ledger",
            format!("transport = \"tcp\"\ntcp_address = \"127.0.0.1:{}\"\nconfirm_timeout = 10", sp.apdu_port),
        )],
    )
    .await;
    let _sink = d.sink_channel().await;
    let (_, t) = locked_evm_agent(&d, &anvil.url, 20).await;
    let (_, v) = send(&d, &t, json!({"to": TO, "amount": (6 * ETH).to_string()})).await;
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let mut c = d.cli();
    c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(["owner", "approve", &tx, "--ledger"]);
    let out = crate::support::run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("Ledger"), "{}", text(&out.stderr));
    assert_eq!(row(&d, &t, &tx).await["status"], "QUEUED");
    let (st, _) = approve(&d, &tx, &approval(&d, &tx, true).await.evm(EVM_KEY_0)).await;
    assert_eq!(st, 200);
    wait_status(&d, &t, &tx, "CONFIRMED").await;
}

// Crash: kill -9 right after an approval commits, while the execution waits on the node before
// anything is signed; after the restart the start-up recovery resumes it and the transaction
// lands exactly once (one nonce used, the exact amount once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_interrupted_by_a_crash_lands_once_after_restart() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let o = Opts {
        dev: true,
        config: vec![
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", proxy.url)),
            ("security", "rate_limit_tx_rpm = 100".to_string()),
            notifications_on(),
        ],
        ..Opts::default()
    };
    let mut d = TestDaemon::start(o.clone()).await;
    let _sink = d.sink_channel().await;
    let (a, t) = locked_evm_agent(&d, &anvil.url, 20).await;
    let me = a["address"].as_str().unwrap().to_string();
    let before = crate::support::evm::balance(&anvil.url, TO);
    let (_, v) = send(&d, &t, json!({"to": TO, "amount": (6 * ETH).to_string()})).await;
    let tx = v["transactionId"].as_str().unwrap().to_string();
    // The build's nonce lookup never answers: the execution stalls before signing.
    let calls = proxy.count("eth_getTransactionCount");
    proxy.blackhole(Some("eth_getTransactionCount"));
    let (st, v) = approve(&d, &tx, &approval(&d, &tx, true).await.evm(EVM_KEY_0)).await;
    assert_eq!(st, 200, "{v}");
    for _ in 0..200 {
        if proxy.count("eth_getTransactionCount") > calls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    d.kill9();
    proxy.blackhole(None);
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    {
        let store = waiaas_storage::Store::open(&dir.path().join("data/waiaas.redb"), 1 << 20).unwrap().0;
        let rec = store.get_transaction(tx.parse().unwrap()).unwrap().unwrap();
        assert_eq!(rec.status, waiaas_storage::TxStatus::Executing, "approved, not signed");
        assert!(!rec.metadata.contains_key("signedTx"));
    }
    assert_eq!(crate::support::evm::nonce(&anvil.url, &me), 0);
    let d = TestDaemon::start_in(dir, o).await;
    let rr = wait_status(&d, &t, &tx, "CONFIRMED").await;
    assert_eq!(crate::support::evm::nonce(&anvil.url, &me), 1, "signed and landed once");
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 6 * ETH);
    assert_eq!(d.audit("TX_APPROVED").await.iter().filter(|e| e["txId"] == tx.as_str()).count(), 1);
    assert!(rr["txHash"].is_string());
}

// Issue #21 crash matrix, approvals: 20 APPROVAL rows, each approved by the owner (eth-account)
// into a daemon armed to SIGKILL itself right after the approval commits
// (`WAIAAS_FAILPOINT=after_approve`), then restarted. Every approval that committed survives the
// crash, the restart resumes each exactly once, and the chain shows 20 transfers, 20 nonces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_right_after_approvals_commit_land_each_once() {
    use std::os::unix::process::ExitStatusExt;
    let anvil = Anvil::start();
    let o = |failpoint: Option<&str>| Opts {
        dev: true,
        config: vec![
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url)),
            ("security", "rate_limit_tx_rpm = 100\nmax_pending_tx = 100".to_string()),
            notifications_on(),
        ],
        env: failpoint.map(|f| ("WAIAAS_FAILPOINT".to_string(), f.to_string())).into_iter().collect(),
        ..Opts::default()
    };
    let mut d = TestDaemon::start(o(None)).await;
    let _sink = d.sink_channel().await;
    let race = race_setup(&d, &anvil.url, 20, false, 0x21).await;
    for tx in &race.txs {
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        d.kill9();
        d = TestDaemon::start_in(dir, o(Some("after_approve"))).await;
        // Signed for this process: the message names the daemon's address and one of its nonces.
        let b = sign_approvals(&d, std::slice::from_ref(tx), 1).await.remove(0);
        let req = d.http.post(d.url(&format!("/v1/owner/approve/{tx}"))).bearer_auth(&b[0]).send();
        let answered = tokio::spawn(req);
        let Some(status) = d.wait_exit(Duration::from_secs(60)) else {
            let r = answered.await.unwrap().unwrap();
            panic!("{tx}: the approval never reached the failpoint: {} {}", r.status(), r.text().await.unwrap());
        };
        assert_eq!(status.signal(), Some(9));
        assert!(answered.await.unwrap().is_err(), "{tx}: the daemon died before it answered");
    }
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d = TestDaemon::start_in(dir, o(None)).await;
    let (confirmed, other) = settle(&d, &anvil.url, &race).await;
    assert_eq!((confirmed, other), (20, 0), "every committed approval ran once after its crash");
    for tx in &race.txs {
        assert_eq!(d.audit_all("TX_APPROVED").await.iter().filter(|e| e["txId"] == tx.as_str()).count(), 1);
    }
}

/// One race set-up: an agent with a LOCKED owner whose every send is APPROVAL (or DELAY), `n`
/// queued transfers of `amount` wei to a fresh recipient.
struct Race {
    agent: Value,
    token: String,
    recipient: String,
    txs: Vec<String>,
}

async fn race_setup(d: &TestDaemon, rpc: &str, n: usize, delay: bool, tag: u8) -> Race {
    race_setup_staggered(d, rpc, n, delay, tag, 0).await
}

/// The same, the dev clock moved `stagger` seconds before each send, so each row has its own
/// deadline.
async fn race_setup_staggered(d: &TestDaemon, rpc: &str, n: usize, delay: bool, tag: u8, stagger: u64) -> Race {
    let (agent, _) = locked_evm_agent(d, rpc, 10).await;
    // The staggering itself moves the clock `stagger × n` seconds: every window is that much
    // longer than the spread, so no row times out while the rest are still being queued.
    let spread = stagger * n as u64;
    if delay {
        tiers(d, &agent, 0, 1_000_000, 300 + spread, 3600 + spread).await;
    } else {
        tiers(d, &agent, 0, 0, 60, 300 + spread).await;
    }
    let recipient = format!("0x{:040x}", 0xface0000u64 + tag as u64);
    let mut txs = Vec::new();
    // Sessions allow 100 sends a minute: a fresh session per 90.
    let mut t = String::new();
    for i in 0..n {
        if stagger > 0 && i > 0 {
            d.advance(stagger).await;
        }
        if i % 90 == 0 {
            t = d.create_session(&id(&agent), json!({})).await["token"].as_str().unwrap().to_string();
        }
        let (st, v) = send(d, &t, json!({"to": recipient, "amount": "1000"})).await;
        assert_eq!(st, 202, "{v}");
        txs.push(v["transactionId"].as_str().unwrap().to_string());
    }
    Race { agent, token: t, recipient, txs }
}

/// Moves the dev clock to one second before `tx`'s `expiresAt` (its DELAY execute-at or its
/// APPROVAL deadline), when that is still ahead.
async fn to_one_second_before(d: &TestDaemon, token: &str, tx: &str) {
    to_seconds_before(d, token, tx, 1).await
}

/// Moves the dev clock to `secs` seconds before `tx`'s `expiresAt`, when that is still ahead.
async fn to_seconds_before(d: &TestDaemon, token: &str, tx: &str, secs: i64) {
    let r = row(d, token, tx).await;
    let due = chrono::DateTime::parse_from_rfc3339(r["expiresAt"].as_str().unwrap()).unwrap().timestamp();
    let now = crate::support::owner::daemon_now(d).await;
    if due - secs > now {
        d.advance((due - secs - now) as u64).await;
    }
}

/// A deterministic spread of delays in `0..max_ms` for race `i`.
fn jitter(i: usize, max_ms: u64) -> Duration {
    Duration::from_micros((i as u64).wrapping_mul(2_654_435_761) % (max_ms * 1000))
}

/// `n` approval messages per transaction, signed by eth-account in one process.
async fn sign_approvals(d: &TestDaemon, txs: &[String], per_tx: usize) -> Vec<Vec<String>> {
    let mut msgs = Vec::new();
    for tx in txs {
        for _ in 0..per_tx {
            msgs.push(approval(d, tx, true).await);
        }
    }
    let sigs = evm_sign_many(EVM_KEY_0, &msgs.iter().map(Msg::text).collect::<Vec<_>>());
    let bearers: Vec<String> = msgs.iter().zip(sigs).map(|(m, s)| m.payload(&s)).collect();
    bearers.chunks(per_tx).map(|c| c.to_vec()).collect()
}

/// The chain as the witness: the recipient received `amount` for each row that ended
/// CONFIRMED and nothing else, the agent used exactly that many nonces, every row ended in one
/// final state, and no row was submitted twice.
async fn settle(d: &TestDaemon, rpc: &str, race: &Race) -> (usize, usize) {
    let mut confirmed = 0;
    let mut other = 0;
    for tx in &race.txs {
        let r = wait_row(d, &race.token, tx, |r| {
            ["CONFIRMED", "CANCELLED", "EXPIRED", "FAILED"].contains(&r["status"].as_str().unwrap())
        })
        .await;
        match r["status"].as_str().unwrap() {
            "CONFIRMED" => confirmed += 1,
            "CANCELLED" | "EXPIRED" => {
                assert_eq!(r["reservedAmount"], Value::Null, "{tx}: reservation released");
                other += 1;
            }
            s => panic!("{tx} ended {s}: {r}"),
        }
    }
    let submitted = d.audit_all("TX_SUBMITTED").await;
    for tx in &race.txs {
        let n = submitted.iter().filter(|e| e["txId"] == tx.as_str()).count();
        let status = row(d, &race.token, tx).await["status"].clone();
        assert_eq!(n, usize::from(status == "CONFIRMED"), "{tx} ({status}) was submitted {n} times");
    }
    assert_eq!(
        crate::support::evm::balance(rpc, &race.recipient),
        1000 * confirmed as u128,
        "landed at most once each"
    );
    assert_eq!(
        crate::support::evm::nonce(rpc, race.agent["address"].as_str().unwrap()),
        confirmed as u64,
        "signed at most once each"
    );
    (confirmed, other)
}

// Races, 100 each, on anvil (issue #13): approve vs reject, two concurrent approvals (ACC-183),
// approve vs the approval timeout, reject vs the DELAY worker's claim. Exactly one outcome wins
// each time; what lost was never signed and released its reservation; the chain shows each
// winner landed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_reject_timeout_and_claim_races_have_one_winner() {
    let anvil = Anvil::start();
    let d = Arc::new(evm_daemon(&anvil.url, &[("security", "max_pending_tx = 100".into())]).await);
    let _sink = d.sink_channel().await;
    d.allow_hourly(100_000).await;
    let n = 100;

    // Approve vs reject.
    let race = race_setup(&d, &anvil.url, n, false, 1).await;
    let bearers = sign_approvals(&d, &race.txs, 1).await;
    let mut tasks = Vec::new();
    for (tx, b) in race.txs.iter().zip(bearers) {
        let (d1, d2, tx1, tx2, b) = (d.clone(), d.clone(), tx.clone(), tx.clone(), b[0].clone());
        tasks.push(tokio::spawn(async move {
            let (a, r) = tokio::join!(approve(&d1, &tx1, &b), reject(&d2, &tx2, json!({})));
            (a, r)
        }));
    }
    for t in tasks {
        let ((sa, va), (sr, vr)) = t.await.unwrap();
        let wins = [sa, sr].iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "approve {sa} {va}, reject {sr} {vr}");
        let loser = if sa == 200 { &vr } else { &va };
        assert_eq!(code(loser), Some("TX_ALREADY_PROCESSED"), "{loser}");
    }
    let (c, o) = settle(&d, &anvil.url, &race).await;
    assert_eq!(c + o, n);
    eprintln!("approve vs reject: {c} approved, {o} rejected");

    // Two approvals at once (ACC-183).
    let race = race_setup(&d, &anvil.url, n, false, 2).await;
    let bearers = sign_approvals(&d, &race.txs, 2).await;
    let mut tasks = Vec::new();
    for (tx, b) in race.txs.iter().zip(bearers) {
        let (d1, d2, tx1, tx2) = (d.clone(), d.clone(), tx.clone(), tx.clone());
        let (b1, b2) = (b[0].clone(), b[1].clone());
        tasks.push(tokio::spawn(async move { tokio::join!(approve(&d1, &tx1, &b1), approve(&d2, &tx2, &b2)) }));
    }
    for t in tasks {
        let ((s1, v1), (s2, v2)) = t.await.unwrap();
        let mut got = [(s1, code(&v1).unwrap_or("")), (s2, code(&v2).unwrap_or(""))];
        got.sort();
        assert_eq!(got, [(200, ""), (409, "TX_ALREADY_PROCESSED")], "{v1} {v2}");
    }
    let (c, _) = settle(&d, &anvil.url, &race).await;
    assert_eq!(c, n, "each executed once");

    // Approve vs the approval timeout, one row at a time: rows queued 10 s apart (so each has
    // its own deadline, and the real time spent signing never carries the clock past the next
    // one); for each row its approval is signed a minute before its deadline, the clock is
    // brought to one second before it, and the approval races the clock passing the deadline
    // (which wakes the timeout worker).
    let race = race_setup_staggered(&d, &anvil.url, n, false, 3, 10).await;
    let mut approved = 0;
    for (i, tx) in race.txs.iter().enumerate() {
        // Signed shortly before the deadline (a message signed before the clock moved that far
        // would have expired on its own), with margin for the signer's real time.
        to_seconds_before(&d, &race.token, tx, 60).await;
        let b = sign_approvals(&d, std::slice::from_ref(tx), 1).await.remove(0);
        to_one_second_before(&d, &race.token, tx).await;
        let (d1, tx1, b) = (d.clone(), tx.clone(), b[0].clone());
        // A jitter of 0–12 ms on the clock's side, so both orders happen.
        let clock = async {
            tokio::time::sleep(jitter(i, 12)).await;
            d.advance(2).await
        };
        let (approval, _) = tokio::join!(approve(&d1, &tx1, &b), clock);
        match approval {
            (200, _) => approved += 1,
            (410, v) => assert_eq!(code(&v), Some("TX_EXPIRED")),
            (409, v) => assert_eq!(code(&v), Some("TX_ALREADY_PROCESSED"), "the worker expired it first: {v}"),
            // The clock passed the signed message's own window before it was checked.
            (401, v) => assert_eq!(code(&v), Some("INVALID_SIGNATURE"), "{v}"),
            (st, v) => panic!("{st} {v}"),
        }
    }
    let (c, o) = settle(&d, &anvil.url, &race).await;
    assert_eq!((c, c + o), (approved, n), "every approved one executed, every other expired");
    eprintln!("approve vs timeout: {c} approved, {o} expired");

    // Reject vs the DELAY worker's claim, one row at a time: rows queued 1 s apart; for each,
    // the clock is brought to one second before it is due and its reject races the clock
    // making it due (which wakes the worker to claim it).
    let race = race_setup_staggered(&d, &anvil.url, n, true, 4, 1).await;
    let mut rejected = 0;
    for (i, tx) in race.txs.iter().enumerate() {
        to_one_second_before(&d, &race.token, tx).await;
        let (d1, tx1) = (d.clone(), tx.clone());
        let owner = async {
            tokio::time::sleep(jitter(i, 8)).await;
            reject(&d1, &tx1, json!({})).await
        };
        let (rejection, _) = tokio::join!(owner, d.advance(1));
        match rejection {
            (200, _) => rejected += 1,
            (409, v) => assert_eq!(code(&v), Some("TX_ALREADY_PROCESSED"), "{v}"),
            (st, v) => panic!("{st} {v}"),
        }
    }
    let (c, o) = settle(&d, &anvil.url, &race).await;
    assert_eq!((o, c + o), (rejected, n), "every reject that won left an unsigned row");
    eprintln!("reject vs claim: {o} rejected, {c} executed");
}

// ACC-222b: with the default policies and the seeded AutoStop rules, the owner approves 6 ETH
// and then 8 ETH — 14 ETH, far above DAILY_LIMIT_THRESHOLD's 5 ETH — and both land while the
// agent stays ACTIVE with its session. Volume the agent moves on its own still counts: four
// 1 ETH NOTIFY sends warn at 80 % (AUTO_STOP_WARN), the fifth suspends at 100 %. AutoStop reads
// its events in order on one task, so by the time the 80 % warning exists it has already seen
// both approved transfers: had they counted, the agent would have been suspended before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_approved_transfers_never_trip_the_daily_limit_rule() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let mut cfg = vec![
        ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url)),
        notifications_on(),
    ];
    cfg.push(("security", "rate_limit_tx_rpm = 100".to_string()));
    let d = TestDaemon::start(Opts { dev: true, config: cfg, autostop: true, ..Opts::default() }).await;
    webhook(&d, &r, "owner").await;
    let (st, seeded) = d.master("GET", "/v1/admin/auto-stop/rules", None).await;
    assert_eq!(st, 200, "{seeded}");
    assert!(
        seeded["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "DAILY_LIMIT_THRESHOLD" && r["enabled"] == true),
        "the seeded DAILY_LIMIT_THRESHOLD rule is on: {seeded}"
    );
    let (a, t) = locked_evm_agent(&d, &anvil.url, 25).await;
    let before = crate::support::evm::balance(&anvil.url, TO);
    for eth in [6, 8] {
        let (st, v) = send(&d, &t, json!({"to": TO, "amount": (eth * ETH).to_string()})).await;
        assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{eth} ETH: {v}");
        let tx = v["transactionId"].as_str().unwrap().to_string();
        let (st, v) = approve(&d, &tx, &approval(&d, &tx, true).await.evm(EVM_KEY_0)).await;
        assert_eq!(st, 200, "{v}");
        wait_status(&d, &t, &tx, "CONFIRMED").await;
    }
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 14 * ETH, "both approved transfers landed");

    let agent = async |d: &TestDaemon| d.master("GET", &format!("/v1/agents/{}", id(&a)), None).await.1;
    let warned = async |d: &TestDaemon| {
        d.audit_all("AUTO_STOP_WARN").await.iter().filter(|e| e["agentId"] == id(&a).as_str()).count()
    };
    for i in 0..4 {
        let (st, v) = send(&d, &t, json!({"to": TO, "amount": ETH.to_string()})).await;
        assert_eq!(
            (st, v["tier"].as_str(), v["status"].as_str()),
            (200, Some("NOTIFY"), Some("CONFIRMED")),
            "{i}: {v}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while warned(&d).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(warned(&d).await, 1, "4 ETH of its own is 80 % of 5 ETH: one warning");
    let now = agent(&d).await;
    assert_eq!(now["status"], "ACTIVE", "the 14 approved ETH did not count: {now}");
    let (st, v) = d.bearer("GET", "/v1/wallet/balance", &t, None).await;
    assert_eq!(st, 200, "the session is alive: {v}");

    let (st, v) = send(&d, &t, json!({"to": TO, "amount": ETH.to_string()})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut now = agent(&d).await;
    while now["status"] != "SUSPENDED" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = agent(&d).await;
    }
    let reason = now["suspensionReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("auto_stop: DAILY_LIMIT_THRESHOLD - 100%"), "5 ETH of its own is 100 %: {now}");
    assert_eq!(crate::support::evm::balance(&anvil.url, TO) - before, 19 * ETH);
}
