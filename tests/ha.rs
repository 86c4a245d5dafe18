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
