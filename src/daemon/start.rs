//! The running daemon: the start sequence (01-daemon.md §6), serving, signals and the graceful
//! shutdown (§9). `waiaas start` (the CLI) calls [`start`] and then [`serve`].
//!
//! Each step has its own timeout inside a 90 s budget. Any failure returns a typed
//! [`StartError`] (the CLI maps it to an exit code); resources opened so far are released in
//! reverse order by their `Drop` implementations (database closed, lock released).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use waiaas_backends::keystore::{
    KeyDir, KeyFileStore, KeystoreBackend, KeystoreError, LockedKeystore, UnlockedKeystore,
};
use waiaas_backends::ledger::device::LedgerBackend;
use waiaas_storage::{
    AgentRecord, AgentStatus, AuditEvent, AuditEventType, AuditSeverity, Backend, KillSwitchStatus, OpCtx, Store,
    StoreError,
};

use super::lock::{self, InstanceLock};
use super::logging;
use crate::app::leadership::Leadership;
use crate::app::{App, Parts};
use crate::base::clock::Clock;
use crate::base::datadir::{self, Layout};
use crate::domain::auth::jwt::{JwtKeys, Tokens};
use crate::domain::auth::master::MasterAuth;
use crate::domain::auth::nonce::NonceStore;
use crate::domain::emergency::killswitch::KillSwitchView;
use crate::http::server;
use crate::runtime::config::{self, Config, Overrides};
use crate::runtime::{Db, Settings, Signers};

/// Where the master password comes from: asked for only when the data directory is not in dev
/// mode (dev mode's password is fixed). An error is the source's own message.
pub(crate) type PasswordSource = Box<dyn FnOnce() -> Result<SecretString, String> + Send>;

/// How the daemon is started.
pub(crate) struct StartOptions {
    pub(crate) data_dir: PathBuf,
    pub(crate) overrides: Overrides,
    pub(crate) password: PasswordSource,
    /// Logs also go to the terminal (a foreground start); a background child logs to files only.
    pub(crate) foreground: bool,
}

/// Why the daemon did not start. Nothing it opened is left behind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("Data directory not found. Run 'waiaas init' first.")]
    NotInitialised,
    #[error("{0}")]
    ForeignOwner(datadir::ForeignOwner),
    #[error("Daemon already running (PID: {}). Use 'waiaas stop' first.", pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()))]
    AlreadyRunning { pid: Option<u32> },
    #[error("Invalid master password. KeyStore unlock failed.")]
    WrongPassword,
    /// The password source failed (no TTY and no variable or file, unreadable file, …).
    #[error("{0}")]
    Password(String),
    #[error("{0}")]
    Failed(String),
    /// The PostgreSQL schema is missing (exit 3) or not this binary's (exit 1).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[error("{0}")]
    Schema(waiaas_storage::SchemaError),
    /// Another live process holds this `replica_id` (exit 2).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[error("Replica id '{0}' is already running; set [database].replica_id")]
    ReplicaBusy(String),
}

fn failed(message: impl Into<String>) -> StartError {
    StartError::Failed(message.into())
}

fn step_timeout(name: &'static str) -> impl Fn(tokio::time::error::Elapsed) -> StartError {
    move |_| failed(format!("{name}: start step timed out"))
}

/// Disables core dumps (`RLIMIT_CORE` 0 and, on Linux, not dumpable): key material must never
/// land in a core file.
fn disable_core_dumps() {
    let zero = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, zero) {
        eprintln!("Warning: cannot disable core dumps: {e}");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        eprintln!("Warning: cannot mark the process non-dumpable: {e}");
    }
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

/// Runs the start sequence within its 90 s budget: a started daemon, serving requests, or why
/// it could not start.
pub(crate) async fn start(opts: StartOptions) -> Result<Running, StartError> {
    tokio::time::timeout(Duration::from_secs(90), start_steps(opts))
        .await
        .map_err(|_| failed("DAEMON_STARTUP_TIMEOUT: the start sequence took more than 90 s"))?
}

