//! The policy engine end to end (07-policy.md, issue #12): real daemons on surfnet-local and
//! anvil, policies created through `/v1/owner/policies`, every decision read from the send
//! response, the stored row and the audit log. Owner signatures come from PyNaCl and
//! eth-account; CoinGecko is a local stand-in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::api::{ETH, SOL, code, id, row, send};
use crate::support::nodes::{Anvil, Surfnet};
use crate::support::owner::{EVM_ADDR_0, EVM_ADDR_1, EVM_KEY_0, Msg, daemon_now, sol_owner};
use crate::support::sink::notifications_on;
use crate::support::{TestDaemon, text};

/// (status, tier, status field) of a send response.
fn outcome(st: u16, v: &Value) -> (u16, Option<&str>, Option<&str>) {
    (st, v["tier"].as_str(), v["status"].as_str())
}

async fn dry_run(d: &TestDaemon, token: &str, body: Value) -> Value {
    let (st, v) = d.bearer("POST", "/v1/transactions/dry-run", token, Some(body)).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn delete_all_policies(d: &TestDaemon) {
    let (_, v) = d.master("GET", "/v1/owner/policies", None).await;
    for p in v["policies"].as_array().unwrap() {
        let (st, r) = d.master("DELETE", &format!("/v1/owner/policies/{}", id(p)), None).await;
        assert_eq!(st, 200, "{r}");
    }
}

/// A Solana daemon on `node`, with notifications available (one sink channel) when asked.
async fn sol_daemon(node: &Surfnet, notifications: bool, extra: &[(&'static str, String)]) -> TestDaemon {
    let mut cfg = extra.to_vec();
    if notifications {
        cfg.push(notifications_on());
    }
    let d = crate::support::solana::daemon(&node.url, &cfg).await;
    if notifications {
        std::mem::forget(d.sink_channel().await);
    }
    d
}

/// Locks a Solana agent's owner: registered, then verified with a PyNaCl signature.
async fn lock_sol_owner(d: &TestDaemon, seed_byte: u8) -> Value {
    let (seed, pubkey) = sol_owner(seed_byte);
    let a = d.create_agent(json!({"owner": pubkey})).await;
    let m = Msg::new(d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.sol(&seed, "raw"), None).await;
    assert_eq!((st, v["ownerState"].as_str()), (200, Some("LOCKED")), "{v}");
    a
}

fn airdrop(node: &Surfnet, address: &str, lamports: u64) {
    crate::support::solana::rpc(&node.url, "requestAirdrop", json!([address, lamports]));
    for _ in 0..100 {
        if crate::support::solana::balance(&node.url, address) >= lamports {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("airdrop to {address} did not land");
}

async fn session(d: &TestDaemon, agent: &Value) -> String {
    d.create_session(&id(agent), json!({})).await["token"].as_str().unwrap().to_string()
}

// ACC-185, ACC-154: with no enabled policy at all a TRANSFER is INSTANT (whatever the amount),
// while token transfers, contract calls and approvals are denied for want of a policy; each
// denial is 403 with its code, a CANCELLED row with error POLICY_VIOLATION and a
// POLICY_VIOLATION audit row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_policy_only_native_transfers_pass() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    delete_all_policies(&d).await;
    let (agent, t) = crate::support::solana::funded_agent(&d, &node.url, 5, json!({})).await;
    let to = crate::support::solana::fresh_address();
    let (st, v) = send(&d, &t, json!({"to": to, "amount": (3 * SOL).to_string()})).await;
    assert_eq!(outcome(st, &v), (200, Some("INSTANT"), Some("CONFIRMED")), "{v}");
    let me = agent["address"].as_str().unwrap();
    let denied = [
        (
            json!({"type": "TOKEN_TRANSFER", "to": to, "amount": "1", "token": {"mint": crate::support::solana::fresh_address()}}),
            "TOKEN_NOT_ALLOWED",
        ),
        (
            json!({"type": "CONTRACT_CALL", "contractAddress": crate::support::solana::MEMO, "instructionData": "aGk=",
                   "accounts": [{"pubkey": me, "isSigner": true, "isWritable": false}]}),
            "CONTRACT_CALL_DISABLED",
        ),
        (
            json!({"type": "APPROVE", "token": {"mint": crate::support::solana::fresh_address()}, "spender": to, "amount": "1"}),
            "APPROVE_DISABLED",
        ),
    ];
    for (body, want) in denied {
        let (st, v) = send(&d, &t, body).await;
        assert_eq!((st, code(&v)), (403, Some(want)), "{v}");
        let tx = v["details"]["transactionId"].as_str().unwrap().to_string();
        let r = row(&d, &t, &tx).await;
        assert_eq!((r["status"].as_str(), r["error"].as_str()), (Some("CANCELLED"), Some("POLICY_VIOLATION")), "{r}");
        let audit = d.audit("POLICY_VIOLATION").await;
        let a =
            audit.iter().find(|e| e["txId"] == tx.as_str()).unwrap_or_else(|| panic!("no POLICY_VIOLATION for {tx}"));
        assert_eq!((a["severity"].as_str(), a["details"]["code"].as_str()), (Some("warning"), Some(want)));
    }
}

// ACC-186: an agent-specific policy replaces the global ones of its type, other types keep the
// global ones, and a chain-scoped global policy beats an all-chains one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_agent_beats_chain_beats_all_chains() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, true, &[]).await;
    delete_all_policies(&d).await;
    let (a, ta) = crate::support::solana::funded_agent(&d, &node.url, 1, json!({})).await;
    let (_, tb) = crate::support::solana::funded_agent(&d, &node.url, 1, json!({})).await;
    let (w1, w2) =
        (crate::support::solana::existing_address(&node.url), crate::support::solana::existing_address(&node.url));
    let sl = |i: u64, n: u64, dl: u64| json!({"instant_max": i.to_string(), "notify_max": n.to_string(), "delay_max": dl.to_string()});
    let tier = async |t: &str, to: &str| dry_run(&d, t, json!({"to": to, "amount": "150"})).await;
    // All chains: 150 lamports is NOTIFY.
    d.policy(json!({"type": "SPENDING_LIMIT", "rules": sl(100, 200, 300)})).await;
    assert_eq!(tier(&ta, &w1).await["tier"], "NOTIFY");
    // A global Solana policy beats it: INSTANT.
    d.policy(json!({"type": "SPENDING_LIMIT", "chain": "solana", "rules": sl(1000, 2000, 3000)})).await;
    assert_eq!(tier(&ta, &w1).await["tier"], "INSTANT");
    // An agent policy beats both, for that agent only: DELAY for A, INSTANT for B.
    let own = d
        .policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": sl(10, 100, 1000)}))
        .await;
    let ra = tier(&ta, &w1).await;
    assert_eq!((ra["tier"].as_str(), ra["policyId"].as_str()), (Some("DELAY"), own["id"].as_str()), "{ra}");
    assert_eq!(tier(&tb, &w1).await["tier"], "INSTANT");
    // Other types: A's SPENDING_LIMIT does not hide the global WHITELIST …
    d.policy(json!({"type": "WHITELIST", "rules": {"allowed_addresses": [w1]}})).await;
    assert_eq!(tier(&ta, &w2).await["code"], "WHITELIST_DENIED");
    // … until A has a WHITELIST of its own, which replaces it.
    d.policy(json!({"agentId": id(&a), "type": "WHITELIST", "rules": {"allowed_addresses": [w2]}})).await;
    assert_eq!(tier(&ta, &w2).await["allowed"], true);
    assert_eq!(tier(&ta, &w1).await["code"], "WHITELIST_DENIED");
    assert_eq!(tier(&tb, &w2).await["code"], "WHITELIST_DENIED", "B still has the global one");
    // The agent view marks which policies are effective.
    let (_, view) = d.master("GET", &format!("/v1/agents/{}", id(&a)), None).await;
    let effective: Vec<(String, String, bool)> = view["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["type"].as_str().unwrap().into(), p["level"].as_str().unwrap().into(), p["effective"].as_bool().unwrap())
        })
        .collect();
    for (t, level, eff) in [
        ("SPENDING_LIMIT", "global", false),
        ("SPENDING_LIMIT", "chain", false),
        ("SPENDING_LIMIT", "agent", true),
        ("WHITELIST", "global", false),
        ("WHITELIST", "agent", true),
    ] {
        assert!(effective.contains(&(t.into(), level.into(), eff)), "{t} {level} {eff}: {effective:?}");
    }
    // A real send agrees with the dry run.
    let (st, v) = send(&d, &ta, json!({"to": w2, "amount": "150"})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("DELAY")), "{v}");
}

// ACC-187: a policy change applies to the very next request — also under load: while eight
// clients send, a WHITELIST that excludes their recipient is added, and no decision that
// committed after the policy did allowed a send (ordered by the hash-chained audit log, whose
// sequence is the commit order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_applies_to_the_very_next_request() {
    let node = Surfnet::start();
    let d = Arc::new(sol_daemon(&node, false, &[]).await);
    let (_, t) = crate::support::solana::funded_agent(&d, &node.url, 2, json!({})).await;
    let (w1, w2) =
        (crate::support::solana::existing_address(&node.url), crate::support::solana::existing_address(&node.url));
    let (st, _) = send(&d, &t, json!({"to": w1, "amount": "1000"})).await;
    assert_eq!(st, 200);
    let p = d.policy(json!({"type": "WHITELIST", "rules": {"allowed_addresses": [w2]}})).await;
    let (st, v) = send(&d, &t, json!({"to": w1, "amount": "1000"})).await;
    assert_eq!((st, code(&v)), (403, Some("WHITELIST_DENIED")), "{v}");
    let (st, v) = d
        .master("PUT", &format!("/v1/owner/policies/{}", id(&p)), Some(json!({"rules": {"allowed_addresses": [w1]}})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(send(&d, &t, json!({"to": w1, "amount": "1000"})).await.0, 200);
    d.master("DELETE", &format!("/v1/owner/policies/{}", id(&p)), None).await;

    // Under load: each of 8 clients (own agent, own session) sends to w1 in a loop.
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(crate::support::solana::funded_agent(&d, &node.url, 1, json!({})).await.1);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in tokens {
        let (d, stop, sent, w1) = (d.clone(), stop.clone(), sent.clone(), w1.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                send(&d, &t, json!({"to": w1, "amount": "1000"})).await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while sent.load(Ordering::Relaxed) < 16 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = d.policy(json!({"type": "WHITELIST", "rules": {"allowed_addresses": [w2]}})).await;
    let after = sent.load(Ordering::Relaxed);
    while sent.load(Ordering::Relaxed) < after + 16 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let created = d.audit("POLICY_CREATED").await;
    let seq = created.iter().find(|e| e["details"]["policyId"] == id(&p).as_str()).unwrap()["seq"].as_u64().unwrap();
    let queued: Vec<u64> = d.audit("TX_QUEUED").await.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let denied: Vec<u64> = d.audit("POLICY_VIOLATION").await.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(queued.iter().any(|s| *s < seq), "some sends were allowed before the change");
    assert!(denied.iter().filter(|s| **s > seq).count() >= 8, "sends after the change were denied");
    assert!(!queued.iter().any(|s| *s > seq), "a decision committed after the WHITELIST allowed a send to w1");
}

// ACC-188 on surfnet-local with the default Solana policy: both sides of every boundary to the
// lamport. INSTANT and NOTIFY execute (200); DELAY and APPROVAL are queued (202). Above the
// DELAY bound the tier is APPROVAL for a LOCKED owner and DELAY (downgraded) otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_solana_policy_tiers_to_the_lamport() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, true, &[]).await;
    let (_, t) = crate::support::solana::funded_agent(&d, &node.url, 15, json!({})).await;
    let to = crate::support::solana::existing_address(&node.url);
    for (amount, st_want, tier_want) in [
        (SOL, 200, "INSTANT"),
        (SOL + 1, 200, "NOTIFY"),
        (10 * SOL, 200, "NOTIFY"),
        (10 * SOL + 1, 202, "DELAY"),
        (50 * SOL, 202, "DELAY"),
        (50 * SOL + 1, 202, "DELAY"),
    ] {
        let (st, v) = send(&d, &t, json!({"to": to, "amount": amount.to_string()})).await;
        assert_eq!((st, v["tier"].as_str()), (st_want, Some(tier_want)), "{amount}: {v}");
        if st == 200 {
            assert_eq!(v["status"], "CONFIRMED", "{v}");
        } else {
            assert_eq!(v["status"], "QUEUED");
            assert_eq!(v["downgraded"], json!(amount > 50 * SOL), "{v}");
            assert_eq!(v["delaySeconds"], 300);
        }
    }
    let locked = lock_sol_owner(&d, 0x51).await;
    let tl = session(&d, &locked).await;
    let (st, v) = send(&d, &tl, json!({"to": to, "amount": (50 * SOL + 1).to_string()})).await;
    assert_eq!(
        (st, v["tier"].as_str(), v["approvalTimeoutSeconds"].as_u64()),
        (202, Some("APPROVAL"), Some(3600)),
        "{v}"
    );
    let (st, v) = send(&d, &tl, json!({"to": to, "amount": (50 * SOL).to_string()})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("DELAY")), "{v}");
}

// ACC-188 on anvil with the default Ethereum policy, to the wei.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_ethereum_policy_tiers_to_the_wei() {
    let anvil = Anvil::start();
    let d = crate::support::evm::daemon(&anvil.url, &[notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (_, t) = crate::support::evm::funded_agent(&d, &anvil.url, 3, json!({})).await;
    let tenth = ETH / 10;
    for (amount, st_want, tier_want) in [
        (tenth, 200, "INSTANT"),
        (tenth + 1, 200, "NOTIFY"),
        (ETH, 200, "NOTIFY"),
        (ETH + 1, 202, "DELAY"),
        (5 * ETH, 202, "DELAY"),
        (5 * ETH + 1, 202, "DELAY"),
    ] {
        let (st, v) = send(&d, &t, json!({"to": EVM_ADDR_1, "amount": amount.to_string()})).await;
        assert_eq!((st, v["tier"].as_str()), (st_want, Some(tier_want)), "{amount}: {v}");
    }
    let a = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
    let m = Msg::new(&d, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{}", id(&a)), "31337").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.evm(EVM_KEY_0), None).await;
    assert_eq!(st, 200, "{v}");
    let tl = session(&d, &a).await;
    let (st, v) = send(&d, &tl, json!({"to": EVM_ADDR_1, "amount": (5 * ETH + 1).to_string()})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{v}");
    let (st, v) = send(&d, &tl, json!({"to": EVM_ADDR_1, "amount": (5 * ETH).to_string()})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("DELAY")), "{v}");
}

// ACC-189: with notifications disabled (the default) only INSTANT is allowed: 2 SOL is 403
// POLICY_DENIED (NOTIFICATIONS_UNAVAILABLE) while 0.5 SOL is INSTANT; the same with
// notifications enabled but fewer enabled channels than min_channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_only_instant_is_allowed() {
    let node = Surfnet::start();
    for enabled_with_one_of_two in [false, true] {
        let extra = if enabled_with_one_of_two {
            vec![("notifications", "enabled = true\nmin_channels = 2".to_string())]
        } else {
            vec![]
        };
        let d = crate::support::solana::daemon(&node.url, &extra).await;
        let _sink = if enabled_with_one_of_two { Some(d.sink_channel().await) } else { None };
        let (_, t) = crate::support::solana::funded_agent(&d, &node.url, 3, json!({})).await;
        let to = crate::support::solana::existing_address(&node.url);
        let (st, v) = send(&d, &t, json!({"to": to, "amount": (2 * SOL).to_string()})).await;
        assert_eq!((st, code(&v)), (403, Some("POLICY_DENIED")), "{v}");
        assert_eq!(
            (v["details"]["reason"].as_str(), v["details"]["tier"].as_str()),
            (Some("NOTIFICATIONS_UNAVAILABLE"), Some("NOTIFY"))
        );
        let (st, v) = send(&d, &t, json!({"to": to, "amount": (SOL / 2).to_string()})).await;
        assert_eq!(outcome(st, &v), (200, Some("INSTANT"), Some("CONFIRMED")), "{v}");
    }
}

// ACC-190: an empty WHITELIST allows any destination; a non-empty one denies an unlisted `to`
// with WHITELIST_DENIED; EVM addresses compare case-insensitively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitelists_compare_evm_addresses_case_insensitively() {
    let anvil = Anvil::start();
    let d = crate::support::evm::daemon(&anvil.url, &[]).await;
    let (a, t) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;
    let other = "0x000000000000000000000000000000000000bEEF";
    let p = d.policy(json!({"agentId": id(&a), "type": "WHITELIST", "rules": {"allowed_addresses": []}})).await;
    assert_eq!(send(&d, &t, json!({"to": other, "amount": "1000"})).await.0, 200, "empty list: anything");
    let lower = EVM_ADDR_1.to_lowercase();
    let (st, v) = d
        .master(
            "PUT",
            &format!("/v1/owner/policies/{}", id(&p)),
            Some(json!({"rules": {"allowed_addresses": [lower]}})),
        )
        .await;
    assert_eq!(v["rules"]["allowed_addresses"][0], EVM_ADDR_1, "{st} {v}");
    let (st, v) = send(&d, &t, json!({"to": other, "amount": "1000"})).await;
    assert_eq!(
        (st, code(&v), v["details"]["policyId"].as_str()),
        (403, Some("WHITELIST_DENIED"), p["id"].as_str()),
        "{v}"
    );
    let upper = format!("0x{}", EVM_ADDR_1[2..].to_uppercase());
    for to in [EVM_ADDR_1.to_string(), lower, upper] {
        let (st, v) = send(&d, &t, json!({"to": to, "amount": "1000"})).await;
        assert_eq!(st, 200, "{to}: {v}");
    }
}

/// Seconds to add to `now` to reach the next time whose local hour in `tz` is `hour`.
fn until_hour(now: i64, tz: chrono_tz::Tz, hour: u32) -> i64 {
    use chrono::{TimeZone, Timelike};
    let mut t = now - now % 3600 + 3600 + 60;
    while tz.timestamp_opt(t, 0).unwrap().hour() != hour {
        t += 3600;
    }
    t - now
}

// ACC-191: TIME_RESTRICTION 22→6 in Asia/Seoul allows hours 23 and 5 and denies hour 6, with
// the daemon's clock moved by the dev clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_restriction_follows_the_configured_timezone() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    let a = d.create_agent(json!({})).await;
    airdrop(&node, a["address"].as_str().unwrap(), SOL);
    d.policy(json!({"agentId": id(&a), "type": "TIME_RESTRICTION",
        "rules": {"allowed_hours": {"start": 22, "end": 6}, "timezone": "Asia/Seoul"}}))
        .await;
    let to = crate::support::solana::existing_address(&node.url);
    for (hour, allowed) in [(23u32, true), (5, true), (6, false), (12, false)] {
        let now = daemon_now(&d).await;
        d.advance(until_hour(now, chrono_tz::Asia::Seoul, hour) as u64).await;
        // A fresh session each time: the clock jumps past the previous one's lifetime.
        let t = session(&d, &a).await;
        let (st, v) = send(&d, &t, json!({"to": to, "amount": "1000"})).await;
        if allowed {
            assert_eq!(st, 200, "{hour}:00 Seoul: {v}");
        } else {
            assert_eq!(
                (st, code(&v), v["details"]["policyType"].as_str()),
                (403, Some("POLICY_DENIED"), Some("TIME_RESTRICTION")),
                "{hour}:00: {v}"
            );
        }
    }
}

// ACC-192: RATE_LIMIT max_tx_per_hour = 3 admits three requests in a rolling hour and denies the
// fourth with 429 RATE_LIMIT_EXCEEDED (stage "policy"); CANCELLED rows (a session-limit refusal,
// the policy denials themselves) do not count; an hour later it admits again. (EXPIRED rows
// are left out by the same counter rule; storage's counters_agree_with_a_scan checks it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_counts_a_rolling_hour() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    let a = d.create_agent(json!({})).await;
    airdrop(&node, a["address"].as_str().unwrap(), SOL);
    let p = d.policy(json!({"agentId": id(&a), "type": "RATE_LIMIT", "rules": {"max_tx_per_hour": 3}})).await;
    let t = d.create_session(&id(&a), json!({"constraints": {"maxAmountPerTx": "5000"}})).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let to = crate::support::solana::existing_address(&node.url);
    let (st, v) = send(&d, &t, json!({"to": to, "amount": "6000"})).await;
    assert_eq!((st, v["details"]["code"].as_str()), (403, Some("SESSION_LIMIT_PER_TX")), "{v}");
    for _ in 0..3 {
        assert_eq!(send(&d, &t, json!({"to": to, "amount": "1000"})).await.0, 200);
    }
    for _ in 0..2 {
        let r = d
            .http
            .post(d.url("/v1/transactions/send"))
            .bearer_auth(&t)
            .json(&json!({"to": to, "amount": "1000"}))
            .send()
            .await
            .unwrap();
        let header = r.headers().get("retry-after").map(|h| h.to_str().unwrap().to_string());
        let (st, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
        assert_eq!((st, code(&v)), (429, Some("RATE_LIMIT_EXCEEDED")), "{v}");
        assert_eq!(header, Some(v["details"]["retryAfter"].to_string()), "Retry-After matches the details");
        let det = &v["details"];
        assert_eq!(
            (det["stage"].as_str(), det["window"].as_str(), det["limit"].as_u64(), det["policyId"].as_str()),
            (Some("policy"), Some("1h"), Some(3), p["id"].as_str())
        );
        let retry = det["retryAfter"].as_u64().unwrap();
        assert!((3590..=3600).contains(&retry), "{retry}");
        let r = row(&d, &t, det["transactionId"].as_str().unwrap()).await;
        assert_eq!(r["status"], "CANCELLED");
    }
    d.advance(3601).await;
    let t = session(&d, &a).await;
    assert_eq!(send(&d, &t, json!({"to": to, "amount": "1000"})).await.0, 200, "a rolling hour later");
}

// ACC-193, ACC-204: a listed token passes with NOTIFY when no USD threshold applies (provider
// `none`); an unlisted one is denied, or NOTIFY with unknown_token_action "notify"; native
// tiering is unchanged by USD thresholds without prices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_transfers_are_notify_without_a_price() {
    use crate::support::solana::{TOKEN, create_mint, fund_tokens};
    let node = Surfnet::start();
    let d = sol_daemon(&node, true, &[]).await;
    let (a, t) = crate::support::solana::funded_agent(&d, &node.url, 3, json!({})).await;
    let me = a["address"].as_str().unwrap();
    let (listed, other) = (create_mint(&node.url, TOKEN, 6, &[]), create_mint(&node.url, TOKEN, 6, &[]));
    fund_tokens(&node.url, me, &listed, TOKEN, 1_000);
    fund_tokens(&node.url, me, &other, TOKEN, 1_000);
    let to = crate::support::solana::existing_address(&node.url);
    let p = d.policy(json!({"agentId": id(&a), "type": "ALLOWED_TOKENS", "rules": {"tokens": [{"mint": listed, "symbol": "LST"}]}})).await;
    let tok = |mint: &str| json!({"type": "TOKEN_TRANSFER", "to": to, "amount": "10", "token": {"mint": mint}});
    let (st, v) = send(&d, &t, tok(&listed)).await;
    assert_eq!(outcome(st, &v), (200, Some("NOTIFY"), Some("CONFIRMED")), "{v}");
    let (st, v) = send(&d, &t, tok(&other)).await;
    assert_eq!(
        (st, code(&v), v["details"]["token"].as_str()),
        (403, Some("TOKEN_NOT_ALLOWED"), Some(other.as_str())),
        "{v}"
    );
    d.master(
        "PUT",
        &format!("/v1/owner/policies/{}", id(&p)),
        Some(json!({"rules": {"tokens": [{"mint": listed}], "unknown_token_action": "notify"}})),
    )
    .await;
    let (st, v) = send(&d, &t, tok(&other)).await;
    assert_eq!(outcome(st, &v), (200, Some("NOTIFY"), Some("CONFIRMED")), "{v}");
    // USD thresholds with no oracle: native amounts tier on the native thresholds alone.
    d.policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": SOL.to_string(), "notify_max": (10 * SOL).to_string(), "delay_max": (50 * SOL).to_string(),
        "instant_max_usd": "0.01", "notify_max_usd": "0.02", "delay_max_usd": "0.03"}}))
        .await;
    let (st, v) = send(&d, &t, json!({"to": to, "amount": SOL.to_string()})).await;
    assert_eq!(outcome(st, &v), (200, Some("INSTANT"), Some("CONFIRMED")), "{v}");
    let queued = d.audit("TX_QUEUED").await;
    assert!(queued.iter().find(|e| e["txId"] == v["transactionId"]).unwrap()["details"].get("usd").is_none());
}

