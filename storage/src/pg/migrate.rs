//! The embedded schema migrations and the schema check (13-postgres-ha.md §7).
//!
//! Migrations are numbered SQL files under `storage/migrations/pg/`, compiled into the binary.
//! Each says `-- kind: expand` or `-- kind: contract` on its first line; its checksum is the
//! SHA-256 of the file. Schema changes are expand/contract only — add first, drop in a later
//! release — so the previous binary keeps working on a database migrated for the next one, which
//! is what a rolling upgrade needs: the check accepts extra applied files only if they expand.

use std::sync::LazyLock;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::locks;
use crate::error::{SchemaError, StoreError};

/// Whether a migration only adds (safe for the previous binary) or also removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Adds tables, columns, indexes.
    Expand,
    /// Drops or narrows what an older binary still uses.
    Contract,
}

impl Kind {
    /// `expand` or `contract`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Expand => "expand",
            Kind::Contract => "contract",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "expand" => Some(Kind::Expand),
            "contract" => Some(Kind::Contract),
            _ => None,
        }
    }
}

/// One embedded migration file.
#[derive(Debug)]
pub struct Migration {
    /// `N` of `V000N__name.sql`.
    pub version: u32,
    /// The file name.
    pub file: &'static str,
    /// Its kind (first line).
    pub kind: Kind,
    /// The SQL.
    pub sql: &'static str,
    /// Hex SHA-256 of the file.
    pub checksum: String,
}

const FILES: &[(&str, &str)] = &[("V0001__init.sql", include_str!("../../migrations/pg/V0001__init.sql"))];

/// Every embedded migration, in version order. A malformed file name or kind line is a build
/// mistake, caught by this module's tests.
pub fn embedded() -> &'static [Migration] {
    static ALL: LazyLock<Vec<Migration>> = LazyLock::new(|| {
        FILES
            .iter()
            .map(|(file, sql)| Migration {
                version: file[1..5].parse().expect("V000N__name.sql"),
                file,
                kind: sql
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("-- kind: "))
                    .and_then(|k| Kind::parse(k.trim()))
                    .expect("first line is `-- kind: expand|contract`"),
                sql,
                checksum: hex::encode(Sha256::digest(sql.as_bytes())),
            })
            .collect()
    });
    &ALL
}

/// The version this binary needs (the highest embedded one).
pub fn binary_version() -> u32 {
    embedded().last().map_or(0, |m| m.version)
}

/// One row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The migration's version.
    pub version: u32,
    /// Its kind as recorded.
    pub kind: Kind,
    /// Its checksum as recorded.
    pub checksum: String,
    /// Unix seconds.
    pub applied_at: u64,
}

