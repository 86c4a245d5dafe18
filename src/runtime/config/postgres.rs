//! `[database]` for `backend = "postgres"` (13-postgres-ha.md §2): which backend, and under
//! PostgreSQL its URL (a secret), pool, timeouts, election cadence and replica id.
//!
//! The URL is never part of an error or a `Debug` line: errors name the key and where its value
//! came from, and [`PgUrl`] prints as `postgres://user:***@host:port/db`. A host that is not
//! loopback (or a Unix socket) needs `sslmode=require` (or `verify-ca`/`verify-full`): the
//! password and every state change would otherwise cross the network in clear.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::ConfigError;
use super::raw::RawDatabase;
use super::validate::{Check, resolve_path};

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageBackend {
    /// One embedded redb file (the default).
    Redb,
    /// A PostgreSQL database shared by replicas (a build without feature `postgres` refuses it
    /// after validating every key).
    Postgres(Box<PgConfig>),
}

/// Validated PostgreSQL settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgConfig {
    pub(crate) url: PgUrl,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: u64,
    pub(crate) lock_timeout_ms: u64,
    pub(crate) statement_timeout_ms: u64,
    pub(crate) idle_tx_timeout_ms: u64,
    pub(crate) leader_check_ms: u64,
    pub(crate) keepalive_s: u64,
    pub(crate) replica_id: String,
    pub(crate) ca_file: Option<PathBuf>,
}

/// The database URL: only [`PgUrl::expose`] gives the text; everything else shows
/// [`PgUrl::redacted`].
#[derive(Clone)]
pub(crate) struct PgUrl {
    secret: SecretString,
    redacted: String,
}

impl PgUrl {
    /// The URL itself, for the connection only.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// `postgres://user:***@host:port/db`.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl PartialEq for PgUrl {
    fn eq(&self, other: &Self) -> bool {
        self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl Eq for PgUrl {}

/// The libpq keywords a URL may carry as query parameters.
const QUERY_KEYS: &[&str] = &["host", "port", "dbname", "user", "password", "sslmode", "application_name"];
const SSLMODES: &[&str] = &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// Why a URL is refused, without its text.
fn check_url(text: &str) -> Result<PgUrl, String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("must be a postgres:// or postgresql:// URL".into());
    }
    let mut host = url.host_str().unwrap_or("").to_string();
    let mut sslmode = None;
    for (k, v) in url.query_pairs() {
        if !QUERY_KEYS.contains(&k.as_ref()) {
            return Err(format!("has the parameter {k:?}; allowed: {}", QUERY_KEYS.join(", ")));
        }
        match k.as_ref() {
            "host" => host = v.into_owned(),
            "sslmode" => {
                if !SSLMODES.contains(&v.as_ref()) {
                    return Err(format!("has sslmode {v:?}; one of {}", SSLMODES.join(", ")));
                }
                sslmode = Some(v.into_owned());
            }
            _ => {}
        }
    }
    let local = host.is_empty()
        || host.starts_with('/')
        || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let encrypted = matches!(sslmode.as_deref(), Some("require" | "verify-ca" | "verify-full"));
    if !local && !encrypted {
        return Err(format!(
            "points at {host}, which is not loopback: add sslmode=require (TLS with a verified certificate)"
        ));
    }
    let user = if url.username().is_empty() { String::new() } else { format!("{}:***@", url.username()) };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let redacted = format!("{}://{user}{}{port}{}", url.scheme(), url.host_str().unwrap_or(""), url.path());
    Ok(PgUrl { secret: SecretString::from(text.to_string()), redacted })
}

/// `<hostname>-<first 8 hex of SHA-256(absolute data directory)>`.
pub(crate) fn default_replica_id(data_dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(55).collect();
    let abs = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = hex::encode(&Sha256::digest(abs.as_os_str().as_encoded_bytes())[..4]);
    format!("{}-{hash}", if host.is_empty() { "waiaas" } else { &host })
}

