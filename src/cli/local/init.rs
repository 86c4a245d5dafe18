//! `waiaas init` (01-daemon.md §4.2): four idempotent steps — directory, config, database,
//! keystore — so a partly initialised directory can be completed with `--json`.

use std::path::Path;

use clap::Args;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use waiaas_backends::fsutil;
use waiaas_backends::keystore::kdf::KdfParams;
use waiaas_backends::keystore::master::MasterFile;
use waiaas_storage::{InitSeed, Store};

use crate::base::clock::Clock;
use crate::base::datadir::{self, Layout};
use crate::cli::{CliError, PasswordArgs, exit, password};
use crate::daemon::lock::InstanceLock;
use crate::domain::defaults;
use crate::runtime::config::{self, Overrides, schema};

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Never prompt.
    #[arg(long)]
    pub(crate) non_interactive: bool,
    #[command(flatten)]
    pub(crate) password_source: PasswordArgs,
    /// The master password itself (scripted setups).
    #[arg(long, value_name = "PW")]
    pub(crate) master_password: Option<String>,
    /// Machine-readable output; idempotent on an initialised directory.
    #[arg(long)]
    pub(crate) json: bool,
    /// Delete the data directory and start over.
    #[arg(long)]
    pub(crate) force: bool,
    /// Init, start in the background, create an agent and a session (01-daemon.md §4.12).
    #[arg(long)]
    pub(crate) quickstart: bool,
    /// Quickstart: the agent's chain (solana or ethereum).
    #[arg(long, requires = "quickstart")]
    pub(crate) chain: Option<String>,
    /// Quickstart: the agent's network.
    #[arg(long, requires = "quickstart")]
    pub(crate) network: Option<String>,
    /// Quickstart: the agent's owner address.
    #[arg(long, requires = "quickstart")]
    pub(crate) owner: Option<String>,
    /// Quickstart: the agent's name.
    #[arg(long, requires = "quickstart", default_value = "agent-01")]
    pub(crate) agent_name: String,
    /// Quickstart: the session lifetime in seconds.
    #[arg(long, requires = "quickstart", default_value_t = 86_400)]
    pub(crate) expires_in: u64,
    /// Quickstart: the master password.
    #[arg(long, value_name = "PW", requires = "quickstart")]
    pub(crate) password: Option<String>,
    /// Quickstart: dev mode (password "waiaas-dev").
    #[arg(long, requires = "quickstart")]
    pub(crate) dev: bool,
    /// Print nothing on success (quickstart prints its own progress).
    #[arg(skip)]
    pub(crate) quiet: bool,
}

/// Which steps are already done.
#[derive(Debug, Clone, Copy)]
struct Steps {
    directory: bool,
    config: bool,
    database: bool,
    keystore: bool,
}

impl InitArgs {
    /// A non-interactive init with `password` (first-run init on start, 12-operations.md §1).
    pub(crate) fn first_run(password: String) -> InitArgs {
        InitArgs {
            non_interactive: true,
            password_source: Default::default(),
            master_password: Some(password),
            json: false,
            force: false,
            quickstart: false,
            chain: None,
            network: None,
            owner: None,
            agent_name: String::new(),
            expires_in: 0,
            password: None,
            dev: false,
            quiet: false,
        }
    }
}

impl Steps {
    fn inspect(l: &Layout) -> Steps {
        Steps {
            directory: [l.root.clone(), l.data(), l.keystore(), l.logs(), l.backups()].iter().all(|d| d.is_dir()),
            config: l.config().is_file(),
            database: l.data().join("waiaas.redb").is_file(),
            keystore: l.master().is_file(),
        }
    }
    fn any(&self) -> bool {
        self.config || self.database || self.keystore
    }
    fn all(&self) -> bool {
        self.directory && self.config && self.database && self.keystore
    }
}

fn word(done_before: bool) -> &'static str {
    if done_before { "exists" } else { "created" }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::general(format!("Error: {what}: {e}"))
}

/// Under `backend = "postgres"`, the shared database (`None` under redb); one that
/// `db migrate` has not prepared exits 3.
#[cfg(feature = "postgres")]
fn shared_db(config: &config::Config) -> Result<Option<waiaas_storage::pg::PgStore>, CliError> {
    let crate::runtime::config::StorageBackend::Postgres(pg) = &config.database.backend else { return Ok(None) };
    waiaas_storage::pg::PgStore::connect(pg.options()).map(Some).map_err(|e| match e {
        waiaas_storage::StoreError::Schema(s @ waiaas_storage::SchemaError::NotInitialised) => {
            CliError::new(crate::cli::exit::NOT_RUNNING, format!("Error: {s}"))
        }
        e => io_err("cannot open the database", e),
    })
}

