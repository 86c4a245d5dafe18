//! Data directory, init, config loading, start/stop/status and shutdown (ACC-001 … ACC-031,
//! ACC-248).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Opts, PASSWORD, RawConn, TestDaemon, cli, init_dir, run, text};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn start_cmd(dir: &Path, port: u16) -> std::process::Command {
    let mut c = cli(dir);
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["start", "--port", &port.to_string()]);
    c
}

// ---------------------------------------------------------------- init

// ACC-001.
#[test]
fn init_creates_the_layout_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    let out = init_dir(&root);
    assert!(text(&out.stdout).contains("WAIaaS initialized successfully!"));
    for d in ["", "data", "keystore", "logs", "backups"] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    for f in ["config.toml", "data/waiaas.redb", "keystore/master.json"] {
        assert_eq!(mode(&root.join(f)), 0o600, "{f}");
    }
    let master: Value = serde_json::from_slice(&std::fs::read(root.join("keystore/master.json")).unwrap()).unwrap();
    assert_eq!(master["kdf"]["algorithm"], "argon2id");
    assert_eq!(master["kdf"]["memoryCost"], 32768, "[keystore] values (here from the environment) are used");
}

// ACC-002, ACC-003.
#[test]
fn init_refuses_short_passwords_and_reinitialisation() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", "elevenchars").args(["init", "--non-interactive"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Master password too short (minimum 12 characters, got 11)."),
        "{}",
        text(&out.stderr)
    );

    init_dir(dir.path());
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["init", "--non-interactive"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Already initialized at"));

    let mut c = cli(dir.path());
    c.args(["init", "--non-interactive"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "no password source");
}

// ACC-004, ACC-005.
#[test]
fn init_json_is_idempotent_and_completes_missing_steps() {
    let dir = tempfile::tempdir().unwrap();
    let json_init = |pw: Option<&str>| {
        let mut c = cli(dir.path());
        if let Some(pw) = pw {
            c.env("WAIAAS_MASTER_PASSWORD", pw);
        }
        c.args(["init", "--non-interactive", "--json"]);
        let out = run(c, Duration::from_secs(20));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = json_init(Some(PASSWORD));
    assert_eq!(first["alreadyInitialized"], false);
    assert_eq!(
        first["steps"],
        json!({"directory": "created", "config": "created", "database": "created", "keystore": "created"})
    );
    // Fully initialised: no password needed.
    let again = json_init(None);
    assert_eq!(again["success"], true);
    assert_eq!(again["alreadyInitialized"], true);
    assert_eq!(
        again["steps"],
        json!({"directory": "exists", "config": "exists", "database": "exists", "keystore": "exists"})
    );
    // Only master.json missing: that step is created, the others exist.
    std::fs::remove_file(dir.path().join("keystore/master.json")).unwrap();
    let partial = json_init(Some(PASSWORD));
    assert_eq!(partial["alreadyInitialized"], false);
    assert_eq!(
        partial["steps"],
        json!({"directory": "exists", "config": "exists", "database": "exists", "keystore": "created"})
    );
}

// ACC-006, ACC-007.
#[test]
fn init_force_reinitialises_with_new_secrets() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let secret = |d: &Path| {
        let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
        cfg.lines().find(|l| l.starts_with("jwt_secret")).unwrap().to_string()
    };
    let salt = |d: &Path| {
        serde_json::from_slice::<Value>(&std::fs::read(d.join("keystore/master.json")).unwrap()).unwrap()["kdf"]["salt"]
            .clone()
    };
    let (s1, salt1) = (secret(dir.path()), salt(dir.path()));
    std::fs::write(dir.path().join("marker"), b"x").unwrap();
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["init", "--non-interactive", "--force"]);
    assert!(run(c, Duration::from_secs(20)).status.success());
    assert_ne!(secret(dir.path()), s1);
    assert_ne!(salt(dir.path()), salt1);
    assert!(!dir.path().join("marker").exists(), "the directory was wiped");
}

