//! Validation of the merged configuration, one function per section (01-daemon.md §2.4).
//! Every error names the key and where its value came from.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::raw;
use super::*;

pub(super) struct Check<'a> {
    layers: &'a Layers,
}

impl Check<'_> {
    pub(super) fn err(&self, section: &str, key: &str, what: String) -> ConfigError {
        ConfigError(format!("[{section}].{key} {what} ({})", self.layers.source(section, key)))
    }

    pub(super) fn range(&self, section: &str, key: &str, v: i64, lo: i64, hi: i64) -> Result<u64, ConfigError> {
        if v < lo || v > hi {
            return Err(self.err(section, key, format!("= {v} is out of range {lo}-{hi}")));
        }
        Ok(v as u64)
    }

    /// `0` (off) or within `lo..=hi`.
    fn off_or_range(&self, section: &str, key: &str, v: i64, lo: i64, hi: i64) -> Result<u64, ConfigError> {
        if v == 0 {
            Ok(0)
        } else {
            self.range(section, key, v, lo, hi)
                .map_err(|_| self.err(section, key, format!("= {v} must be 0 (off) or {lo}-{hi}")))
        }
    }

    pub(super) fn one_of(&self, section: &str, key: &str, v: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        if !allowed.contains(&v) {
            return Err(self.err(section, key, format!("= {v:?} must be one of {}", allowed.join(", "))));
        }
        Ok(())
    }

    fn url(&self, section: &str, key: &str, v: &str) -> Result<(), ConfigError> {
        if !(v.is_empty() || v.starts_with("http://") || v.starts_with("https://")) {
            return Err(self.err(section, key, format!("= {v:?} must be an http:// or https:// URL")));
        }
        Ok(())
    }
}

pub(super) fn resolve_path(data_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { data_dir.join(p) }
}

fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    !scheme.is_empty()
        && !rest.is_empty()
        && !rest.contains('/')
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
}

impl Config {
    /// Validates every section of the merged raw configuration.
    pub(super) fn validate(data_dir: &Path, raw: raw::RawConfig, layers: &Layers) -> Result<Config, ConfigError> {
        let c = Check { layers };
        let mut warnings = Vec::new();
        Ok(Config {
            data_dir: data_dir.to_path_buf(),
            daemon: daemon(&c, &raw.daemon, data_dir)?,
            keystore: keystore(&c, &raw.keystore, &mut warnings)?,
            database: database(&c, &raw.database, data_dir, &mut warnings)?,
            rpc: rpc(&c, &raw.rpc)?,
            notifications: notifications(&c, &raw.notifications)?,
            security: security(&c, &raw.security)?,
            walletconnect_project_id: raw.walletconnect.project_id.clone(),
            ledger: ledger(&c, &raw.ledger)?,
            oracle: oracle(&c, &raw.oracle)?,
            owner_console_enabled: raw.owner_console.enabled,
            metrics: MetricsConfig {
                enabled: raw.metrics.enabled,
                port: c.range("metrics", "port", raw.metrics.port, 1024, 65535)? as u16,
            },
            warnings,
        })
    }
}

/// `[daemon]`.
fn daemon(c: &Check<'_>, d: &raw::RawDaemon, data_dir: &Path) -> Result<DaemonConfig, ConfigError> {
    let port = c.range("daemon", "port", d.port, 1024, 65535)? as u16;
    c.one_of("daemon", "hostname", &d.hostname, &["127.0.0.1", "0.0.0.0"])?;
    let log_level = LogLevel::parse(&d.log_level).ok_or_else(|| {
        c.err("daemon", "log_level", format!("= {:?} must be one of trace, debug, info, warn, error", d.log_level))
    })?;
    let log_max_size =
        parse_size(&d.log_max_size).filter(|s| (1024 * 1024..=1024 * 1024 * 1024).contains(s)).ok_or_else(|| {
            c.err("daemon", "log_max_size", format!("= {:?} must be 1MB-1GB with suffix KB, MB or GB", d.log_max_size))
        })?;
    let daemon = DaemonConfig {
        port,
        hostname: d.hostname.clone(),
        log_level,
        log_file: resolve_path(data_dir, &d.log_file),
        log_max_size,
        log_max_files: c.range("daemon", "log_max_files", d.log_max_files, 1, 100)? as usize,
        log_json: {
            c.one_of("daemon", "log_format", &d.log_format, &["text", "json"])?;
            d.log_format == "json"
        },
        pid_file: resolve_path(data_dir, &d.pid_file),
        shutdown_timeout: c.range("daemon", "shutdown_timeout", d.shutdown_timeout, 5, 300)?,
        dev_mode: d.dev_mode,
        public_url: public_url(c, &d.public_url)?,
        max_connections: c.range("daemon", "max_connections", d.max_connections, 16, 65536)? as usize,
        max_connections_per_ip: c.range("daemon", "max_connections_per_ip", d.max_connections_per_ip, 1, 65536)?
            as usize,
        header_timeout: c.range("daemon", "header_timeout", d.header_timeout, 1, 300)?,
        body_timeout: c.range("daemon", "body_timeout", d.body_timeout, 1, 300)?,
    };
    if daemon.max_connections_per_ip > daemon.max_connections {
        return Err(c.err(
            "daemon",
            "max_connections_per_ip",
            format!(
                "= {} exceeds [daemon].max_connections = {}",
                daemon.max_connections_per_ip, daemon.max_connections
            ),
        ));
    }
    Ok(daemon)
}

