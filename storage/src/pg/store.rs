//! [`PgStore`]: the blocking facade over the async PostgreSQL client, and the transaction shapes
//! every operation uses (13-postgres-ha.md §3, §5).
//!
//! - The store owns a small tokio runtime that drives its connections, so the blocking callers
//!   of [`crate::StoreOps`] (the daemon's `spawn_blocking` threads, the CLI, the tests) can wait
//!   on it with `block_on` without knowing about async.
//! - [`PgStore::write`] is the one read-write transaction shape: READ COMMITTED, the fenced
//!   prologue (G shared or exclusive, then the epoch check), the operation, commit; `40001` and
//!   `40P01` retry in a fresh transaction up to 3 times.
//! - [`PgStore::read`] is one statement or one REPEATABLE READ READ ONLY snapshot, never fenced.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::IsolationLevel;

use super::{PgOptions, locks, map_err};
use crate::audit::{self, AuditEvent, AuditHead, AuditVerification};
use crate::db::OpCtx;
use crate::error::{StoreError, Unavailability};

/// How a fenced write holds the global lock G (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    /// Ordinary writes: many at once.
    Shared,
    /// The kill switch, configuration, takeover: waits out every fenced write in flight.
    Exclusive,
}

/// The PostgreSQL engine: a pool of connections to one database shared by the replicas.
pub struct PgStore {
    runtime: Option<tokio::runtime::Runtime>,
    pub(super) pool: Pool,
    pub(super) opts: PgOptions,
    /// This replica's leader epoch; 0 = standby (every fenced write fails `Fenced`).
    epoch: AtomicU64,
    dev_mode: AtomicBool,
    commits: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.opts.redacted).field("epoch", &self.epoch()).finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The store may be dropped on an async thread, where dropping a runtime would panic.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Pg { sqlstate, .. } if sqlstate == "40001" || sqlstate == "40P01")
}

pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        _ => StoreError::Unavailable { reason: Unavailability::Unreachable },
    }
}

