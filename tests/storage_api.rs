//! Storage through the daemon (ACC-047, ACC-053, ACC-054, ACC-056): corrupt rows, audit-chain
//! verification online and offline, schema versions and the released fixture databases.

use std::time::Duration;

use serde_json::{Value, json};
use waiaas_storage::{AgentRecord, Chain, Network, OpCtx};

use crate::support::{Opts, TestDaemon, cli, init_dir, run, text};

fn agent(name: &str) -> AgentRecord {
    let mut a = AgentRecord::new(uuid::Uuid::now_v7(), name.into(), Chain::Solana, Network::Devnet, None, 1);
    a.public_key = format!("pk-{name}");
    a
}

fn open(dir: &std::path::Path) -> waiaas_storage::Store {
    waiaas_storage::Store::open(&dir.join("data/waiaas.redb"), 8 << 20).unwrap().0
}

// ACC-047.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_an_invalid_enum_gives_500_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    {
        let store = open(dir.path());
        let a = agent("victim");
        store.insert_agent(&a, &OpCtx::new("test", 1)).unwrap();
        let mut v = serde_json::to_value(&a).unwrap();
        v["status"] = json!("BOGUS");
        store.redb().expect("a redb store").raw_put_agent(a.id, &serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let d = TestDaemon::start_in(dir, Opts::default()).await;
    let r = d.admin_get("/v1/admin/status").await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert!(!body["message"].as_str().unwrap().contains("BOGUS"), "no internals in the body");
    assert_eq!(d.get("/health").await.status(), 200, "the daemon keeps running");
}

// ACC-054.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_verifies_online_and_a_tampered_row_fails_offline() {
    let mut d = TestDaemon::start(Opts::default()).await;
    // Produce some rows: failed logins are audited.
    for _ in 0..3 {
        d.http.get(d.url("/v1/admin/status")).header("X-Master-Password", "wrong password xx").send().await.unwrap();
    }
    let v: Value = d.admin_get("/v1/admin/audit-log/verify").await.json().await.unwrap();
    assert_eq!(v["valid"], true);
    assert!(v["checkedEntries"].as_u64().unwrap() >= 4);
    assert_eq!(v["firstInvalidSeq"], Value::Null);

    // While the daemon runs, the offline check refuses to run.
    let mut c = d.cli();
    c.args(["audit", "verify", "--offline"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    d.terminate();
    let mut c = d.cli();
    c.args(["audit", "verify", "--offline"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Alter seq 2's details offline.
    {
        let store = d.store();
        let mut row: Value =
            serde_json::from_slice(&store.redb().expect("a redb store").raw_get_audit(2).unwrap().unwrap()).unwrap();
        row["details"]["tampered"] = json!(true);
        store.redb().expect("a redb store").raw_put_audit(2, &serde_json::to_vec(&row).unwrap()).unwrap();
    }
    let mut c = d.cli();
    c.args(["audit", "verify", "--offline"]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("firstInvalidSeq 2"), "{}", text(&out.stderr));
}

// ACC-056.
#[test]
fn a_database_from_a_newer_schema_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let newer = (waiaas_storage::SCHEMA_VERSION + 1).to_string();
    open(dir.path()).redb().expect("a redb store").raw_put_meta("schema_version", newer.as_bytes()).unwrap();
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", crate::support::PASSWORD).args([
        "start",
        "--port",
        &crate::support::free_port().to_string(),
    ]);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("database created by a newer waiaas"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_on_every_released_schema_fixture() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/db");
    let chains = crate::support::nodes::LocalChains::start();
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("redb") {
            continue;
        }
        n += 1;
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path());
        std::fs::copy(&path, dir.path().join("data/waiaas.redb")).unwrap();
        chains.configure(dir.path());
        let d = TestDaemon::start_in(dir, Opts::default()).await;
        let status: Value = d.admin_get("/v1/admin/status").await.json().await.unwrap();
        assert_eq!(status["agents"]["total"], 2, "{}: {status}", path.display());
        assert_eq!(status["database"]["schemaVersion"], waiaas_storage::SCHEMA_VERSION);
        let v: Value = d.admin_get("/v1/admin/audit-log/verify").await.json().await.unwrap();
        assert_eq!(v["valid"], true);
    }
    assert!(n >= 1);
}
