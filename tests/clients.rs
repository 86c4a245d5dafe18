//! The clients agents use (issue #15), each driven by independent code from PyPI against a real
//! daemon: the Python SDK's own test suite (unit tests on `httpx.MockTransport`, integration
//! tests on anvil and surfnet-local) and the official `mcp` client package talking to
//! `waiaas mcp serve`. The harness starts the nodes and the daemon, runs pytest, and requires
//! every test to have run (none skipped) and passed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::nodes::{Anvil, Surfnet};
use crate::support::{Opts, TestDaemon, text, tool};

fn clients_python() -> PathBuf {
    tool("WAIAAS_TOOL_PYTHON_CLIENTS", "py-clients/bin/python")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs pytest on `target` with `env`; asserts every collected test passed and none skipped.
fn pytest(target: &Path, env: &[(&str, String)], expect_at_least: usize) -> String {
    let mut c = Command::new(clients_python());
    c.args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]).arg(target);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run pytest");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "pytest {}:\n{report}", target.display());
    let summary = report.lines().rev().find(|l| l.contains(" passed")).unwrap_or_default().to_string();
    assert!(!summary.contains("skipped"), "nothing may be skipped: {summary}");
    let passed: usize = summary.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= expect_at_least, "{passed} passed, expected at least {expect_at_least}: {report}");
    crate::support::report(&format!("{}: {summary}", target.display()));
    summary
}

/// Installs the SDK from the checkout into the clients venv (`pip install ./sdk/python`, no
/// dependencies: they are the venv's), so the tests use the package as a user gets it.
fn install_sdk() {
    let out = Command::new(clients_python())
        .args(["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--force-reinstall"])
        .args(["--disable-pip-version-check"])
        .arg(root().join("sdk/python"))
        .output()
        .unwrap();
    assert!(out.status.success(), "pip install ./sdk/python: {}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(root().join("sdk/python/build"));
    for e in std::fs::read_dir(root().join("sdk/python/src")).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".egg-info") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn daemon_config(anvil: &Anvil, surfnet: &Surfnet) -> Vec<(&'static str, String)> {
    vec![
        (
            "rpc",
            format!(
                "ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337\nsolana_devnet = \"{}\"",
                anvil.url, surfnet.url
            ),
        ),
        ("security", "rate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000".to_string()),
        crate::support::sink::notifications_on(),
    ]
}

// ACC-246, ACC-247: the Python SDK's unit tests (retries with one idempotency
// key, no retry of 403, error mapping, model aliasing) and its integration tests: an agent
// sends on anvil and on surfnet-local and waits for CONFIRMED; an admin creates an agent, a
// policy and a session; an owner verifies and approves an APPROVAL-tier transaction through
// WAIaaSOwnerClient with eth-account as the signing callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_passes_its_suite_against_a_real_daemon() {
    install_sdk();
    let anvil = Anvil::start();
    let surfnet = Surfnet::start();
    let d = TestDaemon::start(Opts { dev: true, config: daemon_config(&anvil, &surfnet), ..Opts::default() }).await;
    let _sink = d.sink_channel().await;
    let env = [
        ("WAIAAS_IT_BASE_URL", d.url("")),
        ("WAIAAS_IT_MASTER_PASSWORD", d.password().to_string()),
        ("WAIAAS_IT_ANVIL", anvil.url.clone()),
        ("WAIAAS_IT_SURFNET", surfnet.url.clone()),
    ];
    pytest(&root().join("sdk/python/tests"), &env, 10);
}

// ACC-035 (one agent), ACC-036, ACC-243, ACC-244: the official `mcp` Python client starts `waiaas mcp serve` (token
// from `waiaas mcp setup`) against a daemon on anvil: twelve tools and three resources,
// get_balance, send_token landing on anvil with the exact amount, dry_run, get_transaction, an
// API error as `isError: true` with its code, and a renewal written to `mcp-token` before the
// server uses the new token; then `mcp refresh-token` replaces the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_server_answers_the_official_client() {
    let anvil = Anvil::start();
    let surfnet = Surfnet::start();
    let d = TestDaemon::start(Opts { dev: true, config: daemon_config(&anvil, &surfnet), ..Opts::default() }).await;
    let a = d.create_agent(json!({"chain": "ethereum", "name": "mcp-agent"})).await;
    let env = [
        ("WAIAAS_IT_BASE_URL", d.url("")),
        ("WAIAAS_IT_MASTER_PASSWORD", d.password().to_string()),
        ("WAIAAS_IT_ANVIL", anvil.url.clone()),
        ("WAIAAS_IT_BIN", crate::support::bin().to_string()),
        ("WAIAAS_IT_DATA_DIR", d.path().display().to_string()),
        ("WAIAAS_IT_AGENT", a["id"].as_str().unwrap().to_string()),
        ("WAIAAS_IT_AGENT_ADDRESS", a["address"].as_str().unwrap().to_string()),
    ];
    pytest(&root().join("tests/clients/test_mcp.py"), &env, 4);
}

