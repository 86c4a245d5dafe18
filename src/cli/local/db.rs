//! `waiaas db migrate | status` (13-postgres-ha.md §7, §6.3): the database's schema and, under
//! PostgreSQL, who leads — without a running daemon.
//!
//! - `migrate`: under postgres, applies the embedded migrations (concurrent runs apply each file
//!   once); under redb, runs the file's in-place upgrade with the daemon stopped.
//! - `status`: migrations applied / embedded / pending, and under postgres the leader row and
//!   every replica seen, with whether it is live (its replica lock is held).

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::base::clock::Clock;
use crate::base::datadir::Layout;
use crate::cli::{CliError, exit};
use crate::daemon::lock::InstanceLock;
use crate::runtime::config::{self, Config, StorageBackend};

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Apply the embedded schema migrations (postgres) or upgrade the database file (redb).
    Migrate(JsonArgs),
    /// Show the schema version and, under postgres, the leader and the replicas.
    Status(JsonArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn load(dir: &Path) -> Result<Config, CliError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    config::load(dir, &Default::default(), &env).map_err(|e| CliError::general(format!("Error: {e}")))
}

pub(crate) fn run(dir: &Path, cmd: DbCommand) -> Result<(), CliError> {
    let config = load(dir)?;
    match (&config.database.backend, cmd) {
        (StorageBackend::Redb, DbCommand::Migrate(a)) => redb_migrate(dir, &config, a.json),
        (StorageBackend::Redb, DbCommand::Status(a)) => redb_status(&config, a.json),
        #[cfg(feature = "postgres")]
        (StorageBackend::Postgres(pg), cmd) => {
            let rt = crate::cli::runtime()?;
            match cmd {
                DbCommand::Migrate(a) => rt.block_on(pg::migrate(pg, a.json)),
                DbCommand::Status(a) => rt.block_on(pg::status(pg, a.json)),
            }
        }
        #[cfg(not(feature = "postgres"))]
        (StorageBackend::Postgres(_), _) => Err(CliError::general("Error: built without feature postgres")),
    }
}

fn print(json_out: bool, value: &Value, text: &str) {
    if json_out {
        println!("{value}");
    } else {
        print!("{text}");
    }
}

/// The redb upgrade of 02-storage.md §9, under the instance lock (the daemon must be stopped).
fn redb_migrate(dir: &Path, config: &Config, json_out: bool) -> Result<(), CliError> {
    let layout = Layout::new(dir.to_path_buf());
    let _lock = match InstanceLock::try_acquire(&layout.lock()) {
        Ok(Ok(l)) => l,
        Ok(Err(busy)) => {
            let pid = busy.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
            return Err(CliError::new(exit::RUNNING, format!("Error: Daemon is running (PID: {pid}). Stop it first.")));
        }
        Err(e) => return Err(CliError::general(format!("Error: cannot take the instance lock: {e}"))),
    };
    let path = &config.database.path;
    if !path.exists() {
        return Err(CliError::new(exit::NOT_RUNNING, "Data directory not found. Run 'waiaas init' first."));
    }
    let (_store, report) = waiaas_storage::Store::open(path, config.cache_bytes())
        .map_err(|e| CliError::general(format!("Error: {}: {e}", path.display())))?;
    let text = if report.found_version == report.version {
        format!("Schema up to date (v{})\n", report.version)
    } else {
        format!("Upgraded {} from schema v{} to v{}\n", path.display(), report.found_version, report.version)
    };
    let value = json!({"backend": "redb", "foundVersion": report.found_version, "version": report.version});
    print(json_out, &value, &text);
    Ok(())
}

