//! Opening, creating, migrating and snapshotting the database (02-storage.md §9, §10).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::audit::{self, AuditEvent, AuditVerification};
use crate::codec::{decode, encode};
use crate::error::{SchemaError, StoreError};
use crate::tables::*;

/// The schema version this binary writes (02-storage.md §9).
pub const SCHEMA_VERSION: u64 = 3;

/// In-code upgrade steps: `MIGRATIONS[i]` upgrades a database from version `i + 1` to `i + 2`.
/// All pending steps run inside one write transaction, so a failure leaves the file unchanged;
/// after them `create_all` adds any table a step did not write. Every released version has a
/// fixture database (`fixtures/db/v<N>.redb`) that the tests upgrade.
///
/// - v1 → v2: the RATE_LIMIT counters (`rate_counts`), built from every transaction row.
/// - v2 → v3: AutoStop's daily-volume and same-address counters (`autostop_daily`,
///   `autostop_to`), built from every transaction row.
type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[crate::rate::rebuild, crate::autostop_counts::rebuild];

/// What `open` did to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Version found in the file.
    pub found_version: u64,
    /// Version after migrations (always [`SCHEMA_VERSION`]).
    pub version: u64,
}

/// Who performs a write, when, and from where; every audited operation takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpCtx {
    /// Audit actor string (`admin`, `owner:<addr>`, `agent:<id>`, `system`, `cli`, …).
    pub actor: String,
    /// Client IP, when the write comes from an HTTP request.
    pub ip: Option<String>,
    /// Daemon time in unix seconds.
    pub now: u64,
}

impl OpCtx {
    /// A context for `actor` at `now`.
    pub fn new(actor: impl Into<String>, now: u64) -> OpCtx {
        OpCtx { actor: actor.into(), ip: None, now }
    }
}

/// How durable a write must be when its operation returns.
///
/// redb has one writer and commits in order, so a crash leaves a *prefix* of the commits: the
/// last durable one and everything before it. A [`Commit::Lazy`] write is visible at once and
/// becomes durable with the next durable commit (or [`RedbStore::sync`]); an operation may be lazy
/// only when losing it in a crash is safe because nothing outside the daemon has seen its effect
/// yet, or start-up recovery rebuilds it from a durable one (02-storage.md; issue #21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Durable before the operation returns (an fsync, possibly shared with other writers).
    Durable,
    /// Durable with the next durable commit.
    Lazy,
}

/// The commit sequence: how many commits were made and how many of them are durable.
#[derive(Debug, Default)]
struct Sequence {
    /// Commits so far (lazy and durable), in commit order.
    committed: AtomicU64,
    /// Every commit up to this one is durable.
    durable: AtomicU64,
    /// Writers between asking for the write slot and getting it.
    waiting: AtomicU64,
    /// Writers between asking for the write slot and giving it back (commit and fsync included).
    active: AtomicU64,
    /// Held by the one writer making the commits so far durable (group commit's leader).
    syncing: Mutex<()>,
}

/// Counts one writer in [`Sequence::active`] for as long as it lives (error paths included).
struct Active<'a>(&'a AtomicU64);

