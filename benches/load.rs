//! Load tool: N concurrent sessions sending INSTANT transfers to a real daemon on a real local
//! node, reporting throughput, p50/p99 of the total latency (client-measured) and of the
//! daemon-only latency (total minus the time the daemon spent waiting on the node, from the
//! `Server-Timing` header), the redb commits and fsyncs per request (the daemon's counters, read
//! from `/v1/admin/status` before and after), and the CPU time the daemon and the node each
//! spent per send (their processes' user + system time from `/proc/<pid>/stat`, before and after
//! the run: every thread, every stage, nothing sampled).
//!
//! Each session belongs to its own agent (one key each, so EVM nonces do not serialise the
//! agents against each other) and sends `--per-session` transfers back to back.
//!
//! `--hanging-channel` registers a WEBHOOK notification channel whose server answers the
//! create-time health check and then never answers again; `--churn N` creates and revokes N
//! sessions a second during the run (each emits SESSION_CREATED and SESSION_REVOKED), so the
//! notification queue is busy while the sends are measured. Comparing a `--churn` row with and
//! without `--hanging-channel` shows what a dead channel costs the send path.
//!
//! Run: `cargo bench --bench load -- [--chain ethereum|solana] [--sessions 1,8,32] [--per-session 40]
//!       [--churn 20] [--hanging-channel] [--no-autostop] [--metrics]`; `WAIAAS_BIN=<path>` runs another build
//!       of the daemon under the same tool.
//!
//! `--metrics` turns `[metrics] enabled` on (recording and the listener): rows with and without
//! it show what recording costs a send.
//!
//! `--no-autostop` deletes the AutoStop rules `init` seeds before measuring; comparing rows with
//! and without it shows that AutoStop (a consumer task fed after commits) costs a send nothing.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "waiaas-dev";

fn tool(var: &str, rel: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        let cache = std::env::var("WAIAAS_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/waiaas", std::env::var("HOME").unwrap()));
        format!("{cache}/{rel}")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line containing `needle` on the child's stdout.
fn wait_for(child: &mut Child, needle: &str) {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if !sent && line.contains(&needle) {
                let _ = tx.send(());
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("process did not become ready");
}

/// User + system CPU seconds of process `pid` so far (all its threads).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name.
    let hz = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) / hz
}

struct Node {
    _proc: Proc,
    url: String,
    chain: String,
}

fn start_node(chain: &str) -> Node {
    let port = free_port();
    match chain {
        "ethereum" => {
            let bin = tool("WAIAAS_TOOL_ANVIL", "foundry-1.7.1/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
            let mut c = Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", "31337"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("anvil");
            wait_for(&mut c, "Listening on");
            Node { _proc: Proc(c), url: format!("http://127.0.0.1:{port}"), chain: chain.into() }
        }
        _ => {
            let exe = std::env::current_exe().unwrap();
            let bin = exe.parent().unwrap().parent().unwrap().join("surfnet-local");
            let mut c = Command::new(bin)
                .args(["--port", &port.to_string(), "--ws-port", &free_port().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("surfnet-local (cargo build --release -p surfnet-local)");
            wait_for(&mut c, " ready on ");
            Node { _proc: Proc(c), url: format!("http://127.0.0.1:{port}"), chain: chain.into() }
        }
    }
}

struct Daemon {
    _proc: Proc,
    _dir: tempfile::TempDir,
    base: String,
}

fn start_daemon(node: &Node, notifications: bool, metrics: bool) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    // WAIAAS_BIN measures another build (e.g. a copy of the previous commit's binary) with the
    // same tool, so before/after rows can be run alternately in one sitting.
    let bin = std::env::var("WAIAAS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_waiaas").to_string());
    let st = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["init", "--non-interactive", "--master-password", PASSWORD])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let rpc = match node.chain.as_str() {
        "ethereum" => format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", node.url),
        _ => format!("solana_devnet = \"{}\"", node.url),
    };
    let mut cfg = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    cfg = cfg.replacen("[rpc]\n", &format!("[rpc]\n{rpc}\n"), 1);
    cfg = cfg.replacen(
        "[security]\n",
        "[security]\nrate_limit_tx_rpm = 100\nrate_limit_session_rpm = 5000\nrate_limit_global_ip_rpm = 10000\n",
        1,
    );
    cfg = cfg.replacen("[daemon]\n", "[daemon]\nlog_level = \"warn\"\n", 1);
    if notifications {
        cfg = cfg.replacen("[notifications]\n", "[notifications]\nenabled = true\n", 1);
    }
    if metrics {
        cfg = cfg.replacen("[metrics]\n", &format!("[metrics]\nenabled = true\nport = {}\n", free_port()), 1);
    }
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    let port = free_port();
    let mut c = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["start", "--dev", "--port", &port.to_string(), "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut c, " ready on ");
    Daemon { _proc: Proc(c), _dir: dir, base: format!("http://127.0.0.1:{port}") }
}

async fn master(http: &reqwest::Client, base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut r = http.request(method, format!("{base}{path}")).header("X-Master-Password", PASSWORD);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "{path}: {v}");
    v
}

async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let v: Value = http
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

