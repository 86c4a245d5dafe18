//! The owner console (11-owner-console.md, issue #20): the page and its headers, the owner
//! message route, the read-only console token and its scope, the owner forms of reject and the
//! kill switch, the console links in notifications — over plain HTTP — and the page itself in
//! Debian's chromium, driven by `tests/browser/console.py` with wallets injected into the page
//! whose signatures are made by eth-account and solders in the test process. Each browser
//! scenario runs against the real daemon, anvil or the local Solana node; this side asserts what
//! the daemon, the audit log and the chain say afterwards.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::api::{ETH, SOL, code, id, send, wait_status};
use crate::support::nodes::{Anvil, Surfnet};
use crate::support::owner::{EVM_ADDR_0, EVM_ADDR_1, EVM_KEY_0, EVM_KEY_1, Msg, evm_sign, sol_owner, sol_sign};
use crate::support::receiver::Receiver;
use crate::support::sink::notifications_on;
use crate::support::{RawConn, TestDaemon, tool};

const TO: &str = "0x000000000000000000000000000000000000bEEF";
const SECRET: &str = "console-webhook-secret-0123";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'";
const ASSETS: [&str; 7] =
    ["api.js", "app.js", "console.css", "format.js", "icon.svg", "preact-htm-3.1.1.js", "wallets.js"];

// ------------------------------------------------------------------------------------ helpers

/// A dev-mode daemon (for the dev clock) on anvil, with notifications on, plus `extra` config.
async fn evm_daemon(rpc: &str, extra: &[(&'static str, String)]) -> TestDaemon {
    let mut cfg = vec![notifications_on()];
    cfg.extend(extra.iter().cloned());
    crate::support::evm::daemon(rpc, &cfg).await
}

/// Two WEBHOOK channels on the recording receiver, `/hooks/<name>-0` and `-1`.
async fn webhooks(d: &TestDaemon, r: &Receiver, name: &str) {
    for i in 0..2 {
        let path = format!("/hooks/{name}-{i}");
        r.behave(&path, json!({"secret": SECRET})).await;
        let body = json!({"type": "WEBHOOK", "name": format!("{name}-{i}"), "priority": 10 - i,
                          "config": {"url": r.url(&path), "secret": SECRET}});
        let (st, v) = d.master("POST", "/v1/owner/notification-channels", Some(body)).await;
        assert_eq!(st, 201, "{v}");
    }
}

/// An EVM agent owned by `owner` (LOCKED: verified with eth-account), funded with `eth`, with
/// tiers INSTANT ≤ 1 ETH < DELAY (600 s) ≤ 5 ETH < APPROVAL (`timeout` s), and a session token.
async fn owned_agent(d: &TestDaemon, rpc: &str, key: &str, owner: &str, eth: u128, timeout: u64) -> (Value, String) {
    let a = d.create_agent(json!({"chain": "ethereum", "owner": owner})).await;
    let m = Msg::new(d, "ethereum", owner, "verify_owner", &format!("agent:{}", id(&a)), "31337").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.evm(key), None).await;
    assert_eq!(st, 200, "{v}");
    crate::support::nodes::rpc_blocking(rpc, "anvil_setBalance", json!([a["address"], format!("0x{:x}", eth * ETH)]));
    d.policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": ETH.to_string(), "notify_max": ETH.to_string(), "delay_max": (5 * ETH).to_string(),
        "delay_seconds": 600, "approval_timeout": timeout}}))
        .await;
    let t = d.create_session(&id(&a), json!({})).await["token"].as_str().unwrap().to_string();
    (a, t)
}

/// Sends `eth` (whole ETH, plus `extra` wei) to `to` and returns the transaction id, asserting
/// the tier.
async fn queue(d: &TestDaemon, token: &str, to: &str, wei: u128, tier: &str) -> String {
    let (st, v) = send(d, token, json!({"to": to, "amount": wei.to_string()})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some(tier)), "{v}");
    v["transactionId"].as_str().unwrap().to_string()
}

/// `POST /v1/owner/message`.
async fn message(d: &TestDaemon, action: &str, target: &str, chain: &str, address: &str) -> (u16, Value) {
    let body = json!({"action": action, "target": target, "chain": chain, "address": address});
    d.call("POST", "/v1/owner/message", &[], Some(body)).await
}

/// The 04-auth.md §7.1 payload carrying `signature` over the daemon's message `m`.
fn payload(chain: &str, address: &str, action: &str, m: &Value, signature: &str) -> String {
    let v = json!({"chain": chain, "address": address, "action": action, "nonce": m["nonce"],
                   "timestamp": m["issuedAt"], "message": m["message"], "signature": signature});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The daemon's message for `action` on `target`, signed by eth-account with `key`.
async fn evm_signed(d: &TestDaemon, action: &str, target: &str, key: &str, address: &str) -> String {
    let (st, m) = message(d, action, target, "ethereum", address).await;
    assert_eq!(st, 200, "{m}");
    payload("ethereum", address, action, &m, &evm_sign(key, m["message"].as_str().unwrap()))
}

/// A console token for the EVM owner `address` (signed by `key`) and its expiry (epoch s).
async fn console_token(d: &TestDaemon, key: &str, address: &str) -> (String, i64) {
    let bearer = evm_signed(d, "console_login", &format!("owner:{address}"), key, address).await;
    let (st, v) = d.bearer("POST", "/v1/owner/console/login", &bearer, Some(json!({}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["address"].as_str(), v["chain"].as_str()), (Some(address), Some("ethereum")), "{v}");
    let exp = chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().unwrap()).unwrap().timestamp();
    (v["token"].as_str().unwrap().to_string(), exp)
}

/// The row as the master sees it.
async fn status_of(d: &TestDaemon, token: &str, tx: &str) -> String {
    crate::support::api::row(d, token, tx).await["status"].as_str().unwrap().to_string()
}

fn browser_python() -> PathBuf {
    tool("WAIAAS_TOOL_PYTHON_BROWSER", "py-browser/bin/python")
}

/// Debian's chromium; a missing one fails the run (it is installed by install-test-infra.sh).
fn chromium() -> PathBuf {
    let p =
        std::env::var("WAIAAS_TOOL_CHROMIUM").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/usr/bin/chromium"));
    assert!(p.exists(), "{} missing: run scripts/install-test-infra.sh (apt chromium)", p.display());
    p
}

fn artifacts() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/console")
}

