//! `waiaas audit verify [--offline]` (01-daemon.md §4.9): exit 0 when the hash chain is intact,
//! 1 otherwise. `--offline` runs under the instance lock against the database file, with redb's
//! full integrity check first.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::base::datadir::Layout;
use crate::cli::{CliError, PasswordArgs, exit, password, remote::client::DaemonClient};
use crate::daemon::lock::InstanceLock;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the audit log's hash chain.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Verify the database file directly (the daemon must be stopped).
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

fn report(v: &Value) -> Result<(), CliError> {
    if v["valid"] == Value::Bool(true) {
        println!("Audit log intact: {} entries verified (head seq {})", v["checkedEntries"], v["headSeq"]);
        Ok(())
    } else {
        Err(CliError::general(format!(
            "Audit log INVALID: firstInvalidSeq {} ({} entries checked, head seq {})",
            v["firstInvalidSeq"], v["checkedEntries"], v["headSeq"]
        )))
    }
}

pub(crate) fn run(dir: &Path, cmd: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify(args) = cmd;
    let env: Vec<(String, String)> = std::env::vars().collect();
    if args.offline {
        let layout = Layout::new(dir.to_path_buf());
        let _lock = match InstanceLock::try_acquire(&layout.lock()) {
            Ok(Ok(l)) => l,
            Ok(Err(busy)) => {
                let pid = busy.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
                return Err(CliError::new(
                    exit::RUNNING,
                    format!("Error: Daemon is running (PID: {pid}). Stop it first."),
                ));
            }
            Err(e) => return Err(CliError::general(format!("Error: cannot take the instance lock: {e}"))),
        };
        let config = crate::runtime::config::load(dir, &Default::default(), &env)
            .map_err(|e| CliError::general(e.to_string()))?;
        let (mut store, _) = waiaas_storage::Store::open(&config.database.path, config.cache_bytes())
            .map_err(|e| CliError::general(format!("Error: {}: {e}", config.database.path.display())))?;
        if let Some(redb) = store.redb_mut()
            && !redb.check_integrity().map_err(|e| CliError::general(format!("Error: integrity check failed: {e}")))?
        {
            eprintln!("Warning: redb repaired the database file during the integrity check");
        }
        let v = store.verify_audit().map_err(|e| CliError::general(format!("Error: {e}")))?;
        return report(&serde_json::to_value(v).expect("serialisable"));
    }
    let pw = password::take_env(&args.password.password_env);
    let pw = password::obtain(&args.password, pw, false)?;
    let port = crate::runtime::config::load(dir, &Default::default(), &env).map(|c| c.daemon.port).unwrap_or(3100);
    let rt = crate::cli::runtime()?;
    let client = DaemonClient::new(port, Some(pw));
    rt.block_on(client.health())?;
    let v = rt.block_on(client.call(reqwest::Method::GET, "/v1/admin/audit-log/verify", None))?;
    report(&v)
}
