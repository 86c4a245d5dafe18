//! `waiaas backup create | list | restore` (01-daemon.md §4.9, 03-keys.md §9).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use waiaas_backends::keystore::LockedKeystore;
use waiaas_storage::{AuditEvent, AuditEventType, AuditSeverity, OpCtx, Store};

use crate::base::clock::Clock;
use crate::base::datadir::Layout;
use crate::cli::local::keystore::offline_lock;
use crate::cli::{CliError, PasswordArgs, exit, password, remote::client::DaemonClient};
use crate::domain::backup;

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Create an archive (through the daemon when it runs, locally otherwise).
    Create(CreateArgs),
    /// List archives in backups/.
    List,
    /// Restore an archive (the daemon must be stopped).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Write the archive here instead of backups/.
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Keep at most this many manual archives (oldest deleted first).
    #[arg(long, default_value_t = 10)]
    max_backups: usize,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The archive.
    path: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::general(format!("Error: {e}"))
}

pub(crate) fn run(dir: &Path, cmd: BackupCommand) -> Result<(), CliError> {
    let layout = Layout::new(dir.to_path_buf());
    let env: Vec<(String, String)> = std::env::vars().collect();
    match cmd {
        BackupCommand::List => {
            for e in backup::list(&layout).map_err(err)? {
                let (when, agents) =
                    e.manifest.map(|m| (m.created_at, m.agent_count.to_string())).unwrap_or(("?".into(), "?".into()));
                println!("{}  {} bytes  {}  {} agents", e.path.display(), e.size, when, agents);
            }
            Ok(())
        }
        BackupCommand::Create(args) => {
            let env_pw = password::take_env(&args.password.password_env);
            let config = crate::runtime::config::load(dir, &Default::default(), &env)
                .map_err(|e| CliError::general(e.to_string()))?;
            let progress = crate::cli::progress::Progress::start("Creating the backup archive", false);
            let created_path = match crate::daemon::lock::InstanceLock::try_acquire(&layout.lock()) {
                Ok(Ok(lock)) => {
                    // Daemon stopped: do it here, under the lock.
                    let (store, _) = Store::open(&config.database.path, config.cache_bytes()).map_err(err)?;
                    let now = Clock::default().now();
                    let created = backup::create(&layout, now, false, |p| store.snapshot_to(p)).map_err(err)?;
                    let ev = AuditEvent::new(AuditEventType::BackupCreated, "cli")
                        .detail("path", created.path.display().to_string())
                        .detail("agentCount", created.agent_count)
                        .detail("automatic", false);
                    store.append_audit(ev, &OpCtx::new("cli", now)).map_err(err)?;
                    drop(lock);
                    created.path
                }
                _ => {
                    let pw = password::obtain(&args.password, env_pw, false)?;
                    let rt = crate::cli::runtime()?;
                    let client = DaemonClient::new(config.daemon.port, Some(pw));
                    rt.block_on(client.health())?;
                    let v = rt.block_on(client.call(
                        reqwest::Method::POST,
                        "/v1/admin/backup",
                        Some(&serde_json::json!({})),
                    ))?;
                    PathBuf::from(v["path"].as_str().unwrap_or_default())
                }
            };
            drop(progress);
            backup::prune(&layout, false, args.max_backups).map_err(err)?;
            let final_path = match args.output {
                Some(out) => {
                    if out.exists() {
                        return Err(CliError::general(format!(
                            "Error: {} exists; refusing to overwrite",
                            out.display()
                        )));
                    }
                    std::fs::copy(&created_path, &out).map_err(err)?;
                    std::fs::remove_file(&created_path).map_err(err)?;
                    out
                }
                None => created_path,
            };
            println!("Backup created: {}", final_path.display());
            Ok(())
        }
        BackupCommand::Restore(args) => restore(dir, &layout, args, &env),
    }
}

