//! What the benches that drive a real daemon share: the external processes (a local node, the
//! daemon under test), the master-password calls, CPU accounting and percentiles.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub(crate) const PASSWORD: &str = "waiaas-dev";

pub(crate) fn tool(var: &str, rel: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        let cache = std::env::var("WAIAAS_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/waiaas", std::env::var("HOME").unwrap()));
        format!("{cache}/{rel}")
    })
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line containing `needle` on the child's stdout.
pub(crate) fn wait_for(child: &mut Child, needle: &str) {
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
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name.
    let hz = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) / hz
}

pub(crate) struct Node {
    pub(crate) _proc: Proc,
    pub(crate) url: String,
    pub(crate) chain: String,
}

pub(crate) fn start_node(chain: &str) -> Node {
    let port = free_port();
    match chain {
        "ethereum" => {
            let bin = tool("WAIAAS_TOOL_ANVIL", "foundry-1.7.1/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
            let mut c = Command::new(bin)
                // No history on disk: a long run would leave gigabytes in ~/.foundry/anvil/tmp.
                .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", "31337", "--prune-history"])
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

pub(crate) struct Daemon {
    pub(crate) _proc: Proc,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) base: String,
}

pub(crate) fn start_daemon(node: &Node, notifications: bool, metrics: bool) -> Daemon {
    start_daemon_with(node, notifications, metrics, |c| c)
}

/// [`start_daemon`], with `edit` applied to the generated config.toml last.
pub(crate) fn start_daemon_with(
    node: &Node,
    notifications: bool,
    metrics: bool,
    edit: impl FnOnce(String) -> String,
) -> Daemon {
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
    // WAIAAS_BENCH_POSTGRES=<cluster URL> runs the daemon on a fresh PostgreSQL database of that
    // cluster (13-postgres-ha.md) instead of redb: migrated, seeded by a second `init`.
    let pg = std::env::var("WAIAAS_BENCH_POSTGRES").ok();
    if let Some(cluster) = &pg {
        let name = format!("bench_{}", std::process::id() as u64 * 1000 + u64::from(free_port() % 1000));
        let ok = Command::new("psql").args([cluster, "-qAtc", &format!("CREATE DATABASE {name}")]).status().unwrap();
        assert!(ok.success(), "CREATE DATABASE");
        let url = format!("{}/{name}", cluster.rsplit_once('/').unwrap().0);
        cfg = cfg.replacen("[database]\n", &format!("[database]\nbackend = \"postgres\"\nurl = \"{url}\"\n"), 1);
    }
    std::fs::write(dir.path().join("config.toml"), edit(cfg)).unwrap();
    if pg.is_some() {
        for args in
            [&["db", "migrate"][..], &["init", "--non-interactive", "--json", "--master-password", PASSWORD][..]]
        {
            let st = Command::new(&bin).arg("--data-dir").arg(dir.path()).args(args).stdout(Stdio::null()).status();
            assert!(st.unwrap().success(), "{args:?}");
        }
    }
    let port = free_port();
    let mut c = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["start", "--dev", "--port", &port.to_string(), "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A PostgreSQL replica starts as a standby: wait until it leads (its server is up by then).
    wait_for(&mut c, if pg.is_some() { "Leader (epoch" } else { " ready on " });
    Daemon { _proc: Proc(c), _dir: dir, base: format!("http://127.0.0.1:{port}") }
}

pub(crate) async fn master(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
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

pub(crate) async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
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
pub(crate) async fn agent(http: &reqwest::Client, d: &Daemon, node: &Node, i: usize) -> String {
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

pub(crate) fn recipient(chain: &str) -> &'static str {
    match chain {
        "ethereum" => "0x000000000000000000000000000000000000bEEF",
        _ => "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM",
    }
}

/// `total;dur=12.3, chain;dur=4.5` → (total, chain) in ms.
pub(crate) fn server_timing(h: &str) -> (f64, f64) {
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

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
