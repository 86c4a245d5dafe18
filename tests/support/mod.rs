//! Test harness: real daemon processes on ephemeral ports with temp data directories, and the
//! real local components (anvil, surfnet-local, Speculos) they run against.
//!
//! Everything started here is stopped when its handle drops, also when a test fails.

#![allow(dead_code)]

pub(crate) mod api;
pub(crate) mod evm;
pub(crate) mod nodes;
pub(crate) mod owner;
pub(crate) mod pg;
pub(crate) mod receiver;
pub(crate) mod rpc_proxy;
pub(crate) mod sink;
pub(crate) mod solana;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The `waiaas` binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_waiaas")
}

/// A line for the test command's output even when the test passes (`eprintln!` is captured;
/// a direct write to the process's stderr is not): measured numbers the README and the issue
/// notes quote.
pub(crate) fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A free loopback port (bind :0, read, release).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `waiaas` command for `dir` with every inherited `WAIAAS_*` variable removed and low
/// Argon2id parameters (a test unlocks keystores constantly).
pub(crate) fn cli(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("WAIAAS_") {
            c.env_remove(k);
        }
    }
    c.env("WAIAAS_KEYSTORE_ARGON2_MEMORY", "32768")
        .env("WAIAAS_KEYSTORE_ARGON2_TIME", "1")
        .env("WAIAAS_KEYSTORE_ARGON2_PARALLELISM", "1")
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null());
    c
}

/// Runs a command to completion with a timeout.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn waiaas");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("command timed out; stdout: {} stderr: {}", text(&out.stdout), text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `waiaas init --non-interactive` with the test password.
pub(crate) fn init_dir(dir: &Path) -> Output {
    let mut c = cli(dir);
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["init", "--non-interactive"]);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "init failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// Copies a data directory's files, but not its lock, PID file or logs.
fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".lock") || name.ends_with(".pid") || name.ends_with(".log") {
            continue;
        }
        let target = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            std::fs::set_permissions(&target, e.metadata().unwrap().permissions()).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Appends lines to `[section]` of config.toml (creating the section at the end).
pub(crate) fn config_append(dir: &Path, section: &str, lines: &str) {
    let path = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&format!("\n[{section}]\n{lines}\n"));
    // A section may appear only once: merge into the existing header when present.
    let header = format!("\n[{section}]\n");
    if let Some(first) = text.find(&header) {
        let last = text.rfind(&header).unwrap();
        if first != last {
            let tail = text[last + header.len()..].to_string();
            text.truncate(last);
            text.insert_str(first + header.len(), &tail);
        }
    }
    std::fs::write(&path, text).unwrap();
}