/// Runs `tests/browser/console.py <name>` with `cfg` (plus the daemon's address and the tools);
/// panics with its failures; returns its report.
fn scenario(d: &TestDaemon, name: &str, mut cfg: Value) -> Value {
    cfg["base"] = json!(format!("http://127.0.0.1:{}", d.port));
    cfg["artifacts"] = json!(artifacts());
    cfg["chromium"] = json!(chromium());
    cfg["axe"] = json!(tool("WAIAAS_TOOL_AXE", "axe-4.14.1/node_modules/axe-core/axe.min.js"));
    cfg["master"] = json!(d.password());
    cfg["keys"] = json!({EVM_ADDR_0.to_lowercase(): EVM_KEY_0, EVM_ADDR_1.to_lowercase(): EVM_KEY_1});
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), cfg.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.py");
    let mut cmd = Command::new(browser_python());
    cmd.arg(script).arg(name).arg(f.path());
    let out = crate::support::run(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["failures"].as_array().is_some_and(Vec::is_empty),
        "browser scenario {name} failed: {}\nstderr: {}",
        serde_json::to_string_pretty(&report["failures"]).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    crate::support::report(&format!(
        "console scenario {name}: {} screenshots",
        report["shots"].as_array().map_or(0, Vec::len)
    ));
    report
}

/// Every signed text of the report, in order.
fn signed_texts(report: &Value) -> Vec<String> {
    report["signed"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------------------------ HTTP

// ACC-260: the page and each asset with their types and exactly the CSP, COOP, CORP and nosniff;
// /owner redirects; unknown names, `..` and encoded slashes are 404 with the same headers;
// If-None-Match gives 304; other methods 405. ACC-261 is the unit test in src/http/console.rs.
daemon_test!(the_console_page_is_served_with_its_headers_and_nothing_else, |d| {
    let get = |path: &str| {
        let mut c = RawConn::connect(d.port);
        c.send(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", d.port));
        c.read_response()
    };
    let page_headers = |r: &crate::support::RawResponse, what: &str| {
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
        assert_eq!(r.header("cross-origin-opener-policy"), Some("same-origin"), "{what}");
        assert_eq!(r.header("cross-origin-resource-policy"), Some("same-origin"), "{what}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
    };
    let index = d.get("/owner/").await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.len() == 34 && etag.starts_with('"'), "{etag}");
    let html = index.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"assets/app.js\"></script>"));
    page_headers(&get("/owner/"), "/owner/");
    for name in ASSETS {
        let r = get(&format!("/owner/assets/{name}"));
        assert_eq!(r.status, 200, "{name}");
        let ext = name.rsplit('.').next().unwrap();
        let ty = match ext {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            _ => "image/svg+xml",
        };
        assert_eq!(r.header("content-type"), Some(ty), "{name}");
        page_headers(&r, name);
    }
    let r = get("/owner");
    assert_eq!((r.status, r.header("location")), (308, Some("/owner/")));
    page_headers(&r, "308");
    for bad in [
        "/owner/assets/nope.js",
        "/owner/assets/../x",
        "/owner/assets/%2e%2e%2fapp.js",
        "/owner/assets/a%2fb",
        "/owner/index.html",
        "/owner/assets/App.js",
        "/owner/assets/app.js/x",
    ] {
        let r = get(bad);
        assert_eq!((r.status, r.body["code"].as_str()), (404, Some("ROUTE_NOT_FOUND")), "{bad}");
        page_headers(&r, bad);
    }
    // Query strings are ignored; a matching If-None-Match is 304 without a body.
    let r = get("/owner/assets/app.js?v=2");
    assert_eq!(r.status, 200);
    let tag = r.header("etag").unwrap().to_string();
    let mut c = RawConn::connect(d.port);
    c.send(&format!(
        "GET /owner/assets/app.js HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n",
        d.port
    ));
    let r = c.read_response();
    assert_eq!((r.status, r.header("etag")), (304, Some(tag.as_str())));
    assert_eq!(r.header("content-length").unwrap_or("0"), "0");
    page_headers(&r, "304");
    let (st, v) = d.call("POST", "/owner/", &[], None).await;
    assert_eq!((st, code(&v)), (405, Some("METHOD_NOT_ALLOWED")));
    // The host guard applies (DNS rebinding).
    let mut c = RawConn::connect(d.port);
    c.send("GET /owner/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().status, 403);
});

// ACC-262: with the console off, its routes are 404 and absent from /doc, while the owner forms
// of reject and the kill switch still work (the message route is not a console route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_console_its_routes_do_not_exist() {
    let anvil = Anvil::start();
    let d = evm_daemon(&anvil.url, &[("owner_console", "enabled = false".to_string())]).await;
    let _sink = d.sink_channel().await;
    for path in ["/owner/", "/owner", "/owner/assets/app.js", "/v1/owner/me/pending", "/v1/owner/me/agents"] {
        let (st, v) = d.call("GET", path, &[], None).await;
        assert_eq!((st, code(&v)), (404, Some("ROUTE_NOT_FOUND")), "{path}");
    }
    let (st, v) = d.call("POST", "/v1/owner/console/login", &[], Some(json!({}))).await;
    assert_eq!((st, code(&v)), (404, Some("ROUTE_NOT_FOUND")));
    let doc: Value = d.get("/doc").await.json().await.unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/owner") || p.starts_with("/v1/owner/me/") || p.contains("console")),
        "{paths:?}"
    );
    assert!(doc["components"]["securitySchemes"]["ownerToken"].is_object());
    let (a, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 30, 3600).await;
    let tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    let bearer = evm_signed(&d, "reject_tx", &format!("tx:{tx}"), EVM_KEY_0, EVM_ADDR_0).await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/reject/{tx}"), &bearer, Some(json!({"reason": "no"}))).await;
    assert_eq!((st, v["rejectedBy"].as_str()), (200, Some(EVM_ADDR_0)), "{v}");
    let bearer = evm_signed(&d, "kill_switch", "system", EVM_KEY_0, EVM_ADDR_0).await;
    let (st, v) = d.bearer("POST", "/v1/owner/kill-switch", &bearer, Some(json!({"reason": "owner stop"}))).await;
    assert_eq!(st, 200, "{v}");
    let (_, ks) = d.master("GET", "/v1/admin/kill-switch", None).await;
    assert_eq!((ks["status"].as_str(), ks["actor"].as_str()), (Some("ACTIVATED"), Some("owner")), "{ks}");
    let _ = a;
}