// ACC-008.
#[test]
fn init_seeds_secret_kill_switch_policies_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let cfg = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    let line = cfg.lines().find(|l| l.starts_with("jwt_secret = ")).unwrap();
    let secret = line.trim_start_matches("jwt_secret = ").trim_matches('"');
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let table: toml::Table = toml::from_str(&cfg).unwrap();
    assert!(table.values().all(|s| s.as_table().unwrap().values().all(|v| !v.is_table())), "no nested tables");

    let (store, _) = waiaas_storage::Store::open(&dir.path().join("data/waiaas.redb"), 8 << 20).unwrap();
    assert_eq!(store.jwt_secrets().unwrap().unwrap().current, secret);
    assert_eq!(store.kill_switch_status().unwrap(), waiaas_storage::KillSwitchStatus::Normal);
    let policies = store.list_policies().unwrap();
    assert_eq!(policies.len(), 2);
    assert!(
        policies.iter().all(|p| p.agent_id.is_none() && p.policy_type == waiaas_storage::PolicyType::SpendingLimit)
    );
    let chains: Vec<_> = policies.iter().map(|p| p.chain.unwrap()).collect();
    assert!(chains.contains(&waiaas_storage::Chain::Solana) && chains.contains(&waiaas_storage::Chain::Ethereum));
    let rules = store.list_auto_stop_rules().unwrap();
    assert_eq!(rules.len(), 3);
    assert!(
        rules
            .iter()
            .all(|r| r.enabled && r.agent_id.is_none() && r.action == waiaas_storage::AutoStopAction::SuspendAgent)
    );
}

// ---------------------------------------------------------------- config errors at start

/// Runs `start` expecting it to fail before binding. No port is passed: a flag would override
/// the file values under test.
fn start_fails(dir: &Path, extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut c = cli(dir);
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).arg("start");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    run(c, Duration::from_secs(30))
}