/// Seeds the shared database unless it is seeded already (one SERIALIZABLE transaction).
#[cfg(feature = "postgres")]
fn seed_postgres(store: &waiaas_storage::pg::PgStore, jwt_secret: String) -> Result<(), CliError> {
    let clock = Clock::default();
    let seed = InitSeed {
        jwt_secret,
        policies: defaults::default_policies(&clock),
        auto_stop_rules: defaults::default_auto_stop_rules(&clock),
    };
    store.seed_initial(&seed, clock.now()).map_err(|e| io_err("cannot seed the database", e))
}

/// A new master.json for `pw`: one Argon2id run, with a progress line unless `quiet`.
fn derive_master(pw: &SecretString, params: KdfParams, quiet: bool) -> Result<MasterFile, CliError> {
    let progress = crate::cli::progress::Progress::start(
        format!("Deriving the key-encryption key (Argon2id, {} MiB)", params.memory_kib / 1024),
        quiet,
    );
    let (master, _kek) = MasterFile::create(pw.expose_secret().as_bytes(), params)
        .map_err(|e| io_err("cannot derive the master key", e))?;
    drop(progress);
    Ok(master)
}

/// Under `backend = "postgres"`, the keystore step (13-postgres-ha.md §7): master.json goes into
/// the shared database, or — when another replica's `init` put one there — the password is
/// checked against it (a different password: exit 4). Nothing is written to `keystore/`.
#[cfg(feature = "postgres")]
fn keystore_postgres(
    store: &waiaas_storage::pg::PgStore,
    pw: &SecretString,
    params: KdfParams,
    quiet: bool,
) -> Result<(), CliError> {
    let verify = |bytes: &[u8]| -> Result<(), CliError> {
        let master = MasterFile::from_json(bytes).map_err(|e| io_err("the database's master.json", e))?;
        match master.verify(pw.expose_secret().as_bytes()) {
            Ok(Some(_)) => Ok(()),
            _ => Err(CliError::new(
                exit::AUTH,
                "Error: the master password does not match the shared keystore in the database",
            )),
        }
    };
    if let Some(bytes) = store.keystore_master().map_err(|e| io_err("cannot read the keystore", e))? {
        return verify(&bytes);
    }
    let master = derive_master(pw, params, quiet)?;
    if store.put_keystore_master(&master.to_json()).map_err(|e| io_err("cannot store master.json", e))? {
        return Ok(());
    }
    // Another replica's `init` stored one first: this password must open it.
    let bytes = store.keystore_master().map_err(|e| io_err("cannot read the keystore", e))?.unwrap_or_default();
    verify(&bytes)
}

/// A directory initialised on redb and then pointed at PostgreSQL: its master.json becomes the
/// shared database's, unless the database has one already (that one wins; this replica must be
/// started with its password).
#[cfg(feature = "postgres")]
fn adopt_local_master(store: &waiaas_storage::pg::PgStore, layout: &Layout) -> Result<(), CliError> {
    let Ok(bytes) = std::fs::read(layout.master()) else { return Ok(()) };
    MasterFile::from_json(&bytes).map_err(|e| io_err("master.json", e))?;
    store.put_keystore_master(&bytes).map_err(|e| io_err("cannot store master.json", e))?;
    Ok(())
}

