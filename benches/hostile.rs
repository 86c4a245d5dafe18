//! Hostile load against a real daemon on anvil (issue #22), in one run:
//!
//! 1. **Flood.** 8 agents, each from its own loopback address (127.0.0.10–41), send 90 INSTANT
//!    transfers and read (`GET /v1/wallet/address`, `GET /v1/transactions?limit=5`) — alone and
//!    while one client on 127.0.0.2 sends as fast as 64 connections allow (twice each,
//!    alternating), half of it a
//!    200 KB send with a bad token, half unauthenticated reads. Reports the agents' read and
//!    send p50/p99 and send rate in both phases, and what the flooder got.
//! 2. **Slowloris.** 2,000 connections from 10 addresses, each sending one header byte every
//!    10 s, while a normal client asks `GET /health` every 100 ms: its worst latency, and how
//!    long the slow connections lived.
//! 3. **Idle keep-alive.** 10,000 connections from 40 addresses each make one request and stay
//!    open: how many were admitted and refused (503 TOO_MANY_CONNECTIONS), when the idle ones
//!    were closed, and the daemon's peak file descriptors against the limit it set itself.
//!
//! 4. **Soak** (`-- --soak 200000`, instead of the above): that many requests from 16 workers —
//!    INSTANT sends on anvil (one request in ten), reads, a new session every 40 sends and a new
//!    agent every 200 — with the daemon's resident memory sampled every 10 s.
//!
//! Run: `cargo bench --bench hostile [-- --soak N | --flood-only]` (`WAIAAS_BIN=<path>` runs another build).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .pool_max_idle_per_host(8)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn connect_from(ip: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{ip}:0").parse().unwrap())?;
    socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await
}

