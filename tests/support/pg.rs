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
        let admin = cluster_url();
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