// ACC-194: ALLOWED_TOKENS with allow_native: false denies a TRANSFER (details.token "native").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_native_false_denies_native_transfers() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    let (a, t) = crate::support::solana::funded_agent(&d, &node.url, 1, json!({})).await;
    d.policy(json!({"agentId": id(&a), "type": "ALLOWED_TOKENS", "rules": {"tokens": [], "allow_native": false}}))
        .await;
    let (st, v) =
        send(&d, &t, json!({"to": crate::support::solana::existing_address(&node.url), "amount": "1000"})).await;
    assert_eq!((st, code(&v), v["details"]["token"].as_str()), (403, Some("TOKEN_NOT_ALLOWED"), Some("native")), "{v}");
}

// ACC-195 … ACC-199, ACC-205 on anvil: contract calls (whitelist, default tier, methods) and
// approvals (spenders, amount limits, tier override), with and without a LOCKED owner. The
// downgrade applies once, also when APPROVE_TIER_OVERRIDE raised the tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_calls_and_approvals_follow_their_policies() {
    let anvil = Anvil::start();
    let rpc = anvil.url.clone();
    let (token, other) = (crate::support::evm::deploy_token(&rpc), crate::support::evm::deploy_token(&rpc));
    let d = crate::support::evm::daemon(&rpc, &[notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (_, t) = crate::support::evm::funded_agent(&d, &rpc, 1, json!({})).await;
    let locked = d.create_agent(json!({"chain": "ethereum", "owner": EVM_ADDR_0})).await;
    let m = Msg::new(&d, "ethereum", EVM_ADDR_0, "verify_owner", &format!("agent:{}", id(&locked)), "31337").await;
    assert_eq!(
        d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&locked)), &m.evm(EVM_KEY_0), None).await.0,
        200
    );
    crate::support::evm::cast_out(&[
        "send",
        "--rpc-url",
        &rpc,
        "--private-key",
        EVM_KEY_0,
        locked["address"].as_str().unwrap(),
        "--value",
        "1ether",
    ]);
    let tl = session(&d, &locked).await;
    let ping = |c: &str| json!({"type": "CONTRACT_CALL", "contractAddress": c, "calldata": "0x5c36b186"});
    let pings = || crate::support::evm::cast_out(&["call", &token, "pings()(uint256)", "--rpc-url", &rpc]);

    // ACC-195: unlisted → CONTRACT_NOT_WHITELISTED; listed → APPROVAL (DELAY when not LOCKED);
    // contract_call_default_tier INSTANT lowers it.
    let cw = d
        .policy(
            json!({"type": "CONTRACT_WHITELIST", "rules": {"contracts": [{"address": token, "label": "test token"}]}}),
        )
        .await;
    let (st, v) = send(&d, &t, ping(&other)).await;
    assert_eq!((st, code(&v)), (403, Some("CONTRACT_NOT_WHITELISTED")), "{v}");
    let (st, v) = send(&d, &t, ping(&token)).await;
    assert_eq!((st, v["tier"].as_str(), v["downgraded"].as_bool()), (202, Some("DELAY"), Some(true)), "{v}");
    let (st, v) = send(&d, &tl, ping(&token)).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{v}");
    d.master(
        "PUT",
        &format!("/v1/owner/policies/{}", id(&cw)),
        Some(json!({"rules": {
        "contracts": [{"address": token}, {"address": other}], "contract_call_default_tier": "INSTANT"}})),
    )
    .await;
    let (st, v) = send(&d, &t, ping(&token)).await;
    assert_eq!(outcome(st, &v), (200, Some("INSTANT"), Some("CONFIRMED")), "{v}");
    assert_eq!(pings().trim(), "1");

    // ACC-196: a selector not listed for its contract → METHOD_NOT_WHITELISTED; a contract
    // without entries allows every method.
    d.policy(json!({"type": "METHOD_WHITELIST", "chain": "ethereum", "rules": {"methods": [{"address": token, "selector": "0x5c36b186", "name": "ping()"}]}})).await;
    let (st, v) =
        send(&d, &t, json!({"type": "CONTRACT_CALL", "contractAddress": token, "calldata": "0xa9cc4718"})).await;
    assert_eq!((st, code(&v)), (403, Some("METHOD_NOT_WHITELISTED")), "{v}");
    assert_eq!(send(&d, &t, ping(&token)).await.0, 200);
    let (st, v) =
        send(&d, &t, json!({"type": "CONTRACT_CALL", "contractAddress": other, "calldata": "0xa9cc4718"})).await;
    assert_eq!((st, code(&v)), (422, Some("SIMULATION_FAILED")), "the policy let it through to the chain: {v}");

    // ACC-197: no APPROVED_SPENDERS → APPROVE_DISABLED; an unlisted spender → SPENDER_NOT_APPROVED.
    let approve = |spender: &str, amount: &str| json!({"type": "APPROVE", "token": {"mint": token}, "spender": spender, "amount": amount});
    let (st, v) = send(&d, &t, approve(EVM_ADDR_1, "5")).await;
    assert_eq!((st, code(&v)), (403, Some("APPROVE_DISABLED")), "{v}");
    d.policy(json!({"type": "APPROVED_SPENDERS", "rules": {"spenders": [{"address": EVM_ADDR_1}]}})).await;
    let (st, v) = send(&d, &t, approve(EVM_ADDR_0, "5")).await;
    assert_eq!((st, code(&v)), (403, Some("SPENDER_NOT_APPROVED")), "{v}");

    // ACC-199, ACC-205: no APPROVE_TIER_OVERRIDE → APPROVAL whatever SPENDING_LIMIT says (the
    // amounts here are far below its INSTANT bound); for an owner that is not LOCKED it is
    // downgraded once, to DELAY, with one TX_DOWNGRADED audit row.
    let (st, v) = send(&d, &tl, approve(EVM_ADDR_1, "5")).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{v}");
    let (st, v) = send(&d, &t, approve(EVM_ADDR_1, "5")).await;
    assert_eq!(
        (st, v["tier"].as_str(), v["originalTier"].as_str(), v["downgraded"].as_bool()),
        (202, Some("DELAY"), Some("APPROVAL"), Some(true)),
        "{v}"
    );
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let downgrades: Vec<Value> =
        d.audit("TX_DOWNGRADED").await.into_iter().filter(|e| e["txId"] == tx.as_str()).collect();
    assert_eq!(downgrades.len(), 1);
    assert_eq!(
        (downgrades[0]["details"]["originalTier"].as_str(), downgrades[0]["details"]["ownerState"].as_str()),
        (Some("APPROVAL"), Some("NONE"))
    );
    // amount_tiers: the first whose max_amount ≥ amount.
    d.policy(json!({"type": "APPROVE_TIER_OVERRIDE", "rules": {"default_tier": "APPROVAL",
        "amount_tiers": [{"max_amount": "1000", "tier": "DELAY"}, {"max_amount": "100", "tier": "INSTANT"}]}}))
        .await;
    for (amount, tier) in [("100", "INSTANT"), ("101", "DELAY"), ("1000", "DELAY"), ("1001", "APPROVAL")] {
        let (_, v) = send(&d, &tl, approve(EVM_ADDR_1, amount)).await;
        assert_eq!(v["tier"].as_str(), Some(tier), "{amount}: {v}");
    }

    // ACC-198: at or above the unlimited threshold (default 2^255 − 1) → UNLIMITED_APPROVE_BLOCKED;
    // above max_amount → APPROVE_AMOUNT_EXCEEDED; 0 (a revoke) always passes.
    d.policy(json!({"type": "APPROVE_AMOUNT_LIMIT", "rules": {"max_amount": "500"}})).await;
    let max = alloy::primitives::U256::MAX.to_string();
    let one = alloy::primitives::U256::from(1u8);
    let threshold = ((one << 255usize) - one).to_string();
    for amount in [max.as_str(), threshold.as_str()] {
        let (st, v) = send(&d, &tl, approve(EVM_ADDR_1, amount)).await;
        assert_eq!((st, code(&v)), (403, Some("UNLIMITED_APPROVE_BLOCKED")), "{v}");
    }
    let (st, v) = send(&d, &tl, approve(EVM_ADDR_1, "501")).await;
    assert_eq!((st, code(&v)), (403, Some("APPROVE_AMOUNT_EXCEEDED")), "{v}");
    let (st, v) = send(&d, &tl, approve(EVM_ADDR_1, "500")).await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = send(&d, &tl, approve(EVM_ADDR_1, "0")).await;
    assert_eq!(outcome(st, &v), (200, Some("INSTANT"), Some("CONFIRMED")), "a revoke: {v}");
}

