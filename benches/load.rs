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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "common/mod.rs"]
mod common;

use common::*;

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