// ACC-263: the message for approve_tx is the 04-auth.md §7.2 text with domain 127.0.0.1:<port>,
// the daemon's summary and a 300 s validity; a non-owner gets 403; bad input gets 400 or 404
// and issues nothing; the 31st call from one IP within 60 s gets 429 (stage owner_message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_messages_are_the_daemons_text_for_the_owner_only() {
    let anvil = Anvil::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    let _sink = d.sink_channel().await;
    let (a, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 30, 3600).await;
    let tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    let (st, m) = message(&d, "approve_tx", &format!("tx:{tx}"), "ethereum", EVM_ADDR_0).await;
    assert_eq!(st, 200, "{m}");
    let (_, pending) = d.master("GET", "/v1/owner/pending-approvals", None).await;
    let summary = pending["transactions"][0]["summary"].as_str().unwrap().to_string();
    assert_eq!(summary, "send 10 ETH to 0x0000...bEEF on ethereum testnet");
    // The same text the client-side template of 04-auth.md §7.2 gives for these fields.
    let expected = Msg {
        domain: format!("127.0.0.1:{}", d.port),
        account: "Ethereum",
        address: EVM_ADDR_0.into(),
        action: "approve_tx".into(),
        target: format!("tx:{tx}"),
        chain_id: "31337".into(),
        nonce: m["nonce"].as_str().unwrap().into(),
        issued_at: m["issuedAt"].as_str().unwrap().into(),
        expires: m["expirationTime"].as_str().unwrap().into(),
        summary: Some(summary.clone()),
    };
    assert_eq!(m["message"].as_str().unwrap(), expected.text());
    let secs = |k: &str| chrono::DateTime::parse_from_rfc3339(m[k].as_str().unwrap()).unwrap().timestamp();
    assert_eq!(secs("expirationTime") - secs("issuedAt"), 300);
    let parsed = crate::support::owner::siwe_parse(m["message"].as_str().unwrap()).expect("the siwe package parses it");
    assert_eq!(parsed["domain"], format!("127.0.0.1:{}", d.port));
    // Host "localhost" (no port) gets the port added.
    let mut c = RawConn::connect(d.port);
    let body =
        json!({"action": "approve_tx", "target": format!("tx:{tx}"), "chain": "ethereum", "address": EVM_ADDR_0})
            .to_string();
    c.send(&format!(
        "POST /v1/owner/message HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let r = c.read_response();
    assert!(r.body["message"].as_str().unwrap().starts_with(&format!("localhost:{} wants you", d.port)), "{}", r.body);

    // A non-owner, then every kind of bad input: documented errors, no nonce issued.
    let (st, v) = message(&d, "approve_tx", &format!("tx:{tx}"), "ethereum", EVM_ADDR_1).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_MISMATCH")), "{v}");
    let (st, v) = message(&d, "console_login", &format!("owner:{EVM_ADDR_1}"), "ethereum", EVM_ADDR_1).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_MISMATCH")), "an address that owns nothing: {v}");
    let unknown = "0190b5a0-0000-7000-8000-000000000000";
    let tx_target = format!("tx:{tx}");
    let agent_target = format!("agent:{}", id(&a));
    let other_owner = format!("owner:{EVM_ADDR_1}");
    let unknown_tx = format!("tx:{unknown}");
    let unknown_agent = format!("agent:{unknown}");
    let sol = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
    // (action, target, chain, address) → status, code.
    let fields: [(&str, &str, &str, &str, u16, &str); 10] = [
        ("recover", "system", "ethereum", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("approve_tx", "system", "ethereum", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("approve_tx", &agent_target, "ethereum", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("kill_switch", &tx_target, "ethereum", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("console_login", &other_owner, "ethereum", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("approve_tx", &tx_target, "solana", sol, 400, "VALIDATION_ERROR"),
        ("approve_tx", &tx_target, "ethereum", "0x1234", 400, "VALIDATION_ERROR"),
        ("approve_tx", &tx_target, "bitcoin", EVM_ADDR_0, 400, "VALIDATION_ERROR"),
        ("approve_tx", &unknown_tx, "ethereum", EVM_ADDR_0, 404, "TX_NOT_FOUND"),
        ("verify_owner", &unknown_agent, "ethereum", EVM_ADDR_0, 404, "AGENT_NOT_FOUND"),
    ];
    let mut cases: Vec<(Value, u16, &str)> = fields
        .iter()
        .map(|(action, target, chain, address, st, code)| {
            (json!({"action": action, "target": target, "chain": chain, "address": address}), *st, *code)
        })
        .collect();
    cases.push((json!({"action": "approve_tx"}), 400, "VALIDATION_ERROR"));
    let unknown_field =
        json!({"action": "approve_tx", "target": tx_target, "chain": "ethereum", "address": EVM_ADDR_0, "x": 1});
    cases.push((unknown_field, 400, "VALIDATION_ERROR"));
    for (body, status, want) in &cases {
        let (st, v) = d.call("POST", "/v1/owner/message", &[], Some(body.clone())).await;
        assert_eq!((st, code(&v)), (*status, Some(*want)), "{body}: {v}");
    }
    let mut raw = RawConn::connect(d.port);
    raw.send(&format!(
        "POST /v1/owner/message HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{{\"a\":",
        d.port
    ));
    assert_eq!(raw.read_response().body["code"], "VALIDATION_ERROR", "a malformed body");
    assert_eq!(status_of(&d, &t, &tx).await, "QUEUED", "nothing changed");

    // The bucket: 30 per 60 s per IP, counted from the first call of this test.
    let mut refused = None;
    for i in 0..40 {
        let (st, v) = message(&d, "approve_tx", &format!("tx:{tx}"), "ethereum", EVM_ADDR_0).await;
        if st == 429 {
            refused = Some((i, v));
            break;
        }
    }
    let (i, v) = refused.expect("the bucket refuses");
    // The calls above: four messages (one over a raw connection), the cases, the malformed body.
    let used_before = 4 + cases.len() + 1;
    assert_eq!(i + used_before, 30, "the 31st call is refused");
    assert_eq!((code(&v), v["details"]["stage"].as_str()), (Some("RATE_LIMIT_EXCEEDED"), Some("owner_message")), "{v}");
}

// ACC-266 (HTTP half), ACC-267, ACC-268, ACC-269 (HTTP half): reject with the master password
// still works and a reject_tx signature over another summary is 403; a console token never
// acts, sees only its owner's agents (re-evaluated per request), expires after 900 s, and an
// edited or unsigned token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_tokens_are_read_only_scoped_and_expire() {
    let anvil = Anvil::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    let _sink = d.sink_channel().await;
    let (a, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 60, 3600).await;
    let (b, tb) = owned_agent(&d, &anvil.url, EVM_KEY_1, EVM_ADDR_1, 60, 3600).await;
    let tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    let tx_b = queue(&d, &tb, TO, 10 * ETH, "APPROVAL").await;
    let now = crate::support::owner::daemon_now(&d).await;
    let (own, own_exp) = console_token(&d, EVM_KEY_0, EVM_ADDR_0).await;
    let (other, _) = console_token(&d, EVM_KEY_1, EVM_ADDR_1).await;
    assert!((900..=905).contains(&(own_exp - now)), "15 minutes: {}", own_exp - now);
    assert!(own.starts_with("wai_own_"));
    let logins = d.audit("OWNER_CONSOLE_LOGIN").await;
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0]["actor"], format!("owner:{EVM_ADDR_0}"));

    // Reads in scope.
    let (st, v) = d.bearer("GET", "/v1/owner/me/pending", &own, None).await;
    assert_eq!(st, 200, "{v}");
    let ids: Vec<&str> = v["transactions"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![tx.as_str()]);
    let item = &v["transactions"][0];
    assert_eq!(
        (
            item["formatted"].as_str(),
            item["symbol"].as_str(),
            item["decimals"].as_u64(),
            item["newRecipient"].as_bool()
        ),
        (Some("10 ETH"), Some("ETH"), Some(18), Some(true)),
        "{item}"
    );
    assert_eq!(item["decision"]["policyType"], "SPENDING_LIMIT");
    assert_eq!(item["decision"]["reason"], "SPENDING_LIMIT (agent): 10 ETH is above delay_max 5 ETH");
    assert_eq!((item["chainId"].as_u64(), item["agentName"].as_str()), (Some(31337), a["name"].as_str()));
    assert!(v["serverTime"].is_string());
    let (st, v) = d.bearer("GET", &format!("/v1/owner/me/transactions/{tx}"), &own, None).await;
    assert_eq!(
        (st, v["summary"].as_str(), v["approval"]["approvedAt"].is_null()),
        (200, Some("send 10 ETH to 0x0000...bEEF on ethereum testnet"), true),
        "{v}"
    );
    let (_, v) = d.bearer("GET", "/v1/owner/me/agents", &own, None).await;
    assert_eq!(v["agents"].as_array().unwrap().len(), 1);
    let (_, v) = d.bearer("GET", "/v1/owner/me/policies", &own, None).await;
    let policies = v["agents"][0]["policies"].as_array().unwrap();
    assert!(policies.iter().any(|p| p["type"] == "SPENDING_LIMIT" && p["level"] == "agent" && p["effective"] == true));
    let (_, v) = d.bearer("GET", "/v1/owner/me/channels", &own, None).await;
    assert_eq!((v["notificationsEnabled"].as_bool(), v["minChannels"].as_u64()), (Some(true), Some(1)), "{v}");
    assert!(v["channels"].as_array().unwrap().iter().all(|c| c.get("config").is_none()), "never a config: {v}");
    // The other owner's token: empty lists and "unknown" for this agent's row and agent.
    let (_, v) = d.bearer("GET", "/v1/owner/me/pending", &other, None).await;
    assert_eq!(
        v["transactions"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect::<Vec<_>>(),
        vec![tx_b.as_str()]
    );
    let (st, v) = d.bearer("GET", &format!("/v1/owner/me/transactions/{tx}"), &other, None).await;
    assert_eq!((st, code(&v)), (404, Some("TX_NOT_FOUND")));
    let (st, v) = d.bearer("GET", &format!("/v1/owner/me/transactions?agentId={}", id(&a)), &other, None).await;
    assert_eq!((st, code(&v)), (404, Some("AGENT_NOT_FOUND")));
    let (st, v) = d.bearer("GET", &format!("/v1/owner/me/policies?agentId={}", id(&a)), &other, None).await;
    assert_eq!((st, code(&v)), (404, Some("AGENT_NOT_FOUND")));

    // A token never acts.
    let acts = [
        ("POST", format!("/v1/owner/approve/{tx}")),
        ("POST", format!("/v1/owner/reject/{tx}")),
        ("POST", format!("/v1/owner/agents/{}/verify", id(&a))),
        ("POST", "/v1/owner/kill-switch".to_string()),
    ];
    for (m, path) in &acts {
        let (st, v) = d.bearer(m, path, &own, Some(json!({"reason": "x"}))).await;
        assert_eq!((st, code(&v)), (401, Some("UNAUTHORIZED")), "{path}: {v}");
    }
    let (st, v) = d.bearer("POST", "/v1/agents", &own, Some(json!({"chain": "ethereum"}))).await;
    assert_eq!((st, code(&v)), (401, Some("MASTER_PASSWORD_REQUIRED")), "{v}");
    assert_eq!(status_of(&d, &t, &tx).await, "QUEUED", "nothing changed");
    // A session token is not a console token, nor the other way round.
    let (st, v) = d.bearer("GET", "/v1/owner/me/pending", &t, None).await;
    assert_eq!((st, code(&v)), (401, Some("AUTH_TOKEN_INVALID")));
    let (st, v) = d.bearer("GET", "/v1/wallet/address", &own, None).await;
    assert_eq!(st, 401, "{v}");
    let (st, v) = d.call("GET", "/v1/owner/me/pending", &[("X-Master-Password", d.password().to_string())], None).await;
    assert_eq!((st, code(&v)), (401, Some("AUTH_TOKEN_MISSING")));
    // Edited and unsigned tokens.
    let jwt = own.strip_prefix("wai_own_").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(EVM_ADDR_1);
    let edited = format!("wai_own_{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let none = format!("wai_own_{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    let none2 = format!("wai_own_{}.{}.x", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    for (what, bad) in [("edited", &edited), ("alg none", &none2)] {
        let (st, v) = d.bearer("GET", "/v1/owner/me/pending", bad, None).await;
        assert_eq!((st, code(&v)), (401, Some("AUTH_TOKEN_INVALID")), "{what}: {v}");
    }
    let (st, v) = d.bearer("GET", "/v1/owner/me/pending", &none, None).await;
    assert_eq!((st, code(&v)), (401, Some("AUTH_TOKEN_MISSING")), "two parts: {v}");

    // ACC-266 HTTP half: a reject_tx message with another summary is refused; master still works.
    let (st, m) = message(&d, "reject_tx", &format!("tx:{tx}"), "ethereum", EVM_ADDR_0).await;
    assert_eq!(st, 200);
    let forged = m["message"].as_str().unwrap().replace("send 10 ETH", "send 1 ETH");
    let mut m2 = m.clone();
    m2["message"] = json!(forged);
    let bearer = payload("ethereum", EVM_ADDR_0, "reject_tx", &m2, &evm_sign(EVM_KEY_0, &forged));
    let (st, v) = d.bearer("POST", &format!("/v1/owner/reject/{tx}"), &bearer, Some(json!({}))).await;
    assert_eq!((st, code(&v)), (403, Some("OWNER_ACTION_MISMATCH")), "{v}");
    // Replayed and expired owner signatures.
    let good = evm_signed(&d, "reject_tx", &format!("tx:{tx_b}"), EVM_KEY_1, EVM_ADDR_1).await;
    let stale = evm_signed(&d, "reject_tx", &format!("tx:{tx}"), EVM_KEY_0, EVM_ADDR_0).await;
    let (st, v) =
        d.bearer("POST", &format!("/v1/owner/reject/{tx_b}"), &good, Some(json!({"reason": "owner b"}))).await;
    assert_eq!((st, v["rejectedBy"].as_str()), (200, Some(EVM_ADDR_1)), "{v}");
    let (st, v) = d.bearer("POST", &format!("/v1/owner/reject/{tx_b}"), &good, Some(json!({}))).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_NONCE")), "a replay: {v}");
    let cancelled = d.audit("TX_CANCELLED").await;
    let row_b = cancelled.iter().find(|e| e["txId"] == tx_b.as_str()).unwrap();
    assert_eq!(row_b["actor"], format!("owner:{EVM_ADDR_1}"));
    d.advance(301).await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/reject/{tx}"), &stale, Some(json!({}))).await;
    assert_eq!((st, code(&v)), (401, Some("INVALID_SIGNATURE")), "an expired signature: {v}");
    assert_eq!(status_of(&d, &t, &tx).await, "QUEUED", "nothing changed");
    let (st, v) = d.master("POST", &format!("/v1/owner/reject/{tx}"), Some(json!({"reason": "master"}))).await;
    assert_eq!((st, v["rejectedBy"].as_str()), (200, Some("admin")), "{v}");

    // Scope follows the current owner: after a change of b's owner, its owner's token stops
    // seeing it on the next request.
    let (_, v) = d.bearer("GET", "/v1/owner/me/agents", &other, None).await;
    assert_eq!(v["agents"][0]["id"], b["id"]);
    let target = format!("agent:{}:owner:{EVM_ADDR_0}", id(&b));
    let change = Msg::new(&d, "ethereum", EVM_ADDR_1, "change_owner", &target, "31337").await.evm(EVM_KEY_1);
    let headers = [("X-Master-Password", d.password().to_string()), ("Authorization", format!("Bearer {change}"))];
    let (st, v) =
        d.call("PATCH", &format!("/v1/agents/{}", id(&b)), &headers, Some(json!({"owner": EVM_ADDR_0}))).await;
    assert_eq!(st, 200, "owner change: {v}");
    let (_, v) = d.bearer("GET", "/v1/owner/me/agents", &other, None).await;
    assert!(v["agents"].as_array().unwrap().is_empty(), "{v}");
    let (_, v) = d.bearer("GET", "/v1/owner/me/agents", &own, None).await;
    assert_eq!(v["agents"].as_array().unwrap().len(), 2, "{v}");

    // Expiry after 900 s of daemon time, no leeway.
    let now = crate::support::owner::daemon_now(&d).await;
    d.advance((own_exp - now - 3) as u64).await;
    assert_eq!(d.bearer("GET", "/v1/owner/me/pending", &own, None).await.0, 200);
    d.advance(4).await;
    let (st, v) = d.bearer("GET", "/v1/owner/me/pending", &own, None).await;
    assert_eq!((st, code(&v)), (401, Some("AUTH_TOKEN_EXPIRED")), "{v}");
}

// ACC-275 (public URL half): with public_url set, its Host passes the guard, the messages name
// it with URI https://…, verify, and the notification links use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_is_the_messages_domain_and_the_links_base() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[("daemon", "public_url = \"https://wallet.example.test\"".to_string())]).await;
    webhooks(&d, &r, "public").await;
    let (_, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 30, 3600).await;
    let tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    let call = |method: &str, path: &str, auth: Option<&str>, body: &str| {
        let mut c = RawConn::connect(d.port);
        let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
        c.send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: wallet.example.test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        c.read_response()
    };
    assert_eq!(call("GET", "/owner/", None, "").status, 200, "the public Host passes the guard");
    let mut c = RawConn::connect(d.port);
    c.send("GET /health HTTP/1.1\r\nHost: other.example.test\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().status, 403, "another host does not");
    let body = json!({"action": "console_login", "target": format!("owner:{EVM_ADDR_0}"), "chain": "ethereum", "address": EVM_ADDR_0}).to_string();
    let m = call("POST", "/v1/owner/message", None, &body).body;
    let text = m["message"].as_str().unwrap();
    assert!(text.starts_with("wallet.example.test wants you to sign in"), "{text}");
    assert!(text.contains("\nURI: https://wallet.example.test\n"), "{text}");
    let bearer = payload("ethereum", EVM_ADDR_0, "console_login", &m, &evm_sign(EVM_KEY_0, text));
    let login = call("POST", "/v1/owner/console/login", Some(&bearer), "{}");
    assert_eq!(login.status, 200, "{}", login.body);
    let hook = r.wait_for("/hooks/public-0", 1).await;
    let req = hook
        .iter()
        .find(|q| q["json"]["event"] == "TX_APPROVAL_REQUEST" && q["json"]["referenceId"] == tx.as_str())
        .expect("the approval request");
    let url = format!("https://wallet.example.test/owner/#/tx/{tx}");
    assert_eq!(req["json"]["metadata"]["consoleUrl"], url);
    assert!(
        req["json"]["body"].as_str().unwrap().ends_with(&format!("Review in the owner console: {url}")),
        "{}",
        req["json"]
    );
}

// ------------------------------------------------------------------------------------ browser

// ACC-264, ACC-265, ACC-270, ACC-274 (keyboard and the pages), ACC-275 (loopback link): in
// chromium the owner signs in with the injected EIP-1193 wallet, reads the 10 ETH card and
// approves; the recipient's anvil balance rises by exactly 10 ETH; the text the wallet signed is
// the daemon's /v1/owner/message answer and the stored approval's message. A second approval is
// done with the keyboard alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_approves_an_evm_transfer_in_chromium() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhooks(&d, &r, "phone").await;
    let (a, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 40, 3600).await;
    let (b, _) = owned_agent(&d, &anvil.url, EVM_KEY_1, EVM_ADDR_1, 1, 3600).await;
    let to = "0x00000000000000000000000000000000000C0FFe";
    let to = crate::support::evm::cast_out(&["to-check-sum-address", to]);
    let approval = queue(&d, &t, &to, 10 * ETH, "APPROVAL").await;
    let delay = queue(&d, &t, TO, 3 * ETH, "DELAY").await;
    let before = crate::support::evm::balance(&anvil.url, &to);
    let hooks = r.wait_for("/hooks/phone-0", 2).await;
    let link = hooks.iter().find(|q| q["json"]["referenceId"] == approval.as_str()).expect("the approval request");
    assert_eq!(link["json"]["metadata"]["consoleUrl"], format!("http://127.0.0.1:{}/owner/#/tx/{approval}", d.port));
    let (_, pending) = d.master("GET", "/v1/owner/pending-approvals", None).await;
    let summary = pending["transactions"].as_array().unwrap().iter().find(|x| x["txId"] == approval.as_str()).unwrap()
        ["summary"]
        .clone();

    let report = scenario(
        &d,
        "evm-approve",
        json!({
            "evm": {"address": EVM_ADDR_0}, "approvalTx": approval, "delayTx": delay, "to": to,
            "agentName": a["name"], "otherAgentName": b["name"], "summary": summary,
        }),
    );
    wait_status(&d, &t, &approval, "CONFIRMED").await;
    assert_eq!(crate::support::evm::balance(&anvil.url, &to) - before, 10 * ETH, "exactly 10 ETH landed");
    let signed = signed_texts(&report);
    let approve_text = signed.iter().find(|s| s.contains("approve_tx")).unwrap();
    let answered: Vec<&str> =
        report["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert!(answered.contains(&approve_text.as_str()), "the wallet signed the daemon's answer, byte for byte");
    assert!(approve_text.contains(summary.as_str().unwrap()));
    assert_eq!(status_of(&d, &t, &delay).await, "QUEUED", "the DELAY row was only shown");

    // The keyboard alone.
    let kb = queue(&d, &t, &to, 7 * ETH, "APPROVAL").await;
    scenario(&d, "keyboard", json!({"evm": {"address": EVM_ADDR_0}, "keyboardTx": kb}));
    wait_status(&d, &t, &kb, "CONFIRMED").await;
    assert_eq!(crate::support::evm::balance(&anvil.url, &to) - before, 17 * ETH);

    // The stored approval holds exactly what the wallet signed.
    let mut d = d;
    d.terminate();
    let stored = d.store().get_approval(approval.parse().unwrap()).unwrap().unwrap();
    assert_eq!(stored.owner_payload.unwrap()["message"].as_str().unwrap(), approve_text, "the stored approval");
    assert_eq!(stored.approved_by.as_deref(), Some(EVM_ADDR_0));
}

// ACC-270, ACC-274 (no CSP violation, page error or foreign request; axe and screenshots of
// each state at both sizes).
// ACC-266, ACC-273: the owner rejects from the console (CANCELLED, rejectedBy and the audit
// actor are the owner); no wallet; a wallet refusal (4001) and another connected account leave
// the row QUEUED with nothing signed; a row past its deadline shows "Expired at" without
// Approve, and a signature that arrives after the deadline gets 410, shown in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_rejects_and_explains_refusals() {
    let anvil = Anvil::start();
    let r = Receiver::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    webhooks(&d, &r, "phone").await;
    let (_, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 60, 3600).await;
    let reject_tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    let refuse_tx = queue(&d, &t, TO, 11 * ETH, "APPROVAL").await;
    let report = scenario(&d, "reject", json!({"evm": {"address": EVM_ADDR_0}, "rejectTx": reject_tx}));
    let row = wait_status(&d, &t, &reject_tx, "CANCELLED").await;
    assert_eq!(row["error"], "REJECTED: not today");
    let answer = report["answers"].as_array().unwrap().last().unwrap();
    assert_eq!(answer["body"]["rejectedBy"], EVM_ADDR_0);
    let audit = d.audit("TX_CANCELLED").await;
    let e = audit.iter().find(|e| e["txId"] == reject_tx.as_str()).unwrap();
    assert_eq!(e["actor"], format!("owner:{EVM_ADDR_0}"));

    // Rows with a 300 s approval window for the deadline checks (the owner's second agent).
    let (_, t2) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 60, 300).await;
    let late = queue(&d, &t2, TO, 6 * ETH, "APPROVAL").await;
    let stale = queue(&d, &t2, TO, 7 * ETH, "APPROVAL").await;
    let late_row = crate::support::api::row(&d, &t2, &late).await;
    let before = crate::support::evm::balance(&anvil.url, TO);
    let report = scenario(
        &d,
        "refusals",
        json!({
            "evm": {"address": EVM_ADDR_0}, "otherAddress": EVM_ADDR_1, "refuseTx": refuse_tx,
            "lateTx": late, "lateExpiresAt": late_row["expiresAt"], "staleTx": stale,
        }),
    );
    assert_eq!(status_of(&d, &t, &refuse_tx).await, "QUEUED", "a refusal changes nothing");
    assert_eq!(report["refused"].as_array().unwrap().len(), 1);
    assert!(signed_texts(&report).iter().all(|s| !s.contains(&format!("tx:{refuse_tx}"))), "nothing was signed for it");
    assert_eq!(status_of(&d, &t2, &late).await, "EXPIRED");
    assert_eq!(crate::support::evm::balance(&anvil.url, TO), before, "nothing was sent");
    assert_eq!(d.audit("TX_SUBMITTED").await.iter().filter(|e| e["txId"] == late.as_str()).count(), 0);
}

// ACC-270, ACC-274 (no CSP violation, page error or foreign request; axe and screenshots of
// each state at both sizes).
// ACC-271: a Solana owner signs in with the injected Wallet Standard wallet and approves a SOL
// APPROVAL transfer; the recipient's balance on the local Solana node rises by exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_approves_a_sol_transfer_with_a_wallet_standard_wallet() {
    let node = Surfnet::start();
    let d = crate::support::solana::daemon(&node.url, &[notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (seed, pubkey) = sol_owner(0x5c);
    let a = d.create_agent(json!({"owner": pubkey})).await;
    let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    let (st, v) = d.bearer("POST", &format!("/v1/owner/agents/{}/verify", id(&a)), &m.sol(&seed, "raw"), None).await;
    assert_eq!(st, 200, "{v}");
    let _ = sol_sign;
    d.policy(json!({"agentId": id(&a), "type": "SPENDING_LIMIT", "priority": 10, "rules": {
        "instant_max": SOL.to_string(), "notify_max": SOL.to_string(), "delay_max": SOL.to_string()}}))
        .await;
    crate::support::solana::rpc(&node.url, "requestAirdrop", json!([a["address"], 10 * SOL]));
    for _ in 0..100 {
        if crate::support::solana::balance(&node.url, a["address"].as_str().unwrap()) >= 10 * SOL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = d.create_session(&id(&a), json!({})).await["token"].as_str().unwrap().to_string();
    let to = crate::support::solana::existing_address(&node.url);
    let before = crate::support::solana::balance(&node.url, &to);
    let amount = 2 * SOL + 500_000_000 + 7;
    let (st, v) = send(&d, &t, json!({"to": to, "amount": amount.to_string()})).await;
    assert_eq!((st, v["tier"].as_str()), (202, Some("APPROVAL")), "{v}");
    let tx = v["transactionId"].as_str().unwrap().to_string();
    let (_, pending) = d.master("GET", "/v1/owner/pending-approvals", None).await;
    let summary = pending["transactions"][0]["summary"].clone();
    let report = scenario(
        &d,
        "sol-approve",
        json!({
            "sol": {"seed": seed, "address": pubkey}, "approvalTx": tx, "to": to,
            "formatted": "2.500000007 SOL", "summary": summary,
        }),
    );
    wait_status(&d, &t, &tx, "CONFIRMED").await;
    assert_eq!(crate::support::solana::balance(&node.url, &to) - before, amount, "exactly the amount landed");
    let mut d = d;
    d.terminate();
    let stored = d.store().get_approval(tx.parse().unwrap()).unwrap().unwrap();
    let signed = signed_texts(&report);
    assert_eq!(stored.owner_payload.unwrap()["message"].as_str().unwrap(), signed.last().unwrap());
}

// ACC-270, ACC-274 (no CSP violation, page error or foreign request; axe and screenshots of
// each state at both sizes).
// ACC-269 (page half), ACC-272: after 900 s the page returns to sign-in keeping its hash route;
// then the owner activates the kill switch from the console: 200 with actor owner, the locked
// state with the recover command and no recover control, and /owner/ still loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_out_on_expiry_and_activates_the_kill_switch() {
    let anvil = Anvil::start();
    let d = evm_daemon(&anvil.url, &[]).await;
    let _sink = d.sink_channel().await;
    let (_, t) = owned_agent(&d, &anvil.url, EVM_KEY_0, EVM_ADDR_0, 30, 3600).await;
    let tx = queue(&d, &t, TO, 10 * ETH, "APPROVAL").await;
    scenario(&d, "token-expiry", json!({"evm": {"address": EVM_ADDR_0}, "approvalTx": tx}));
    scenario(&d, "kill-switch", json!({"evm": {"address": EVM_ADDR_0}}));
    let (_, ks) = d.master("GET", "/v1/admin/kill-switch", None).await;
    assert_eq!(
        (ks["status"].as_str(), ks["actor"].as_str(), ks["reason"].as_str()),
        (Some("ACTIVATED"), Some("owner"), Some("suspicious agent behaviour")),
        "{ks}"
    );
    let page = d.get("/owner/").await;
    assert_eq!(page.status(), 200, "the page loads while locked");
    // The audit log (its route is locked too): read from the file once the daemon stopped.
    let mut d = d;
    d.terminate();
    let store = d.store();
    let activated = store.audit_by_event("KILL_SWITCH_ACTIVATED").unwrap();
    assert_eq!(activated.last().unwrap().actor, format!("owner:{EVM_ADDR_0}"));
    let row = store.get_transaction(tx.parse().unwrap()).unwrap().unwrap();
    assert_eq!(row.status, waiaas_storage::TxStatus::Cancelled, "the cascade cancelled the queued row");
    let _ = t;
}