/// `[daemon].public_url`: empty, or an `https://` origin — host and optional port, no path,
/// query, fragment or userinfo (11-owner-console.md §1).
fn public_url(c: &Check<'_>, v: &str) -> Result<String, ConfigError> {
    if v.is_empty() {
        return Ok(String::new());
    }
    let bad = || {
        c.err(
            "daemon",
            "public_url",
            format!("= {v:?} must be \"\" or an https:// origin such as \"https://wallet.example.com\""),
        )
    };
    let authority = v.strip_prefix("https://").ok_or_else(bad)?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(bad());
    }
    Ok(v.to_ascii_lowercase())
}

/// `[keystore]`.
fn keystore(c: &Check<'_>, k: &raw::RawKeystore, warnings: &mut Vec<String>) -> Result<KeystoreConfig, ConfigError> {
    let keystore = KeystoreConfig {
        argon2_memory: c.range("keystore", "argon2_memory", k.argon2_memory, 32_768, 1_048_576)? as u32,
        argon2_time: c.range("keystore", "argon2_time", k.argon2_time, 1, 20)? as u32,
        argon2_parallelism: c.range("keystore", "argon2_parallelism", k.argon2_parallelism, 1, 16)? as u32,
        backup_on_rotate: k.backup_on_rotate,
    };
    if keystore.argon2_memory < 65_536 || keystore.argon2_time < 3 || keystore.argon2_parallelism < 4 {
        warnings
            .push("[keystore] Argon2id parameters are below the recommended defaults (m=65536, t=3, p=4)".to_string());
    }
    Ok(keystore)
}

