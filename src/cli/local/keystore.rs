//! `waiaas keystore change-password` (03-keys.md §6): offline, under the instance lock.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use waiaas_backends::keystore::kdf::KdfParams;
use waiaas_backends::keystore::{KeystoreError, LockedKeystore, rotate};
use waiaas_storage::{AuditEvent, AuditEventType, AuditSeverity, OpCtx, Store};

use crate::base::clock::Clock;
use crate::base::datadir::Layout;
use crate::cli::{CliError, PasswordArgs, exit, password};

#[derive(Debug, Subcommand)]
pub(crate) enum KeystoreCommand {
    /// Change the master password (the daemon must be stopped).
    ChangePassword(ChangePasswordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ChangePasswordArgs {
    #[command(flatten)]
    password: PasswordArgs,
    /// Read the new password from this file's first line instead of prompting twice.
    #[arg(long, value_name = "PATH")]
    new_password_file: Option<PathBuf>,
}

/// Takes the instance lock for an offline command, or exits 2 naming the running daemon.
pub(crate) fn offline_lock(layout: &Layout) -> Result<crate::daemon::lock::InstanceLock, CliError> {
    match crate::daemon::lock::InstanceLock::try_acquire(&layout.lock()) {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(busy)) => {
            let pid = busy.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
            Err(CliError::new(exit::RUNNING, format!("Error: Daemon is running (PID: {pid}). Stop it first.")))
        }
        Err(e) => Err(CliError::general(format!("Error: cannot take the instance lock: {e}"))),
    }
}

pub(crate) fn run(dir: &Path, cmd: KeystoreCommand) -> Result<(), CliError> {
    let KeystoreCommand::ChangePassword(args) = cmd;
    let env_pw = password::take_env(&args.password.password_env);
    let layout = Layout::new(dir.to_path_buf());
    if !layout.master().exists() {
        // Under PostgreSQL master.json is in the shared database (13-postgres-ha.md §7), and
        // changing its password there is not built yet.
        if layout.config().is_file()
            && let Ok(c) = crate::runtime::config::load(dir, &Default::default(), &std::env::vars().collect::<Vec<_>>())
            && !matches!(c.database.backend, crate::runtime::config::StorageBackend::Redb)
        {
            return Err(CliError::general(
                "Error: keystore change-password is not supported under backend = \"postgres\" yet \
                 (the key files are in the database)",
            ));
        }
        return Err(CliError::new(exit::NOT_RUNNING, "Data directory not found. Run 'waiaas init' first."));
    }
    let _lock = offline_lock(&layout)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config =
        crate::runtime::config::load(dir, &Default::default(), &env).map_err(|e| CliError::general(e.to_string()))?;
    let old = password::obtain(&args.password, env_pw, false)?;
    let locked = LockedKeystore::open(&layout.keystore()).map_err(|e| CliError::general(format!("Error: {e}")))?;
    if locked.verify(old.expose_secret().as_bytes()).map_err(|e| CliError::general(format!("Error: {e}")))?.is_none() {
        return Err(CliError::new(exit::AUTH, "Error: Invalid master password."));
    }
    let new = match &args.new_password_file {
        Some(p) => password::read_file(p)?,
        None if password::interactive() => {
            let a = password::prompt("New master password: ")?;
            let b = password::prompt("Confirm new master password: ")?;
            if a.expose_secret() != b.expose_secret() {
                return Err(CliError::general("Error: Passwords do not match."));
            }
            a
        }
        None => {
            return Err(CliError::general("Error: no TTY to prompt for the new password; use --new-password-file."));
        }
    };
    password::check_new(&new)?;
    if new.expose_secret() == old.expose_secret() {
        return Err(CliError::general("Error: the new password must differ from the current one."));
    }
    let clock = Clock::default();
    let store_path = config.database.path.clone();
    if config.keystore.backup_on_rotate {
        let (store, _) =
            Store::open(&store_path, config.cache_bytes()).map_err(|e| CliError::general(format!("Error: {e}")))?;
        let created = crate::domain::backup::create(&layout, clock.now(), false, |p| store.snapshot_to(p))
            .map_err(|e| CliError::general(format!("Error: backup before the password change failed: {e}")))?;
        println!("Backup written to {}", created.path.display());
    }
    let params = KdfParams {
        memory_kib: config.keystore.argon2_memory,
        time: config.keystore.argon2_time,
        parallelism: config.keystore.argon2_parallelism,
    };
    let progress = crate::cli::progress::Progress::start("Re-encrypting the key files (Argon2id)", false);
    let staged = rotate::stage(&locked, old.expose_secret().as_bytes(), new.expose_secret().as_bytes(), params)
        .map_err(|e| match e {
            KeystoreError::WrongPassword => CliError::new(exit::AUTH, "Error: Invalid master password."),
            other => CliError::general(format!("Error: {other}")),
        })?;
    let files = staged.files;
    progress.step(format!("Writing {files} re-encrypted key files"));
    staged.commit().and_then(|c| c.apply()).map_err(|e| CliError::general(format!("Error: {e}")))?;
    drop(progress);
    let (store, _) =
        Store::open(&store_path, config.cache_bytes()).map_err(|e| CliError::general(format!("Error: {e}")))?;
    let ev = AuditEvent::new(AuditEventType::MasterPasswordChanged, "cli")
        .severity(AuditSeverity::Warning)
        .detail("keyFiles", files as u64);
    store.append_audit(ev, &OpCtx::new("cli", clock.now())).map_err(|e| CliError::general(format!("Error: {e}")))?;
    drop::<SecretString>(new);
    println!("Master password changed ({files} key files re-encrypted).");
    Ok(())
}
