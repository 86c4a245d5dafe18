//! Fresh PostgreSQL databases for the storage tests (13-postgres-ha.md §3, conformance): the
//! cluster is `WAIAAS_TEST_PG_URL` (started by `scripts/test.sh`); a template database is
//! migrated once per test process, and each test gets `CREATE DATABASE t_<uuid> TEMPLATE …`.
//! Without the cluster the PostgreSQL half fails — it never skips.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use secrecy::SecretString;

use super::{PgOptions, PgStore};

/// A test database; dropped (forcibly) with the guard.
pub(crate) struct TestDb {
    admin: String,
    name: String,
}

fn cluster() -> String {
    std::env::var("WAIAAS_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("WAIAAS_TEST_PG_URL is unset: the PostgreSQL half of the storage suite needs the cluster scripts/test.sh starts")
    })
}

fn with_db(url: &str, db: &str) -> String {
    format!("{}/{db}", url.rsplit_once('/').expect("a URL with a database").0)
}

/// Runs statements one by one (CREATE DATABASE cannot share a transaction).
fn admin(url: &str, statements: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("the test cluster");
        tokio::spawn(conn);
        for sql in statements {
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
    });
}

/// Options for a test connection to `url` (small pool, short timeouts).
pub(crate) fn options(url: &str, replica_id: &str) -> PgOptions {
    PgOptions {
        url: SecretString::from(url.to_string()),
        redacted: "postgres://test".into(),
        pool_size: 24,
        connect_timeout: Duration::from_secs(10),
        lock_timeout_ms: 10_000,
        statement_timeout_ms: 30_000,
        idle_tx_timeout_ms: 10_000,
        keepalive: Duration::from_secs(5),
        replica_id: replica_id.into(),
        ca_file: None,
    }
}

/// The template, migrated once per process; creations from it are serialised (PostgreSQL
/// refuses to copy a template another session is using).
fn template() -> &'static Mutex<String> {
    static TPL: OnceLock<Mutex<String>> = OnceLock::new();
    TPL.get_or_init(|| {
        let cluster = cluster();
        let name = format!("waiaas_tpl_{}", std::process::id());
        admin(&cluster, &[&format!("DROP DATABASE IF EXISTS {name}"), &format!("CREATE DATABASE {name}")]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut client = options(&with_db(&cluster, &name), "tpl").connect().await.expect("the template");
            super::migrate::migrate(&mut client, 1).await.expect("migrations apply");
        });
        Mutex::new(name)
    })
}

impl TestDb {
    /// A fresh database holding the current schema.
    pub(crate) fn new() -> TestDb {
        let cluster = cluster();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        {
            let tpl = template().lock().unwrap_or_else(|e| e.into_inner());
            admin(&cluster, &[&format!("CREATE DATABASE {name} TEMPLATE {tpl}")]);
        }
        TestDb { admin: cluster, name }
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        with_db(&self.admin, &self.name)
    }

    /// A store on it that leads at epoch 1, as replica `replica_id`.
    pub(crate) fn leader(&self, replica_id: &str) -> PgStore {
        let store = PgStore::connect(options(&self.url(), replica_id)).expect("connect");
        store.lead_fresh_for_tests();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&self.admin, &[&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)]);
    }
}

/// Test hooks beneath the operations, the counterparts of redb's (`tests.rs` `Hooks`).
impl PgStore {
    /// An unchecked CAS transition (the transition table still applies), for building states.
    pub(crate) fn transition_for_tests(
        &self,
        id: uuid::Uuid,
        from: crate::TxStatus,
        to: crate::TxStatus,
        patch: crate::in_tx::TxPatch,
        audit: Option<crate::AuditEvent>,
        ctx: &crate::OpCtx,
    ) -> Result<crate::TransactionRecord, crate::StoreError> {
        self.write(super::store::Global::Shared, async |tx| {
            let rec = super::txrows::transition_in(tx, id, from, to, patch.clone(), ctx.now).await?;
            if let Some(ev) = audit.clone() {
                self.audit(tx, ev, ctx).await?;
            }
            Ok(rec)
        })
    }

    /// One statement outside any operation: an offline edit of a row.
    pub(crate) fn exec_for_tests(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, crate::StoreError> {
        self.block(async {
            let client = self.pool.get().await.map_err(super::store::pool_err)?;
            client.execute(sql, params).await.map_err(super::map_err)
        })
    }
}
