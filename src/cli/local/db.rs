//! `waiaas db migrate | status` (13-postgres-ha.md §7, §6.3): the database's schema and, under
//! PostgreSQL, who leads — without a running daemon.
//!
//! - `migrate`: under postgres, applies the embedded migrations (concurrent runs apply each file
//!   once); under redb, runs the file's in-place upgrade with the daemon stopped.
//! - `status`: migrations applied / embedded / pending, and under postgres the leader row and
//!   every replica seen, with whether it is live (its replica lock is held).
//! - `copy --to <url>`: moves this data directory's redb database and `keystore/` into an
//!   empty, migrated PostgreSQL database in one checked transaction (the daemon stopped). The
//!   source is never changed: going back is `backend = "redb"`.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

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
    /// Copy this data directory's redb database and keystore into an empty PostgreSQL database.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The target database URL (postgres://…); it must be migrated ('waiaas db migrate') and
    /// empty.
    #[arg(long, value_name = "URL")]
    to: String,
    /// The replica whose host has the Ledger device; Ledger agents are pinned to it
    /// (default: this data directory's replica id).
    #[arg(long, value_name = "REPLICA_ID")]
    pin_ledger: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
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
    let (json_out, migrate) = match cmd {
        DbCommand::Migrate(a) => (a.json, true),
        DbCommand::Status(a) => (a.json, false),
        #[cfg(feature = "postgres")]
        DbCommand::Copy(args) => return copy::run(dir, &config, args),
        #[cfg(not(feature = "postgres"))]
        DbCommand::Copy(_) => return Err(CliError::general("Error: built without feature postgres")),
    };
    match &config.database.backend {
        StorageBackend::Redb if migrate => redb_migrate(dir, &config, json_out),
        StorageBackend::Redb => redb_status(&config, json_out),
        #[cfg(feature = "postgres")]
        StorageBackend::Postgres(pg) => {
            let rt = crate::cli::runtime()?;
            if migrate { rt.block_on(pg::migrate(pg, json_out)) } else { rt.block_on(pg::status(pg, json_out)) }
        }
        #[cfg(not(feature = "postgres"))]
        StorageBackend::Postgres(_) => Err(CliError::general("Error: built without feature postgres")),
    }
}

fn print(json_out: bool, value: &Value, text: &str) {
    if json_out {
        println!("{value}");
    } else {
        print!("{text}");
    }
}

/// The instance lock of an offline command: exit 2 while the daemon runs.
fn offline(layout: &Layout) -> Result<InstanceLock, CliError> {
    match InstanceLock::try_acquire(&layout.lock()) {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(busy)) => {
            let pid = busy.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
            Err(CliError::new(exit::RUNNING, format!("Error: Daemon is running (PID: {pid}). Stop it first.")))
        }
        Err(e) => Err(CliError::general(format!("Error: cannot take the instance lock: {e}"))),
    }
}

/// The redb upgrade of 02-storage.md §9, under the instance lock (the daemon must be stopped).
fn redb_migrate(dir: &Path, config: &Config, json_out: bool) -> Result<(), CliError> {
    let layout = Layout::new(dir.to_path_buf());
    let _lock = offline(&layout)?;
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
    use crate::base::clock::Clock;
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

#[cfg(feature = "postgres")]
mod copy {
    use super::*;
    use crate::base::clock::Clock;
    use waiaas_storage::pg::{CopyError, KeyBytes, PgStore};

    /// `waiaas db copy --to <url>` (13-postgres-ha.md §7).
    pub(super) fn run(dir: &Path, config: &Config, args: CopyArgs) -> Result<(), CliError> {
        let layout = Layout::new(dir.to_path_buf());
        let _lock = offline(&layout)?;
        let target = config::PgConfig::copy_target(&args.to).map_err(|e| CliError::general(format!("Error: {e}")))?;
        let path = &config.database.path;
        if !path.exists() {
            return Err(CliError::new(exit::NOT_RUNNING, "Data directory not found. Run 'waiaas init' first."));
        }
        // The source, upgraded to this binary's schema first, read in one transaction.
        let (source, _) = waiaas_storage::Store::open(path, config.cache_bytes())
            .map_err(|e| CliError::general(format!("Error: {}: {e}", path.display())))?;
        let dump = source
            .redb()
            .ok_or_else(|| CliError::general("Error: the source is not a redb file"))?
            .dump()
            .map_err(|e| CliError::general(format!("Error: cannot read {}: {e}", path.display())))?;
        let files = key_bytes(&layout)?;
        let pin = args.pin_ledger.unwrap_or_else(|| config::postgres::default_replica_id(dir));
        let pins: Vec<(uuid::Uuid, String)> = dump
            .agents()
            .iter()
            .filter(|a| a.backend == waiaas_storage::Backend::Ledger)
            .map(|a| (a.id, pin.clone()))
            .collect();
        let store = PgStore::connect(target.options()).map_err(|e| match e {
            waiaas_storage::StoreError::Schema(s @ waiaas_storage::SchemaError::NotInitialised) => CliError::new(
                exit::NOT_RUNNING,
                format!("Error: {s} (the target: run 'waiaas db migrate' with its URL first)"),
            ),
            e => CliError::general(format!("Error: {}: {e}", target.url.redacted())),
        })?;
        let report = store.copy_from(&dump, &files, &pins, Clock::default().now()).map_err(|e| match e {
            CopyError::LeaderBusy => CliError::new(exit::RUNNING, format!("Error: {e}")),
            e => CliError::general(format!("Error: {e}")),
        })?;
        let (seq, hash) = &report.audit_head;
        let counts: serde_json::Map<String, Value> =
            report.counts.iter().map(|(t, n)| (t.to_string(), json!(n))).collect();
        let value = json!({
            "target": target.url.redacted(),
            "counts": counts,
            "auditHead": {"seq": seq, "hash": hash},
            "keyFiles": report.keys,
            "ledgerPinned": report.pinned,
        });
        let mut text = format!("Copied {} into {}\n", path.display(), target.url.redacted());
        for (t, n) in &report.counts {
            text.push_str(&format!("  {t:<24} {n}\n"));
        }
        text.push_str(&format!("  key files                {}\n", report.keys));
        text.push_str(&format!("Audit head: seq {seq}, hash {hash}\n"));
        text.push_str(
            "Set [database] backend = \"postgres\" and url to run on it; this directory's redb is unchanged.\n",
        );
        print(args.json, &value, &text);
        Ok(())
    }

    /// master.json and every key file of `keystore/`, as bytes.
    fn key_bytes(layout: &Layout) -> Result<KeyBytes, CliError> {
        let err = |what: String| CliError::general(format!("Error: {what}"));
        let master = std::fs::read(layout.master()).map_err(|e| err(format!("{}: {e}", layout.master().display())))?;
        let mut keys = Vec::new();
        let listed = waiaas_backends::keystore::rotate::key_files(&layout.keystore())
            .map_err(|e| err(format!("{}: {e}", layout.keystore().display())))?;
        for (agent, path) in listed {
            keys.push((agent, std::fs::read(&path).map_err(|e| err(format!("{}: {e}", path.display())))?));
        }
        Ok(KeyBytes { master, keys })
    }
}