fn redb_status(config: &Config, json_out: bool) -> Result<(), CliError> {
    let path = &config.database.path;
    let value = json!({
        "backend": "redb",
        "path": path.display().to_string(),
        "binaryVersion": waiaas_storage::SCHEMA_VERSION,
        "exists": path.exists(),
    });
    let text =
        format!("Database: redb {} (this binary writes schema v{})\n", path.display(), waiaas_storage::SCHEMA_VERSION);
    print(json_out, &value, &text);
    Ok(())
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use waiaas_storage::pg::migrate;
    use waiaas_storage::{SchemaError, StoreError};

    fn unreachable(redacted: &str, e: StoreError) -> CliError {
        CliError::general(format!("Error: database {redacted}: {e}"))
    }

    fn schema_exit(e: &SchemaError) -> u8 {
        match e {
            SchemaError::NotInitialised => exit::NOT_RUNNING,
            _ => exit::GENERAL,
        }
    }

    pub(super) async fn migrate(pg: &config::PgConfig, json_out: bool) -> Result<(), CliError> {
        let opts = pg.options();
        let mut client = opts.connect().await.map_err(|e| unreachable(&opts.redacted, e))?;
        let report = match migrate::migrate(&mut client, Clock::default().now()).await {
            Ok(r) => r,
            Err(StoreError::Schema(e)) => return Err(CliError::new(schema_exit(&e), format!("Error: {e}"))),
            Err(e) => return Err(unreachable(&opts.redacted, e)),
        };
        let mut text = String::new();
        for (v, kind, ms) in &report.applied {
            text.push_str(&format!("Applied V{v:04} ({}) in {ms} ms\n", kind.as_str()));
        }
        if report.applied.is_empty() {
            text.push_str(&format!("Schema up to date (v{})\n", report.version));
        }
        let applied: Vec<Value> =
            report.applied.iter().map(|(v, kind, ms)| json!({"version": v, "kind": kind.as_str(), "ms": ms})).collect();
        print(json_out, &json!({"backend": "postgres", "applied": applied, "version": report.version}), &text);
        Ok(())
    }

    pub(super) async fn status(pg: &config::PgConfig, json_out: bool) -> Result<(), CliError> {
        let opts = pg.options();
        let client = opts.connect().await.map_err(|e| unreachable(&opts.redacted, e))?;
        let applied = migrate::applied(&client).await.map_err(|e| unreachable(&opts.redacted, e))?;
        let embedded = migrate::embedded();
        let applied_list = applied.clone().unwrap_or_default();
        let pending: Vec<u32> = embedded
            .iter()
            .filter(|m| !applied_list.iter().any(|a| a.version == m.version))
            .map(|m| m.version)
            .collect();
        let check = migrate::check(applied.as_deref());
        let (leader, replicas) = if applied.is_some() && check.is_ok() {
            let db = waiaas_storage::pg::status::read(&client).await.map_err(|e| unreachable(&opts.redacted, e))?;
            (Some(db.0), db.1)
        } else {
            (None, Vec::new())
        };
        let mut text = format!("Database: postgres {}\n", opts.redacted);
        text.push_str(&format!(
            "Migrations: {} applied, binary v{}, pending {}\n",
            applied_list.len(),
            migrate::binary_version(),
            if pending.is_empty() { "none".to_string() } else { format!("{pending:?}") }
        ));
        if let Err(e) = &check {
            text.push_str(&format!("Schema: {e}\n"));
        }
        if let Some(l) = &leader {
            match &l.replica_id {
                Some(id) => {
                    text.push_str(&format!("Leader: {id} (epoch {}, since {})\n", l.epoch, l.since.unwrap_or(0)))
                }
                None => text.push_str(&format!("Leader: none yet (epoch {})\n", l.epoch)),
            }
        }
        for r in &replicas {
            text.push_str(&format!(
                "Replica: {} host {} pid {} version {} started {} {}\n",
                r.replica_id,
                r.host,
                r.pid,
                r.version,
                r.started_at,
                if r.live { "live" } else { "gone" }
            ));
        }
        let value = json!({
            "backend": "postgres",
            "url": opts.redacted,
            "migrations": {
                "applied": applied_list.iter().map(|a| json!({"version": a.version, "kind": a.kind.as_str(), "appliedAt": a.applied_at})).collect::<Vec<_>>(),
                "binary": migrate::binary_version(),
                "pending": pending,
                "error": check.as_ref().err().map(|e| e.to_string()),
            },
            "leader": leader.as_ref().map(|l| json!({"replicaId": l.replica_id, "epoch": l.epoch, "since": l.since})),
            "replicas": replicas.iter().map(|r| json!({
                "replicaId": r.replica_id, "host": r.host, "pid": r.pid, "version": r.version,
                "startedAt": r.started_at, "live": r.live,
            })).collect::<Vec<_>>(),
        });
        print(json_out, &value, &text);
        Ok(())
    }
}
