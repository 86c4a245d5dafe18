//! Configuration (01-daemon.md §2): built-in defaults, then `config.toml`, then `WAIAAS_*`
//! environment variables, then CLI flags, merged key by key and validated once.
//!
//! Loading is two-staged: the merged TOML is deserialised into the raw structs of `raw.rs`
//! (unknown fields denied), then [`Config::validate`] range-checks every key and resolves paths.
//! Every error is a `CONFIG_LOAD_ERROR` that names the key and where its value came from (the
//! file and line, or the environment variable).

pub(crate) mod postgres;
pub(crate) use postgres::{PgConfig, StorageBackend};
mod raw;
pub(crate) mod schema;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use schema::{KEYS, SECTIONS, Ty};

/// The fixed master password of a dev-mode data directory (01-daemon.md §3.4).
pub(crate) const DEV_PASSWORD: &str = "waiaas-dev";

/// The longest master password accepted, in bytes (01-daemon.md §3.1).
pub(crate) const MAX_PASSWORD_BYTES: usize = 128;

/// A configuration error; the CLI prints it and exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub(crate) String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CONFIG_LOAD_ERROR: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File { path: PathBuf, line: Option<usize> },
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::File { path, line: Some(l) } => write!(f, "{} line {l}", path.display()),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// CLI flags that override the file and the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) port: Option<u16>,
    pub(crate) log_level: Option<String>,
    pub(crate) dev: bool,
}

/// Environment variables that are never configuration (01-daemon.md §2.2).
const NOT_CONFIG: &[&str] = &["WAIAAS_DATA_DIR", "WAIAAS_MASTER_PASSWORD", "WAIAAS_MASTER_PASSWORD_FILE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub(crate) fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DaemonConfig {
    pub(crate) port: u16,
    pub(crate) hostname: String,
    pub(crate) log_level: LogLevel,
    pub(crate) log_file: PathBuf,
    pub(crate) log_max_size: u64,
    pub(crate) log_max_files: usize,
    /// `log_format = "json"`.
    pub(crate) log_json: bool,
    pub(crate) pid_file: PathBuf,
    pub(crate) shutdown_timeout: u64,
    pub(crate) dev_mode: bool,
    /// `""` or an `https://` origin (validated, lowercase).
    pub(crate) public_url: String,
    /// Connection limits and timeouts of the HTTP listener (issue #22).
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) header_timeout: u64,
    pub(crate) body_timeout: u64,
}