/// `[database]`.
fn database(
    c: &Check<'_>,
    db: &raw::RawDatabase,
    data_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<DatabaseConfig, ConfigError> {
    let database = DatabaseConfig {
        backend: postgres::backend(c, db, data_dir, warnings)?,
        path: resolve_path(data_dir, &db.path),
        cache_size_mb: c.range("database", "cache_size_mb", db.cache_size_mb, 8, 4096)?,
        backup_interval: c.off_or_range("database", "backup_interval", db.backup_interval, 3600, 604_800)?,
        backup_keep: c.range("database", "backup_keep", db.backup_keep, 1, 100)? as usize,
    };
    Ok(database)
}

/// `[rpc]`.
fn rpc(c: &Check<'_>, r: &raw::RawRpc) -> Result<RpcConfig, ConfigError> {
    for (key, v) in [
        ("solana_mainnet", &r.solana_mainnet),
        ("solana_devnet", &r.solana_devnet),
        ("solana_testnet", &r.solana_testnet),
        ("ethereum_mainnet", &r.ethereum_mainnet),
        ("ethereum_testnet", &r.ethereum_testnet),
    ] {
        c.url("rpc", key, v)?;
    }
    let chain_id = |key: &str, v: Option<i64>| -> Result<Option<u64>, ConfigError> {
        v.map(|v| c.range("rpc", key, v, 1, i64::MAX)).transpose()
    };
    for (key, v) in [
        ("ethereum_mainnet_symbol", &r.ethereum_mainnet_symbol),
        ("ethereum_testnet_symbol", &r.ethereum_testnet_symbol),
    ] {
        if v.is_empty() || v.chars().count() > 10 {
            return Err(c.err("rpc", key, format!("= {v:?} must be 1-10 characters")));
        }
    }
    let rpc = RpcConfig {
        solana_mainnet: r.solana_mainnet.clone(),
        solana_devnet: r.solana_devnet.clone(),
        solana_testnet: r.solana_testnet.clone(),
        ethereum_mainnet: r.ethereum_mainnet.clone(),
        ethereum_testnet: r.ethereum_testnet.clone(),
        ethereum_mainnet_chain_id: chain_id("ethereum_mainnet_chain_id", r.ethereum_mainnet_chain_id)?,
        ethereum_testnet_chain_id: chain_id("ethereum_testnet_chain_id", r.ethereum_testnet_chain_id)?,
        ethereum_mainnet_symbol: r.ethereum_mainnet_symbol.clone(),
        ethereum_testnet_symbol: r.ethereum_testnet_symbol.clone(),
        request_timeout: c.range("rpc", "request_timeout", r.request_timeout, 1, 60)?,
    };
    Ok(rpc)
}

/// `[notifications]`.
fn notifications(c: &Check<'_>, n: &raw::RawNotifications) -> Result<NotificationsConfig, ConfigError> {
    let notifications = NotificationsConfig {
        enabled: n.enabled,
        min_channels: c.range("notifications", "min_channels", n.min_channels, 1, 10)?,
        health_check_interval: c.range("notifications", "health_check_interval", n.health_check_interval, 60, 3600)?,
        log_retention_days: c.range("notifications", "log_retention_days", n.log_retention_days, 7, 365)?,
        dedup_ttl: c.range("notifications", "dedup_ttl", n.dedup_ttl, 60, 3600)?,
    };
    Ok(notifications)
}

/// `[security]`.
fn security(c: &Check<'_>, s: &raw::RawSecurity) -> Result<SecurityConfig, ConfigError> {
    let hex64 = s.jwt_secret.len() == 64 && s.jwt_secret.bytes().all(|b| b.is_ascii_hexdigit());
    if !(s.jwt_secret.is_empty() || hex64) {
        return Err(c.err("security", "jwt_secret", "must be empty or exactly 64 hex characters".into()));
    }
    c.one_of("security", "nonce_storage", &s.nonce_storage, &["memory", "redb"])?;
    for o in &s.cors_origins {
        if !is_origin(o) {
            return Err(c.err(
                "security",
                "cors_origins",
                format!("entry {o:?} is not an absolute origin (scheme://host[:port])"),
            ));
        }
    }
    let security = SecurityConfig {
        session_ttl: c.range("security", "session_ttl", s.session_ttl, 300, 604_800)?,
        session_absolute_lifetime: c.range(
            "security",
            "session_absolute_lifetime",
            s.session_absolute_lifetime,
            86_400,
            7_776_000,
        )?,
        default_max_renewals: c.range("security", "default_max_renewals", s.default_max_renewals, 0, 100)? as u32,
        default_renewal_reject_window: c.range(
            "security",
            "default_renewal_reject_window",
            s.default_renewal_reject_window,
            300,
            86_400,
        )?,
        jwt_secret: s.jwt_secret.to_ascii_lowercase(),
        max_sessions_per_agent: c.range("security", "max_sessions_per_agent", s.max_sessions_per_agent, 1, 50)?,
        max_pending_tx: c.range("security", "max_pending_tx", s.max_pending_tx, 1, 100)?,
        nonce_storage_redb: s.nonce_storage == "redb",
        nonce_cache_max: c.range("security", "nonce_cache_max", s.nonce_cache_max, 100, 10_000)? as usize,
        nonce_cache_ttl: c.range("security", "nonce_cache_ttl", s.nonce_cache_ttl, 60, 600)?,
        rate_limit_global_ip_rpm: c.range(
            "security",
            "rate_limit_global_ip_rpm",
            s.rate_limit_global_ip_rpm,
            100,
            10_000,
        )? as u32,
        rate_limit_session_rpm: c.range("security", "rate_limit_session_rpm", s.rate_limit_session_rpm, 10, 5000)?
            as u32,
        rate_limit_tx_rpm: c.range("security", "rate_limit_tx_rpm", s.rate_limit_tx_rpm, 1, 100)? as u32,
        trust_proxy: s.trust_proxy,
        cors_origins: s.cors_origins.clone(),
        policy_defaults_delay_seconds: c.range(
            "security",
            "policy_defaults_delay_seconds",
            s.policy_defaults_delay_seconds,
            60,
            3600,
        )?,
        policy_defaults_approval_timeout: c.range(
            "security",
            "policy_defaults_approval_timeout",
            s.policy_defaults_approval_timeout,
            300,
            86_400,
        )?,
        kill_switch_recovery_wait_owner: c.range(
            "security",
            "kill_switch_recovery_wait_owner",
            s.kill_switch_recovery_wait_owner,
            300,
            86_400,
        )?,
        kill_switch_recovery_wait_no_owner: c.range(
            "security",
            "kill_switch_recovery_wait_no_owner",
            s.kill_switch_recovery_wait_no_owner,
            3600,
            604_800,
        )?,
        integrity_check_interval: c.off_or_range(
            "security",
            "integrity_check_interval",
            s.integrity_check_interval,
            60,
            3600,
        )?,
    };
    let _ = s.kill_switch_recovery_cooldown; // folded into wait_owner while loading
    Ok(security)
}

/// `[ledger]`.
fn ledger(c: &Check<'_>, l: &raw::RawLedger) -> Result<LedgerConfig, ConfigError> {
    c.one_of("ledger", "transport", &l.transport, &["hid", "tcp"])?;
    if l.tcp_address
        .rsplit_once(':')
        .and_then(|(h, p)| (!h.is_empty()).then(|| p.parse::<u16>().ok()).flatten())
        .is_none()
    {
        return Err(c.err("ledger", "tcp_address", format!("= {:?} must be host:port", l.tcp_address)));
    }
    let ledger = LedgerConfig {
        transport: if l.transport == "tcp" { LedgerTransport::Tcp } else { LedgerTransport::Hid },
        tcp_address: l.tcp_address.clone(),
        confirm_timeout: c.range("ledger", "confirm_timeout", l.confirm_timeout, 10, 600)?,
        command_timeout: c.range("ledger", "command_timeout", l.command_timeout, 1, 60)?,
    };
    Ok(ledger)
}

/// `[oracle]`.
fn oracle(c: &Check<'_>, o: &raw::RawOracle) -> Result<OracleConfig, ConfigError> {
    c.one_of("oracle", "provider", &o.provider, &["none", "static", "coingecko"])?;
    c.url("oracle", "coingecko_base_url", &o.coingecko_base_url)?;
    let price_ttl = c.range("oracle", "price_ttl", o.price_ttl, 10, 3600)?;
    let stale_limit = c.range("oracle", "stale_limit", o.stale_limit, 60, 86_400)?;
    if stale_limit < price_ttl {
        return Err(c.err("oracle", "stale_limit", format!("= {stale_limit} must be >= price_ttl ({price_ttl})")));
    }
    let mut static_prices = Vec::new();
    for entry in &o.static_prices {
        let parsed = entry.split_once('=').and_then(|(asset, usd)| {
            let (chain, a) = asset.split_once(':')?;
            let chain = waiaas_storage::Chain::from_str(chain).ok()?;
            let usd = rust_decimal::Decimal::from_str(usd.trim()).ok().filter(|v| *v > rust_decimal::Decimal::ZERO)?;
            let asset = match a {
                "native" => PricedAsset::Native(chain),
                token => PricedAsset::Token(chain, crate::base::address::normalize(chain, token)?),
            };
            Some((asset, usd))
        });
        match parsed {
            Some(p) => static_prices.push(p),
            None => {
                return Err(c.err(
                    "oracle",
                    "static_prices",
                    format!(
                        "entry {entry:?} must look like \"solana:native=150.25\" or \"<chain>:<token address>=<usd>\""
                    ),
                ));
            }
        }
    }
    let oracle = OracleConfig {
        provider: match o.provider.as_str() {
            "static" => OracleProvider::Static,
            "coingecko" => OracleProvider::CoinGecko,
            _ => OracleProvider::None,
        },
        coingecko_base_url: o.coingecko_base_url.trim_end_matches('/').to_string(),
        price_ttl,
        stale_limit,
        static_prices,
    };
    Ok(oracle)
}