/// Operations that stop or lock the daemon: excluded by name (the output says so); the kill
/// switch and its recovery have their own tests (tests/emergency.rs).
const DISRUPTIVE: &[&str] = &["shutdown_daemon", "rotate_jwt_secret", "activate_kill_switch", "owner_kill_switch"];

// ACC-245: API conformance. schemathesis (PyPI) generates requests from /doc
// for every operation, with valid credentials for the master-password and session schemes,
// a fixed seed and a bounded example count, against a live daemon on anvil: no response is a
// server error (5xx) and every response matches the documented schema and content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let anvil = Anvil::start();
    let surfnet = Surfnet::start();
    // Every dependency is there (both nodes, a Ledger on the fake device), so a 5xx can only be
    // the daemon's fault; the limits are raised so requests reach the handlers.
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let ledger = fake.serve_tcp().unwrap();
    let mut config = daemon_config(&anvil, &surfnet);
    config[1] =
        ("security", "rate_limit_global_ip_rpm = 10000\nrate_limit_session_rpm = 5000\nrate_limit_tx_rpm = 100".into());
    config.push(("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", ledger.address())));
    let d = TestDaemon::start(Opts { dev: true, config, ..Opts::default() }).await;
    let a = d.create_agent(json!({"chain": "ethereum", "name": "conformance"})).await;
    let session = d.create_session(a["id"].as_str().unwrap(), json!({})).await["token"].as_str().unwrap().to_string();
    let st = clients_python().parent().unwrap().join("schemathesis");
    let report = std::env::temp_dir().join(format!("waiaas-schemathesis-{}.json", d.port));
    let mut c = Command::new(st);
    c.arg("run")
        .arg(d.url("/doc"))
        .args(["--seed", "20261203", "--max-examples", "15", "--workers", "2", "--generation-database", "none"])
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["--suppress-health-check", "all", "--no-color"])
        .arg("--header")
        .arg(format!("X-Master-Password: {}", d.password()))
        .arg("--header")
        .arg(format!("Authorization: Bearer {session}"))
        .arg("--report")
        .arg("ndjson")
        .arg("--report-ndjson-path")
        .arg(&report);
    for op in DISRUPTIVE {
        c.args(["--exclude-operation-id", op]);
    }
    let out = c.output().expect("run schemathesis");
    let text_out = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("{text_out}");
    assert!(out.status.success(), "schemathesis found problems:\n{text_out}");
    // The counts, also in a passing run's output (test output is captured otherwise).
    let count = |key: &str| text_out.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or("").trim().to_string();
    crate::support::report(&format!(
        "schemathesis: {}; {}; {}; seed 20261203; excluded by name (they stop or lock the daemon): {}",
        count("Selected:"),
        count("Tested:"),
        text_out.lines().find(|l| l.contains(" generated,")).unwrap_or("").trim(),
        DISRUPTIVE.join(", ")
    ));
    let _ = std::fs::remove_file(report);
    // The daemon survived all of it.
    let (st, v) = d.master("GET", "/v1/admin/status", None).await;
    assert_eq!(st, 200, "{v}");
}