/// `[metrics]` (12-operations.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricsConfig {
    pub(crate) enabled: bool,
    pub(crate) port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeystoreConfig {
    pub(crate) argon2_memory: u32,
    pub(crate) argon2_time: u32,
    pub(crate) argon2_parallelism: u32,
    pub(crate) backup_on_rotate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseConfig {
    pub(crate) path: PathBuf,
    pub(crate) cache_size_mb: u64,
    pub(crate) backup_interval: u64,
    pub(crate) backup_keep: usize,
    /// Which storage backend; `Postgres` carries its validated settings.
    pub(crate) backend: postgres::StorageBackend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcConfig {
    pub(crate) solana_mainnet: String,
    pub(crate) solana_devnet: String,
    pub(crate) solana_testnet: String,
    pub(crate) ethereum_mainnet: String,
    pub(crate) ethereum_testnet: String,
    pub(crate) ethereum_mainnet_chain_id: Option<u64>,
    pub(crate) ethereum_testnet_chain_id: Option<u64>,
    pub(crate) ethereum_mainnet_symbol: String,
    pub(crate) ethereum_testnet_symbol: String,
    pub(crate) request_timeout: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotificationsConfig {
    pub(crate) enabled: bool,
    pub(crate) min_channels: u64,
    pub(crate) health_check_interval: u64,
    pub(crate) log_retention_days: u64,
    pub(crate) dedup_ttl: u64,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecurityConfig {
    pub(crate) session_ttl: u64,
    pub(crate) session_absolute_lifetime: u64,
    pub(crate) default_max_renewals: u32,
    pub(crate) default_renewal_reject_window: u64,
    pub(crate) jwt_secret: String,
    pub(crate) max_sessions_per_agent: u64,
    pub(crate) max_pending_tx: u64,
    pub(crate) nonce_storage_redb: bool,
    pub(crate) nonce_cache_max: usize,
    pub(crate) nonce_cache_ttl: u64,
    pub(crate) rate_limit_global_ip_rpm: u32,
    pub(crate) rate_limit_session_rpm: u32,
    pub(crate) rate_limit_tx_rpm: u32,
    pub(crate) trust_proxy: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) policy_defaults_delay_seconds: u64,
    pub(crate) policy_defaults_approval_timeout: u64,
    pub(crate) kill_switch_recovery_wait_owner: u64,
    pub(crate) kill_switch_recovery_wait_no_owner: u64,
    pub(crate) integrity_check_interval: u64,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // jwt_secret is never printed (ACC-242).
        f.debug_struct("SecurityConfig").field("jwt_secret", &"[REDACTED]").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LedgerTransport {
    Hid,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LedgerConfig {
    pub(crate) transport: LedgerTransport,
    pub(crate) tcp_address: String,
    pub(crate) confirm_timeout: u64,
    pub(crate) command_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OracleProvider {
    None,
    Static,
    CoinGecko,
}

/// What a price is for: a chain's native coin or one of its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PricedAsset {
    Native(waiaas_storage::Chain),
    /// The token address as the chain stores it.
    Token(waiaas_storage::Chain, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OracleConfig {
    pub(crate) provider: OracleProvider,
    pub(crate) coingecko_base_url: String,
    pub(crate) price_ttl: u64,
    pub(crate) stale_limit: u64,
    /// `static_prices`, parsed.
    pub(crate) static_prices: Vec<(PricedAsset, rust_decimal::Decimal)>,
}

/// The validated configuration with absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    pub(crate) daemon: DaemonConfig,
    pub(crate) keystore: KeystoreConfig,
    pub(crate) database: DatabaseConfig,
    pub(crate) rpc: RpcConfig,
    pub(crate) notifications: NotificationsConfig,
    pub(crate) security: SecurityConfig,
    pub(crate) walletconnect_project_id: String,
    pub(crate) ledger: LedgerConfig,
    pub(crate) oracle: OracleConfig,
    pub(crate) metrics: MetricsConfig,
    /// `[owner_console].enabled`.
    pub(crate) owner_console_enabled: bool,
    /// Non-fatal findings (values below the recommended defaults, …).
    pub(crate) warnings: Vec<String>,
}

/// Finds the 1-based line of `key` inside `[section]` in a flat TOML text.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = name.trim().to_string();
        } else if current == section {
            let k = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if k == key && line.contains('=') {
                return Some(i + 1);
            }
        }
    }
    None
}

fn line_of_section(text: &str, section: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim().trim_start_matches('[').split(']').next().map(str::trim) == Some(section)
                && l.trim().starts_with('[')
        })
        .map(|i| i + 1)
}

fn type_matches(ty: Ty, v: &Value) -> bool {
    match (ty, v) {
        (Ty::Int, Value::Integer(_)) | (Ty::Bool, Value::Boolean(_)) | (Ty::Str, Value::String(_)) => true,
        (Ty::StrArray, Value::Array(items)) => items.iter().all(|i| matches!(i, Value::String(_))),
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Converts an environment string by the key's type (01-daemon.md §2.3 step 5).
fn convert_env(ty: Ty, s: &str) -> Option<Value> {
    match ty {
        Ty::Int => s.trim().parse::<i64>().ok().map(Value::Integer),
        Ty::Bool => match s {
            "true" => Some(Value::Boolean(true)),
            "false" => Some(Value::Boolean(false)),
            _ => None,
        },
        Ty::Str => Some(Value::String(s.to_string())),
        Ty::StrArray => serde_json::from_str::<Vec<String>>(s)
            .ok()
            .map(|v| Value::Array(v.into_iter().map(Value::String).collect())),
    }
}

struct Layers {
    merged: Table,
    sources: HashMap<(String, String), Source>,
}

impl Layers {
    fn set(&mut self, section: &str, key: &str, v: Value, source: Source) {
        self.merged
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("sections are tables")
            .insert(key.to_string(), v);
        self.sources.insert((section.to_string(), key.to_string()), source);
    }

    fn source(&self, section: &str, key: &str) -> Source {
        self.sources.get(&(section.to_string(), key.to_string())).cloned().unwrap_or(Source::Default)
    }

    fn has_non_default(&self, section: &str, key: &str) -> bool {
        !matches!(self.source(section, key), Source::Default)
    }
}

/// Loads the configuration of `data_dir`: defaults, `config.toml` (missing = all defaults),
/// the given environment, then `overrides`.
pub(crate) fn load(data_dir: &Path, overrides: &Overrides, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let path = data_dir.join("config.toml");
    let text = match backends_read(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
    };
    load_from(data_dir, &path, text.as_deref(), overrides, env)
}

fn backends_read(path: &Path) -> std::io::Result<String> {
    let bytes = waiaas_backends::fsutil::read_nofollow(path)?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "config.toml is not UTF-8"))
}

pub(crate) fn load_from(
    data_dir: &Path,
    path: &Path,
    text: Option<&str>,
    overrides: &Overrides,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut layers = Layers { merged: Table::new(), sources: HashMap::new() };
    // 1. Built-in defaults.
    for k in KEYS {
        if let Some(lit) = k.default {
            let v: Table = toml::from_str(&format!("v = {lit}")).expect("schema defaults are valid TOML");
            layers.set(k.section, k.key, v["v"].clone(), Source::Default);
        }
    }
    // 2. The file.
    if let Some(text) = text {
        let file: Table = toml::from_str(text)
            .map_err(|e| ConfigError(format!("{} is not valid TOML: {}", path.display(), e.to_string().trim())))?;
        for (section, value) in &file {
            let at = |line: Option<usize>| Source::File { path: path.to_path_buf(), line };
            if !SECTIONS.contains(&section.as_str()) {
                return Err(ConfigError(format!(
                    "Unknown section [{section}] ({}). Allowed sections: {}",
                    at(line_of_section(text, section)),
                    SECTIONS.join(", ")
                )));
            }
            let Value::Table(entries) = value else {
                return Err(ConfigError(format!(
                    "{section} must be a section ([{section}]), not a value ({})",
                    at(None)
                )));
            };
            for (key, v) in entries {
                let nested = matches!(v, Value::Table(_))
                    || matches!(v, Value::Array(items) if items.iter().any(|i| matches!(i, Value::Table(_))));
                if nested {
                    return Err(ConfigError(format!(
                        "Nested section detected: [{section}.{key}]. Use flattened keys such as solana_mainnet. ({})",
                        at(None)
                    )));
                }
                let Some(spec) = schema::find(section, key) else {
                    return Err(ConfigError(format!(
                        "[{section}].{key} is not a known key ({})",
                        at(line_of(text, section, key))
                    )));
                };
                if !type_matches(spec.ty, v) {
                    return Err(ConfigError(format!(
                        "[{section}].{key} must be {}, found {} ({})",
                        spec.ty.name(),
                        type_name(v),
                        at(line_of(text, section, key))
                    )));
                }
                layers.set(section, key, v.clone(), at(line_of(text, section, key)));
            }
        }
    }
    // 3. Environment.
    let mut env: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with("WAIAAS_")).collect();
    env.sort();
    for (name, value) in env {
        if NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let rest = name["WAIAAS_".len()..].to_lowercase();
        // Known sections, longest first: `owner_console_enabled` is [owner_console].enabled.
        let mut by_length: Vec<&&str> = SECTIONS.iter().collect();
        by_length.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let Some((section, key)) =
            by_length.iter().find_map(|s| rest.strip_prefix(**s).and_then(|k| k.strip_prefix('_')).map(|k| (**s, k)))
        else {
            continue; // client-side variables share the namespace
        };
        if key.is_empty() {
            continue;
        }
        let Some(spec) = schema::find(section, key) else {
            return Err(ConfigError(format!("{name}: [{section}].{key} is not a known key")));
        };
        let Some(v) = convert_env(spec.ty, value) else {
            return Err(ConfigError(format!(
                "{name}: cannot convert {value:?} to {} for [{section}].{key}",
                spec.ty.name()
            )));
        };
        layers.set(section, key, v, Source::Env(name.clone()));
    }
    // 4. Flags.
    if let Some(p) = overrides.port {
        layers.set("daemon", "port", Value::Integer(i64::from(p)), Source::Flag("--port"));
    }
    if overrides.dev {
        layers.set("daemon", "dev_mode", Value::Boolean(true), Source::Flag("--dev"));
        layers.set("daemon", "log_level", Value::String("debug".into()), Source::Flag("--dev"));
    }
    if let Some(l) = &overrides.log_level {
        layers.set("daemon", "log_level", Value::String(l.clone()), Source::Flag("--log-level"));
    }
    // The alias kill_switch_recovery_cooldown (setting both is an error).
    if layers.has_non_default("security", "kill_switch_recovery_cooldown") {
        if layers.has_non_default("security", "kill_switch_recovery_wait_owner") {
            return Err(ConfigError(
                "[security].kill_switch_recovery_cooldown and [security].kill_switch_recovery_wait_owner are the same key; set only one".into(),
            ));
        }
        let v = layers.merged["security"]["kill_switch_recovery_cooldown"].clone();
        let src = layers.source("security", "kill_switch_recovery_cooldown");
        layers.set("security", "kill_switch_recovery_wait_owner", v, src);
    }

    let raw: raw::RawConfig = Value::Table(layers.merged.clone())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError(format!("invalid configuration: {}", e.to_string().trim())))?;
    Config::validate(data_dir, raw, &layers)
}