fn restore(dir: &Path, layout: &Layout, args: RestoreArgs, env: &[(String, String)]) -> Result<(), CliError> {
    let env_pw = password::take_env(&args.password.password_env);
    let _lock = offline_lock(layout)?;
    // Validate everything before touching the data directory.
    let (manifest, files) = backup::read_archive(&args.path)
        .map_err(|e| CliError::general(format!("Error: invalid backup archive: {e}")))?;
    let now = Clock::default().now();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let staging = layout.root.join(format!(".restore-{stamp}"));
    // Any failure before the swap removes the staging directory: nothing changed.
    fn or_cleanup<T>(staging: &Path, r: Result<T, CliError>) -> Result<T, CliError> {
        if r.is_err() {
            let _ = std::fs::remove_dir_all(staging);
        }
        r
    }
    or_cleanup(&staging, backup::extract(&files, &staging).map_err(err))?;
    let pw = or_cleanup(&staging, password::obtain(&args.password, env_pw, false))?;
    let keystore_dir = staging.join("keystore");
    let progress = crate::cli::progress::Progress::start("Checking the archive: password, database, key files", false);
    let checked: Result<Vec<String>, CliError> = (|| {
        let locked = LockedKeystore::open(&keystore_dir).map_err(err)?;
        let kek = locked
            .verify(pw.expose_secret().as_bytes())
            .map_err(err)?
            .ok_or_else(|| CliError::new(exit::AUTH, "Error: the archive's master password does not match."))?;
        let (mut store, _) = Store::open(&staging.join("data/waiaas.redb"), 8 << 20).map_err(err)?;
        if let Some(redb) = store.redb_mut()
            && !redb.check_integrity().map_err(err)?
        {
            eprintln!("Warning: redb repaired the archived database during its integrity check");
        }
        let warnings = backup::reconcile(&store, &keystore_dir).map_err(err)?;
        // Every key file must decrypt with the archive's password.
        let infos = crate::domain::agents::keystore_keys(&store.list_agents().map_err(err)?);
        locked
            .unlock_with_kek(kek, pw.expose_secret().as_bytes(), &infos)
            .map_err(|e| CliError::general(format!("Error: {e}")))?;
        Ok(warnings)
    })();
    drop(progress);
    let warnings = or_cleanup(&staging, checked)?;
    for w in warnings {
        eprintln!("Warning: {w}");
    }
    if !args.force {
        if !password::interactive() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(CliError::general("Error: confirmation needed; run with --force to restore without a prompt."));
        }
        eprint!("This replaces config, keystore and database in {}. Continue? [y/N] ", dir.display());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(err)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(CliError::general("Restore cancelled."));
        }
    }
    // A safety archive of the current state first.
    let config = crate::runtime::config::load(dir, &Default::default(), env).ok();
    if let Some(cfg) = &config
        && cfg.database.path.exists()
        && layout.master().exists()
    {
        let (store, _) = Store::open(&cfg.database.path, cfg.cache_bytes()).map_err(err)?;
        let safety = backup::create(layout, now, false, |p| store.snapshot_to(p)).map_err(err)?;
        println!("Safety backup of the current state: {}", safety.path.display());
    }
    // Swap config, keystore and database in.
    let pre = layout.root.join(format!(".pre-restore-{stamp}"));
    waiaas_backends::fsutil::create_private_dir(&pre).map_err(err)?;
    for name in ["config.toml", "keystore", "data"] {
        let current = layout.root.join(name);
        if current.exists() {
            std::fs::rename(&current, pre.join(name)).map_err(err)?;
        }
    }
    for name in ["config.toml", "keystore", "data"] {
        let restored = staging.join(name);
        if restored.exists() {
            std::fs::rename(&restored, layout.root.join(name)).map_err(err)?;
        }
    }
    let _ = std::fs::remove_dir_all(&pre);
    let _ = std::fs::remove_dir_all(&staging);
    let (store, _) = Store::open(&layout.data().join("waiaas.redb"), 8 << 20).map_err(err)?;
    let ev = AuditEvent::new(AuditEventType::KeystoreRestored, "cli")
        .severity(AuditSeverity::Warning)
        .detail("archive", args.path.display().to_string())
        .detail("agentCount", manifest.agent_count);
    store.append_audit(ev, &OpCtx::new("cli", now)).map_err(err)?;
    println!(
        "Restored {} ({} agents). Start the daemon with the archive's master password.",
        args.path.display(),
        manifest.agent_count
    );
    Ok(())
}