/// The rows of `schema_migrations`, or `None` when the table does not exist (a database no
/// `db migrate` has run on).
pub async fn applied(client: &Client) -> Result<Option<Vec<Applied>>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(super::map_err)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query("SELECT version, kind, checksum, applied_at FROM schema_migrations ORDER BY version", &[])
        .await
        .map_err(super::map_err)?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get(1);
            Ok(Applied {
                version: u32::try_from(r.get::<_, i32>(0)).map_err(|_| StoreError::Invariant("negative version"))?,
                kind: Kind::parse(&kind).ok_or(StoreError::Invariant("schema_migrations.kind"))?,
                checksum: r.get(2),
                applied_at: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Problems that forbid both `db migrate` and `start`: an applied file whose checksum changed,
/// or an applied contract this binary does not know.
fn tampered_or_newer(applied: &[Applied]) -> Result<(), SchemaError> {
    for a in applied {
        match embedded().iter().find(|m| m.version == a.version) {
            Some(m) if m.checksum != a.checksum => return Err(SchemaError::Modified { version: a.version }),
            Some(_) => {}
            None if a.kind == Kind::Contract => return Err(SchemaError::NewerContract { version: a.version }),
            None => {}
        }
    }
    Ok(())
}

/// The schema check of `start` and every other command: accepted iff every embedded file is
/// applied (unmodified) and any extra applied file is `expand`. Returns the applied version.
pub fn check(applied: Option<&[Applied]>) -> Result<u32, SchemaError> {
    let applied = applied.ok_or(SchemaError::NotInitialised)?;
    tampered_or_newer(applied)?;
    let highest = applied.iter().map(|a| a.version).max().unwrap_or(0);
    if embedded().iter().any(|m| !applied.iter().any(|a| a.version == m.version)) {
        return Err(SchemaError::Pending { applied: highest, needed: binary_version() });
    }
    Ok(highest)
}

/// Reads `schema_migrations` and runs [`check`].
pub async fn check_database(client: &Client) -> Result<u32, StoreError> {
    let applied = applied(client).await?;
    Ok(check(applied.as_deref())?)
}

/// What one `db migrate` run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// `(version, kind, milliseconds)` of each file this run applied, in order.
    pub applied: Vec<(u32, Kind, u64)>,
    /// The schema version afterwards.
    pub version: u32,
}

/// `waiaas db migrate`: under the migrate lock (waits at most 60 s), creates
/// `schema_migrations` if absent, refuses a modified or unknown-contract history, and applies
/// each pending file in its own SERIALIZABLE transaction together with its row (≤ 3 retries).
/// Concurrent runs apply each file once: the second waits for the lock, then finds nothing to do.
pub async fn migrate(client: &mut Client, now: u64) -> Result<MigrateReport, StoreError> {
    client.batch_execute("SET lock_timeout = '60s'; SET statement_timeout = 0").await.map_err(super::map_err)?;
    let (k1, k2) = locks::MIGRATE;
    client.execute("SELECT pg_advisory_lock($1, $2)", &[&k1, &k2]).await.map_err(super::map_err)?;
    let result = migrate_locked(client, now).await;
    // Unlock even after a failure; a lost connection frees the lock by itself.
    let _ = client.execute("SELECT pg_advisory_unlock($1, $2)", &[&k1, &k2]).await;
    result
}

async fn migrate_locked(client: &mut Client, now: u64) -> Result<MigrateReport, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                kind        text NOT NULL CHECK (kind IN ('expand', 'contract')),
                checksum    text NOT NULL,
                applied_at  bigint NOT NULL
            )",
        )
        .await
        .map_err(super::map_err)?;
    let applied = applied(client).await?.unwrap_or_default();
    tampered_or_newer(&applied)?;
    let mut report = MigrateReport { applied: Vec::new(), version: 0 };
    for m in embedded().iter().filter(|m| !applied.iter().any(|a| a.version == m.version)) {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply(client, m, now).await {
                Ok(()) => break,
                Err(e) if attempt < 3 && super::sqlerr::is_retryable(&e) => continue,
                Err(e) => return Err(super::map_err(e)),
            }
        }
        report.applied.push((m.version, m.kind, started.elapsed().as_millis() as u64));
    }
    report.version = check_database(client).await?;
    Ok(report)
}

async fn apply(client: &mut Client, m: &Migration, now: u64) -> Result<(), tokio_postgres::Error> {
    let tx = client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::Serializable).start().await?;
    tx.batch_execute(m.sql).await?;
    tx.execute(
        "INSERT INTO schema_migrations (version, kind, checksum, applied_at) VALUES ($1, $2, $3, $4)",
        &[&(m.version as i32), &m.kind.as_str(), &m.checksum, &(now as i64)],
    )
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: u32, kind: Kind, checksum: &str) -> Applied {
        Applied { version, kind, checksum: checksum.into(), applied_at: 1 }
    }

    #[test]
    fn the_embedded_files_are_numbered_from_one_and_start_with_their_kind() {
        for (i, m) in embedded().iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.file);
            assert_eq!(m.checksum.len(), 64);
        }
        assert_eq!(embedded()[0].kind, Kind::Expand);
    }

    #[test]
    fn the_check_accepts_extra_expands_and_refuses_the_rest() {
        let all: Vec<Applied> = embedded().iter().map(|m| row(m.version, m.kind, &m.checksum)).collect();
        let v = binary_version();
        assert_eq!(check(Some(&all)).unwrap(), v);
        assert!(matches!(check(None), Err(SchemaError::NotInitialised)));
        assert!(matches!(check(Some(&[])), Err(SchemaError::Pending { applied: 0, needed }) if needed == v));

        let mut newer = all.clone();
        newer.push(row(v + 1, Kind::Expand, "x"));
        assert_eq!(check(Some(&newer)).unwrap(), v + 1, "a newer expand is fine for this binary");
        newer.push(row(v + 2, Kind::Contract, "y"));
        assert!(matches!(check(Some(&newer)), Err(SchemaError::NewerContract { version }) if version == v + 2));

        let mut edited = all.clone();
        edited[0].checksum = "0".repeat(64);
        assert!(matches!(check(Some(&edited)), Err(SchemaError::Modified { version: 1 })));
    }
}