// ACC-009, ACC-010, ACC-013, ACC-014.
#[test]
fn config_errors_stop_the_start_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let cfg = dir.path().join("config.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    // (text inserted right after an existing section header, or appended at the end; expected)
    let cases: &[(Option<&str>, &str, &str)] = &[
        (None, "[rpc.solana]\nurl = \"http://x\"\n", "Nested section detected: [rpc.solana]"),
        (
            None,
            "[foo]\nx = 1\n",
            "daemon, keystore, database, rpc, notifications, security, walletconnect, ledger, oracle",
        ),
        (Some("[security]\n"), "foo = 1\n", "[security].foo is not a known key"),
        (Some("[daemon]\n"), "port = 80\n", "CONFIG_LOAD_ERROR"),
        (None, "[daemon\nport = ", "is not valid TOML"),
        (Some("[daemon]\n"), "port = \"x\"\n", "[daemon].port must be an integer"),
    ];
    for (after, append, expect) in cases {
        // Rewrite the file so the broken part is the only change.
        let text_cfg = match after {
            Some(header) => original.replace(header, &format!("{header}{append}")),
            None => format!("{original}\n{append}"),
        };
        std::fs::write(&cfg, text_cfg).unwrap();
        let out = start_fails(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{append}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expect), "{append}: {}", text(&out.stderr));
    }
    std::fs::write(&cfg, &original).unwrap();
    let out = start_fails(dir.path(), &[("WAIAAS_SECURITY_FOO", "1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("WAIAAS_SECURITY_FOO"));
    let out = start_fails(dir.path(), &[("WAIAAS_DAEMON_SHUTDOWN_TIMEOUT", "soon")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("WAIAAS_DAEMON_SHUTDOWN_TIMEOUT"));
}

// ACC-300 (the configuration half; `ha::two_replicas_…` checks running replicas): neither or
// both of url / url_file, a non-loopback host without sslmode=require, and WAIAAS_DATABASE_URL
// each stop the start with exit 1 naming the key and its source; a url_file naming a real empty
// database gets to the schema check (exit 3); the URL's password appears nowhere.
#[test]
fn postgres_settings_are_checked_and_the_url_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let cfg = dir.path().join("config.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let url_file = dir.path().join("pg-url");
    std::fs::write(&url_file, "postgres://waiaas:s3cret-in-file@127.0.0.1:5432/waiaas\n").unwrap();
    std::fs::set_permissions(&url_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let with = |keys: &str| original.replace("[database]\n", &format!("[database]\nbackend = \"postgres\"\n{keys}"));
    // (config.toml, extra environment, what the output must say)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (with(""), vec![], vec!["CONFIG_LOAD_ERROR", "[database].url is required"]),
        (
            with("url = \"postgres://u:s3cret@127.0.0.1/db\"\nurl_file = \"pg-url\"\n"),
            vec![],
            vec!["[database].url and url_file are both set"],
        ),
        (
            with("url = \"postgres://u:s3cret@db.example.com/db\"\n"),
            vec![],
            vec!["[database].url points at db.example.com", "sslmode=require", "config.toml"],
        ),
        (
            with(""),
            vec![("WAIAAS_DATABASE_URL", "postgres://u:s3cret@10.0.0.5:6432/db?sslmode=prefer")],
            vec!["[database].url points at 10.0.0.5", "WAIAAS_DATABASE_URL"],
        ),
        (with("url = \"postgres://u:s3cret@127.0.0.1/db\"\npool_size = 1\n"), vec![], vec!["[database].pool_size"]),
        (
            with("url = \"postgres://u:s3cret@127.0.0.1/db\"\nreplica_id = \"a b\"\n"),
            vec![],
            vec!["[database].replica_id"],
        ),
    ];
    for (text_cfg, env, expect) in cases {
        std::fs::write(&cfg, &text_cfg).unwrap();
        let out = start_fails(dir.path(), &env);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{expect:?}: {all}");
        for e in &expect {
            assert!(all.contains(e), "{e:?} missing from: {all}");
        }
        assert!(!all.contains("s3cret"), "the URL's password was shown: {all}");
    }
    // url_file names a real, empty database: the start gets as far as the schema check (exit 3)
    // and shows the URL only redacted.
    let db = crate::support::pg::FreshDb::new();
    std::fs::write(&url_file, format!("{}\n", db.url_with_password("s3cret-in-file"))).unwrap();
    std::fs::write(&cfg, with("url_file = \"pg-url\"\n")).unwrap();
    let out = start_fails(dir.path(), &[]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("Database: postgres postgres://postgres:***@127.0.0.1:"), "{all}");
    assert!(all.contains("Run 'waiaas db migrate'") && !all.contains("s3cret"), "{all}");
    // Without `backend` nothing else is read: the same URL keys are ignored under redb.
    std::fs::write(&cfg, original.replace("[database]\n", "[database]\nurl = \"postgres://u:s3cret@10.0.0.5/db\"\n"))
        .unwrap();
    let out = cli(dir.path()).arg("status").output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("CONFIG_LOAD_ERROR") && !all.contains("s3cret"), "{all}");
    assert!(all.contains("not running") || all.contains("stopped"), "status read the configuration: {all}");
}

daemon_test!(
    environment_overrides_apply_and_client_variables_are_ignored,
    Opts {
        env: vec![
            ("WAIAAS_SECURITY_RATE_LIMIT_SESSION_RPM".into(), "20".into()),
            ("WAIAAS_SESSION_TOKEN".into(), "wai_sess_not.config.value".into()),
            ("WAIAAS_SECURITY_JWT_SECRET".into(), "1".repeat(64)),
        ],
        ..Opts::default()
    },
    |d| {
        let r = d.admin_get("/v1/admin/status").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "20", "the session limit came from the environment");
    }
);

// ACC-011, ACC-012.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_flag_beats_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    support::config_append(dir.path(), "daemon", &format!("port = {}", support::free_port()));
    let env_port = support::free_port();
    let d = TestDaemon::start_in(
        dir,
        Opts { env: vec![("WAIAAS_DAEMON_PORT".into(), env_port.to_string())], ..Opts::default() },
    )
    .await;
    // start_in passes --port: the daemon listens there, not on the env or file port.
    assert!(d.stdout_text().contains(&format!("ready on 127.0.0.1:{} (PID:", d.port)));
    assert!(std::net::TcpStream::connect(("127.0.0.1", env_port)).is_err());

    // Without the flag, the environment beats the file.
    let dir2 = tempfile::tempdir().unwrap();
    init_dir(dir2.path());
    support::config_append(dir2.path(), "daemon", "port = 3999");
    let port = support::free_port();
    let mut c = cli(dir2.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).env("WAIAAS_DAEMON_PORT", port.to_string()).arg("start");
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.contains("ready on") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
    }
    assert!(line.contains(&format!("ready on 127.0.0.1:{port} ")), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------- start

// ACC-015.
#[test]
fn start_without_a_data_directory_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = start_fails(&dir.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("Run 'waiaas init' first"));
}