fn port_of(d: &Daemon) -> u16 {
    d.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// Open file descriptors of `pid`, and its `Max open files` soft limit.
fn fds(pid: u32) -> (usize, u64) {
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (open, soft)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn p(sorted: &mut [f64], q: f64) -> f64 {
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(sorted, q)
}

/// One INSTANT transfer of `amount` wei, asserted CONFIRMED.
async fn send_confirmed(http: &reqwest::Client, base: &str, token: &str, amount: usize) {
    let r = http
        .post(format!("{base}/v1/transactions/send"))
        .bearer_auth(token)
        .json(&json!({"to": recipient("ethereum"), "amount": amount.to_string()}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert!(status == 200 && body["status"] == "CONFIRMED", "send: {status} {body}");
}

struct Phase {
    reads: Vec<f64>,
    sends: Vec<f64>,
    wall: Duration,
}

/// Each agent: `rounds` × (one send, four reads), on its own address.
async fn agents(d: &Daemon, tokens: &[(String, reqwest::Client)], rounds: usize) -> Phase {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (token, http) in tokens {
        let (token, http, base) = (token.clone(), http.clone(), d.base.clone());
        tasks.push(tokio::spawn(async move {
            let (mut reads, mut sends) = (Vec::new(), Vec::new());
            for i in 0..rounds {
                let t0 = Instant::now();
                send_confirmed(&http, &base, &token, 1000 + i).await;
                sends.push(ms(t0.elapsed()));
                for path in ["/v1/wallet/address", "/v1/transactions?limit=5"].iter().cycle().take(4) {
                    let t0 = Instant::now();
                    let r = http.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 200, "{path}");
                    let _ = r.bytes().await;
                    reads.push(ms(t0.elapsed()));
                }
            }
            (reads, sends)
        }));
    }
    let (mut reads, mut sends) = (Vec::new(), Vec::new());
    for t in tasks {
        let (r, s) = t.await.unwrap();
        reads.extend(r);
        sends.extend(s);
    }
    Phase { reads, sends, wall: started.elapsed() }
}

/// The flooder: 64 tasks on 127.0.0.2 until `stop`; counts answers by status.
fn flood(d: &Daemon, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<u16>>> {
    let big = "x".repeat(200_000);
    (0..64)
        .map(|i| {
            let (base, stop, big) = (d.base.clone(), stop.clone(), big.clone());
            tokio::spawn(async move {
                let http = client_from("127.0.0.2");
                let mut got = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = if i % 2 == 0 {
                        http.post(format!("{base}/v1/transactions/send"))
                            .bearer_auth("a.b.c")
                            .header("Content-Type", "application/json")
                            .body(format!("{{\"to\":\"x\",\"amount\":\"1\",\"memo\":\"{big}\"}}"))
                            .send()
                            .await
                    } else {
                        http.get(format!("{base}/v1/wallet/address")).send().await
                    };
                    match r {
                        Ok(r) => {
                            got.push(r.status().as_u16());
                            let _ = r.bytes().await;
                        }
                        Err(_) => got.push(0),
                    }
                }
                got
            })
        })
        .collect()
}

/// A fresh anvil and daemon with the daemon's own defaults for connections and the per-IP
/// request limit, AutoStop's seeded rules removed (no agent is suspended mid-run).
async fn fresh() -> (Node, Daemon) {
    let node = start_node("ethereum");
    let d = start_daemon_with(&node, false, false, |c| c.replace("rate_limit_global_ip_rpm = 10000\n", ""));
    let http = reqwest::Client::new();
    let rules = master(&http, &d.base, reqwest::Method::GET, "/v1/admin/auto-stop/rules", None).await;
    for r in rules["rules"].as_array().unwrap() {
        let path = format!("/v1/admin/auto-stop/rules/{}", r["id"].as_str().unwrap());
        master(&http, &d.base, reqwest::Method::DELETE, &path, None).await;
    }
    (node, d)
}

async fn flood_phase() {
    let http = reqwest::Client::new();
    let mut per_phase = Vec::new();
    // Alternating, each phase on a fresh node and daemon: a chain and a database that grow
    // slow later phases down, and that drift must not pass for the flood's effect.
    for (n, phase) in ["alone", "under flood", "alone", "under flood"].into_iter().enumerate() {
        let (node, d) = fresh().await;
        let (node, d) = (&node, &d);
        let mut tokens = Vec::new();
        for i in 0..8 {
            // A fresh agent per phase: the per-session send limit counts a minute.
            let t = agent(&http, d, node, i + 100 * n).await;
            // Its own address per phase too: each address has 1,000 requests a minute.
            tokens.push((t, client_from(&format!("127.0.0.{}", 10 + 8 * n + i))));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flooders = if phase == "alone" { Vec::new() } else { flood(d, stop.clone()) };
        if !flooders.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let cpu0 = cpu_secs(d._proc.0.id());
        let result = agents(d, &tokens, 90).await;
        let cpu = cpu_secs(d._proc.0.id()) - cpu0;
        stop.store(true, Ordering::Relaxed);
        let mut statuses: Vec<u16> = Vec::new();
        for f in flooders {
            statuses.extend(f.await.unwrap());
        }
        per_phase.push((phase, result, statuses, cpu));
    }
    println!("\n### Flood from one address\n");
    println!(
        "| phase | agents' reads | read p50 ms | read p99 ms | sends | send p50 ms | send p99 ms | sends/s | daemon CPU s | flooder: answers in its 1 s head start + the phase, by status |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (phase, mut r, statuses, cpu) in per_phase {
        let mut by: std::collections::BTreeMap<u16, usize> = Default::default();
        for s in &statuses {
            *by.entry(*s).or_default() += 1;
        }
        let flooder = if statuses.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{} in {:.1} s: {}",
                statuses.len(),
                r.wall.as_secs_f64() + 1.0,
                by.iter().map(|(s, n)| format!("{s}×{n}")).collect::<Vec<_>>().join(", ")
            )
        };
        println!(
            "| {phase} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {flooder} |",
            r.reads.len(),
            p(&mut r.reads, 50.0),
            p(&mut r.reads, 99.0),
            r.sends.len(),
            p(&mut r.sends, 50.0),
            p(&mut r.sends, 99.0),
            r.sends.len() as f64 / r.wall.as_secs_f64(),
            cpu,
        );
    }
}

async fn slowloris(d: &Daemon) {
    let port = port_of(d);
    let closed_after = Arc::new(std::sync::Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..2000 {
        let ip = format!("127.0.1.{}", 1 + i % 10);
        let (closed_after, refused) = (closed_after.clone(), refused.clone());
        slow.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(&ip, port).await else {
                refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let t0 = Instant::now();
            let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
            let mut buf = [0u8; 512];
            for b in head.iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                // A byte every 10 s; a read that ends means the daemon closed the connection.
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 503") => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
            closed_after.lock().unwrap().push(t0.elapsed().as_secs_f64());
        }));
    }
    // The normal client, meanwhile, from its own address, a new connection each time.
    let mut worst = Duration::ZERO;
    let mut latencies = Vec::new();
    let pid = d._proc.0.id();
    let mut peak_fds = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let t0 = Instant::now();
        let mut s = connect_from("127.0.0.3", port).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        let took = t0.elapsed();
        worst = worst.max(took);
        latencies.push(ms(took));
        peak_fds = peak_fds.max(fds(pid).0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in slow {
        let _ = s.await;
    }
    let mut lived = closed_after.lock().unwrap().clone();
    let (_, limit) = fds(pid);
    println!("\n### Slowloris: 2,000 connections sending a byte every 10 s\n");
    println!(
        "| normal requests | p50 ms | p99 ms | worst ms | slow connections closed by the daemon | lived p50 / max s | refused at connect | daemon peak fds / its limit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} | {:.1} | {:.1} | {} | {:.1} / {:.1} | {} | {peak_fds} / {limit} |",
        latencies.len(),
        p(&mut latencies, 50.0),
        p(&mut latencies, 99.0),
        ms(worst),
        lived.len(),
        p(&mut lived, 50.0),
        lived.iter().cloned().fold(0.0, f64::max),
        refused.load(Ordering::Relaxed),
    );
}

async fn idle(d: &Daemon) {
    let port = port_of(d);
    let pid = d._proc.0.id();
    let started = Instant::now();
    let mut conns = Vec::new();
    let (mut admitted, mut refused, mut failed) = (0, 0, 0);
    for i in 0..10_000 {
        let ip = format!("127.0.2.{}", 1 + i % 40);
        let Ok(mut s) = connect_from(&ip, port).await else {
            failed += 1;
            continue;
        };
        if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.is_err() {
            failed += 1;
            continue;
        }
        conns.push(s);
    }
    let mut peak_fds = fds(pid).0;
    // Read each one's answer; the admitted stay open (keep-alive) until the idle timeout.
    let mut open = Vec::new();
    for mut s in conns {
        let mut buf = vec![0u8; 2048];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200") => {
                admitted += 1;
                open.push(s);
            }
            Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 503") => refused += 1,
            _ => failed += 1,
        }
    }
    peak_fds = peak_fds.max(fds(pid).0);
    let all_open_at = started.elapsed();
    // Wait for the daemon to close them.
    let waits: Vec<_> = open
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let r = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await;
                matches!(r, Ok(Ok(0)) | Ok(Err(_)))
            })
        })
        .collect();
    let mut closed = 0;
    for w in waits {
        if w.await.unwrap() {
            closed += 1;
        }
    }
    let all_closed_at = started.elapsed();
    let (after, limit) = fds(pid);
    println!("\n### 10,000 idle keep-alive connections\n");
    println!(
        "| admitted | refused (503) | failed | closed by the idle timeout | all open after s | all closed after s | daemon peak fds / its limit | fds after |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {admitted} | {refused} | {failed} | {closed} | {:.1} | {:.1} | {peak_fds} / {limit} | {after} |",
        all_open_at.as_secs_f64(),
        all_closed_at.as_secs_f64()
    );
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS`, `RssAnon`, `RssFile`).
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// One soak worker on its own address: sends (one in ten requests), reads, a new session every
/// 40 sends (the old one revoked) and a new agent every 200 sends (the old one terminated).
async fn soak_worker(base: String, node_url: String, w: usize, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    let http = client_from(&format!("127.0.3.{}", 1 + w));
    let admin = reqwest::Client::new();
    let m = |method: reqwest::Method, path: String, body: Option<serde_json::Value>| {
        count.fetch_add(1, Ordering::Relaxed);
        let (admin, base) = (admin.clone(), base.clone());
        async move { master(&admin, &base, method, &path, body).await }
    };
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let a = m(
            reqwest::Method::POST,
            "/v1/agents".into(),
            Some(json!({"chain": "ethereum", "name": format!("soak-{w}-{n}")})),
        )
        .await;
        let agent_id = a["id"].as_str().unwrap().to_string();
        rpc(&admin, &node_url, "anvil_setBalance", json!([a["address"], "0x56bc75e2d63100000"])).await;
        for _ in 0..5 {
            let s = m(reqwest::Method::POST, "/v1/sessions".into(), Some(json!({"agentId": agent_id}))).await;
            let token = s["token"].as_str().unwrap().to_string();
            for _ in 0..40 {
                send_confirmed(&http, &base, &token, 1000 + n).await;
                n += 1;
                for path in ["/v1/wallet/address", "/v1/transactions?limit=5", "/v1/wallet/balance", "/v1/session"]
                    .iter()
                    .cycle()
                    .take(9)
                {
                    let r = http.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap();
                    let _ = r.bytes().await;
                }
                count.fetch_add(10, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            let path = format!("/v1/sessions/{}", s["sessionId"].as_str().unwrap());
            m(reqwest::Method::DELETE, path, None).await;
        }
        m(reqwest::Method::DELETE, format!("/v1/agents/{agent_id}"), None).await;
    }
}

/// `--soak N`: N requests from 16 workers; RSS sampled every 10 s.
async fn soak(total: u64) {
    let node = start_node("ethereum");
    let cache = std::env::var("SOAK_CACHE_MB").ok();
    let d = start_daemon_with(&node, false, false, |c| match &cache {
        Some(mb) => c.replacen("[database]\n", &format!("[database]\ncache_size_mb = {mb}\n"), 1),
        None => c,
    });
    let http = reqwest::Client::new();
    let rules = master(&http, &d.base, reqwest::Method::GET, "/v1/admin/auto-stop/rules", None).await;
    for r in rules["rules"].as_array().unwrap() {
        let path = format!("/v1/admin/auto-stop/rules/{}", r["id"].as_str().unwrap());
        master(&http, &d.base, reqwest::Method::DELETE, &path, None).await;
    }
    let pid = d._proc.0.id();
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..16)
        .map(|w| tokio::spawn(soak_worker(d.base.clone(), node.url.clone(), w, stop.clone(), count.clone())))
        .collect();
    let started = Instant::now();
    println!("\n### Soak: {total} requests (sends, reads, session and agent churn), RSS every 10 s\n");
    // The database file's size beside RSS: the page cache (`cache_size_mb`) fills as it grows.
    let db_mib = || async {
        let st = master(&http, &d.base, reqwest::Method::GET, "/v1/admin/status", None).await;
        st["database"]["sizeBytes"].as_f64().unwrap_or(0.0) / 1048576.0
    };
    // RSS splits into anonymous memory (the heap: what could grow without bound) and file pages
    // (the binary's code and data, faulted in as new code paths run).
    println!("| s | requests | RSS MiB | anonymous MiB | file MiB | database MiB |");
    println!("|---|---|---|---|---|---|");
    let row = |done: u64, s: f64, db: f64| {
        let (rss, anon, file) = (status_mib(pid, "VmRSS"), status_mib(pid, "RssAnon"), status_mib(pid, "RssFile"));
        println!("| {s:.0} | {done} | {rss:.1} | {anon:.1} | {file:.1} | {db:.1} |");
    };
    row(0, 0.0, db_mib().await);
    let mut next = Duration::from_secs(10);
    let mut reference_taken = false;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = count.load(Ordering::Relaxed);
        // The reference point: the sample as the count passes 20,000.
        let reference = !reference_taken && done >= 20_000;
        if started.elapsed() >= next || done >= total || reference {
            reference_taken |= reference;
            row(done, started.elapsed().as_secs_f64(), db_mib().await);
            if !reference {
                next += Duration::from_secs(10);
            }
        }
        if done >= total {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench") {
        return;
    }
    // The clients need as many descriptors as the connections they hold.
    let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    lim.current = lim.maximum;
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, lim);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        if let Some(n) = args.iter().position(|a| a == "--soak").and_then(|i| args.get(i + 1)) {
            soak(n.parse().unwrap()).await;
            return;
        }
        flood_phase().await;
        if args.iter().any(|a| a == "--flood-only") {
            return;
        }
        let (_node, d) = fresh().await;
        slowloris(&d).await;
        idle(&d).await;
    });
}