// ACC-200: a BATCH whose instructions 1 and 3 violate policies is denied whole with
// BATCH_POLICY_VIOLATION listing both, and nothing executes.
// ACC-201: a BATCH of ten 0.5 SOL transfers is tiered on 5 SOL (NOTIFY), not per instruction,
// and counts once for RATE_LIMIT.
// ACC-202: a BATCH containing an APPROVE or a CONTRACT_CALL is tiered at least at that
// instruction's own tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_checked_per_instruction_and_tiered_as_a_whole() {
    use crate::support::solana::{MEMO, TOKEN, create_mint, fund_tokens};
    let node = Surfnet::start();
    let d = sol_daemon(&node, true, &[]).await;
    let (a, t) = crate::support::solana::funded_agent(&d, &node.url, 12, json!({})).await;
    let me = a["address"].as_str().unwrap().to_string();
    let mint = create_mint(&node.url, TOKEN, 6, &[]);
    fund_tokens(&node.url, &me, &mint, TOKEN, 1_000);
    let to = crate::support::solana::existing_address(&node.url);
    let memo = json!({"type": "CONTRACT_CALL", "contractAddress": MEMO, "instructionData": "aGk=",
                      "accounts": [{"pubkey": me, "isSigner": true, "isWritable": false}]});
    let transfer = |lamports: u64| json!({"type": "TRANSFER", "to": to, "amount": lamports.to_string()});

    let before = crate::support::solana::balance(&node.url, &me);
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "BATCH", "instructions": [
            transfer(1000),
            {"type": "TOKEN_TRANSFER", "to": to, "amount": "1", "token": {"mint": mint}},
            transfer(1000),
            memo,
        ]}),
    )
    .await;
    assert_eq!((st, code(&v)), (403, Some("BATCH_POLICY_VIOLATION")), "{v}");
    let violations = v["details"]["violations"].as_array().unwrap();
    let got: Vec<(u64, &str, &str)> = violations
        .iter()
        .map(|x| (x["index"].as_u64().unwrap(), x["type"].as_str().unwrap(), x["code"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [(1, "TOKEN_TRANSFER", "TOKEN_NOT_ALLOWED"), (3, "CONTRACT_CALL", "CONTRACT_CALL_DISABLED")]);
    assert_eq!(crate::support::solana::balance(&node.url, &me), before, "nothing executed");
    assert_eq!(row(&d, &t, v["details"]["transactionId"].as_str().unwrap()).await["status"], "CANCELLED");

    // Ten 0.5 SOL transfers: each INSTANT alone, NOTIFY together; one RATE_LIMIT count.
    d.policy(json!({"agentId": id(&a), "type": "RATE_LIMIT", "rules": {"max_tx_per_hour": 2}})).await;
    let ten: Vec<Value> = (0..10).map(|_| transfer(SOL / 2)).collect();
    assert_eq!(dry_run(&d, &t, transfer(SOL / 2)).await["tier"], "INSTANT");
    let (st, v) = send(&d, &t, json!({"type": "BATCH", "instructions": ten})).await;
    assert_eq!(outcome(st, &v), (200, Some("NOTIFY"), Some("CONFIRMED")), "{v}");
    assert_eq!(send(&d, &t, transfer(1000)).await.0, 200, "the batch counted once");
    let (st, v) = send(&d, &t, transfer(1000)).await;
    assert_eq!((st, code(&v)), (429, Some("RATE_LIMIT_EXCEEDED")), "{v}");
    d.advance(3601).await;
    let t = session(&d, &a).await;

    // A batch with an APPROVE is at least APPROVAL (downgraded to DELAY: no owner); with a
    // CONTRACT_CALL at least the contract default tier.
    let spender = crate::support::solana::fresh_address();
    d.policy(json!({"agentId": id(&a), "type": "APPROVED_SPENDERS", "rules": {"spenders": [{"address": spender}]}}))
        .await;
    d.policy(json!({"agentId": id(&a), "type": "CONTRACT_WHITELIST", "rules": {"contracts": [{"address": MEMO}], "contract_call_default_tier": "NOTIFY"}})).await;
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "BATCH", "instructions": [
        transfer(1000), {"type": "APPROVE", "token": {"mint": mint}, "spender": spender, "amount": "5"}]}),
    )
    .await;
    assert_eq!((st, v["tier"].as_str(), v["originalTier"].as_str()), (202, Some("DELAY"), Some("APPROVAL")), "{v}");
    let (st, v) = send(&d, &t, json!({"type": "BATCH", "instructions": [transfer(1000), memo]})).await;
    assert_eq!(outcome(st, &v), (200, Some("NOTIFY"), Some("CONFIRMED")), "{v}");
}

