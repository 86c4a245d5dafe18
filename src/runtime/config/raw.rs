//! The raw configuration: the merged layers (defaults, file, environment, flags) deserialised
//! with unknown fields denied. Values are not yet range-checked; `mod.rs` turns this into the
//! validated [`Config`](super::Config).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) daemon: RawDaemon,
    pub(crate) keystore: RawKeystore,
    pub(crate) database: RawDatabase,
    pub(crate) rpc: RawRpc,
    pub(crate) notifications: RawNotifications,
    pub(crate) security: RawSecurity,
    pub(crate) walletconnect: RawWalletConnect,
    pub(crate) ledger: RawLedger,
    pub(crate) oracle: RawOracle,
    pub(crate) metrics: RawMetrics,
    pub(crate) owner_console: RawOwnerConsole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOwnerConsole {
    pub(crate) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) enabled: bool,
    pub(crate) port: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub(crate) port: i64,
    pub(crate) hostname: String,
    pub(crate) log_level: String,
    pub(crate) log_file: String,
    pub(crate) log_max_size: String,
    pub(crate) log_max_files: i64,
    pub(crate) log_format: String,
    pub(crate) pid_file: String,
    pub(crate) shutdown_timeout: i64,
    pub(crate) dev_mode: bool,
    pub(crate) public_url: String,
    pub(crate) max_connections: i64,
    pub(crate) max_connections_per_ip: i64,
    pub(crate) header_timeout: i64,
    pub(crate) body_timeout: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeystore {
    pub(crate) argon2_memory: i64,
    pub(crate) argon2_time: i64,
    pub(crate) argon2_parallelism: i64,
    pub(crate) backup_on_rotate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub(crate) path: String,
    pub(crate) cache_size_mb: i64,
    pub(crate) backup_interval: i64,
    pub(crate) backup_keep: i64,
    pub(crate) backend: String,
    pub(crate) url: String,
    pub(crate) url_file: String,
    pub(crate) pool_size: i64,
    pub(crate) connect_timeout: i64,
    pub(crate) lock_timeout_ms: i64,
    pub(crate) statement_timeout_ms: i64,
    pub(crate) idle_tx_timeout_ms: i64,
    pub(crate) leader_check_ms: i64,
    pub(crate) keepalive_s: i64,
    pub(crate) replica_id: String,
    pub(crate) ca_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRpc {
    pub(crate) solana_mainnet: String,
    pub(crate) solana_devnet: String,
    pub(crate) solana_testnet: String,
    pub(crate) ethereum_mainnet: String,
    pub(crate) ethereum_testnet: String,
    pub(crate) ethereum_mainnet_chain_id: Option<i64>,
    pub(crate) ethereum_testnet_chain_id: Option<i64>,
    pub(crate) ethereum_mainnet_symbol: String,
    pub(crate) ethereum_testnet_symbol: String,
    pub(crate) request_timeout: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    pub(crate) enabled: bool,
    pub(crate) min_channels: i64,
    pub(crate) health_check_interval: i64,
    pub(crate) log_retention_days: i64,
    pub(crate) dedup_ttl: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub(crate) session_ttl: i64,
    pub(crate) session_absolute_lifetime: i64,
    pub(crate) default_max_renewals: i64,
    pub(crate) default_renewal_reject_window: i64,
    pub(crate) jwt_secret: String,
    pub(crate) max_sessions_per_agent: i64,
    pub(crate) max_pending_tx: i64,
    pub(crate) nonce_storage: String,
    pub(crate) nonce_cache_max: i64,
    pub(crate) nonce_cache_ttl: i64,
    pub(crate) rate_limit_global_ip_rpm: i64,
    pub(crate) rate_limit_session_rpm: i64,
    pub(crate) rate_limit_tx_rpm: i64,
    pub(crate) trust_proxy: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) policy_defaults_delay_seconds: i64,
    pub(crate) policy_defaults_approval_timeout: i64,
    pub(crate) kill_switch_recovery_wait_owner: i64,
    pub(crate) kill_switch_recovery_cooldown: Option<i64>,
    pub(crate) kill_switch_recovery_wait_no_owner: i64,
    pub(crate) integrity_check_interval: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWalletConnect {
    pub(crate) project_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLedger {
    pub(crate) transport: String,
    pub(crate) tcp_address: String,
    pub(crate) confirm_timeout: i64,
    pub(crate) command_timeout: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOracle {
    pub(crate) provider: String,
    pub(crate) coingecko_base_url: String,
    pub(crate) price_ttl: i64,
    pub(crate) stale_limit: i64,
    pub(crate) static_prices: Vec<String>,
}