// ACC-016.
#[test]
fn start_with_a_wrong_password_exits_4_and_never_listens() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let port = support::free_port();
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", "wrong password, long enough").args(["start", "--port", &port.to_string()]);
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Probe the port while it runs: it must never accept.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port opened");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Invalid master password. KeyStore unlock failed."));
}

// ACC-017.
daemon_test!(a_second_start_is_refused_with_exit_2, |d| {
    let out = run(start_cmd(d.path(), support::free_port()), Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("already running (PID: {})", d.pid())), "{}", text(&out.stderr));
});

// ACC-019, ACC-020.
daemon_test!(pid_file_lock_and_ready_line, |d| {
    let pid = d.pid();
    assert_eq!(std::fs::read_to_string(d.path().join("daemon.pid")).unwrap(), pid.to_string(), "no newline");
    assert_eq!(std::fs::read_to_string(d.path().join("daemon.lock")).unwrap().trim(), pid.to_string());
    // The lock is held: a non-blocking flock from here fails.
    let f = std::fs::File::open(d.path().join("daemon.lock")).unwrap();
    assert!(rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err());
    let re = regex_lite(r"WAIaaS daemon v.* ready on 127\.0\.0\.1:\d+ \(PID: \d+\)");
    assert!(d.stdout_text().lines().any(re), "{}", d.stdout_text());
    // ACC-075 (the process half): core dumps are off, so key material never reaches a core file.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "soft RLIMIT_CORE: {core}");
    let schema = format!("Database ready (schema v{}", waiaas_storage::SCHEMA_VERSION);
    for expected in [
        "Validating environment... OK",
        schema.as_str(),
        "KeyStore unlocked",
        "HTTP server listening on",
        "Background workers started",
    ] {
        assert!(d.stdout_text().contains(expected), "{expected}");
    }
});

/// A tiny matcher for the ready-line pattern (avoids a regex dependency).
fn regex_lite(_: &str) -> impl Fn(&str) -> bool {
    |l: &str| {
        let Some(rest) = l.strip_prefix("WAIaaS daemon v") else { return false };
        let Some((_, after)) = rest.split_once(" ready on 127.0.0.1:") else { return false };
        let (port, pid_part) = after.split_once(' ').unwrap_or(("", ""));
        port.chars().all(|c| c.is_ascii_digit())
            && pid_part.starts_with("(PID: ")
            && pid_part.trim_start_matches("(PID: ").trim_end_matches(')').chars().all(|c| c.is_ascii_digit())
    }
}

// ACC-018.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_works_and_cleans_the_stale_pid_file() {
    let mut d = TestDaemon::start(Opts::default()).await;
    d.kill9();
    assert!(d.path().join("daemon.pid").exists(), "a crash leaves the PID file");
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = TestDaemon::start_in(dir, Opts::default()).await;
    assert!(d2.stderr_text().contains("removed stale PID file"), "{}", d2.stderr_text());
    assert_eq!(d2.get("/health").await.status(), 200);
}

// ACC-021.
#[test]
fn background_start_serves_and_needs_a_non_interactive_password() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let port = support::free_port();
    let mut c = cli(dir.path());
    c.args(["start", "--daemon", "--port", &port.to_string()]);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Cannot use interactive password in daemon mode."));

    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["start", "--daemon", "--port", &port.to_string()]);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("started in background (PID: "), "{stdout}");
    let pid: u32 = stdout.split("(PID: ").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
    let health = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/health"));
    assert_eq!(health["status"], "healthy");
    let mut c = cli(dir.path());
    c.arg("stop");
    let out = run(c, Duration::from_secs(40));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("WAIaaS daemon (PID: {pid}) stopped gracefully")));
}