// ACC-035: `waiaas mcp setup` with no agent exits 1 `No agents found`, with two agents and no
// `--agent` exits 1 `Multiple agents found` listing them; with `--agent` it writes the token
// (0600) and prints the Claude Desktop snippet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_setup_picks_the_agent_or_asks_for_one() {
    let d = TestDaemon::start(Opts { dev: true, ..Opts::default() }).await;
    let setup = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(["mcp", "setup"]).args(args);
        crate::support::run(c, std::time::Duration::from_secs(60))
    };
    let out = setup(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No agents found"), "{}", text(&out.stderr));
    d.create_agent(json!({"name": "one"})).await;
    d.create_agent(json!({"name": "two"})).await;
    let out = setup(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("Multiple agents found. Use --agent <name|id> to specify.") && err.contains("two"), "{err}");
    assert!(!d.path().join("mcp-token").exists());
    let out = setup(&["--agent", "two"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("\"command\": \"waiaas\"") && printed.contains("claude_desktop_config.json"), "{printed}");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(d.path().join("mcp-token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(d.path().join("mcp-token")).unwrap().starts_with("wai_sess_"));
}

/// What both pooled clients do: 1,000 requests on one client object, every third a POST of
/// 300 KB the daemon refuses (413) before it reads the body; the others read the agent's
/// address. Prints `{"answers": {status or code: count}, "transport": [errors…]}`.
const POOLED_HTTP_CLIENT: &str = r#"
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
auth = {"Authorization": "Bearer " + sys.argv[2]}
big = json.dumps({"to": "0x" + "1" * 40, "amount": "1", "memo": "x" * 300000}).encode()
answers, transport = {}, []
for i in range(1000):
    try:
        if i % 3 == 2:
            c.request("POST", "/v1/transactions/send", body=big, headers={**auth, "Content-Type": "application/json"})
        else:
            c.request("GET", "/v1/wallet/address", headers=auth)
        r = c.getresponse()
        r.read()
        key = str(r.status)
        answers[key] = answers.get(key, 0) + 1
    except Exception as e:  # anything here is a transport failure
        transport.append(f"request {i}: {type(e).__name__}: {e}")
        c.close()
print(json.dumps({"answers": answers, "transport": transport}))
"#;

const POOLED_SDK: &str = r#"
import asyncio, json, sys
from waiaas import WAIaaSClient, WAIaaSError
async def main():
    answers, transport = {}, []
    # No retries: a transport failure must show, not be papered over by a second attempt.
    async with WAIaaSClient(f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2], max_retries=0) as c:
        for i in range(1000):
            try:
                if i % 3 == 2:
                    await c.send_token("0x" + "1" * 40, "1", memo="x" * 300000)
                    key = "sent"
                else:
                    await c.get_address()
                    key = "200"
            except WAIaaSError as e:
                if e.code == "CONNECTION_ERROR":
                    transport.append(f"request {i}: {e}")
                    continue
                key = f"{e.status} {e.code}"
            answers[key] = answers.get(key, 0) + 1
    print(json.dumps({"answers": answers, "transport": transport}))
asyncio.run(main())
"#;

// Issue #22, pooled clients: Python's `http.client` and the SDK's httpx client each make 1,000
// requests on one client object, a third of them large POSTs refused before the body is read.
// The refusals say `Connection: close`, so neither client writes into a socket the daemon has
// closed: no request fails on the transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_clients_survive_a_thousand_requests_with_refused_large_posts() {
    install_sdk();
    let anvil = Anvil::start();
    let d = TestDaemon::start(Opts {
        config: vec![
            (
                "security",
                "rate_limit_global_ip_rpm = 10000\nrate_limit_session_rpm = 5000\nrate_limit_tx_rpm = 100".to_string(),
            ),
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url)),
        ],
        ..Opts::default()
    })
    .await;
    let a = d.create_agent(json!({"chain": "ethereum", "name": "pooled"})).await;
    // Every large POST is refused before its body is read: the first 100 of a session by the
    // body limit (413), the rest by the send rate limit (429, 100 a minute) — each client on a
    // session of its own.
    for (name, script, codes) in [
        ("http.client", POOLED_HTTP_CLIENT, ["413", "429"]),
        ("SDK (httpx)", POOLED_SDK, ["413 PAYLOAD_TOO_LARGE", "429 RATE_LIMIT_EXCEEDED"]),
    ] {
        let s = d.create_session(a["id"].as_str().unwrap(), json!({})).await;
        let token = s["token"].as_str().unwrap().to_string();
        let out = Command::new(clients_python()).args(["-c", script, &d.port.to_string(), &token]).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["transport"], json!([]), "{name}: transport failures: {v}");
        let mut expected = serde_json::Map::new();
        expected.insert("200".into(), json!(667));
        expected.insert(codes[0].into(), json!(100));
        expected.insert(codes[1].into(), json!(233));
        assert_eq!(v["answers"], serde_json::Value::Object(expected), "{name}: {v}");
        crate::support::report(&format!("pooled {name}: 1000 requests, {v}"));
    }
}