impl<'a> Active<'a> {
    fn enter(n: &'a AtomicU64) -> Active<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Active(n)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The waiaas database: one redb file, every table of 02-storage.md §3.
///
/// All methods block (redb does synchronous I/O); the daemon calls them from blocking threads.
/// Every mutating method is exactly one redb write transaction: all of its effects, including
/// its audit rows, commit together or not at all. Most are durable when they return; the few on
/// the send path that may be lazy say so ([`Commit`]).
///
/// Group commit: a durable write that finds other writers waiting commits lazily and then asks
/// for a durability barrier; one barrier — one empty durable commit, one fsync — covers every
/// commit made before it, so the writers that queued up during one fsync share the next one.
/// A lone durable writer commits durably itself: exactly one fsync, no extra commit.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    dev_mode: AtomicBool,
    /// Commits, fsyncs, commit times and terminal transitions since open.
    stats: crate::stats::StoreStats,
    seq: Sequence,
}

impl Drop for RedbStore {
    /// A clean close leaves nothing lazy behind (a crash is what the prefix rule is for).
    fn drop(&mut self) {
        if self.has_lazy_commits()
            && let Err(e) = self.sync()
        {
            eprintln!("waiaas-storage: cannot make the last commits durable on close: {e}");
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn open_file(path: &Path, create: bool) -> Result<std::fs::File, std::io::Error> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true) // O_NOFOLLOW: a symlink at the database path is refused rather than followed.
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    if create {
        // Mode is set at open time (01-daemon.md §1.2), never chmod-ed afterwards.
        opts.create_new(true).mode(0o600);
    }
    opts.open(path)
}

impl RedbStore {
    /// Creates a new database file (mode 0600) holding every table at [`SCHEMA_VERSION`].
    /// Fails if the file exists.
    pub fn create(path: &Path, now: u64) -> Result<RedbStore, StoreError> {
        let file = open_file(path, true)?;
        let db = redb::Builder::new().create_with_backend(FileBackend::new(file)?)?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
            dev_mode: AtomicBool::new(false),
            stats: Default::default(),
            seq: Default::default(),
        };
        store.write(|tx| {
            create_all(tx)?;
            let mut meta = tx.open_table(META)?;
            meta.insert("schema_version", encode("meta", &SCHEMA_VERSION)?.as_slice())?;
            meta.insert("created_at", encode("meta", &now)?.as_slice())?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Opens an existing database, upgrading older schema versions in one write transaction.
    /// `cache_bytes` is redb's page cache size.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<(RedbStore, OpenReport), StoreError> {
        let file = open_file(path, false)?;
        let db = redb::Builder::new().set_cache_size(cache_bytes).create_with_backend(FileBackend::new(file)?)?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
            dev_mode: AtomicBool::new(false),
            stats: Default::default(),
            seq: Default::default(),
        };
        let found = store.read_schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(SchemaError::Newer { found, supported: SCHEMA_VERSION }.into());
        }
        if found < SCHEMA_VERSION {
            store.write(|tx| {
                for from in found..SCHEMA_VERSION {
                    let step = MIGRATIONS
                        .get((from - 1) as usize)
                        .ok_or_else(|| SchemaError::Migration { from, reason: "no upgrade step".into() })?;
                    step(tx).map_err(|e| SchemaError::Migration { from, reason: e.to_string() })?;
                }
                create_all(tx)?;
                tx.open_table(META)?.insert("schema_version", encode("meta", &SCHEMA_VERSION)?.as_slice())?;
                Ok(())
            })?;
        }
        Ok((store, OpenReport { found_version: found, version: SCHEMA_VERSION }))
    }