/// How to start a test daemon.
#[derive(Clone, Default)]
pub(crate) struct Opts {
    /// Extra `KEY=VALUE` environment.
    pub env: Vec<(String, String)>,
    /// Extra `start` arguments.
    pub args: Vec<String>,
    /// `start --dev` on a directory initialised with the dev password.
    pub dev: bool,
    /// Lines per section written into config.toml before start.
    pub config: Vec<(&'static str, String)>,
    /// Master password for `start` (default [`PASSWORD`]).
    pub password: Option<String>,
    /// A fixed port (a restart that must keep its address); default: a free one.
    pub port: Option<u16>,
    /// Run on a fresh PostgreSQL database of the test cluster (13-postgres-ha.md) instead of
    /// redb: migrated, seeded by `init`, and led by this daemon before `start` returns.
    pub postgres: bool,
    /// With `postgres`: the admin URL of the cluster to make the database on (default: the
    /// suite's, `WAIAAS_TEST_PG_URL`).
    pub pg_cluster: Option<String>,
    /// Keep the AutoStop rules `init` seeds enabled. Off by default: tests that are not about
    /// AutoStop send more than 50 transactions an hour, fail on purpose or move more than the
    /// default daily maximum, and must not be suspended for it.
    pub autostop: bool,
}

/// A running daemon; killed (SIGKILL) when dropped unless already stopped.
pub(crate) struct TestDaemon {
    /// The PostgreSQL database, when the daemon runs on one (dropped after the daemon).
    pub pg: Option<pg::FreshDb>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    pub dev: bool,
}

fn pump(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl TestDaemon {
    /// Initialises a fresh data directory and starts a daemon in it.
    pub(crate) async fn start(opts: Opts) -> TestDaemon {
        if opts.postgres {
            return TestDaemon::start_on_postgres(opts).await;
        }
        let dir = tempfile::tempdir().unwrap();
        if opts.dev {
            let mut c = cli(dir.path());
            c.args(["init", "--non-interactive", "--master-password", "waiaas-dev"]);
            assert!(run(c, Duration::from_secs(30)).status.success());
        } else {
            init_dir(dir.path());
        }
        for (section, lines) in &opts.config {
            config_append(dir.path(), section, lines);
        }
        TestDaemon::start_in(dir, opts).await
    }

    /// [`start`](Self::start) on a fresh database of the test cluster: the configuration names
    /// it before `init`, which then seeds it (after `db migrate`) instead of creating a redb
    /// file; returns once this daemon leads.
    async fn start_on_postgres(opts: Opts) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let db = match &opts.pg_cluster {
            Some(admin) => pg::FreshDb::on(admin),
            None => pg::FreshDb::new(),
        };
        std::fs::create_dir_all(dir.path()).unwrap();
        config_append(dir.path(), "database", &format!("backend = \"postgres\"\nurl = \"{}\"", db.url));
        for (section, lines) in &opts.config {
            config_append(dir.path(), section, lines);
        }
        let mut c = cli(dir.path());
        c.args(["db", "migrate"]);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "db migrate: {}{}", text(&out.stdout), text(&out.stderr));
        let pw = if opts.dev { "waiaas-dev" } else { PASSWORD };
        let mut c = cli(dir.path());
        c.args(["init", "--non-interactive", "--json", "--master-password", pw]);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "init on postgres: {}{}", text(&out.stdout), text(&out.stderr));
        let (autostop, password) = (opts.autostop, opts.password.clone());
        let mut d = TestDaemon::start_in(dir, opts).await;
        d.pg = Some(db);
        let deadline = Instant::now() + Duration::from_secs(15);
        while d.get("/ready").await.status() != 200 {
            assert!(Instant::now() < deadline, "the daemon never led: {:?}", d.stdout.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !autostop {
            d.set_default_autostop(false, password.as_deref()).await;
        }
        d
    }

    /// A second replica on this daemon's PostgreSQL database: a copy of its data directory
    /// (configuration and `keystore/`, so it can sign for the agents created so far — key files
    /// are not in the database yet), started with `opts`. Its replica id differs, since it is
    /// derived from the directory. The configuration is the copied one (`opts.config` is not
    /// applied); `opts` gives the environment and arguments. Returns once it answers, normally
    /// as a standby.
    pub(crate) async fn second_replica(&self, opts: Opts) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(self.dir.path(), dir.path());
        TestDaemon::start_in(dir, Opts { postgres: true, ..opts }).await
    }

    /// Starts a daemon in an existing data directory (retrying on a port race).
    pub(crate) async fn start_in(dir: tempfile::TempDir, opts: Opts) -> TestDaemon {
        let mut dir = Some(dir);
        for attempt in 0..3 {
            let port = opts.port.unwrap_or_else(free_port);
            match TestDaemon::try_start(dir.take().unwrap(), port, &opts).await {
                Ok(d) => return d,
                Err((d, err)) if err.contains("already in use") && attempt < 2 => dir = Some(d),
                Err((_, err)) => panic!("daemon did not start: {err}"),
            }
        }
        unreachable!()
    }

    async fn try_start(
        dir: tempfile::TempDir,
        port: u16,
        opts: &Opts,
    ) -> Result<TestDaemon, (tempfile::TempDir, String)> {
        let mut c = cli(dir.path());
        c.arg("start").arg("--port").arg(port.to_string());
        if opts.dev {
            c.arg("--dev");
        } else {
            c.env("WAIAAS_MASTER_PASSWORD", opts.password.as_deref().unwrap_or(PASSWORD));
        }
        c.args(&opts.args);
        for (k, v) in &opts.env {
            c.env(k, v);
        }
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if stdout.lock().unwrap().iter().any(|l| l.contains(" ready on ")) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                let err = format!("exited {status}: {:?} {:?}", stdout.lock().unwrap(), stderr.lock().unwrap());
                return Err((dir, err));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err((dir, format!("no ready line: {:?} {:?}", stdout.lock().unwrap(), stderr.lock().unwrap())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let d = TestDaemon { pg: None, dir, port, child: Some(child), stdout, stderr, http, dev: opts.dev };
        if !opts.autostop && !opts.postgres {
            d.set_default_autostop(false, opts.password.as_deref()).await;
        }
        Ok(d)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A CLI command for this daemon. CLI commands find the daemon through the configured port
    /// (01-daemon.md §4.1), so the port is passed the way an operator would: the environment.
    pub(crate) fn cli(&self) -> Command {
        let mut c = cli(self.path());
        c.env("WAIAAS_DAEMON_PORT", self.port.to_string());
        c
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn password(&self) -> &'static str {
        if self.dev { "waiaas-dev" } else { PASSWORD }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// GET with the master password.
    pub(crate) async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).header("X-Master-Password", self.password()).send().await.unwrap()
    }

    /// POST JSON with the master password.
    pub(crate) async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).header("X-Master-Password", self.password()).json(&body).send().await.unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        signal(child.id(), "TERM");
        wait_timeout(&mut child, Duration::from_secs(40)).expect("daemon did not exit after SIGTERM")
    }

