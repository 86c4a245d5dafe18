//! PostgreSQL and high availability (13-postgres-ha.md §9): daemons and commands against a real
//! PostgreSQL cluster started by `scripts/test.sh`, one fresh database per test.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::pg::FreshDb;
use crate::support::{PASSWORD, cli, init_dir, run, text};

/// A `waiaas` command on `dir` pointed at `url` through the environment.
fn pg_cli(dir: &Path, url: &str, args: &[&str]) -> std::process::Command {
    let mut c = cli(dir);
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD)
        .env("WAIAAS_DATABASE_BACKEND", "postgres")
        .env("WAIAAS_DATABASE_URL", url)
        .args(args);
    c
}

fn output(dir: &Path, url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = run(pg_cli(dir, url, args), Duration::from_secs(60));
    (out.status.code(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

// ACC-303.
#[test]
fn start_needs_a_migrated_schema_and_concurrent_migrations_apply_each_file_once() {
    let db = FreshDb::new();
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let url = db.url_with_password("s3cret");

    // An empty database: start exits 3 and says what to run.
    let (code, all) = output(dir.path(), &url, &["start"]);
    assert_eq!(code, Some(3), "{all}");
    assert!(all.contains("Run 'waiaas db migrate'"), "{all}");

    // Two concurrent runs both succeed; each file is applied once, by one of them.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            pg_cli(dir.path(), &url, &["db", "migrate", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut applied_by_runs = 0;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        applied_by_runs += v["applied"].as_array().unwrap().len();
        assert_eq!(v["version"], 1, "{v}");
    }
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/storage/migrations/pg")).unwrap().count();
    assert_eq!(applied_by_runs, files, "each embedded file applied by exactly one run");
    assert_eq!(db.sql("SELECT count(*) FROM schema_migrations"), files.to_string());
    let (code, all) = output(dir.path(), &url, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("Schema up to date (v1)"), "{all}");

    // An edited applied file: both migrate and start refuse with exit 1.
    let checksum = db.sql("SELECT checksum FROM schema_migrations WHERE version = 1");
    db.sql("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1");
    for args in [&["db", "migrate"][..], &["start"][..]] {
        let (code, all) = output(dir.path(), &url, args);
        assert_eq!(code, Some(1), "{args:?}: {all}");
        assert!(all.contains("Migration V0001 was modified"), "{args:?}: {all}");
    }

    // An applied contract migration this binary does not know: exit 1 too. An unknown expand
    // migration is what a rolling upgrade leaves behind, and is accepted.
    db.sql(&format!("UPDATE schema_migrations SET checksum = '{checksum}' WHERE version = 1"));
    db.sql("INSERT INTO schema_migrations VALUES (9999, 'contract', 'x', 0)");
    for args in [&["db", "migrate"][..], &["start"][..]] {
        let (code, all) = output(dir.path(), &url, args);
        assert_eq!(code, Some(1), "{args:?}: {all}");
        assert!(all.contains("database created by a newer waiaas"), "{args:?}: {all}");
    }
    db.sql("UPDATE schema_migrations SET kind = 'expand' WHERE version = 9999");
    let (code, all) = output(dir.path(), &url, &["db", "status", "--json"]);
    assert_eq!(code, Some(0), "{all}");
    let v: Value = serde_json::from_str(all.trim()).unwrap();
    assert_eq!(v["migrations"]["error"], Value::Null, "{v}");
    assert_eq!(v["migrations"]["pending"], serde_json::json!([]), "{v}");
    assert_eq!(v["leader"]["epoch"], 0, "{v}");
    assert!(!all.contains("s3cret"), "the password was shown: {all}");
}

/// One replica: its data directory, port and process.
struct Replica {
    dir: tempfile::TempDir,
    id: &'static str,
    port: u16,
    url: String,
    child: Option<std::process::Child>,
}

impl Replica {
    /// `waiaas init` of a new data directory on the shared database.
    fn init(url: &str, id: &'static str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let out = run(pg_cli(dir.path(), url, &["init", "--non-interactive"]), Duration::from_secs(60));
        assert!(out.status.success(), "init {id}: {}{}", text(&out.stdout), text(&out.stderr));
        Replica { dir, id, port: crate::support::free_port(), url: url.to_string(), child: None }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = pg_cli(self.dir.path(), &self.url, args);
        c.env("WAIAAS_DATABASE_REPLICA_ID", self.id)
            .env("WAIAAS_DATABASE_LEADER_CHECK_MS", "100")
            .env("WAIAAS_DAEMON_PORT", self.port.to_string());
        c
    }

    /// Starts the daemon and waits until it answers `/health`.
    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("test.log")).unwrap();
        let child = self.command(&["start"]).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.get("/health").is_none() {
            assert!(std::time::Instant::now() < deadline, "{} did not start: {}", self.id, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("test.log")).unwrap_or_default()
    }

    /// `GET path`: status and JSON body, or `None` when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, Value)> {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        Some((r.status().as_u16(), r.json().unwrap_or(Value::Null)))
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A migrated database, replica `a` leading and replica `b` started as its standby.
fn a_leads_b_waits() -> (FreshDb, Replica, Replica) {
    let db = FreshDb::new();
    let (code, all) = output(tempfile::tempdir().unwrap().path(), &db.url, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{all}");
    let mut a = Replica::init(&db.url, "replica-a");
    let mut b = Replica::init(&db.url, "replica-b");
    a.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ready(&a).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "a never led: {}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    b.start();
    (db, a, b)
}

/// The (status, body) of `/ready`, waiting until some replica answers.
fn ready(r: &Replica) -> (u16, Value) {
    r.get("/ready").unwrap_or_else(|| panic!("{} does not answer: {}", r.id, r.log()))
}

// ACC-300 (running replicas: the URL's password in no log line, status output or error),
// ACC-305.
#[test]
fn two_replicas_on_one_database_have_exactly_one_leader_and_the_standby_refuses_writes() {
    let db = FreshDb::new();
    // Trust authentication ignores the password; it is there to be looked for.
    let url = db.url_with_password("s3cret-pw");
    let (code, all) = output(tempfile::tempdir().unwrap().path(), &url, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{all}");
    let mut a = Replica::init(&url, "replica-a");
    let mut b = Replica::init(&url, "replica-b");
    a.start();
    b.start();
    // Election is quick (100 ms polls); give it a bounded moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (ra, rb) = loop {
        let (ra, rb) = (ready(&a), ready(&b));
        if ra.0 == 200 || rb.0 == 200 || std::time::Instant::now() > deadline {
            break (ra, rb);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!([ra.0, rb.0].iter().filter(|s| **s == 200).count(), 1, "{ra:?} {rb:?}");
    let (leader, standby) = if ra.0 == 200 { (&a, &b) } else { (&b, &a) };
    let (_, sb) = ready(standby);
    assert_eq!(sb["reasons"], serde_json::json!(["standby"]), "{sb}");
    assert_eq!(sb["role"], "standby");

    // SIWE nonces live in the shared database, whatever `[security].nonce_storage` says: the
    // one the leader issues is a row every replica reads.
    let (status, issued) = leader.get("/v1/nonce").unwrap();
    assert_eq!(status, 200, "{issued}");
    let nonce = issued["nonce"].as_str().unwrap();
    assert_eq!(db.sql(&format!("SELECT count(*) FROM nonces WHERE nonce = '{nonce}'")), "1");

    // The standby refuses a send before authentication and writes nothing.
    let audit_before = db.sql("SELECT count(*) FROM audit_log");
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/transactions/send", standby.port))
        .header("Authorization", "Bearer wai_sess_x")
        .json(
            &serde_json::json!({"type": "TRANSFER", "to": "0x0000000000000000000000000000000000000001", "amount": "1"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().unwrap();
    assert_eq!((body["code"].as_str(), body["retryable"].as_bool()), (Some("NOT_LEADER"), Some(true)), "{body}");
    assert_eq!(body["details"]["leaderReplicaId"], leader.id, "{body}");
    assert_eq!(db.sql("SELECT count(*) FROM transactions"), "0");
    assert_eq!(db.sql("SELECT count(*) FROM audit_log"), audit_before, "the standby wrote nothing");

    // `waiaas status --json` on both names the same leader and epoch.
    let status = |r: &Replica| -> Value {
        let out = run(r.command(&["status", "--json"]), Duration::from_secs(30));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stdout)))
    };
    let (sa, sb) = (status(&a), status(&b));
    let out = run(a.command(&["status"]), Duration::from_secs(30));
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(shown.contains("Database:    postgres postgres://postgres:***@127.0.0.1:"), "{shown}");
    assert!(shown.contains("Role:        "), "{shown}");
    assert_eq!(sa["ha"]["leaderReplicaId"], leader.id, "{sa}");
    assert_eq!(sa["ha"]["leaderReplicaId"], sb["ha"]["leaderReplicaId"]);
    assert_eq!(sa["ha"]["epoch"], sb["ha"]["epoch"]);
    assert_eq!(sa["ha"]["epoch"], 1);

    // A third process with a live replica id exits 2 and says why.
    let third = Replica::init(&db.url, "replica-a");
    let out = run(third.command(&["start"]), Duration::from_secs(60));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("Replica id 'replica-a' is already running; set [database].replica_id"), "{all}");
    for text in [all, shown, sa.to_string(), sb.to_string(), a.log(), b.log(), third.log()] {
        assert!(!text.contains("s3cret-pw"), "the URL's password was shown: {text}");
    }
}

// ACC-306.
#[test]
fn after_kill_9_of_the_leader_the_standby_leads_within_five_seconds() {
    let (db, mut a, b) = a_leads_b_waits();
    assert_eq!(ready(&b).0, 503);
    let epoch_before: u64 = db.sql("SELECT epoch FROM leader").parse().unwrap();

    a.kill9();
    let killed = std::time::Instant::now();
    loop {
        if ready(&b).0 == 200 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "no takeover within 5 s: {}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::support::report(&format!(
        "ACC-306 failover after kill -9 of an idle leader: {} ms",
        killed.elapsed().as_millis()
    ));
    let epoch: u64 = db.sql("SELECT epoch FROM leader").parse().unwrap();
    assert_eq!(epoch, epoch_before + 1);
    let row = db.sql(&format!(
        "SELECT record->'details' FROM audit_log WHERE event_type = 'LEADER_ACQUIRED' AND (record->'details'->>'epoch')::bigint = {epoch}"
    ));
    let details: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(
        (details["replicaId"].as_str(), details["previousReplicaId"].as_str()),
        (Some("replica-b"), Some("replica-a"))
    );

    // The killed replica, restarted, stays a standby.
    a.start();
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = ready(&a);
    assert_eq!((code, body["role"].as_str()), (503, Some("standby")), "{body}");
    assert_eq!(ready(&b).0, 200);
}

/// The advisory-lock key of one agent (13-postgres-ha.md §5): class 0x5741_0005, object the
/// XOR of the UUID's four big-endian 32-bit words.
fn agent_lock(id: &str) -> (i32, i32) {
    let u = uuid::Uuid::parse_str(id).unwrap();
    let b = u.as_bytes();
    let fold =
        (0..4).fold(0i32, |acc, w| acc ^ i32::from_be_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]]));
    (0x5741_0005, fold)
}