/// An agent with a funded address and one session; returns the token.
async fn agent(http: &reqwest::Client, d: &Daemon, node: &Node, i: usize) -> String {
    let a = master(
        http,
        &d.base,
        reqwest::Method::POST,
        "/v1/agents",
        Some(json!({"chain": node.chain, "name": format!("load-{i}")})),
    )
    .await;
    let address = a["address"].as_str().unwrap();
    match node.chain.as_str() {
        "ethereum" => {
            rpc(http, &node.url, "anvil_setBalance", json!([address, "0x56bc75e2d63100000"])).await;
        }
        _ => {
            rpc(http, &node.url, "requestAirdrop", json!([address, 100_000_000_000u64])).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let s = master(http, &d.base, reqwest::Method::POST, "/v1/sessions", Some(json!({"agentId": a["id"]}))).await;
    s["token"].as_str().unwrap().to_string()
}

fn recipient(chain: &str) -> &'static str {
    match chain {
        "ethereum" => "0x000000000000000000000000000000000000bEEF",
        _ => "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM",
    }
}

/// `total;dur=12.3, chain;dur=4.5` → (total, chain) in ms.
fn server_timing(h: &str) -> (f64, f64) {
    let mut total = 0.0;
    let mut chain = 0.0;
    for part in h.split(',') {
        let mut it = part.trim().split(';');
        let name = it.next().unwrap_or("");
        let dur = it.find_map(|p| p.strip_prefix("dur=")).and_then(|d| d.parse().ok()).unwrap_or(0.0);
        match name {
            "total" => total = dur,
            "chain" => chain = dur,
            _ => {}
        }
    }
    (total, chain)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A webhook server that answers the first request (the health check at channel creation) and
/// then accepts connections and reads requests but never answers them.
async fn hanging_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut answered = false;
        let mut held = Vec::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            if !answered {
                answered = true;
                let mut buf = vec![0u8; 16 * 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                continue;
            }
            held.push(sock);
        }
    });
    url
}

/// Creates and revokes sessions of one agent at `per_second` until `stop` is set.
async fn churn(http: reqwest::Client, base: String, agent_id: String, per_second: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let s = master(&http, &base, reqwest::Method::POST, "/v1/sessions", Some(json!({"agentId": agent_id}))).await;
        let path = format!("/v1/sessions/{}", s["sessionId"].as_str().unwrap());
        master(&http, &base, reqwest::Method::DELETE, &path, None).await;
        n += 2;
    }
    n
}

struct Options {
    per_session: usize,
    churn: u32,
    hanging_channel: bool,
    /// `--no-autostop`: delete every AutoStop rule before measuring (the default rules are on
    /// otherwise), to show what evaluating them costs the send path.
    no_autostop: bool,
    /// `--metrics`: `[metrics] enabled = true` (recording on, the listener up); comparing rows
    /// with and without it shows what recording costs a send.
    metrics: bool,
}

struct Sample {
    total_ms: f64,
    daemon_ms: f64,
    chain_ms: f64,
}