/// A CoinGecko stand-in: `/simple/price` answers the current SOL price, or 500 while none is set.
struct PriceServer {
    base: String,
    price: Arc<std::sync::Mutex<Option<String>>>,
    hits: Arc<AtomicU64>,
}

impl PriceServer {
    async fn start() -> PriceServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api/v3", listener.local_addr().unwrap());
        let price: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let hits = Arc::new(AtomicU64::new(0));
        let (p, h) = (price.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                h.fetch_add(1, Ordering::SeqCst);
                let current = p.lock().unwrap().clone();
                let (status, body) = match current {
                    Some(x) if req.starts_with("GET /api/v3/simple/price?ids=solana,ethereum&vs_currencies=usd ") => {
                        ("200 OK", format!("{{\"solana\":{{\"usd\":{x}}},\"ethereum\":{{\"usd\":3000}}}}"))
                    }
                    Some(_) => ("404 Not Found", "{}".into()),
                    None => ("500 Internal Server Error", "{\"error\":\"down\"}".into()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        PriceServer { base, price, hits }
    }

    fn set(&self, p: Option<&str>) {
        *self.price.lock().unwrap() = p.map(str::to_string);
    }
}

// ACC-203: with USD thresholds and a static price, a transfer whose native tier is INSTANT but
// USD tier DELAY is DELAY. With CoinGecko (a local stand-in, the agent on Solana mainnet —
// surfnet-local serving as the mainnet RPC), a stale price raises an INSTANT USD tier to
// NOTIFY, and a move above 50 % raises the USD tier one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usd_thresholds_use_the_oracle() {
    let node = Surfnet::start();
    let usd_limit = json!({"instant_max": (10 * SOL).to_string(), "notify_max": (20 * SOL).to_string(), "delay_max": (50 * SOL).to_string(),
                           "instant_max_usd": "10", "notify_max_usd": "50", "delay_max_usd": "1000"});
    // Static: 1 SOL = $100.
    let d =
        sol_daemon(&node, true, &[("oracle", "provider = \"static\"\nstatic_prices = [\"solana:native=100\"]".into())])
            .await;
    let (a, t) = crate::support::solana::funded_agent(&d, &node.url, 2, json!({})).await;
    d.policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": usd_limit})).await;
    let (st, v) =
        send(&d, &t, json!({"to": crate::support::solana::existing_address(&node.url), "amount": SOL.to_string()}))
            .await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("DELAY")), "native INSTANT, $100 is DELAY: {v}");
    // The decision's USD evaluation is in its TX_QUEUED audit row.
    let queued = d.audit("TX_QUEUED").await;
    let q = queued.iter().find(|e| e["txId"] == v["transactionId"]).unwrap();
    let usd = &q["details"]["usd"];
    assert_eq!(
        (usd["value"].as_str(), usd["price"].as_str(), usd["stale"].as_bool(), usd["source"].as_str()),
        (Some("100"), Some("100"), Some(false), Some("static")),
        "{q}"
    );
    drop(d);

    // CoinGecko on "mainnet".
    let cg = PriceServer::start().await;
    cg.set(Some("1"));
    let oracle =
        format!("provider = \"coingecko\"\ncoingecko_base_url = \"{}\"\nprice_ttl = 60\nstale_limit = 600", cg.base);
    let d = sol_daemon(&node, true, &[("oracle", oracle), ("rpc", format!("solana_mainnet = \"{}\"", node.url))]).await;
    let a = d.create_agent(json!({"network": "mainnet"})).await;
    d.policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": usd_limit})).await;
    let t = session(&d, &a).await;
    let body = json!({"to": crate::support::solana::fresh_address(), "amount": SOL.to_string()});
    let v = dry_run(&d, &t, body.clone()).await;
    assert_eq!(
        (v["tier"].as_str(), v["usd"]["value"].as_str(), v["usd"]["stale"].as_bool()),
        (Some("INSTANT"), Some("1"), Some(false)),
        "{v}"
    );
    // Past price_ttl with the service down: the cached price, stale → NOTIFY.
    cg.set(None);
    d.advance(61).await;
    let t = session(&d, &a).await;
    let v = dry_run(&d, &t, body.clone()).await;
    assert_eq!((v["tier"].as_str(), v["usd"]["stale"].as_bool()), (Some("NOTIFY"), Some(true)), "{v}");
    // Back at $1.70 (+70 %): fresh, but moved — one step up.
    cg.set(Some("1.7"));
    let v = dry_run(&d, &t, body.clone()).await;
    assert_eq!(
        (v["tier"].as_str(), v["usd"]["price"].as_str(), v["usd"]["stale"].as_bool()),
        (Some("NOTIFY"), Some("1.7"), Some(false)),
        "{v}"
    );
    // Past stale_limit with the service down: no price, native tier only.
    cg.set(None);
    d.advance(601).await;
    let t = session(&d, &a).await;
    let v = dry_run(&d, &t, body).await;
    assert_eq!((v["tier"].as_str(), v.get("usd")), (Some("INSTANT"), None), "{v}");
    assert!(cg.hits.load(Ordering::SeqCst) >= 4);
}