    /// [`create`](Self::create) on any redb storage backend (tests: a simulated disk).
    #[cfg(any(test, feature = "test-util"))]
    pub fn create_on(backend: impl redb::StorageBackend, now: u64) -> Result<RedbStore, StoreError> {
        let db = redb::Builder::new().create_with_backend(backend)?;
        let store = RedbStore {
            db,
            path: PathBuf::from(":backend:"),
            dev_mode: AtomicBool::new(false),
            stats: Default::default(),
            seq: Default::default(),
        };
        store.write(|tx| {
            create_all(tx)?;
            let mut meta = tx.open_table(META)?;
            meta.insert("schema_version", encode("meta", &SCHEMA_VERSION)?.as_slice())?;
            meta.insert("created_at", encode("meta", &now)?.as_slice())?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Opens an existing database on any redb storage backend (tests: a disk image after a
    /// simulated power cut). No migrations: the image was written by this binary.
    #[cfg(any(test, feature = "test-util"))]
    pub fn open_on(backend: impl redb::StorageBackend) -> Result<RedbStore, StoreError> {
        let db = redb::Builder::new().create_with_backend(backend)?;
        let store = RedbStore {
            db,
            path: PathBuf::from(":backend:"),
            dev_mode: AtomicBool::new(false),
            stats: Default::default(),
            seq: Default::default(),
        };
        if store.read_schema_version()? != SCHEMA_VERSION {
            return Err(SchemaError::NotWaiaas.into());
        }
        Ok(store)
    }

    fn read_schema_version(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Err(SchemaError::NotWaiaas.into()),
            Err(e) => return Err(e.into()),
        };
        match meta.get("schema_version")? {
            Some(v) => decode("meta", v.value()),
            None => Err(SchemaError::NotWaiaas.into()),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the database file in bytes.
    pub fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// In dev mode every audit row's details carry `"dev_mode": true` (01-daemon.md §3.4).
    pub fn set_dev_mode(&self, on: bool) {
        self.dev_mode.store(on, Ordering::Relaxed);
    }

    /// Runs `f` in one write transaction and commits durably; an `Err` aborts everything `f`
    /// wrote.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        self.write_with(Commit::Durable, f)
    }

    /// Runs `f` in one write transaction committed as `commit` asks (see [`Commit`] and the
    /// group commit of [`RedbStore`]).
    pub(crate) fn write_with<R>(
        &self,
        commit: Commit,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _active = Active::enter(&self.seq.active);
        self.seq.waiting.fetch_add(1, Ordering::SeqCst);
        let tx = self.db.begin_write();
        self.seq.waiting.fetch_sub(1, Ordering::SeqCst);
        let mut tx = tx?;
        // Numbered while holding the write slot, so numbers follow commit order (an aborted
        // write leaves a gap, which a barrier covers trivially).
        let seq = self.seq.committed.fetch_add(1, Ordering::SeqCst) + 1;
        // Durable at once only when nobody queued behind us: they would otherwise wait through
        // our fsync and then pay their own; committing lazily and sharing a barrier batches them.
        let alone = commit == Commit::Durable && self.seq.waiting.load(Ordering::SeqCst) == 0;
        tx.set_durability(if alone { Durability::Immediate } else { Durability::None })?;
        crate::stats::begin_write();
        let r = f(&tx)?;
        let started = std::time::Instant::now();
        tx.commit()?;
        if alone {
            self.seq.durable.fetch_max(seq, Ordering::SeqCst);
        }
        self.stats.committed(started.elapsed(), alone);
        if commit == Commit::Durable && !alone {
            self.sync_to(seq)?;
        }
        Ok(r)
    }

    /// Makes every commit made so far durable (one fsync, or none when they already are).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.sync_to(self.seq.committed.load(Ordering::SeqCst))
    }

    /// The durability barrier: returns once commit `seq` and all before it are durable. The
    /// first writer to arrive makes one empty durable commit, which covers every commit made
    /// before it began; the others wait for it and find their commit covered.
    pub(crate) fn sync_to(&self, seq: u64) -> Result<(), StoreError> {
        if self.seq.durable.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let _leader = self.seq.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if self.seq.durable.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let _active = Active::enter(&self.seq.active);
        self.seq.waiting.fetch_add(1, Ordering::SeqCst);
        let tx = self.db.begin_write();
        self.seq.waiting.fetch_sub(1, Ordering::SeqCst);
        let mut tx = tx?;
        if self.seq.durable.load(Ordering::SeqCst) >= seq {
            tx.abort()?;
            return Ok(());
        }
        // Holding the write slot: every commit numbered before this one is complete, and the
        // durable commit below covers them all.
        let barrier = self.seq.committed.fetch_add(1, Ordering::SeqCst) + 1;
        tx.set_durability(Durability::Immediate)?;
        crate::stats::begin_write();
        let started = std::time::Instant::now();
        tx.commit()?;
        self.seq.durable.fetch_max(barrier, Ordering::SeqCst);
        self.stats.committed(started.elapsed(), true);
        Ok(())
    }

    /// Whether some writer holds or waits for the write slot right now. A caller that must not
    /// block (an async worker about to make a lazy commit) runs its write elsewhere when it is;
    /// the answer can be stale by the time the caller acts, so at worst it waits for one commit.
    pub fn write_slot_busy(&self) -> bool {
        self.seq.active.load(Ordering::SeqCst) > 0
    }

    /// Whether some commit is not yet durable (the idle timer's question).
    pub fn has_lazy_commits(&self) -> bool {
        self.seq.durable.load(Ordering::SeqCst) < self.seq.committed.load(Ordering::SeqCst)
    }

    /// (commits made, commits durable) since this store was opened, in commit order.
    pub fn sequence(&self) -> (u64, u64) {
        (self.seq.committed.load(Ordering::SeqCst), self.seq.durable.load(Ordering::SeqCst))
    }

    /// Write transactions committed since this store was opened (lazy and durable).
    pub fn commits(&self) -> u64 {
        self.stats.commits()
    }

    /// Commits, fsyncs, commit times and terminal transitions since this store was opened.
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        let (committed_seq, durable_seq) = self.sequence();
        crate::stats::StatsSnapshot { committed_seq, durable_seq, ..self.stats.snapshot() }
    }

    /// A write transaction used only to read and then aborted (dry runs).
    pub(crate) fn begin_write_for_read(&self) -> Result<WriteTransaction, StoreError> {
        Ok(self.db.begin_write()?)
    }

    /// Runs `f` in a read transaction (a consistent snapshot; never blocks writers).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }

    /// Appends an audit row inside `tx`.
    pub(crate) fn audit(&self, tx: &WriteTransaction, ev: AuditEvent, ctx: &OpCtx) -> Result<u64, StoreError> {
        let mut ev = ev;
        if ev.ip_address.is_none() {
            ev.ip_address = ctx.ip.clone();
        }
        audit::append(tx, &ev, ctx.now, self.dev_mode.load(Ordering::Relaxed))
    }

    /// Appends one audit row on its own; only for events that change no other state.
    pub fn append_audit(&self, ev: AuditEvent, ctx: &OpCtx) -> Result<u64, StoreError> {
        self.write(|tx| self.audit(tx, ev, ctx))
    }

    /// Verifies the whole audit chain (§7).
    pub fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.read(|tx| audit::verify(&tx.open_table(AUDIT_LOG)?, &tx.open_table(META)?))
    }

    /// Copies every table, row by row, from one read transaction into a new redb file at `path`
    /// (mode 0600) and fsyncs it (§10). Writers are not blocked.
    pub fn snapshot_to(&self, path: &Path) -> Result<(), StoreError> {
        let file = open_file(path, true)?;
        let target = redb::Builder::new().create_with_backend(FileBackend::new(file)?)?;
        let src = self.db.begin_read()?;
        let dst = target.begin_write()?;
        create_all(&dst)?;
        copy_tables(&src, &dst)?;
        dst.commit()?;
        drop(target);
        std::fs::File::open(path)?.sync_all()?;
        Ok(())
    }

    /// Full-file integrity check; needs exclusive access, so offline commands only (§10).
    pub fn check_integrity(&mut self) -> Result<bool, StoreError> {
        Ok(self.db.check_integrity()?)
    }

    /// Reads `meta.created_at`.
    pub fn created_at(&self) -> Result<u64, StoreError> {
        self.read(|tx| match tx.open_table(META)?.get("created_at")? {
            Some(v) => decode("meta", v.value()),
            None => Ok(0),
        })
    }
}

macro_rules! copy {
    ($src:expr, $dst:expr, $($t:expr),+ $(,)?) => {$(
        {
            let from = $src.open_table($t)?;
            let mut to = $dst.open_table($t)?;
            for row in from.iter()? {
                let (k, v) = row?;
                to.insert(k.value(), v.value())?;
            }
        }
    )+};
}

fn copy_tables(src: &ReadTransaction, dst: &WriteTransaction) -> Result<(), StoreError> {
    copy!(
        src,
        dst,
        META,
        AGENTS,
        IDX_AGENT_PUBLIC_KEY,
        IDX_AGENT_NAME,
        IDX_AGENT_OWNER,
        SESSIONS,
        IDX_SESSION_TOKEN,
        IDX_SESSION_AGENT,
        IDX_SESSION_EXPIRY,
        IDX_SESSION_REVOKED,
        TRANSACTIONS,
        IDX_TX_HASH,
        IDX_TX_AGENT,
        IDX_TX_SESSION,
        IDX_TX_ACTIVE,
        IDX_TX_QUEUE,
        IDX_TX_CHILDREN,
        IDEMPOTENCY,
        IDX_IDEMPOTENCY_TIME,
        PENDING_APPROVALS,
        POLICIES,
        IDX_POLICY_SCOPE,
        AUTO_STOP_RULES,
        IDX_AUTO_STOP_SCOPE,
        AUDIT_LOG,
        IDX_AUDIT_AGENT,
        IDX_AUDIT_EVENT,
        IDX_AUDIT_TIME,
        NOTIFICATION_CHANNELS,
        NOTIFICATION_LOG,
        IDX_NOTIFICATION_DELIVERED,
        WALLET_CONNECTIONS,
        IDX_WALLET_CONNECTION,
        NONCES,
        IDX_NONCE_EXPIRY,
        SYSTEM_STATE,
    );
    Ok(())
}