/// Everything a started daemon holds.
pub(crate) struct Running {
    app: Arc<App>,
    server: server::Server,
    logging: logging::Handle,
    lock: InstanceLock,
    pid_file: PathBuf,
}

async fn start_steps(opts: StartOptions) -> Result<Running, StartError> {
    let layout = Layout::new(opts.data_dir.clone());

    // Step 1: environment, config, lock.
    if !layout.looks_initialised() {
        return Err(StartError::NotInitialised);
    }
    datadir::check_owner(&layout).map_err(StartError::ForeignOwner)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = config::load(&layout.root, &opts.overrides, &env).map_err(|e| failed(e.to_string()))?;
    let mut instance = match InstanceLock::try_acquire(&layout.lock()) {
        Ok(Ok(l)) => l,
        Ok(Err(busy)) => return Err(StartError::AlreadyRunning { pid: busy.pid }),
        Err(e) => return Err(failed(format!("cannot take the instance lock {}: {e}", layout.lock().display()))),
    };
    instance.write_pid().map_err(|e| failed(format!("cannot write {}: {e}", instance.path().display())))?;
    if lock::remove_stale_pid_file(&config.daemon.pid_file) {
        eprintln!("Warning: removed stale PID file {}", config.daemon.pid_file.display());
    }
    disable_core_dumps();
    let log = logging::init(&config, opts.foreground);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if let Some(w) = datadir::network_fs_warning(&layout.root) {
        tracing::warn!("{w}");
    }
    let dev_mode = config.daemon.dev_mode;
    if dev_mode {
        let lines =
            ["WARNING: DEV MODE - NOT FOR PRODUCTION", "Master password: \"waiaas-dev\" (fixed, publicly known)"];
        let width = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        eprintln!("+{}+", "-".repeat(width + 2));
        for l in lines {
            eprintln!("| {l:<width$} |");
        }
        eprintln!("+{}+", "-".repeat(width + 2));
    }
    println!("Validating environment... OK");

    // Step 2: database, JWT secrets, nonce store, kill switch, recovery sweep.
    let clock = Clock::default();
    let (store, ks, jwt, ha) = match &config.database.backend {
        config::StorageBackend::Redb => {
            let (store, ks, jwt) =
                tokio::time::timeout(Duration::from_secs(30), open_database(&config, dev_mode, clock.clone()))
                    .await
                    .map_err(|_| failed("DB_MIGRATION_TIMEOUT: opening the database took more than 30 s"))??;
            (store, ks, jwt, None)
        }
        config::StorageBackend::Postgres(pg) => {
            let (store, ks, jwt, ha) = open_postgres(pg, dev_mode, clock.clone()).await?;
            (store, ks, jwt, Some(ha))
        }
    };
    // Under PostgreSQL the SIWE nonces always live in the shared database (13-postgres-ha.md §2):
    // a nonce one replica issued must be accepted, once, by the one that leads after it.
    let nonces = if config.security.nonce_storage_redb || ha.is_some() {
        NonceStore::redb(config.security.nonce_cache_ttl)
    } else {
        NonceStore::memory(config.security.nonce_cache_max, config.security.nonce_cache_ttl)
    };
    let db = Db::new(Arc::new(store));
    let leadership = match &ha {
        None => {
            // Lazy commits of the send path become durable within 25 ms when nothing else syncs them.
            waiaas_storage::Store::start_idle_sync(db.store(), Duration::from_millis(25));
            println!(
                "Database ready (schema v{}, {})",
                waiaas_storage::SCHEMA_VERSION,
                human_size(db.store().size_bytes())
            );
            Arc::new(Leadership::single())
        }
        Some(ha) => {
            println!("Database ready (replica {}, standby until elected)", ha.replica_id);
            Arc::new(Leadership::standby(ha.replica_id.clone()))
        }
    };

    // Step 3: the master password.
    let restricted = ks.status != KillSwitchStatus::Normal;
    if restricted {
        tracing::warn!("Daemon starting in restricted mode (kill switch {})", ks.status);
    }
    let pw = if dev_mode {
        SecretString::from(config::DEV_PASSWORD)
    } else {
        (opts.password)().map_err(StartError::Password)?
    };
    if pw.expose_secret().len() > config::MAX_PASSWORD_BYTES {
        return Err(StartError::WrongPassword);
    }
    println!("Unlocking keystore... (Argon2id)");
    // Under PostgreSQL the key files live in the shared database (13-postgres-ha.md §3).
    #[cfg(feature = "postgres")]
    let on_postgres = db.store().postgres().is_some();
    #[cfg(feature = "postgres")]
    let key_files: Arc<dyn KeyFileStore> = if on_postgres {
        Arc::new(crate::runtime::keyfiles::DbKeyFiles::new(db.store().clone()))
    } else {
        Arc::new(KeyDir::new(layout.keystore()))
    };
    #[cfg(not(feature = "postgres"))]
    let key_files: Arc<dyn KeyFileStore> = Arc::new(KeyDir::new(layout.keystore()));
    let locked = {
        let files = key_files.clone();
        tokio::task::spawn_blocking(move || LockedKeystore::open_in(files))
            .await
            .map_err(|e| failed(format!("keystore task failed: {e}")))?
            .map_err(|e| failed(format!("cannot open the keystore: {e}")))?
    };
    let master_file = locked.master().clone();
    let (agents, unreadable) =
        db.call(|s| s.scan_agents()).await.map_err(|e| failed(format!("cannot read agents: {e}")))?;
    for (id, e) in &unreadable {
        // The row was altered outside the daemon; requests touching it answer 500.
        tracing::error!("agent row {id} is unreadable ({e}); its key is not loaded");
    }
    let key_infos = crate::domain::agents::keystore_keys(&agents);
    let candidate = zeroize::Zeroizing::new(pw.expose_secret().as_bytes().to_vec());
    let unlocked = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || -> Result<Option<UnlockedKeystore>, KeystoreError> {
            // One Argon2id run: the verification yields the KEK the unlock reuses.
            let kek = locked.verify(&candidate)?.ok_or(KeystoreError::WrongPassword)?;
            if restricted { Ok(None) } else { locked.unlock_with_kek(kek, &candidate, &key_infos).map(Some) }
        }),
    )
    .await
    .map_err(|_| failed("KEYSTORE_UNLOCK_TIMEOUT: unlocking the keystore took more than 30 s"))?
    .map_err(|e| failed(format!("keystore task failed: {e}")))?;
    let unlocked = match unlocked {
        Ok(u) => u,
        Err(KeystoreError::WrongPassword) => return Err(StartError::WrongPassword),
        Err(e) => return Err(failed(format!("KeyStore unlock failed: {e}"))),
    };
    if key_files.dir().is_some() {
        scan_key_files(&layout, &agents);
    }
    #[cfg(feature = "postgres")]
    let master = if on_postgres { MasterAuth::shared(master_file, db.clone()) } else { MasterAuth::new(master_file) };
    #[cfg(not(feature = "postgres"))]
    let master = MasterAuth::new(master_file);
    master.prime(pw.expose_secret().as_bytes());
    drop(pw);
    let keys_loaded = unlocked.as_ref().map(UnlockedKeystore::len).unwrap_or(0);
    let keystore = Arc::new(KeystoreBackend::over(key_files, unlocked));
    if restricted {
        println!("KeyStore locked (restricted mode: no key decrypted)");
    } else {
        println!("KeyStore unlocked ({keys_loaded} keys loaded)");
    }
    let ledger =
        crate::runtime::signers::ledger_device(&config.ledger).map(|d| Arc::new(LedgerBackend::new(Arc::new(d))));
    let signers = Signers { keystore, ledger };
    let settings = Settings::new(config.clone());

    // Step 4: chain adapters (fail-soft).
    let chains = Arc::new(crate::adapters::chains::Registry::new(clock.clone(), settings.clone()));
    connect_adapters(&chains, &agents, clock.now()).await?;

    // Step 5: bind.
    let listener =
        tokio::time::timeout(Duration::from_secs(5), server::bind(&config.daemon.hostname, config.daemon.port))
            .await
            .map_err(step_timeout("bind"))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => failed(format!("Port {} already in use", config.daemon.port)),
                _ => failed(format!("cannot bind {}:{}: {e}", config.daemon.hostname, config.daemon.port)),
            })?;
    println!("HTTP server listening on {}:{}", config.daemon.hostname, config.daemon.port);

    let app = App::build(Parts {
        settings,
        db,
        clock,
        layout: layout.clone(),
        signers,
        chains,
        master,
        tokens: Tokens::new(jwt),
        nonces,
        kill_switch: ks,
        leadership,
    });
    if ha.is_none() {
        // Rows start-up recovery moved to SUBMITTED hold signed bytes the node may never have
        // received. They go out again before the first request is served: an EVM send taking a
        // nonce first would otherwise supersede them (the confirmation worker would rebroadcast
        // them only after its first interval). Bounded: a node that does not answer delays start
        // by at most this long, and the worker keeps trying. With no SUBMITTED row it is one read.
        match tokio::time::timeout(Duration::from_secs(15), app.pipeline.confirmation_pass()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("rebroadcast of recovered transactions: {e}"),
            Err(_) => tracing::warn!("rebroadcast of recovered transactions: not finished after 15 s"),
        }
    }
    let server = server::spawn(app.clone(), listener);
    crate::runtime::metrics::get().set_enabled(config.metrics.enabled);
    if config.metrics.enabled {
        let (host, port) = (&config.daemon.hostname, config.metrics.port);
        let metrics_listener = server::bind(host, port)
            .await
            .map_err(|e| failed(format!("cannot bind the metrics listener {host}:{port}: {e}")))?;
        server::spawn_metrics(app.clone(), metrics_listener);
        println!("Metrics on http://{host}:{port}/metrics");
    }

    // Step 6: workers — under PostgreSQL the election loop instead; the replica that wins the
    // leader lock recovers and starts them (13-postgres-ha.md §6.2).
    match ha {
        None => {
            crate::app::workers::start_all(&app);
            println!("Background workers started ({})", app.workers.count());
            // Approved or due rows claimed before a crash but never signed execute now (not
            // while the kill switch holds: execution waits for recovery).
            if !app.kill_switch.is_restricted() {
                match app.pipeline.resume_claimed().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("resumed {n} claimed DELAY/APPROVAL transaction(s)"),
                    Err(e) => tracing::error!("cannot resume claimed transactions: {e}"),
                }
            }
        }
        #[cfg(feature = "postgres")]
        Some(ha) => crate::app::leadership::spawn_election(app.clone(), ha.election, ha.reconnect, ha.period),
        #[cfg(not(feature = "postgres"))]
        Some(_) => {}
    }

    // Step 7: PID file, ready line, audit.
    let pid = std::process::id();
    if let Err(e) = lock::write_pid_file(&config.daemon.pid_file) {
        tracing::warn!("cannot write the PID file {}: {e}", config.daemon.pid_file.display());
    }
    // A standby writes nothing: under PostgreSQL the first takeover audits the start.
    if !app.leadership.is_standby() {
        let ev = AuditEvent::new(AuditEventType::DaemonStarted, "system")
            .detail("version", env!("CARGO_PKG_VERSION"))
            .detail("port", config.daemon.port)
            .detail("pid", pid)
            .detail("keysLoaded", keys_loaded)
            .detail("restricted", restricted);
        let ctx = OpCtx::new("system", app.clock.now());
        app.db
            .call(move |s| s.append_audit(ev, &ctx))
            .await
            .map_err(|e| failed(format!("cannot write the audit log: {e}")))?;
    }
    let dev_suffix = if dev_mode { " [DEV MODE]" } else { "" };
    println!(
        "WAIaaS daemon v{} ready on {}:{} (PID: {pid}){dev_suffix}",
        env!("CARGO_PKG_VERSION"),
        config.daemon.hostname,
        config.daemon.port
    );
    let _ = std::io::stdout().flush();
    Ok(Running { app, server, logging: log, lock: instance, pid_file: config.daemon.pid_file.clone() })
}