// ACC-205 and the bad-input list: unordered thresholds, unknown fields, wrong types, out-of-range
// values (one per type here; every field of every type is in the unit tests) get 400
// INVALID_RULES naming the field; an agent policy for another chain gets 400; an unknown agent
// 404; nothing is stored by any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_with_the_field_named() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    let a = d.create_agent(json!({})).await;
    let count = async || d.master("GET", "/v1/owner/policies", None).await.1["policies"].as_array().unwrap().len();
    let before = count().await;
    let audit_before = d.audit("POLICY_CREATED").await.len();
    for (body, want_code, path) in [
        (
            json!({"type": "SPENDING_LIMIT", "rules": {"instant_max": "5", "notify_max": "4", "delay_max": "9"}}),
            "INVALID_RULES",
            "rules.notify_max",
        ),
        (
            json!({"type": "SPENDING_LIMIT", "rules": {"instant_max": "1", "notify_max": "2", "delay_max": "3", "foo": 1}}),
            "INVALID_RULES",
            "rules.foo",
        ),
        (json!({"type": "WHITELIST", "rules": {"allowed_addresses": "x"}}), "INVALID_RULES", "rules.allowed_addresses"),
        (
            json!({"type": "TIME_RESTRICTION", "rules": {"allowed_hours": {"start": 25, "end": 1}}}),
            "INVALID_RULES",
            "rules.allowed_hours.start",
        ),
        (json!({"type": "RATE_LIMIT", "rules": {"max_tx_per_hour": -1}}), "INVALID_RULES", "rules.max_tx_per_hour"),
        (
            json!({"type": "ALLOWED_TOKENS", "rules": {"unknown_token_action": "maybe"}}),
            "INVALID_RULES",
            "rules.unknown_token_action",
        ),
        (
            json!({"type": "CONTRACT_WHITELIST", "rules": {"contract_call_default_tier": "SOON"}}),
            "INVALID_RULES",
            "rules.contract_call_default_tier",
        ),
        (
            json!({"type": "METHOD_WHITELIST", "rules": {"methods": [{"address": EVM_ADDR_1, "selector": "0x12"}]}}),
            "INVALID_RULES",
            "rules.methods[0].selector",
        ),
        (
            json!({"type": "APPROVED_SPENDERS", "rules": {"spenders": [{"address": "nope"}]}}),
            "INVALID_RULES",
            "rules.spenders[0].address",
        ),
        (json!({"type": "APPROVE_AMOUNT_LIMIT", "rules": {"max_amount": 5}}), "INVALID_RULES", "rules.max_amount"),
        (
            json!({"type": "APPROVE_TIER_OVERRIDE", "rules": {"amount_tiers": [{"max_amount": "5"}]}}),
            "INVALID_RULES",
            "rules.amount_tiers[0].tier",
        ),
        (json!({"type": "SPENDING_LIMITS", "rules": {}}), "VALIDATION_ERROR", "type"),
        (json!({"type": "RATE_LIMIT", "rules": {}, "priority": 1001}), "VALIDATION_ERROR", "priority"),
        (json!({"type": "RATE_LIMIT", "rules": {}, "scope": "x"}), "VALIDATION_ERROR", "scope"),
        (
            json!({"agentId": id(&a), "chain": "ethereum", "type": "RATE_LIMIT", "rules": {}}),
            "VALIDATION_ERROR",
            "chain",
        ),
    ] {
        let (st, v) = d.master("POST", "/v1/owner/policies", Some(body.clone())).await;
        assert_eq!((st, code(&v)), (400, Some(want_code)), "{body}: {v}");
        let paths: Vec<&str> =
            v["details"]["issues"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&path), "{body}: {paths:?}");
    }
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/policies",
            Some(json!({"agentId": uuid::Uuid::nil(), "type": "RATE_LIMIT", "rules": {}})),
        )
        .await;
    assert_eq!((st, code(&v)), (404, Some("AGENT_NOT_FOUND")), "{v}");
    // An update with bad rules changes nothing.
    let p = d.policy(json!({"type": "RATE_LIMIT", "rules": {"max_tx_per_hour": 5}})).await;
    let (st, v) = d
        .master("PUT", &format!("/v1/owner/policies/{}", id(&p)), Some(json!({"rules": {"max_tx_per_hour": "5"}})))
        .await;
    assert_eq!((st, code(&v)), (400, Some("INVALID_RULES")), "{v}");
    let (_, now) = d.master("GET", &format!("/v1/owner/policies/{}", id(&p)), None).await;
    assert_eq!(now["rules"]["max_tx_per_hour"], 5);
    let (st, v) = d.master("GET", &format!("/v1/owner/policies/{}", uuid::Uuid::nil()), None).await;
    assert_eq!((st, code(&v)), (404, Some("POLICY_NOT_FOUND")));
    assert_eq!(count().await, before + 1, "only the valid policy was stored");
    assert_eq!(d.audit("POLICY_CREATED").await.len(), audit_before + 1);
    let (st, v) = d.master("DELETE", &format!("/v1/owner/policies/{}", id(&p)), None).await;
    assert_eq!((st, v["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(d.audit("POLICY_DELETED").await.last().unwrap()["details"]["policyId"], id(&p).as_str());
}

// ACC-157: a NOTIFY transfer behaves like INSTANT (200, executed) and sends TX_NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_transfer_executes_and_tells_the_owner() {
    let node = Surfnet::start();
    let r = crate::support::receiver::Receiver::start();
    let d = crate::support::solana::daemon(&node.url, &[notifications_on()]).await;
    let secret = "webhook-secret-0123456789";
    r.behave("/hooks/owner", json!({"secret": secret})).await;
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/notification-channels",
            Some(
                json!({"type": "WEBHOOK", "name": "owner", "config": {"url": r.url("/hooks/owner"), "secret": secret}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (_, t) = crate::support::solana::funded_agent(&d, &node.url, 3, json!({})).await;
    let (st, v) = send(
        &d,
        &t,
        json!({"to": crate::support::solana::existing_address(&node.url), "amount": (2 * SOL).to_string()}),
    )
    .await;
    assert_eq!(outcome(st, &v), (200, Some("NOTIFY"), Some("CONFIRMED")), "{v}");
    let tx = v["transactionId"].as_str().unwrap();
    // The channel also hears the health check and SESSION_CREATED, in no fixed order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut sent = r.requests_to("/hooks/owner").await;
    while !sent.iter().any(|q| q["json"]["event"] == "TX_NOTIFY") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sent = r.requests_to("/hooks/owner").await;
    }
    let m = sent.iter().find(|q| q["json"]["event"] == "TX_NOTIFY").unwrap_or_else(|| panic!("{sent:?}"));
    assert_eq!((m["json"]["referenceId"].as_str(), m["json"]["level"].as_str()), (Some(tx), Some("INFO")));
}

// ACC-174 with policies: the agent's dry run reports the tier and the policy that set it, or the
// denial's code and policy, and writes nothing; the owner's dry run evaluates a candidate
// policy set without storing it (sessionCheck null).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_report_the_decision_and_store_nothing() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, true, &[]).await;
    let (a, t) = crate::support::solana::funded_agent(&d, &node.url, 1, json!({})).await;
    let to = crate::support::solana::existing_address(&node.url);
    let rows = async || {
        d.bearer("GET", "/v1/transactions?limit=100", &t, None).await.1["transactions"].as_array().unwrap().len()
    };
    let head =
        async || d.master("GET", "/v1/admin/audit-log?limit=1", None).await.1["entries"][0]["seq"].as_u64().unwrap();
    let (rows_before, head_before) = (rows().await, head().await);
    let v = dry_run(&d, &t, json!({"to": to, "amount": (20 * SOL).to_string()})).await;
    assert_eq!(
        (v["allowed"].as_bool(), v["tier"].as_str(), v["delaySeconds"].as_u64()),
        (Some(true), Some("DELAY"), Some(300)),
        "{v}"
    );
    assert!(v["policyId"].is_string() && v["sessionCheck"]["passed"] == true);
    let wl = d.policy(json!({"agentId": id(&a), "type": "WHITELIST", "rules": {"allowed_addresses": [crate::support::solana::fresh_address()]}})).await;
    let v = dry_run(&d, &t, json!({"to": to, "amount": "1000"})).await;
    assert_eq!(
        (v["allowed"].as_bool(), code(&v), v["policyId"].as_str(), v["policyType"].as_str()),
        (Some(false), Some("WHITELIST_DENIED"), wl["id"].as_str(), Some("WHITELIST")),
        "{v}"
    );
    // The owner's dry run: stored policies, then a candidate set instead of them.
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/policies/dry-run",
            Some(json!({"agentId": id(&a), "transaction": {"to": to, "amount": "1000"}})),
        )
        .await;
    assert_eq!((st, code(&v), v["sessionCheck"].clone()), (200, Some("WHITELIST_DENIED"), Value::Null), "{v}");
    let candidates = json!([{"agentId": id(&a), "type": "WHITELIST", "rules": {"allowed_addresses": [to]}},
                            {"type": "SPENDING_LIMIT", "rules": {"instant_max": "10", "notify_max": "100", "delay_max": "10000"}}]);
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/policies/dry-run",
            Some(json!({"agentId": id(&a), "transaction": {"to": to, "amount": "1000"}, "policies": candidates})),
        )
        .await;
    assert_eq!((st, v["allowed"].as_bool(), v["tier"].as_str()), (200, Some(true), Some("DELAY")), "{v}");
    let (st, v) = d.master("POST", "/v1/owner/policies/dry-run", Some(json!({"agentId": id(&a), "transaction": {"to": to, "amount": "1000"}, "policies": [{"type": "RATE_LIMIT", "rules": {"x": 1}}]}))).await;
    assert_eq!(
        (st, code(&v), v["details"]["issues"][0]["path"].as_str()),
        (400, Some("INVALID_RULES"), Some("policies[0].rules.x")),
        "{v}"
    );
    let (st, v) = d
        .master(
            "POST",
            "/v1/owner/policies/dry-run",
            Some(json!({"agentId": id(&a), "transaction": {"to": "nope", "amount": "1"}})),
        )
        .await;
    assert_eq!((st, v["details"]["issues"][0]["path"].as_str()), (400, Some("transaction.to")), "{v}");
    // Nothing was written: no row (so no reservation), no audit row but the policy's own.
    assert_eq!(rows().await, rows_before);
    assert_eq!(head().await, head_before + 1, "one audit row: the WHITELIST's POLICY_CREATED");
    let (_, list) = d.master("GET", &format!("/v1/owner/policies?agentId={}&includeGlobal=false", id(&a)), None).await;
    assert_eq!(list["policies"].as_array().unwrap().len(), 1, "candidates are never stored");
}