/// Parses sizes like `50MB` (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("KB") {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix("MB") {
        (n, 1024 * 1024)
    } else if let Some(n) = s.strip_suffix("GB") {
        (n, 1024 * 1024 * 1024)
    } else {
        return None;
    };
    num.trim().parse::<u64>().ok().and_then(|n| n.checked_mul(mult))
}

impl Config {
    /// The symbol of a chain's coin on a network, for messages and summaries.
    pub(crate) fn native_symbol(&self, chain: waiaas_storage::Chain, network: waiaas_storage::Network) -> &str {
        match (chain, network) {
            (waiaas_storage::Chain::Solana, _) => "SOL",
            (waiaas_storage::Chain::Ethereum, waiaas_storage::Network::Mainnet) => &self.rpc.ethereum_mainnet_symbol,
            (waiaas_storage::Chain::Ethereum, _) => &self.rpc.ethereum_testnet_symbol,
        }
    }

    /// The redb page cache in bytes.
    pub(crate) fn cache_bytes(&self) -> usize {
        (self.database.cache_size_mb as usize) * 1024 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)], ov: Overrides) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        load_from(Path::new("/data"), Path::new("/data/config.toml"), Some(text), &ov, &env)
    }

    #[test]
    fn defaults_load_and_match_the_spec() {
        let c = load_text("", &[], Overrides::default()).unwrap();
        assert_eq!(c.daemon.port, 3100);
        assert_eq!(c.daemon.log_file, PathBuf::from("/data/logs/daemon.log"));
        assert_eq!(c.daemon.log_max_size, 50 * 1024 * 1024);
        assert_eq!(c.database.path, PathBuf::from("/data/data/waiaas.redb"));
        assert_eq!((c.keystore.argon2_memory, c.keystore.argon2_time, c.keystore.argon2_parallelism), (65536, 3, 4));
        assert_eq!(c.security.rate_limit_tx_rpm, 10);
        assert_eq!(c.rpc.ethereum_testnet_chain_id, None);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn the_generated_file_parses_to_the_defaults_plus_its_secret() {
        let secret = "ab".repeat(32);
        let text = schema::commented_config(&secret);
        let c = load_text(&text, &[], Overrides::default()).unwrap();
        assert_eq!(c.security.jwt_secret, secret);
        let table: Table = toml::from_str(&text).unwrap();
        assert!(table.values().all(|v| v.as_table().unwrap().values().all(|v| !v.is_table())));
        // Every schema key appears in the file.
        for k in KEYS {
            assert!(text.contains(&format!("{} =", k.key)), "{} missing", k.key);
        }
    }

    #[test]
    fn nested_sections_unknown_sections_and_keys_are_named() {
        let e = load_text("[rpc.solana]\nurl = \"x\"\n", &[], Overrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("Nested section detected: [rpc.solana]. Use flattened keys such as solana_mainnet."),
            "{e}"
        );
        let e = load_text("[foo]\nx = 1\n", &[], Overrides::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("daemon, keystore, database, rpc, notifications, security, walletconnect, ledger, oracle"),
            "{e}"
        );
        let e = load_text("[security]\n\nfoo = 1\n", &[], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("[security].foo is not a known key (/data/config.toml line 3)"), "{e}");
        let e = load_text("[daemon]\nport = \"3100\"\n", &[], Overrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("[daemon].port must be an integer, found a string (/data/config.toml line 2)"),
            "{e}"
        );
        let e = load_text("[daemon]\nport = 80\n", &[], Overrides::default()).unwrap_err();
        assert!(e.to_string().starts_with("CONFIG_LOAD_ERROR: [daemon].port = 80 is out of range 1024-65535"), "{e}");
        let e = load_text("[daemon\n", &[], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("is not valid TOML"), "{e}");
    }

    #[test]
    fn environment_overrides_convert_by_the_target_type() {
        let c = load_text(
            "[daemon]\nport = 3200\n",
            &[
                ("WAIAAS_DAEMON_PORT", "3101"),
                ("WAIAAS_SECURITY_RATE_LIMIT_TX_RPM", "5"),
                ("WAIAAS_SECURITY_JWT_SECRET", &"1".repeat(64)),
                ("WAIAAS_SESSION_TOKEN", "wai_sess_x"),
                ("WAIAAS_FOO", "1"),
                ("WAIAAS_MASTER_PASSWORD", "not config"),
                ("WAIAAS_SECURITY_CORS_ORIGINS", r#"["http://a:1","https://b"]"#),
                ("WAIAAS_SECURITY_KILL_SWITCH_RECOVERY_WAIT_OWNER", "600"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.daemon.port, 3101);
        assert_eq!(c.security.rate_limit_tx_rpm, 5);
        assert_eq!(c.security.jwt_secret, "1".repeat(64), "digits stay a string");
        assert_eq!(c.security.cors_origins, vec!["http://a:1", "https://b"]);
        assert_eq!(c.security.kill_switch_recovery_wait_owner, 600);

        let e = load_text("", &[("WAIAAS_SECURITY_FOO", "1")], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("WAIAAS_SECURITY_FOO"), "{e}");
        let e = load_text("", &[("WAIAAS_DAEMON_PORT", "abc")], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("WAIAAS_DAEMON_PORT: cannot convert \"abc\" to an integer"), "{e}");
        let e = load_text("", &[("WAIAAS_DAEMON_DEV_MODE", "yes")], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("WAIAAS_DAEMON_DEV_MODE"), "{e}");
        let e = load_text("", &[("WAIAAS_DAEMON_PORT", "80")], Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("environment variable WAIAAS_DAEMON_PORT"), "{e}");
    }

    #[test]
    fn flags_beat_environment_and_file() {
        let ov = Overrides { port: Some(4000), log_level: None, dev: true };
        let c = load_text("[daemon]\nport = 3200\n", &[("WAIAAS_DAEMON_PORT", "3101")], ov).unwrap();
        assert_eq!(c.daemon.port, 4000);
        assert!(c.daemon.dev_mode);
        assert_eq!(c.daemon.log_level, LogLevel::Debug);
    }

    #[test]
    fn the_recovery_cooldown_alias_works_and_conflicts() {
        let c = load_text("[security]\nkill_switch_recovery_cooldown = 900\n", &[], Overrides::default()).unwrap();
        assert_eq!(c.security.kill_switch_recovery_wait_owner, 900);
        let e = load_text(
            "[security]\nkill_switch_recovery_cooldown = 900\nkill_switch_recovery_wait_owner = 600\n",
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("set only one"), "{e}");
    }

    #[test]
    fn value_checks() {
        for bad in [
            "[daemon]\nhostname = \"::1\"\n",
            "[daemon]\nlog_max_size = \"2GB\"\n",
            "[daemon]\nlog_level = \"loud\"\n",
            "[database]\nbackup_interval = 10\n",
            "[rpc]\nsolana_devnet = \"ftp://x\"\n",
            "[security]\njwt_secret = \"abc\"\n",
            "[security]\ncors_origins = [\"not an origin\"]\n",
            "[oracle]\nstale_limit = 60\nprice_ttl = 120\n",
            "[oracle]\nstatic_prices = [\"bitcoin:native=1\"]\n",
            "[ledger]\ntcp_address = \"nope\"\n",
        ] {
            assert!(load_text(bad, &[], Overrides::default()).is_err(), "{bad}");
        }
        let c = load_text(
            "[keystore]\nargon2_memory = 32768\nargon2_time = 1\nargon2_parallelism = 1\n",
            &[],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn schema_and_raw_structs_agree() {
        // Every key present: deny_unknown_fields proves schema ⊆ raw; a missing raw field would
        // fail deserialisation, proving raw ⊆ schema for required fields.
        let mut text = String::new();
        for s in SECTIONS {
            text.push_str(&format!("[{s}]\n"));
            for k in KEYS.iter().filter(|k| k.section == *s && k.key != "kill_switch_recovery_cooldown") {
                let v = k.default.unwrap_or("1");
                text.push_str(&format!("{} = {v}\n", k.key));
            }
        }
        load_text(&text, &[], Overrides::default()).unwrap();
    }
}