async fn run(http: &reqwest::Client, d: &Daemon, node: &Node, sessions: usize, opts: &Options) {
    let per_session = opts.per_session;
    if node.chain == "solana" {
        // The recipient must already hold a rent-exempt balance, or the small transfers below
        // would be refused (InsufficientFundsForRent) instead of measured.
        rpc(http, &node.url, "requestAirdrop", json!([recipient(&node.chain), 1_000_000_000u64])).await;
    }
    let mut tokens = Vec::new();
    for i in 0..sessions {
        tokens.push(agent(http, d, node, i + sessions * 1000).await);
    }
    if opts.no_autostop {
        let rules = master(http, &d.base, reqwest::Method::GET, "/v1/admin/auto-stop/rules", None).await;
        for r in rules["rules"].as_array().unwrap() {
            let path = format!("/v1/admin/auto-stop/rules/{}", r["id"].as_str().unwrap());
            master(http, &d.base, reqwest::Method::DELETE, &path, None).await;
        }
    }
    if opts.hanging_channel {
        let url = hanging_server().await;
        let body =
            json!({"type": "WEBHOOK", "name": "hanging", "config": {"url": url, "secret": "load-tool-webhook-secret"}});
        master(http, &d.base, reqwest::Method::POST, "/v1/owner/notification-channels", Some(body)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churner = if opts.churn > 0 {
        let body = json!({"chain": "solana", "name": "churn"});
        let a = master(http, &d.base, reqwest::Method::POST, "/v1/agents", Some(body)).await;
        let (agent_id, per_second) = (a["id"].as_str().unwrap().to_string(), opts.churn);
        Some(tokio::spawn(churn(http.clone(), d.base.clone(), agent_id, per_second, stop.clone())))
    } else {
        None
    };
    let before = master(http, &d.base, reqwest::Method::GET, "/v1/admin/status", None).await;
    let commits_before = before["database"]["commits"].as_u64().unwrap();
    // Builds before the fsync counter reported none; there every commit was durable.
    let fsyncs_before = before["database"]["fsyncs"].as_u64().unwrap_or(commits_before);
    let (daemon_pid, node_pid) = (d._proc.0.id(), node._proc.0.id());
    let (daemon_cpu0, node_cpu0) = (cpu_secs(daemon_pid), cpu_secs(node_pid));
    let started = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut failures = 0usize;
    let mut tasks = Vec::new();
    for t in tokens {
        let (http, base, samples, to) = (http.clone(), d.base.clone(), samples.clone(), recipient(&node.chain));
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..per_session {
                let t0 = Instant::now();
                let r = http
                    .post(format!("{base}/v1/transactions/send"))
                    .bearer_auth(&t)
                    .json(&json!({"to": to, "amount": (1000 + i).to_string()}))
                    .send()
                    .await
                    .unwrap();
                let total = t0.elapsed().as_secs_f64() * 1000.0;
                let timing = r.headers().get("server-timing").and_then(|h| h.to_str().ok()).map(server_timing);
                let ok = r.status().as_u16() == 200;
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if !ok || body["status"] != "CONFIRMED" {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("send failed: {body}");
                    }
                    continue;
                }
                let (server_total, chain) = timing.unwrap_or((total, 0.0));
                samples.lock().unwrap().push(Sample {
                    total_ms: total,
                    daemon_ms: server_total - chain,
                    chain_ms: chain,
                });
            }
            failed
        }));
    }
    for t in tasks {
        failures += t.await.unwrap();
    }
    let wall = started.elapsed();
    let (daemon_cpu, node_cpu) = (cpu_secs(daemon_pid) - daemon_cpu0, cpu_secs(node_pid) - node_cpu0);
    let status = master(http, &d.base, reqwest::Method::GET, "/v1/admin/status", None).await;
    let commits_after = status["database"]["commits"].as_u64().unwrap();
    let fsyncs_after = status["database"]["fsyncs"].as_u64().unwrap_or(commits_after);
    stop.store(true, Ordering::Relaxed);
    let emitted = match churner {
        Some(c) => c.await.unwrap(),
        None => 0,
    };
    let queue = &status["notifications"]["queue"];
    let s = samples.lock().unwrap();
    let n = s.len();
    let mut total: Vec<f64> = s.iter().map(|x| x.total_ms).collect();
    let mut daemon: Vec<f64> = s.iter().map(|x| x.daemon_ms).collect();
    let mut chain: Vec<f64> = s.iter().map(|x| x.chain_ms).collect();
    for v in [&mut total, &mut daemon, &mut chain] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    // Reads commit nothing, so without churn the delta is the sends' commits.
    let requests = (n + failures).max(1) as f64;
    let (per_request, fsyncs_per_request) = if opts.churn > 0 {
        ("-".to_string(), "-".to_string())
    } else {
        (
            format!("{:.2}", (commits_after - commits_before) as f64 / requests),
            format!("{:.2}", (fsyncs_after - fsyncs_before) as f64 / requests),
        )
    };
    let cpu = format!("{:.2} | {:.2}", daemon_cpu * 1000.0 / requests, node_cpu * 1000.0 / requests);
    let notifications = if opts.churn > 0 || opts.hanging_channel {
        format!(
            "{}{} events, {} in flight, {} waiting, {} dropped",
            if opts.hanging_channel { "hanging channel, " } else { "" },
            emitted,
            queue["inFlight"],
            queue["waiting"],
            queue["dropped"]
        )
    } else {
        "-".into()
    };
    println!(
        "| {} | {sessions} | {n} | {failures} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {cpu} | {per_request} | {fsyncs_per_request} | {notifications} |",
        node.chain,
        n as f64 / wall.as_secs_f64(),
        percentile(&total, 50.0),
        percentile(&total, 99.0),
        percentile(&daemon, 50.0),
        percentile(&daemon, 99.0),
        percentile(&chain, 50.0),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    // `cargo bench` passes `--bench`; a plain `cargo test` run builds but does not load.
    if args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench") {
        return;
    }
    let chain = arg("--chain").unwrap_or_else(|| "ethereum".into());
    let sessions: Vec<usize> =
        arg("--sessions").unwrap_or_else(|| "1,8,32".into()).split(',').map(|s| s.trim().parse().unwrap()).collect();
    let opts = Options {
        per_session: arg("--per-session").map(|s| s.parse().unwrap()).unwrap_or(40),
        churn: arg("--churn").map(|s| s.parse().unwrap()).unwrap_or(0),
        hanging_channel: args.iter().any(|a| a == "--hanging-channel"),
        no_autostop: args.iter().any(|a| a == "--no-autostop"),
        metrics: args.iter().any(|a| a == "--metrics"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(120)).build().unwrap();
        println!("| chain | sessions | ok | failed | tx/s | p50 total ms | p99 total ms | p50 daemon ms | p99 daemon ms | p50 chain ms | daemon CPU ms/send | node CPU ms/send | commits/request | fsyncs/request | notifications |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for n in sessions {
            // A fresh node and daemon per row, so rows do not share state.
            let node = start_node(&chain);
            let d = start_daemon(&node, opts.churn > 0 || opts.hanging_channel, opts.metrics);
            run(&http, &d, &node, n, &opts).await;
        }
    });
}