// Exact caps under concurrency on real anvil: a session capped at 10 × the amount, 200 sends
// (two waves of 100 concurrent: the per-session send rate is at most 100 a minute) — exactly
// 10 CONFIRMED, 190 refused with the cap's code, the recipient holds exactly 10 × amount. The
// same for RATE_LIMIT 5 an hour with 100 concurrent sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_exactly_under_concurrency() {
    let anvil = Anvil::start();
    let rpc = anvil.url.clone();
    let d = Arc::new(crate::support::evm::daemon(&rpc, &[]).await);
    let amount: u128 = 1_000_000_000_000; // 1e12 wei
    let recipient = "0x00000000000000000000000000000000000C0FFE";
    let a = d.create_agent(json!({"chain": "ethereum"})).await;
    crate::support::evm::cast_out(&[
        "send",
        "--rpc-url",
        &rpc,
        "--private-key",
        EVM_KEY_0,
        a["address"].as_str().unwrap(),
        "--value",
        "1ether",
    ]);
    let t =
        d.create_session(&id(&a), json!({"constraints": {"maxTotalAmount": (10 * amount).to_string()}})).await["token"]
            .as_str()
            .unwrap()
            .to_string();
    let fire = async |t: &str, to: &str, n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (d, t, to) = (d.clone(), t.to_string(), to.to_string());
                tokio::spawn(async move { send(&d, &t, json!({"to": to, "amount": amount.to_string()})).await })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    };
    let mut results = fire(&t, recipient, 100).await;
    d.advance(61).await;
    results.extend(fire(&t, recipient, 100).await);
    let confirmed = results.iter().filter(|(st, v)| *st == 200 && v["status"] == "CONFIRMED").count();
    let capped = results.iter().filter(|(st, v)| *st == 403 && v["details"]["code"] == "SESSION_LIMIT_TOTAL").count();
    assert_eq!(
        (confirmed, capped),
        (10, 190),
        "{:?}",
        results.iter().find(|(st, v)| !(*st == 200 || v["details"]["code"] == "SESSION_LIMIT_TOTAL"))
    );
    assert_eq!(crate::support::evm::balance(&rpc, recipient), 10 * amount, "on chain: exactly ten landed");

    let b = d.create_agent(json!({"chain": "ethereum"})).await;
    crate::support::evm::cast_out(&[
        "send",
        "--rpc-url",
        &rpc,
        "--private-key",
        EVM_KEY_0,
        b["address"].as_str().unwrap(),
        "--value",
        "1ether",
    ]);
    d.policy(json!({"agentId": id(&b), "type": "RATE_LIMIT", "rules": {"max_tx_per_hour": 5}})).await;
    let tb = session(&d, &b).await;
    let second = "0x00000000000000000000000000000000000C0FF2";
    let results = fire(&tb, second, 100).await;
    let confirmed = results.iter().filter(|(st, v)| *st == 200 && v["status"] == "CONFIRMED").count();
    let limited = results
        .iter()
        .filter(|(st, v)| *st == 429 && code(v) == Some("RATE_LIMIT_EXCEEDED") && v["details"]["stage"] == "policy")
        .count();
    assert_eq!((confirmed, limited), (5, 95));
    assert_eq!(crate::support::evm::balance(&rpc, second), 5 * amount);
}

