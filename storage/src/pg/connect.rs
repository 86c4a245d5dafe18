//! Connecting to PostgreSQL (13-postgres-ha.md §2): the URL stays a secret, TLS is rustls with
//! verified certificates, and every connection carries the session settings in its startup
//! packet (no extra round trip): the three timeouts, `synchronous_commit = on` and
//! `application_name = waiaas/<replica_id>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{StoreError, Unavailability};

/// What the engine needs to connect; the daemon builds it from its validated `[database]`.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://…` (a secret: never logged).
    pub url: SecretString,
    /// The URL as it may be shown: `postgres://user:***@host:port/db`.
    pub redacted: String,
    /// Pooled connections.
    pub pool_size: usize,
    /// Connect timeout, and the longest wait for a pooled connection.
    pub connect_timeout: Duration,
    /// `lock_timeout`.
    pub lock_timeout_ms: u64,
    /// `statement_timeout`.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`.
    pub idle_tx_timeout_ms: u64,
    /// TCP keepalive idle time (election connection).
    pub keepalive: Duration,
    /// This replica's id.
    pub replica_id: String,
    /// PEM roots for TLS (`None` = the webpki roots).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions").field("url", &self.redacted).field("replica_id", &self.replica_id).finish()
    }
}

/// The TLS connector every connection uses. A server that refuses TLS gets a plain connection
/// only where the URL allows it (`sslmode` unset, `disable` or `prefer`, which configuration
/// permits on loopback and Unix sockets alone); `require` fails instead.
pub type Tls = tokio_postgres_rustls::MakeRustlsConnect;

impl PgOptions {
    /// The client configuration: URL, session settings, timeouts and keepalives.
    pub fn config(&self) -> Result<tokio_postgres::Config, StoreError> {
        // rustls always verifies the certificate, so libpq's verify-ca / verify-full are what
        // `require` already means here; tokio-postgres knows only the libpq names up to require.
        let text = self
            .url
            .expose_secret()
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut cfg: tokio_postgres::Config = text.parse().map_err(|_| StoreError::Pg {
            sqlstate: String::new(),
            message: format!("{} is not a usable PostgreSQL URL", self.redacted),
        })?;
        cfg.application_name(format!("waiaas/{}", self.replica_id))
            .options(format!(
                "-c lock_timeout={} -c statement_timeout={} -c idle_in_transaction_session_timeout={} -c synchronous_commit=on",
                self.lock_timeout_ms, self.statement_timeout_ms, self.idle_tx_timeout_ms
            ))
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(self.keepalive)
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        Ok(cfg)
    }

    /// The rustls connector: `ca_file`'s roots, or the webpki roots.
    pub fn tls(&self) -> Result<Tls, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots.add(cert?).map_err(|e| StoreError::Pg {
                        sqlstate: String::new(),
                        message: format!("{}: {e}", path.display()),
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Pg { sqlstate: String::new(), message: e.to_string() })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// One connection outside any pool (migrations, the election connection, `db status`);
    /// its driver task runs on the current runtime until the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let cfg = self.config()?;
        let tls = self.tls()?;
        let (client, connection) = tokio::time::timeout(self.connect_timeout, cfg.connect(tls))
            .await
            .map_err(|_| StoreError::Unavailable { reason: Unavailability::Unreachable })?
            .map_err(super::map_err)?;
        tokio::spawn(async move {
            // The error (if any) reaches the client as a closed connection.
            let _ = connection.await;
        });
        Ok(client)
    }
}