/// Start step 4: one adapter per (chain, network) of a non-terminated agent, connected in
/// parallel with 10 s each. An unreachable node only marks its adapter unavailable; the start
/// fails only when agents exist and none of their adapters connected.
async fn connect_adapters(
    adapters: &crate::adapters::chains::Registry,
    agents: &[AgentRecord],
    now: u64,
) -> Result<(), StartError> {
    let mut pairs: Vec<_> =
        agents.iter().filter(|a| a.status != AgentStatus::Terminated).map(|a| (a.chain, a.network)).collect();
    pairs.sort_by_key(|(c, n)| (c.as_str(), n.as_str()));
    pairs.dedup();
    if pairs.is_empty() {
        return Ok(());
    }
    let mut tasks = Vec::new();
    for (chain, network) in pairs {
        match adapters.get_or_create(chain, network) {
            Ok(a) => tasks.push(tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(10), a.connect(now)).await;
                (a, r)
            })),
            Err(e) => tracing::warn!("{chain}/{network} adapter: {}", e.message),
        }
    }
    let mut connected = 0;
    for t in tasks {
        let Ok((a, r)) = t.await else { continue };
        match r {
            Ok(Ok(())) => {
                connected += 1;
                println!("{}/{} adapter ready (latency: {}ms)", a.chain(), a.network(), a.conn().latency_ms());
            }
            Ok(Err(e)) => {
                tracing::warn!("{}/{} adapter unavailable, retrying in the background: {e}", a.chain(), a.network())
            }
            Err(_) => {
                a.conn().down("connect timed out".into(), now);
                tracing::warn!(
                    "{}/{} adapter did not connect within 10 s, retrying in the background",
                    a.chain(),
                    a.network()
                )
            }
        }
    }
    if connected == 0 {
        return Err(failed("no chain adapter could connect; check the [rpc] URLs"));
    }
    Ok(())
}