pub(crate) fn run(dir: &Path, args: InitArgs) -> Result<(), CliError> {
    if args.quickstart {
        return crate::cli::local::quickstart::run(dir, args);
    }
    let layout = Layout::new(dir.to_path_buf());
    // The environment variable is read (and removed) first, while the process is single-threaded.
    let env_pw = password::take_env(&args.password_source.password_env);
    if !args.force {
        crate::base::datadir::check_owner(&layout).map_err(|e| CliError::new(exit::NOT_RUNNING, e.to_string()))?;
    }

    if args.force && layout.root.exists() {
        if layout.lock().exists()
            && let Ok(Err(busy)) = InstanceLock::try_acquire(&layout.lock())
        {
            let pid = busy.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
            return Err(CliError::new(exit::RUNNING, format!("Error: Daemon is running (PID: {pid}). Stop it first.")));
        }
        std::fs::remove_dir_all(&layout.root).map_err(|e| io_err("cannot delete the data directory", e))?;
    }

    let before = Steps::inspect(&layout);
    if before.any() {
        if !args.json {
            return Err(CliError::general(format!(
                "Error: Already initialized at {}\nUse 'waiaas init --force' to reinitialize (WARNING: all data will be deleted)",
                layout.root.display()
            )));
        }
        if before.all() {
            // The directory is whole; a shared PostgreSQL database may still be unseeded (this
            // replica joins a database another `init` did not create).
            #[cfg(feature = "postgres")]
            {
                let env: Vec<(String, String)> = std::env::vars().collect();
                let config = config::load(&layout.root, &Overrides::default(), &env)
                    .map_err(|e| CliError::general(e.to_string()))?;
                let mut secret = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                let jwt_secret = if config.security.jwt_secret.is_empty() {
                    hex::encode(secret)
                } else {
                    config.security.jwt_secret.clone()
                };
                if let Some(store) = shared_db(&config)? {
                    seed_postgres(&store, jwt_secret)?;
                    adopt_local_master(&store, &layout)?;
                }
            }
            print_json(&layout, true, before);
            return Ok(());
        }
    }

    let password = if before.keystore {
        None
    } else {
        let pw = match args.master_password {
            Some(pw) => SecretString::from(pw),
            None if args.non_interactive => match env_pw {
                Some(pw) => pw,
                None => match password::file_source(&args.password_source) {
                    Some(p) => password::read_file(&p)?,
                    None => {
                        return Err(CliError::general(
                            "Error: Master password not provided. Set WAIAAS_MASTER_PASSWORD or use --password-file.",
                        ));
                    }
                },
            },
            None => password::obtain(&args.password_source, env_pw, true).map_err(|e| {
                if e.message.starts_with("No TTY") {
                    CliError::general(
                        "Error: Master password not provided. Set WAIAAS_MASTER_PASSWORD or use --password-file.",
                    )
                } else {
                    e
                }
            })?,
        };
        password::check_new(&pw)?;
        Some(pw)
    };

    if let Some(w) = datadir::umask_warning() {
        eprintln!("{w}");
    }

    // Step: directory.
    for d in [layout.root.clone(), layout.data(), layout.keystore(), layout.logs(), layout.backups()] {
        fsutil::create_private_dir(&d).map_err(|e| io_err(&format!("cannot create {}", d.display()), e))?;
    }
    if let Some(w) = datadir::network_fs_warning(&layout.root) {
        eprintln!("{w}");
    }

    // Step: config (only if absent). The same fresh secret seeds the database below.
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut jwt_secret = hex::encode(secret);
    if !before.config {
        fsutil::write_atomic(&layout.config(), schema::commented_config(&jwt_secret).as_bytes(), 0o600)
            .map_err(|e| io_err("cannot write config.toml", e))?;
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config =
        config::load(&layout.root, &Overrides::default(), &env).map_err(|e| CliError::general(e.to_string()))?;
    for w in &config.warnings {
        eprintln!("Warning: {w}");
    }
    if before.config && !config.security.jwt_secret.is_empty() {
        jwt_secret = config.security.jwt_secret.clone();
    }

    // Step: database. Under PostgreSQL the seed is one SERIALIZABLE transaction that does
    // nothing when the database is already seeded (13-postgres-ha.md §7): a second replica's
    // `init` with the same URL joins it.
    #[cfg(feature = "postgres")]
    let shared = shared_db(&config)?;
    #[cfg(feature = "postgres")]
    if let Some(store) = &shared {
        seed_postgres(store, jwt_secret.clone())?;
    }
    let on_redb = matches!(config.database.backend, crate::runtime::config::StorageBackend::Redb);
    if on_redb && !before.database {
        let clock = Clock::default();
        let path = layout.data().join("waiaas.redb");
        let store = Store::create(&path, clock.now()).map_err(|e| io_err("cannot create the database", e))?;
        let seed = InitSeed {
            jwt_secret,
            policies: defaults::default_policies(&clock),
            auto_stop_rules: defaults::default_auto_stop_rules(&clock),
        };
        store.seed_initial(&seed, clock.now()).map_err(|e| io_err("cannot seed the database", e))?;
    }

    // Step: keystore.
    if let Some(pw) = password {
        let params = KdfParams {
            memory_kib: config.keystore.argon2_memory,
            time: config.keystore.argon2_time,
            parallelism: config.keystore.argon2_parallelism,
        };
        #[cfg(feature = "postgres")]
        if let Some(store) = &shared {
            keystore_postgres(store, &pw, params, args.json || args.quiet)?;
            return finish(&layout, &config, (args.json, args.quiet), before);
        }
        let master = derive_master(&pw, params, args.json || args.quiet)?;
        master.save(&layout.master()).map_err(|e| io_err("cannot write master.json", e))?;
    }
    finish(&layout, &config, (args.json, args.quiet), before)
}

/// What `init` prints at the end.
fn finish(
    layout: &Layout,
    config: &config::Config,
    (json, quiet): (bool, bool),
    before: Steps,
) -> Result<(), CliError> {
    if json {
        print_json(layout, false, before);
    } else if !quiet {
        println!("WAIaaS initialized successfully!");
        println!("  Data directory: {}", layout.root.display());
        println!("  Config:         {}", layout.config().display());
        println!();
        println!("Next steps:");
        println!("  waiaas start");
        println!("  waiaas agent create --name <n>");
        println!("  waiaas agent create --owner <address>");
        if config.walletconnect_project_id.is_empty() {
            println!();
            println!("WalletConnect project_id not set; owner wallet pairing is disabled.");
        }
    }
    Ok(())
}

fn print_json(layout: &Layout, already: bool, before: Steps) {
    let v = json!({
        "success": true,
        "alreadyInitialized": already,
        "dataDir": layout.root.display().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "steps": {
            "directory": word(before.directory),
            "config": word(before.config),
            "database": word(before.database),
            "keystore": word(before.keystore),
        }
    });
    println!("{v}");
}