    /// Waits for the process to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let r = wait_timeout(&mut child, timeout);
        if r.is_none() {
            self.child = Some(child);
        }
        r
    }

    /// Kills the daemon with SIGKILL (crash simulation).
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Opens the database after the daemon stopped.
    pub(crate) fn store(&self) -> waiaas_storage::Store {
        waiaas_storage::Store::open(&self.path().join("data/waiaas.redb"), 8 << 20).unwrap().0
    }

    /// Stops the daemon and asserts the audit log holds `event`.
    pub(crate) fn store_when_stopped_has(mut self, event: &str) {
        self.terminate();
        assert!(!self.store().audit_by_event(event).unwrap().is_empty(), "no {event} audit row");
    }

    /// Any request; returns the status and the JSON body (`Null` when empty).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method.parse().unwrap(), self.url(path));
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A request with the master password.
    pub(crate) async fn master(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, &[("X-Master-Password", self.password().to_string())], body).await
    }

    /// A request with `Authorization: Bearer <token>`.
    pub(crate) async fn bearer(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, &[("Authorization", format!("Bearer {token}"))], body).await
    }

    /// `POST /v1/agents`, asserting 201.
    pub(crate) async fn create_agent(&self, body: Value) -> Value {
        let (status, v) = self.master("POST", "/v1/agents", Some(body)).await;
        assert_eq!(status, 201, "create agent: {v}");
        v
    }

    /// `POST /v1/owner/policies`, asserting 201.
    pub(crate) async fn policy(&self, body: Value) -> Value {
        let (status, v) = self.master("POST", "/v1/owner/policies", Some(body)).await;
        assert_eq!(status, 201, "create policy: {v}");
        v
    }

    /// Enables or disables every global AutoStop rule (a restricted daemon refuses the route
    /// and is left as it is).
    pub(crate) async fn set_default_autostop(&self, enabled: bool, password: Option<&str>) {
        let pw = password.unwrap_or(self.password()).to_string();
        let headers = [("X-Master-Password", pw)];
        let (status, v) = self.call("GET", "/v1/admin/auto-stop/rules", &headers, None).await;
        if status == 503 {
            return;
        }
        assert_eq!(status, 200, "{v}");
        for r in v["rules"].as_array().unwrap().iter().filter(|r| r["agentId"].is_null() && r["enabled"] != enabled) {
            let path = format!("/v1/admin/auto-stop/rules/{}", r["id"].as_str().unwrap());
            let (status, v) = self.call("PUT", &path, &headers, Some(serde_json::json!({"enabled": enabled}))).await;
            assert_eq!(status, 200, "{v}");
        }
    }

    /// Raises the global HOURLY_RATE AutoStop rule (default 50 per agent per hour, 08 §6) to
    /// `max`, for tests that send more than that from one agent and are not about AutoStop.
    pub(crate) async fn allow_hourly(&self, max: u64) {
        let (_, v) = self.master("GET", "/v1/admin/auto-stop/rules", None).await;
        let rule = v["rules"].as_array().unwrap().iter().find(|r| r["type"] == "HOURLY_RATE" && r["agentId"].is_null());
        let id = rule.expect("the default HOURLY_RATE rule")["id"].as_str().unwrap().to_string();
        let body = serde_json::json!({"config": {"maxTxPerHour": max}});
        let (status, v) = self.master("PUT", &format!("/v1/admin/auto-stop/rules/{id}"), Some(body)).await;
        assert_eq!(status, 200, "{v}");
    }

    /// A WEBHOOK channel to a fresh [`sink::Sink`]: with `sink::notifications_on()` in the
    /// config, notifications are then available and NOTIFY-tier sends (every token transfer
    /// without a USD price) are allowed.
    pub(crate) async fn sink_channel(&self) -> sink::Sink {
        let s = sink::Sink::start().await;
        let (st, v) = self
            .master(
                "POST",
                "/v1/owner/notification-channels",
                Some(serde_json::json!({"type": "WEBHOOK", "name": "sink", "config": {"url": s.url, "secret": "sink-secret-0123456789"}})),
            )
            .await;
        assert_eq!(st, 201, "sink channel: {v}");
        s
    }

    /// Agent policies for tests about the pipeline rather than the policies: every amount
    /// INSTANT, and the given tokens, contracts and spenders allowed at INSTANT. (The default
    /// policies stay as they are; these agent policies override them for this agent only.)
    pub(crate) async fn permit(&self, agent: &str, tokens: &[&str], contracts: &[&str], spenders: &[&str]) {
        let big = "1000000000000000000000000000000";
        self.policy(serde_json::json!({"agentId": agent, "type": "SPENDING_LIMIT", "priority": 10,
            "rules": {"instant_max": big, "notify_max": big, "delay_max": big}}))
            .await;
        if !tokens.is_empty() {
            let list: Vec<Value> = tokens.iter().map(|t| serde_json::json!({"mint": t})).collect();
            self.policy(serde_json::json!({"agentId": agent, "type": "ALLOWED_TOKENS", "rules": {"tokens": list}}))
                .await;
        }
        if !contracts.is_empty() {
            let list: Vec<Value> = contracts.iter().map(|c| serde_json::json!({"address": c})).collect();
            self.policy(serde_json::json!({"agentId": agent, "type": "CONTRACT_WHITELIST",
                "rules": {"contracts": list, "contract_call_default_tier": "INSTANT"}}))
                .await;
        }
        if !spenders.is_empty() {
            let list: Vec<Value> = spenders.iter().map(|c| serde_json::json!({"address": c})).collect();
            self.policy(
                serde_json::json!({"agentId": agent, "type": "APPROVED_SPENDERS", "rules": {"spenders": list}}),
            )
            .await;
            self.policy(serde_json::json!({"agentId": agent, "type": "APPROVE_TIER_OVERRIDE",
                "rules": {"default_tier": "INSTANT"}}))
                .await;
        }
    }

    /// `POST /v1/sessions {agentId, ...extra}`, asserting 201.
    pub(crate) async fn create_session(&self, agent_id: &str, extra: Value) -> Value {
        let mut body = extra;
        body["agentId"] = Value::String(agent_id.to_string());
        let (status, v) = self.master("POST", "/v1/sessions", Some(body)).await;
        assert_eq!(status, 201, "create session: {v}");
        v
    }

    /// Moves the dev-mode clock forward.
    pub(crate) async fn advance(&self, secs: u64) {
        let (status, v) =
            self.master("POST", "/v1/admin/dev/clock", Some(serde_json::json!({"advanceSeconds": secs}))).await;
        assert_eq!(status, 200, "advance clock: {v}");
    }

    /// Audit rows of one event type, oldest first.
    pub(crate) async fn audit(&self, event: &str) -> Vec<Value> {
        let (status, v) =
            self.master("GET", &format!("/v1/admin/audit-log?eventType={event}&limit=100&order=asc"), None).await;
        assert_eq!(status, 200, "{v}");
        v["entries"].as_array().unwrap().clone()
    }

    /// Every audit row of `event` (every row when empty), oldest first, page by page.
    pub(crate) async fn audit_all(&self, event: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<u64> = None;
        loop {
            let mut path = String::from("/v1/admin/audit-log?limit=100&order=asc");
            if !event.is_empty() {
                path.push_str(&format!("&eventType={event}"));
            }
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, v) = self.master("GET", &path, None).await;
            assert_eq!(status, 200, "{v}");
            out.extend(v["entries"].as_array().unwrap().iter().cloned());
            match v["nextCursor"].as_u64() {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    pub(crate) fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw HTTP/1.1 exchange, for requests a normal client will not send (no Host header, a
/// forged Host, keep-alive control).
pub(crate) struct RawConn {
    pub stream: TcpStream,
}

impl RawConn {
    pub(crate) fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        RawConn { stream }
    }

    pub(crate) fn send(&mut self, raw: &str) {
        self.stream.write_all(raw.as_bytes()).unwrap();
    }

    /// Reads one response (headers + Content-Length body).
    pub(crate) fn read_response(&mut self) -> RawResponse {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = self.stream.read(&mut byte).unwrap();
            assert!(n > 0, "connection closed before a response: {:?}", text(&buf));
            buf.push(byte[0]);
        }
        let head = text(&buf);
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let len: usize =
            headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).unwrap();
        RawResponse { status, headers, body: serde_json::from_slice(&body).unwrap_or(Value::Null) }
    }
}

pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Path of a tool installed by `scripts/install-test-infra.sh`: the environment variable, else
/// the default cache location. A missing tool fails the test with instructions, never skips it.
pub(crate) fn tool(var: &str, default_rel: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let cache = std::env::var("WAIAAS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/waiaas"));
    let p = cache.join(default_rel);
    assert!(p.exists(), "{var} not set and {} missing: run scripts/install-test-infra.sh", p.display());
    p
}