/// Key files at start (03-keys.md §4.4): a file of a TERMINATED agent is deleted; a file with no
/// agent row, or whose agent is not keystore-backed, is logged and left alone.
fn scan_key_files(layout: &Layout, agents: &[AgentRecord]) {
    let Ok(files) = waiaas_backends::keystore::rotate::key_files(&layout.keystore()) else { return };
    for (id, path) in files {
        match agents.iter().find(|a| a.id == id) {
            None => tracing::warn!("key file {} has no agent; left alone", path.display()),
            Some(a) if a.status == AgentStatus::Terminated => match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!("deleted the key file of terminated agent {id}"),
                Err(e) => tracing::warn!("cannot delete the key file of terminated agent {id}: {e}"),
            },
            Some(a) if a.backend != Backend::Keystore => {
                tracing::warn!("key file {} belongs to a {} agent; left alone", path.display(), a.backend)
            }
            Some(_) => {}
        }
    }
}

/// What a PostgreSQL replica keeps from its start for the election loop.
struct HaStart {
    replica_id: String,
    #[cfg(feature = "postgres")]
    election: Arc<waiaas_storage::pg::election::Election>,
    /// To open the election connection again after losing it.
    #[cfg(feature = "postgres")]
    reconnect: crate::app::leadership::Reconnect,
    #[cfg(feature = "postgres")]
    period: Duration,
}