// ACC-311.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_agent_lock_times_out_that_agent_alone() {
    use crate::support::api::send;
    let anvil = crate::support::nodes::Anvil::start();
    let rpc = anvil.url.clone();
    let d = crate::support::evm::daemon_on(&rpc, &[("database", "lock_timeout_ms = 500".into())], true).await;
    let (held, t_held) = crate::support::evm::funded_agent(&d, &rpc, 10, serde_json::json!({})).await;
    let (_, t_free) = crate::support::evm::funded_agent(&d, &rpc, 10, serde_json::json!({})).await;
    let db = d.pg.as_ref().unwrap();

    // An operator's session holds the first agent's lock.
    let (class, obj) = agent_lock(held["id"].as_str().unwrap());
    let mut psql = std::process::Command::new("psql")
        .args([&db.url, "-X", "-qAt", "-c", &format!("SELECT pg_advisory_lock({class}, {obj}); SELECT pg_sleep(60)")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null()) // its session is terminated below, on purpose
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.sql(&format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = {}::bigint::oid",
        obj as u32
    )) != "1"
    {
        assert!(std::time::Instant::now() < deadline, "psql never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }

    let to = "0x000000000000000000000000000000000000bEEF";
    let started = std::time::Instant::now();
    let (status, body) = send(&d, &t_held, serde_json::json!({"to": to, "amount": "1000"})).await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["retryable"].as_bool(), body["details"]["reason"].as_str()),
        (Some("DATABASE_UNAVAILABLE"), Some(true), Some("timeout")),
        "{body}"
    );
    assert!(waited >= Duration::from_millis(500), "answered before lock_timeout_ms: {waited:?}");
    let (status, body) = send(&d, &t_free, serde_json::json!({"to": to, "amount": "1000"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CONFIRMED")), "{body}");

    // End the operator's session (killing the client alone leaves its backend asleep).
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = {}::bigint::oid",
        obj as u32
    ));
    let _ = psql.kill();
    let _ = psql.wait();
    // The lock gone, the first agent sends again.
    let (status, body) = send(&d, &t_held, serde_json::json!({"to": to, "amount": "1000"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CONFIRMED")), "{body}");
}

// 13-postgres-ha.md §6.4: a leader stopped gracefully audits LEADER_RELEASED and gives the lock
// back; the standby takes over at its next poll.
#[test]
fn a_gracefully_stopped_leader_hands_over_at_the_next_poll() {
    let (db, mut a, b) = a_leads_b_waits();
    let mut child = a.child.take().unwrap();
    crate::support::signal(child.id(), "TERM");
    let stopped = std::time::Instant::now();
    assert!(
        crate::support::wait_timeout(&mut child, Duration::from_secs(30)).is_some_and(|s| s.success()),
        "{}",
        a.log()
    );
    while ready(&b).0 != 200 {
        assert!(stopped.elapsed() < Duration::from_secs(5), "no takeover: {}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::support::report(&format!(
        "graceful handover: standby led {} ms after SIGTERM",
        stopped.elapsed().as_millis()
    ));
    let events = db.sql("SELECT string_agg(event_type || ':' || coalesce(record->'details'->>'replicaId', ''), ' ' ORDER BY seq) FROM audit_log");
    assert!(
        events.contains("DAEMON_STOPPED: LEADER_RELEASED:replica-a LEADER_ACQUIRED:replica-b"),
        "the release precedes the takeover: {events}"
    );
    assert_eq!(db.sql("SELECT epoch FROM leader"), "2");
}

// 13-postgres-ha.md §7, `init` under postgres: a second replica's `init` with another master
// password exits 4 and stores nothing; a directory first set up on redb brings its master.json
// into a database that has none.
#[test]
fn init_checks_the_shared_master_password_and_adopts_a_redb_directorys() {
    let db = FreshDb::new();
    let (code, all) = output(tempfile::tempdir().unwrap().path(), &db.url, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{all}");
    // A directory set up on redb, then pointed at the database.
    let dir = tempfile::tempdir().unwrap();
    assert!(init_dir(dir.path()).status.success());
    let (code, all) = output(dir.path(), &db.url, &["init", "--non-interactive", "--json"]);
    assert_eq!(code, Some(0), "{all}");
    let local = std::fs::read(dir.path().join("keystore/master.json")).unwrap();
    assert_eq!(db.sql("SELECT encode(file, 'hex') FROM keystore_master"), hex::encode(&local));
    // Another replica with another password is refused, and nothing changes.
    let other = tempfile::tempdir().unwrap();
    let mut c = pg_cli(other.path(), &db.url, &["init", "--non-interactive"]);
    c.env("WAIAAS_MASTER_PASSWORD", "a different password 123");
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(4), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("does not match the shared keystore"), "{}", text(&out.stderr));
    assert_eq!(db.sql("SELECT encode(file, 'hex') FROM keystore_master"), hex::encode(&local));
    // The same password joins.
    let third = tempfile::tempdir().unwrap();
    let (code, all) = output(third.path(), &db.url, &["init", "--non-interactive"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(std::fs::read_dir(third.path().join("keystore")).unwrap().count(), 0, "keystore/ stays empty");
}