// `waiaas policy add|list|update|delete|dry-run` mirror the routes; rules inline or from a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_cli_mirrors_the_routes() {
    let node = Surfnet::start();
    let d = sol_daemon(&node, false, &[]).await;
    let a = d.create_agent(json!({"name": "cli-agent"})).await;
    let run = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        crate::support::run(c, Duration::from_secs(30))
    };
    let ok = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let added = ok(&run(&[
        "policy",
        "add",
        "--agent",
        "cli-agent",
        "--type",
        "RATE_LIMIT",
        "--rules",
        r#"{"max_tx_per_hour": 9}"#,
        "--priority",
        "10",
        "--json",
    ]));
    assert_eq!((added["agentId"].as_str(), added["rules"]["max_tx_per_hour"].as_u64()), (a["id"].as_str(), Some(9)));
    let pid = id(&added);
    let rules = d.path().join("rules.json");
    std::fs::write(&rules, r#"{"allowed_addresses": []}"#).unwrap();
    let wl = ok(&run(&[
        "policy",
        "add",
        "--type",
        "WHITELIST",
        "--chain",
        "solana",
        "--rules-file",
        rules.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(wl["chain"], "solana");
    let listed = ok(&run(&["policy", "list", "--agent", "cli-agent", "--json"]));
    let ids: Vec<&str> = listed["policies"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&pid.as_str()) && ids.contains(&wl["id"].as_str().unwrap()));
    let out = run(&["policy", "list", "--type", "RATE_LIMIT"]);
    assert!(
        text(&out.stdout).contains(&pid) && !text(&out.stdout).contains(wl["id"].as_str().unwrap()),
        "{}",
        text(&out.stdout)
    );
    let updated = ok(&run(&["policy", "update", &pid, "--rules", r#"{"max_tx_per_hour": 3}"#, "--disable", "--json"]));
    assert_eq!((updated["rules"]["max_tx_per_hour"].as_u64(), updated["enabled"].as_bool()), (Some(3), Some(false)));
    let request = d.path().join("request.json");
    std::fs::write(
        &request,
        json!({"to": crate::support::solana::fresh_address(), "amount": (5 * SOL).to_string()}).to_string(),
    )
    .unwrap();
    let out = run(&["policy", "dry-run", "--agent", "cli-agent", "--file", request.to_str().unwrap()]);
    assert!(text(&out.stdout).contains("denied: POLICY_DENIED"), "{}", text(&out.stdout));
    // Bad rules: exit 1 with the API's code and the field.
    let out = run(&["policy", "add", "--type", "RATE_LIMIT", "--rules", r#"{"max_tx_per_hour": "x"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("INVALID_RULES") || text(&out.stderr).contains("max_tx_per_hour"),
        "{}",
        text(&out.stderr)
    );
    ok(&run(&["policy", "delete", &pid, "--json"]));
    let out = run(&["policy", "remove", wl["id"].as_str().unwrap()]);
    assert!(out.status.success() && text(&out.stdout).contains("deleted"));
}