/// Start step 2 under `backend = "postgres"` (13-postgres-ha.md §6.3): reach the database
/// (retrying within the step's 30 s), check its schema, take the replica lock and read the
/// state. A replica starts as a standby and writes nothing here: no recovery, no secret
/// expiry — the takeover does those.
#[cfg(feature = "postgres")]
async fn open_postgres(
    pg: &config::PgConfig,
    dev_mode: bool,
    clock: Clock,
) -> Result<(Store, KillSwitchView, JwtKeys, HaStart), StartError> {
    use waiaas_storage::pg::{PgStore, election};
    let opts = pg.options();
    println!("Database: postgres {}", opts.redacted);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let store = loop {
        let o = opts.clone();
        match tokio::task::spawn_blocking(move || PgStore::connect(o)).await {
            Ok(Ok(s)) => break s,
            Ok(Err(StoreError::Schema(e))) => return Err(StartError::Schema(e)),
            Ok(Err(e)) if tokio::time::Instant::now() + Duration::from_secs(1) < deadline => {
                tracing::warn!("database {} not reachable yet: {e}", opts.redacted);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(Err(e)) => return Err(failed(format!("DATABASE_UNAVAILABLE: {}: {e}", opts.redacted))),
            Err(e) => return Err(failed(format!("database task failed: {e}"))),
        }
    };
    let info = election::ReplicaInfo {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
        pid: u64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: clock.now(),
    };
    let election = election::Election::register(&opts, &info)
        .await
        .map_err(|e| failed(format!("DATABASE_UNAVAILABLE: {}: {e}", opts.redacted)))?
        .ok_or_else(|| StartError::ReplicaBusy(opts.replica_id.clone()))?;
    store.set_dev_mode(dev_mode);
    let store = Store::Postgres(store);
    let (store, ks, jwt) = tokio::task::spawn_blocking(move || -> Result<_, StartError> {
        let fail = |e: StoreError| failed(format!("database: {e}"));
        let secrets =
            store.jwt_secrets().map_err(fail)?.ok_or_else(|| failed("JWT_SECRET_MISSING: run 'waiaas init' first"))?;
        let jwt = JwtKeys::from_secrets(&secrets)
            .ok_or_else(|| failed("JWT_SECRET_MISSING: the stored secret is not 64 hex characters"))?;
        let state = store.kill_switch_state().map_err(fail)?;
        let view = KillSwitchView { status: state.status, activated_at: state.activated_at, reason: state.reason };
        Ok((store, view, jwt))
    })
    .await
    .map_err(|e| failed(format!("database task failed: {e}")))??;
    let ha = HaStart {
        replica_id: opts.replica_id.clone(),
        election: Arc::new(election),
        period: Duration::from_millis(pg.leader_check_ms),
        reconnect: crate::app::leadership::Reconnect { opts, info },
    };
    Ok((store, ks, jwt, ha))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(
    _: &config::PgConfig,
    _: bool,
    _: Clock,
) -> Result<(Store, KillSwitchView, JwtKeys, HaStart), StartError> {
    Err(failed("backend = \"postgres\": this build has no PostgreSQL engine (feature postgres)"))
}

async fn open_database(
    config: &Config,
    dev_mode: bool,
    clock: Clock,
) -> Result<(Store, KillSwitchView, JwtKeys), StartError> {
    let path = config.database.path.clone();
    if !path.exists() {
        return Err(StartError::NotInitialised);
    }
    let cache = config.cache_bytes();
    let config_secret = config.security.jwt_secret.clone();
    let now = clock.now();

    tokio::task::spawn_blocking(move || -> Result<_, StartError> {
        let fail = |e: StoreError| failed(format!("{}: {e}", path.display()));
        let (store, _report) = Store::open(&path, cache).map_err(fail)?;
        store.set_dev_mode(dev_mode);
        store.expire_previous_secret(&OpCtx::new("system", now)).map_err(fail)?;
        let secrets = match store.jwt_secrets().map_err(fail)? {
            Some(s) => s,
            None if !config_secret.is_empty() => store.ensure_jwt_secret(&config_secret, now).map_err(fail)?,
            None => return Err(failed("JWT_SECRET_MISSING: run 'waiaas init' first")),
        };
        let jwt = JwtKeys::from_secrets(&secrets)
            .ok_or_else(|| failed("JWT_SECRET_MISSING: the stored secret is not 64 hex characters"))?;
        let status = store.kill_switch_status().map_err(fail)?;
        let activated_at = store.system_value("kill_switch_activated_at").map_err(fail)?.and_then(|v| v.as_u64());
        let reason =
            store.system_value("kill_switch_reason").map_err(fail)?.and_then(|v| v.as_str().map(str::to_string));
        let report = store.startup_recovery(now).map_err(fail)?;
        if report != Default::default() {
            tracing::info!("startup recovery: {report:?}");
        }
        Ok((store, KillSwitchView { status, activated_at, reason }, jwt))
    })
    .await
    .map_err(|e| failed(format!("database task failed: {e}")))?
}

/// Serves until a signal or `POST /v1/admin/shutdown`, then shuts down (§9.1).
pub(crate) async fn serve(running: Running) {
    let app = running.app.clone();
    spawn_signal_handlers(&app, running.logging.clone());
    let by = app.shutdown.triggered().await;
    shut_down(running, &by).await
}

fn spawn_signal_handlers(app: &Arc<App>, logging: logging::Handle) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [(SignalKind::interrupt(), "SIGINT"), (SignalKind::terminate(), "SIGTERM")] {
        let app = app.clone();
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    // Every further signal is ignored: the first trigger wins (ACC-027).
                    while s.recv().await.is_some() {
                        if !app.shutdown.trigger(name) {
                            tracing::info!("{name} ignored: already shutting down");
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("cannot install the {name} handler: {e}"),
        }
    }
    if let Ok(mut hup) = signal(SignalKind::hangup()) {
        let app = app.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reload_config(&app, &logging).await;
            }
        });
    }
    if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
        let app = app.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                let now = app.clock.now();
                let counts = app.db.call(move |s| s.status_counts(now)).await;
                tracing::info!(
                    "status dump: uptime {}s, in-flight {}, workers {:?}, transactions {:?}",
                    app.uptime(),
                    app.shutdown.in_flight(),
                    app.workers.snapshot(),
                    counts.ok()
                );
            }
        });
    }
}