mod reqwest {
    /// A synchronous GET for non-async tests.
    pub(crate) fn blocking_get(url: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}

// ACC-022.
daemon_test!(dev_mode_marks_responses_and_audit_rows, Opts { dev: true, ..Opts::default() }, |d| {
    let r = d.get("/health").await;
    assert_eq!(r.headers()["x-waiaas-dev-mode"], "true");
    let r = d.get("/nope").await;
    assert_eq!(r.headers()["x-waiaas-dev-mode"], "true", "errors too");
    assert!(d.stdout_text().contains("[DEV MODE]"));
    assert!(d.stderr_text().contains("WARNING: DEV MODE - NOT FOR PRODUCTION"));
    let entries: Value = d.admin_get("/v1/admin/audit-log?limit=5").await.json().await.unwrap();
    let first = &entries["entries"][0];
    assert_eq!(first["details"]["dev_mode"], true, "{first}");
});

#[test]
fn dev_mode_refuses_a_directory_with_another_password() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let mut c = cli(dir.path());
    c.args(["start", "--dev", "--port", &support::free_port().to_string()]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
}

// ACC-248 (the dev-mode half; its DELAY clause is proved with the DELAY tier).
daemon_test!(the_dev_clock_moves_daemon_time, Opts { dev: true, ..Opts::default() }, |d| {
    let before: Value = d.get("/health").await.json().await.unwrap();
    let r = d.admin_post("/v1/admin/dev/clock", json!({"advanceSeconds": 400})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["offsetSeconds"], 400);
    let after: Value = d.get("/health").await.json().await.unwrap();
    assert!(after["uptime"].as_u64().unwrap() >= before["uptime"].as_u64().unwrap() + 400);
    let nonce: Value = d.get("/v1/nonce").await.json().await.unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(nonce["expiresAt"].as_str().unwrap()).unwrap().timestamp();
    assert!(exp > chrono::Utc::now().timestamp() + 400 + 250, "nonce expiry follows the daemon clock");
    let bad = d.admin_post("/v1/admin/dev/clock", json!({"advanceSeconds": 0})).await;
    assert_eq!(bad.status(), 400);
});

// ACC-248: outside dev mode the route is 404 and absent from /doc.
daemon_test!(the_dev_clock_does_not_exist_outside_dev_mode, |d| {
    let r = d.admin_post("/v1/admin/dev/clock", json!({"advanceSeconds": 400})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "ROUTE_NOT_FOUND");
    let doc: Value = d.get("/doc").await.json().await.unwrap();
    assert!(doc["paths"].get("/v1/admin/dev/clock").is_none());
});

// ---------------------------------------------------------------- shutdown

fn audit_events(d: &TestDaemon) -> Vec<String> {
    d.store().audit_rows(0, 10_000).unwrap().into_iter().map(|r| r.event_type).collect()
}

// ACC-024.
daemon_test!(sigterm_when_idle_exits_promptly_and_cleans_up, |d| {
    let started = Instant::now();
    let status = d.terminate();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!d.path().join("daemon.pid").exists());
    let f = std::fs::File::open(d.path().join("daemon.lock")).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("the lock was released");
    drop(f);
    let events = audit_events(&d);
    assert!(
        events.contains(&"DAEMON_SHUTDOWN_INITIATED".to_string()) && events.contains(&"DAEMON_STOPPED".to_string()),
        "{events:?}"
    );
    assert!(d.store().verify_audit().unwrap().valid);
});

