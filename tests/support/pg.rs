//! The PostgreSQL cluster `scripts/test.sh` starts (`WAIAAS_TEST_PG_URL`, 13-postgres-ha.md §9):
//! each test gets a database of its own, dropped when the test ends. Without the cluster a
//! PostgreSQL test fails rather than skips — a missing cluster must not look like a pass.

use std::process::Command;

/// A fresh, empty database on the test cluster.
pub(crate) struct FreshDb {
    admin: String,
    name: String,
    /// `postgres://postgres@127.0.0.1:<port>/<name>`.
    pub(crate) url: String,
}

fn cluster_url() -> String {
    std::env::var("WAIAAS_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("WAIAAS_TEST_PG_URL is unset: run the suite through scripts/test.sh, which starts a PostgreSQL cluster")
    })
}

/// Runs SQL with `psql` and returns its unaligned, tuples-only output.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .output()
        .expect("psql (Debian's postgresql-client) is installed by scripts/install-test-infra.sh");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl FreshDb {
    pub(crate) fn new() -> FreshDb {
        FreshDb::on(&cluster_url())
    }

    /// A fresh database on the cluster whose admin URL is `admin`.
    pub(crate) fn on(admin: &str) -> FreshDb {
        let admin = admin.to_string();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').expect("a URL with a database").0;
        FreshDb { url: format!("{base}/{name}"), admin, name }
    }

    /// The same database, with a password in the URL (trust authentication ignores it): for
    /// checking that a password never appears in output.
    pub(crate) fn url_with_password(&self, password: &str) -> String {
        self.url.replacen("postgres@", &format!("postgres:{password}@"), 1)
    }

    /// Runs SQL on this database.
    pub(crate) fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin, "-X", "-qAt", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// A cluster of a test's own, for a test that stops the server (13-postgres-ha.md ACC-310) and
/// so must not share the suite's cluster: `scripts/pg-cluster.sh` in a fresh folder, deleted when
/// dropped.
pub(crate) struct OwnCluster {
    dir: std::path::PathBuf,
    /// Its admin URL (database `waiaas`).
    pub(crate) url: String,
}

fn pg_cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster.sh");
    let out = Command::new(script).args(args).output().unwrap();
    assert!(out.status.success(), "pg-cluster.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl OwnCluster {
    pub(crate) fn start() -> OwnCluster {
        // Not under a root-only temp folder: the server runs as `postgres` and must reach it.
        let dir = std::env::temp_dir().join(format!("waiaas-pg-{}", uuid::Uuid::new_v4().simple()));
        let url = pg_cluster(&["start", dir.to_str().unwrap()]);
        OwnCluster { dir, url }
    }

    /// `pg_ctl stop -m fast`: every session ends, the data stays.
    pub(crate) fn down(&self) {
        pg_cluster(&["down", self.dir.to_str().unwrap()]);
    }

    /// Starts it again on the same port.
    pub(crate) fn up(&self) {
        pg_cluster(&["up", self.dir.to_str().unwrap()]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster.sh"))
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}