/// `[database].backend` and, under postgres, the keys only it reads.
pub(super) fn backend(
    c: &Check<'_>,
    db: &RawDatabase,
    data_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<StorageBackend, ConfigError> {
    c.one_of("database", "backend", &db.backend, &["redb", "postgres"])?;
    if db.backend == "redb" {
        return Ok(StorageBackend::Redb);
    }
    let text = match (db.url.is_empty(), db.url_file.is_empty()) {
        (false, true) => db.url.clone(),
        (true, false) => {
            let path = resolve_path(data_dir, &db.url_file);
            let content = std::fs::read_to_string(&path)
                .map_err(|e| c.err("database", "url_file", format!("cannot be read ({}: {e})", path.display())))?;
            if let Ok(meta) = std::fs::metadata(&path) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    warnings
                        .push(format!("[database].url_file {} is readable by others; chmod 600 it", path.display()));
                }
            }
            content.lines().next().unwrap_or("").trim().to_string()
        }
        (true, true) => {
            return Err(c.err("database", "url", "is required with backend = \"postgres\" (or set url_file)".into()));
        }
        (false, false) => return Err(c.err("database", "url", "and url_file are both set; keep one".into())),
    };
    let key = if db.url.is_empty() { "url_file" } else { "url" };
    let url = check_url(&text).map_err(|why| c.err("database", key, why))?;
    let replica_id = if db.replica_id.is_empty() { default_replica_id(data_dir) } else { db.replica_id.clone() };
    if !(1..=64).contains(&replica_id.len())
        || !replica_id.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    {
        return Err(c.err("database", "replica_id", format!("= {replica_id:?} must be 1-64 of A-Z a-z 0-9 . _ -")));
    }
    let pg = PgConfig {
        url,
        pool_size: c.range("database", "pool_size", db.pool_size, 2, 256)? as usize,
        connect_timeout: c.range("database", "connect_timeout", db.connect_timeout, 1, 60)?,
        lock_timeout_ms: c.range("database", "lock_timeout_ms", db.lock_timeout_ms, 100, 60_000)?,
        statement_timeout_ms: c.range("database", "statement_timeout_ms", db.statement_timeout_ms, 1000, 300_000)?,
        idle_tx_timeout_ms: c.range("database", "idle_tx_timeout_ms", db.idle_tx_timeout_ms, 1000, 60_000)?,
        leader_check_ms: c.range("database", "leader_check_ms", db.leader_check_ms, 100, 5000)?,
        keepalive_s: c.range("database", "keepalive_s", db.keepalive_s, 1, 60)?,
        replica_id,
        ca_file: (!db.ca_file.is_empty()).then(|| resolve_path(data_dir, &db.ca_file)),
    };
    if cfg!(feature = "postgres") {
        return Ok(StorageBackend::Postgres(Box::new(pg)));
    }
    Err(c.err(
        "database",
        "backend",
        format!(
            "= \"postgres\" is not available in this build (built without feature postgres; database {}, replica {})",
            pg.url.redacted(),
            pg.replica_id
        ),
    ))
}

#[cfg(feature = "postgres")]
impl PgConfig {
    /// The target of `waiaas db copy --to <url>`: the URL checked like `[database].url`
    /// (`--to` is the "key" an error names), the defaults otherwise, and a statement timeout
    /// long enough for one big copy transaction.
    pub(crate) fn copy_target(url: &str) -> Result<PgConfig, String> {
        let url = check_url(url).map_err(|why| format!("--to {why}"))?;
        Ok(PgConfig {
            url,
            pool_size: 2,
            connect_timeout: 5,
            lock_timeout_ms: 5000,
            statement_timeout_ms: 300_000,
            idle_tx_timeout_ms: 60_000,
            leader_check_ms: 500,
            keepalive_s: 5,
            replica_id: format!("db-copy-{}", std::process::id()),
            ca_file: None,
        })
    }

    /// What the storage engine needs to connect.
    pub(crate) fn options(&self) -> waiaas_storage::pg::PgOptions {
        use std::time::Duration;
        waiaas_storage::pg::PgOptions {
            url: SecretString::from(self.url.expose().to_string()),
            redacted: self.url.redacted().to_string(),
            pool_size: self.pool_size,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            lock_timeout_ms: self.lock_timeout_ms,
            statement_timeout_ms: self.statement_timeout_ms,
            idle_tx_timeout_ms: self.idle_tx_timeout_ms,
            keepalive: Duration::from_secs(self.keepalive_s),
            replica_id: self.replica_id.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown() {
        let ok = check_url("postgres://waiaas:s3cret@127.0.0.1:5432/waiaas").unwrap();
        assert_eq!(ok.redacted(), "postgres://waiaas:***@127.0.0.1:5432/waiaas");
        assert_eq!(format!("{ok:?}"), "postgres://waiaas:***@127.0.0.1:5432/waiaas");
        assert_eq!(ok.expose(), "postgres://waiaas:s3cret@127.0.0.1:5432/waiaas");
        for local in [
            "postgresql://u@localhost/db",
            "postgres://u@[::1]/db",
            "postgres:///db?host=/var/run/postgresql",
            "postgres://u:p@db.example.com/db?sslmode=require",
            "postgres://u:p@10.0.0.5:6432/db?sslmode=verify-full&application_name=x",
        ] {
            check_url(local).unwrap_or_else(|e| panic!("{local}: {e}"));
        }
        for (bad, why) in [
            ("mysql://u:s3cret@127.0.0.1/db", "postgres://"),
            ("postgres://u:s3cret@10.0.0.5/db", "sslmode=require"),
            ("postgres://u:s3cret@10.0.0.5/db?sslmode=prefer", "sslmode=require"),
            ("postgres://u:s3cret@127.0.0.1/db?options=-c%20x", "parameter \"options\""),
            ("postgres://u:s3cret@127.0.0.1/db?sslmode=maybe", "sslmode \"maybe\""),
            ("not a url s3cret", "not a URL"),
        ] {
            let e = check_url(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "the password leaked: {e}");
        }
    }

    #[test]
    fn the_default_replica_id_is_stable_per_data_directory() {
        let a = default_replica_id(Path::new("/srv/waiaas-a"));
        assert_eq!(a, default_replica_id(Path::new("/srv/waiaas-a")));
        assert_ne!(a, default_replica_id(Path::new("/srv/waiaas-b")));
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{a}");
    }
}