/// Starts a request whose body never completes: it stays in flight and holds the drain open.
fn hang_request(port: u16, password: &str) -> RawConn {
    let mut c = RawConn::connect(port);
    c.send(&format!(
        "POST /v1/admin/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Master-Password: {password}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    ));
    c
}

// ACC-025, ACC-026.
daemon_test!(requests_during_shutdown_get_503_on_open_connections, |d| {
    let port = d.port;
    // An idle keep-alive connection, opened before the shutdown.
    let mut idle = RawConn::connect(port);
    idle.send(&format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"));
    assert_eq!(idle.read_response().status, 200);
    let _hang = hang_request(port, PASSWORD);
    std::thread::sleep(Duration::from_millis(200));
    support::signal(d.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    idle.send(&format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"));
    let r = idle.read_response();
    assert_eq!(r.status, 503);
    assert_eq!(r.body["code"], "SERVICE_SHUTTING_DOWN");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.header("connection"), Some("close"));
    // New connections are no longer accepted.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
});

daemon_test!(
    a_request_outliving_shutdown_timeout_forces_exit_1,
    Opts { config: vec![("daemon", "shutdown_timeout = 5".into())], ..Opts::default() },
    |d| {
        let _hang = hang_request(d.port, PASSWORD);
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        support::signal(d.pid(), "TERM");
        let status = d.wait_exit(Duration::from_secs(15)).expect("forced exit");
        let took = started.elapsed();
        assert_eq!(status.code(), Some(1));
        assert!(took >= Duration::from_millis(4800) && took < Duration::from_secs(7), "took {took:?}");
        let events = audit_events(&d);
        assert!(events.contains(&"DAEMON_FORCED_SHUTDOWN".to_string()), "{events:?}");
        assert!(!events.contains(&"DAEMON_STOPPED".to_string()));
    }
);

// ACC-027.
daemon_test!(two_quick_sigints_make_one_shutdown, |d| {
    let pid = d.pid();
    support::signal(pid, "INT");
    support::signal(pid, "INT");
    let status = d.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0));
    let n = audit_events(&d).iter().filter(|e| *e == "DAEMON_SHUTDOWN_INITIATED").count();
    assert_eq!(n, 1);
});

// ACC-028, ACC-029.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_reports_missing_stale_and_graceful_daemons() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let stop = |args: &[&str]| {
        let mut c = cli(dir.path());
        c.arg("stop").args(args);
        run(c, Duration::from_secs(60))
    };
    let out = stop(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("No running daemon found"));
    std::fs::write(dir.path().join("daemon.pid"), "999999").unwrap();
    let out = stop(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("(stale PID file removed)"));
    assert!(!dir.path().join("daemon.pid").exists());

    let mut d = TestDaemon::start_in(dir, Opts::default()).await;
    let mut c = d.cli();
    c.arg("stop");
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("stopped gracefully"));
    assert!(d.wait_exit(Duration::from_secs(5)).is_some());
}

daemon_test!(
    stop_with_a_short_timeout_kills_a_stuck_daemon_and_exits_5,
    Opts { config: vec![("daemon", "shutdown_timeout = 30".into())], ..Opts::default() },
    |d| {
        let _hang = hang_request(d.port, PASSWORD);
        std::thread::sleep(Duration::from_millis(200));
        let mut c = d.cli();
        c.args(["stop", "--timeout", "1"]);
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(5), "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("Daemon did not stop within 1s, sending SIGKILL"));
        assert!(d.wait_exit(Duration::from_secs(5)).is_some());
    }
);

// ACC-030.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_down_and_up() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let status = |c: std::process::Command| {
        let mut c = c;
        c.args(["status", "--json"]);
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(status(cli(dir.path())), json!({"running": false}));
    let d = TestDaemon::start_in(dir, Opts::default()).await;
    let s = status(d.cli());
    assert_eq!(s["running"], true);
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["status"], "healthy");
    assert!(s["services"].is_object() && s["killSwitch"].is_object());
}

// ACC-031.
daemon_test!(sighup_reloads_the_log_level_and_keeps_the_config_when_invalid, |d| {
    let log = d.path().join("logs/daemon.log");
    let origin_probe = || async {
        d.http.get(d.url("/health")).header("Origin", "http://evil.example").send().await.unwrap();
    };
    origin_probe().await;
    assert!(!std::fs::read_to_string(&log).unwrap().contains("CORS origin refused"), "debug lines are off at info");
    support::config_append(d.path(), "daemon", "log_level = \"debug\"");
    support::signal(d.pid(), "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    origin_probe().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(std::fs::read_to_string(&log).unwrap().contains("CORS origin refused"), "debug level applied");

    let cfg = d.path().join("config.toml");
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    writeln!(f, "\n[bogus]\nx = 1").unwrap();
    support::signal(d.pid(), "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.get("/health").await.status(), 200, "still serving with the old config");
    d.terminate();
    let events = audit_events(&d);
    assert!(
        events.contains(&"CONFIG_RELOADED".to_string()) && events.contains(&"CONFIG_RELOAD_FAILED".to_string()),
        "{events:?}"
    );
});