/// SIGHUP (§9.2): applies the reloadable keys; a reload that fails validation keeps the old
/// configuration entirely.
pub(crate) async fn reload_config(app: &Arc<App>, logging: &logging::Handle) {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let old = app.settings.get();
    let overrides = Overrides { port: Some(old.daemon.port), log_level: None, dev: false };
    let ctx = OpCtx::new("system", app.clock.now());
    match config::load(&app.layout.root, &overrides, &env) {
        Ok(new) => {
            let merged = merge_reloadable(&old, new);
            logging.reconfigure(&merged);
            app.settings.replace(merged);
            app.chains.reload();
            tracing::info!("configuration reloaded");
            let _ = app
                .db
                .call(move |s| s.append_audit(AuditEvent::new(AuditEventType::ConfigReloaded, "system"), &ctx))
                .await;
        }
        Err(e) => {
            tracing::warn!("configuration reload failed, keeping the running configuration: {e}");
            let ev = AuditEvent::new(AuditEventType::ConfigReloadFailed, "system")
                .severity(AuditSeverity::Warning)
                .detail("error", e.to_string());
            let _ = app.db.call(move |s| s.append_audit(ev, &ctx)).await;
        }
    }
}

/// Keeps every non-reloadable key at its running value (logging the ignored changes).
fn merge_reloadable(old: &Config, new: Config) -> Config {
    let mut m = old.clone();
    m.daemon.log_level = new.daemon.log_level;
    m.daemon.log_max_size = new.daemon.log_max_size;
    m.daemon.log_max_files = new.daemon.log_max_files;
    m.daemon.log_json = new.daemon.log_json;
    m.daemon.shutdown_timeout = new.daemon.shutdown_timeout;
    m.rpc = new.rpc;
    m.notifications = new.notifications;
    m.security.rate_limit_global_ip_rpm = new.security.rate_limit_global_ip_rpm;
    m.security.rate_limit_session_rpm = new.security.rate_limit_session_rpm;
    m.security.rate_limit_tx_rpm = new.security.rate_limit_tx_rpm;
    m.security.cors_origins = new.security.cors_origins;
    m.oracle = new.oracle;
    let ignored = [
        ("daemon.hostname", old.daemon.hostname != new.daemon.hostname),
        ("daemon.dev_mode", old.daemon.dev_mode != new.daemon.dev_mode),
        ("daemon.public_url", old.daemon.public_url != new.daemon.public_url),
        (
            "daemon connection limits",
            (old.daemon.max_connections, old.daemon.max_connections_per_ip, old.daemon.header_timeout)
                != (new.daemon.max_connections, new.daemon.max_connections_per_ip, new.daemon.header_timeout),
        ),
        ("daemon.body_timeout", old.daemon.body_timeout != new.daemon.body_timeout),
        ("owner_console.enabled", old.owner_console_enabled != new.owner_console_enabled),
        ("keystore", old.keystore != new.keystore),
        ("database", old.database != new.database),
        ("security.jwt_secret", old.security.jwt_secret != new.security.jwt_secret),
        ("security.nonce_storage", old.security.nonce_storage_redb != new.security.nonce_storage_redb),
        ("ledger", old.ledger != new.ledger),
    ];
    for (key, changed) in ignored {
        if changed {
            tracing::warn!("config change to {key} ignored until restart");
        }
    }
    m
}