impl PgStore {
    /// Connects the pool (lazily: connections open on first use) and checks the schema.
    pub fn connect(opts: PgOptions) -> Result<PgStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("waiaas-pg")
            .enable_all()
            .build()?;
        let manager = Manager::from_config(
            opts.config()?,
            opts.tls()?,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Pg { sqlstate: String::new(), message: e.to_string() })?;
        let store = PgStore {
            runtime: Some(runtime),
            pool,
            opts,
            epoch: AtomicU64::new(0),
            dev_mode: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        };
        store.block(async {
            let client = store.pool.get().await.map_err(pool_err)?;
            super::migrate::check_database(&client).await
        })?;
        Ok(store)
    }

    /// This replica's leader epoch (0 = standby).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Waits for `fut` on the store's runtime. Must not be called on an async thread.
    pub(crate) fn block<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.as_ref().expect("the runtime lives as long as the store").block_on(fut)
    }

    /// One read-write transaction with the fenced prologue (§5), retried on `40001`/`40P01`.
    pub(crate) fn write<R>(
        &self,
        global: Global,
        op: impl AsyncFn(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mine = self.epoch();
        if mine == 0 {
            return Err(StoreError::Fenced { mine, current: 0 });
        }
        self.block(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tx = client.transaction().await.map_err(map_err)?;
                let result = async {
                    fence(&tx, global, mine).await?;
                    op(&tx).await
                }
                .await;
                let result = match result {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(map_err),
                    Err(e) => Err(e), // dropping `tx` rolls back
                };
                match result {
                    Ok(v) => {
                        self.commits.fetch_add(1, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(e) if attempt < 3 && is_retryable(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// A SERIALIZABLE transaction without the fenced prologue, retried on `40001`: `init`'s seed
    /// and the `replicas` upsert, which run before any replica leads.
    pub(crate) fn unfenced_serializable<R>(
        &self,
        op: impl AsyncFn(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.block(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await
                    .map_err(map_err)?;
                let result = match op(&tx).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(map_err),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => {
                        self.commits.fetch_add(1, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(e) if attempt < 5 && is_retryable(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// A read: several statements that must agree run in one REPEATABLE READ READ ONLY snapshot.
    pub(crate) fn read<R>(
        &self,
        op: impl AsyncFnOnce(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.block(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(map_err)?;
            let r = op(&tx).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(r)
        })
    }

    /// §6.2 step 2: under G exclusive (which waits out any fenced write still in flight), bump
    /// the epoch to this replica's and audit `LEADER_ACQUIRED`. The caller holds the leader lock.
    pub fn take_epoch(&self, now: u64) -> Result<u64, StoreError> {
        let epoch = self.block(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(map_err)?;
            lock(&tx, locks::GLOBAL, true).await?;
            let prev = super::rows::one(&tx, "SELECT epoch, replica_id FROM leader WHERE id = 1", &[]).await?;
            let (prev_epoch, prev_id): (i64, Option<String>) = (prev.get(0), prev.get(1));
            let row = super::rows::one(
                &tx,
                "UPDATE leader SET epoch = epoch + 1, replica_id = $1, since = $2 WHERE id = 1 RETURNING epoch",
                &[&self.opts.replica_id, &(now as i64)],
            )
            .await?;
            let epoch: i64 = row.get(0);
            let ev = AuditEvent::new(crate::audit_events::AuditEventType::LeaderAcquired, "system")
                .severity(crate::enums::AuditSeverity::Warning)
                .detail("replicaId", self.opts.replica_id.clone())
                .detail("epoch", epoch)
                .detail("previousReplicaId", prev_id)
                .detail("previousEpoch", prev_epoch);
            self.audit(&tx, ev, &OpCtx::new("system", now)).await?;
            tx.commit().await.map_err(map_err)?;
            Ok::<_, StoreError>(epoch as u64)
        })?;
        self.epoch.store(epoch, Ordering::SeqCst);
        Ok(epoch)
    }

    /// Leads at epoch 1 of a fresh test database without writing the `LEADER_ACQUIRED` row the
    /// takeover would (the conformance suite counts audit rows exactly as on redb).
    #[cfg(test)]
    pub(crate) fn lead_fresh_for_tests(&self) {
        self.block(async {
            let client = self.pool.get().await.expect("pool");
            client
                .execute("UPDATE leader SET epoch = 1, replica_id = $1 WHERE id = 1", &[&self.opts.replica_id])
                .await
                .expect("lead");
        });
        self.epoch.store(1, Ordering::SeqCst);
    }

    /// Writes at the database's current epoch without taking it (several test processes acting
    /// as one leader, to race their writes against each other).
    #[cfg(test)]
    pub(crate) fn adopt_epoch_for_tests(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Becomes a standby: every later fenced write fails before touching the database.
    pub fn demote(&self) {
        self.epoch.store(0, Ordering::SeqCst);
    }

    /// Appends one audit row last in the caller's transaction: the head row `FOR UPDATE` keeps
    /// `seq` gap-free and the chain unforked across replicas and epochs.
    pub(crate) async fn audit(&self, tx: &Transaction<'_>, ev: AuditEvent, ctx: &OpCtx) -> Result<u64, StoreError> {
        let mut ev = ev;
        if ev.ip_address.is_none() {
            ev.ip_address = ctx.ip.clone();
        }
        let head = super::rows::one(tx, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", &[]).await?;
        let head = AuditHead { seq: head.get::<_, i64>(0) as u64, hash: head.get(1) };
        let record = audit::next_record(&head, &ev, ctx.now, self.dev_mode.load(Ordering::Relaxed))?;
        let json = super::codec::to_json("audit_log", &record)?;
        // The row and the new head in one round trip.
        let stmt = tx
            .prepare_cached(
                "WITH row AS (INSERT INTO audit_log (seq, record) VALUES ($1, $2))
                 UPDATE audit_head SET seq = $1, hash = $3 WHERE id = 1",
            )
            .await
            .map_err(map_err)?;
        tx.execute(&stmt, &[&(record.seq as i64), &json, &record.hash]).await.map_err(map_err)?;
        Ok(record.seq)
    }

    // ---- engine-level operations (the first group of `StoreOps`) ----

    /// The database's size on disk.
    pub fn size_bytes(&self) -> u64 {
        self.block(async {
            let client = self.pool.get().await.ok()?;
            let row = client.query_one("SELECT pg_database_size(current_database())", &[]).await.ok()?;
            Some(row.get::<_, i64>(0) as u64)
        })
        .unwrap_or(0)
    }

    /// Dev mode marks every audit row.
    pub fn set_dev_mode(&self, on: bool) {
        self.dev_mode.store(on, Ordering::Relaxed);
    }

    /// Every commit is durable when it returns (`synchronous_commit = on`): nothing to sync.
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// No lazy commits on PostgreSQL.
    pub fn has_lazy_commits(&self) -> bool {
        false
    }

    /// Commits made, all durable.
    pub fn sequence(&self) -> (u64, u64) {
        let n = self.commits();
        (n, n)
    }

    /// Write transactions committed by this process.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Counters in the redb shape; PostgreSQL's own fsyncs are the server's business.
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        let n = self.commits();
        crate::stats::StatsSnapshot { commits: n, committed_seq: n, durable_seq: n, ..Default::default() }
    }

    /// Appends one audit row on its own.
    pub fn append_audit(&self, ev: AuditEvent, ctx: &OpCtx) -> Result<u64, StoreError> {
        self.write(Global::Shared, async |tx| self.audit(tx, ev.clone(), ctx).await)
    }

    /// Verifies the whole chain in one snapshot, in pages of 1,000 rows.
    pub fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.read(async |tx| verify_in(tx).await)
    }

    /// `meta.created_at` (0 before `init` seeds it).
    pub fn created_at(&self) -> Result<u64, StoreError> {
        self.read(async |tx| {
            let row = super::rows::opt(tx, "SELECT value FROM meta WHERE key = 'created_at'", &[]).await?;
            Ok(row.and_then(|r| r.get::<_, serde_json::Value>(0).as_u64()).unwrap_or(0))
        })
    }
}

/// Takes a transaction-level advisory lock.
pub(crate) async fn lock(tx: &Transaction<'_>, key: (i32, i32), exclusive: bool) -> Result<(), StoreError> {
    let sql =
        if exclusive { "SELECT pg_advisory_xact_lock($1, $2)" } else { "SELECT pg_advisory_xact_lock_shared($1, $2)" };
    super::rows::exec(tx, sql, &[&key.0, &key.1]).await?;
    Ok(())
}

/// The fenced prologue (§5): statement 1 takes G, statement 2 — separate, so it reads after the
/// lock — compares the epoch. A takeover bumps the epoch under G exclusive, so once it has, no
/// write of the old epoch can commit.
async fn fence(tx: &Transaction<'_>, global: Global, mine: u64) -> Result<(), StoreError> {
    lock(tx, locks::GLOBAL, global == Global::Exclusive).await?;
    let current: i64 = super::rows::one(tx, "SELECT epoch FROM leader WHERE id = 1", &[]).await?.get(0);
    if current as u64 != mine {
        return Err(StoreError::Fenced { mine, current: current as u64 });
    }
    Ok(())
}

/// Verifies the whole audit chain as `tx` sees it, against the head row.
pub(super) async fn verify_in(tx: &Transaction<'_>) -> Result<AuditVerification, StoreError> {
    let head = super::rows::one(tx, "SELECT seq, hash FROM audit_head WHERE id = 1", &[]).await?;
    let mut v = audit::Verifier::new(AuditHead { seq: head.get::<_, i64>(0) as u64, hash: head.get(1) });
    let mut after = 0i64;
    loop {
        let rows = super::rows::all(
            tx,
            "SELECT seq, record::text FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000",
            &[&after],
        )
        .await?;
        for r in &rows {
            let (seq, text): (i64, String) = (r.get(0), r.get(1));
            if let Some(broken) = v.row(seq as u64, text.as_bytes()) {
                return Ok(broken);
            }
            after = seq;
        }
        if rows.len() < 1000 {
            return Ok(v.finish());
        }
    }
}