/// The graceful shutdown sequence (01-daemon.md §9.1).
async fn shut_down(running: Running, by: &str) {
    let Running { app, server, logging: _logging, lock, pid_file } = running;
    let pid = std::process::id();
    tracing::info!("shutdown initiated by {by}");
    let ctx = OpCtx::new("system", app.clock.now());
    let ev = AuditEvent::new(AuditEventType::DaemonShutdownInitiated, "system").detail("signal", by).detail("pid", pid);
    if let Err(e) = app.db.call(move |s| s.append_audit(ev, &ctx)).await {
        tracing::warn!("cannot audit the shutdown: {e}");
    }

    // Step 1: the force timer runs on its own thread so a stuck runtime cannot stop it.
    let done = Arc::new(AtomicBool::new(false));
    {
        let (done, store, clock, keystore) =
            (done.clone(), app.db.store().clone(), app.clock.clone(), app.signers.keystore.clone());
        let handle = tokio::runtime::Handle::current();
        let timeout = Duration::from_secs(app.settings.get().daemon.shutdown_timeout);
        std::thread::spawn(move || {
            std::thread::sleep(timeout);
            if done.load(Ordering::SeqCst) {
                return;
            }
            tracing::error!("Graceful shutdown timed out, forcing exit");
            let ev = AuditEvent::new(AuditEventType::DaemonForcedShutdown, "system")
                .severity(AuditSeverity::Critical)
                .detail("timeoutSeconds", timeout.as_secs());
            let _ = store.append_audit(ev, &OpCtx::new("system", clock.now()));
            // Zeroize the keys before the process dies without running destructors.
            handle.block_on(keystore.lock());
            std::process::exit(1);
        });
    }

    // Steps 2–4: stop accepting, refuse new requests (the HTTP shutdown guard), drain.
    server.stop_accepting();
    while app.shutdown.in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Step 5: workers.
    app.workers.stop_all().await;
    // Step 6: close the remaining connections.
    server.close_connections().await;
    // Step 7: adapters.
    app.chains.disconnect_all().await;
    // Step 8: keystore lock (zeroize), final audit rows.
    let was_unlocked = app.signers.keystore.is_unlocked().await;
    app.signers.keystore.lock().await;
    let ctx = OpCtx::new("system", app.clock.now());
    let uptime = app.uptime();
    // A standby writes nothing, its stop included.
    let stopped = if app.leadership.is_standby() {
        Ok(0)
    } else {
        app.db
            .call(move |s| {
                if was_unlocked {
                    s.append_audit(
                        AuditEvent::new(AuditEventType::KeystoreLocked, "system").detail("reason", "shutdown"),
                        &ctx,
                    )?;
                }
                s.append_audit(
                    AuditEvent::new(AuditEventType::DaemonStopped, "system")
                        .detail("pid", pid)
                        .detail("uptime", uptime),
                    &ctx,
                )
            })
            .await
    };
    if let Err(e) = stopped {
        tracing::warn!("cannot audit the stop: {e}");
    }
    #[cfg(feature = "postgres")]
    crate::app::leadership::release(&app).await;
    // Step 9: close the database, remove the PID file, release the lock.
    drop(app);
    let _ = std::fs::remove_file(&pid_file);
    drop(lock);
    done.store(true, Ordering::SeqCst);
    tracing::info!("WAIaaS daemon stopped gracefully");
}
