//! Every configuration key of 01-daemon.md §2.4: section, name, type, default and the comment
//! `init` writes. This table is the single source for the defaults layer, the generated
//! `config.toml`, environment-variable conversion and unknown-key detection; a unit test checks
//! it against the serde structs in `raw.rs`.

/// Value type of a key; environment strings are converted by it (01-daemon.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Bool,
    Str,
    StrArray,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Int => "an integer",
            Ty::Bool => "a boolean",
            Ty::Str => "a string",
            Ty::StrArray => "an array of strings",
        }
    }
}

/// One key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpec {
    pub(crate) section: &'static str,
    pub(crate) key: &'static str,
    pub(crate) ty: Ty,
    /// TOML literal of the default; `None` = unset by default (optional key).
    pub(crate) default: Option<&'static str>,
    pub(crate) doc: &'static str,
}

pub(crate) const SECTIONS: &[&str] = &[
    "daemon",
    "keystore",
    "database",
    "rpc",
    "notifications",
    "security",
    "walletconnect",
    "ledger",
    "oracle",
    "metrics",
    "owner_console",
];

macro_rules! keys {
    ($($section:ident { $($key:ident : $ty:ident = $default:expr ; $doc:literal),+ $(,)? })+) => {
        pub(crate) const KEYS: &[KeySpec] = &[
            $($(KeySpec { section: stringify!($section), key: stringify!($key), ty: Ty::$ty, default: $default, doc: $doc },)+)+
        ];
    };
}

keys! {
    daemon {
        port: Int = Some("3100"); "TCP port, 1024-65535. The daemon binds loopback only.",
        hostname: Str = Some("\"127.0.0.1\""); "\"127.0.0.1\", or \"0.0.0.0\" inside containers (publish as 127.0.0.1:3100:3100).",
        log_level: Str = Some("\"info\""); "trace, debug, info, warn or error.",
        log_file: Str = Some("\"logs/daemon.log\""); "Relative to the data directory, or absolute.",
        log_max_size: Str = Some("\"50MB\""); "Rotate the log at this size: 1MB-1GB, suffix KB, MB or GB.",
        log_max_files: Int = Some("5"); "Rotated log files kept, 1-100.",
        log_format: Str = Some("\"text\""); "\"text\" or \"json\" (one object per line, with requestId inside requests).",
        pid_file: Str = Some("\"daemon.pid\""); "Relative to the data directory, or absolute.",
        shutdown_timeout: Int = Some("30"); "Seconds a graceful shutdown may take before a forced exit, 5-300.",
        dev_mode: Bool = Some("false"); "Fixed password \"waiaas-dev\", debug logging. Never in production.",
        public_url: Str = Some("\"\""); "\"\" or the https:// origin a reverse proxy publishes the daemon under (owner console, owner messages).",
        max_connections: Int = Some("4096"); "Open client connections in total, 16-65536 (and at most the file-descriptor limit less 256); a connection beyond it gets 503 TOO_MANY_CONNECTIONS with Retry-After.",
        max_connections_per_ip: Int = Some("256"); "Open client connections per client IP, 1-65536, at most max_connections.",
        header_timeout: Int = Some("10"); "Seconds a connection has to deliver a complete request head, counted from when the daemon starts waiting for one: closes slow senders and idle keep-alive connections, 1-300.",
        body_timeout: Int = Some("30"); "Seconds a request body may take to arrive once it is read, 1-300; beyond it 408 REQUEST_TIMEOUT.",
    }
    keystore {
        argon2_memory: Int = Some("65536"); "Argon2id memory in KiB for new password files, 32768-1048576.",
        argon2_time: Int = Some("3"); "Argon2id iterations, 1-20.",
        argon2_parallelism: Int = Some("4"); "Argon2id lanes, 1-16.",
        backup_on_rotate: Bool = Some("true"); "Make a backup archive before a password change.",
    }
    database {
        path: Str = Some("\"data/waiaas.redb\""); "Relative to the data directory, or absolute.",
        cache_size_mb: Int = Some("64"); "redb page cache, 8-4096 MB.",
        backup_interval: Int = Some("86400"); "Seconds between automatic backups: 0 (off) or 3600-604800.",
        backup_keep: Int = Some("7"); "Automatic backup archives kept, 1-100.",
        backend: Str = Some("\"redb\""); "redb (one embedded file, the default) or postgres (replicas sharing one database).",
        url: Str = Some("\"\""); "postgres:// URL (a secret: never logged). Postgres needs exactly one of url and url_file.",
        url_file: Str = Some("\"\""); "File whose first line is the URL, relative to the data directory or absolute; keep it 0600.",
        pool_size: Int = Some("16"); "Pooled PostgreSQL connections, 2-256 (plus one for the leader election).",
        connect_timeout: Int = Some("5"); "Seconds to connect or to wait for a pooled connection, 1-60.",
        lock_timeout_ms: Int = Some("5000"); "PostgreSQL lock_timeout, 100-60000 ms.",
        statement_timeout_ms: Int = Some("10000"); "PostgreSQL statement_timeout, 1000-300000 ms.",
        idle_tx_timeout_ms: Int = Some("5000"); "PostgreSQL idle_in_transaction_session_timeout, 1000-60000 ms.",
        leader_check_ms: Int = Some("500"); "How often a standby polls the leader lock and the leader pings, 100-5000 ms.",
        keepalive_s: Int = Some("5"); "TCP keepalive idle time of the election connection, 1-60 s.",
        replica_id: Str = Some("\"\""); "Unique per running replica, 1-64 of A-Z a-z 0-9 . _ -; empty = <hostname>-<hash of the data directory>.",
        ca_file: Str = Some("\"\""); "PEM roots for TLS to PostgreSQL; empty = the system roots.",
    }
    rpc {
        solana_mainnet: Str = Some("\"https://api.mainnet-beta.solana.com\""); "Solana mainnet RPC URL.",
        solana_devnet: Str = Some("\"https://api.devnet.solana.com\""); "Solana devnet RPC URL.",
        solana_testnet: Str = Some("\"https://api.testnet.solana.com\""); "Solana testnet RPC URL.",
        ethereum_mainnet: Str = Some("\"\""); "EVM mainnet RPC URL; required before EVM mainnet agents can be created.",
        ethereum_testnet: Str = Some("\"\""); "EVM testnet RPC URL.",
        ethereum_mainnet_chain_id: Int = None; "When set, the node's eth_chainId must equal it.",
        ethereum_testnet_chain_id: Int = None; "When set, the node's eth_chainId must equal it.",
        ethereum_mainnet_symbol: Str = Some("\"ETH\""); "Native coin symbol, 1-10 characters.",
        ethereum_testnet_symbol: Str = Some("\"ETH\""); "Native coin symbol, 1-10 characters.",
        request_timeout: Int = Some("10"); "Seconds per RPC request, 1-60.",
    }
    notifications {
        enabled: Bool = Some("false"); "Send notifications. While off, only INSTANT transactions are allowed.",
        min_channels: Int = Some("2"); "With fewer enabled channels only INSTANT is allowed, 1-10.",
        health_check_interval: Int = Some("300"); "Seconds between channel health checks, 60-3600.",
        log_retention_days: Int = Some("30"); "Notification log retention, 7-365 days.",
        dedup_ttl: Int = Some("300"); "Seconds during which a repeated event is not sent again, 60-3600.",
    }
    security {
        session_ttl: Int = Some("86400"); "Default session lifetime in seconds, 300-604800.",
        session_absolute_lifetime: Int = Some("2592000"); "Hard session lifetime in seconds, 86400-7776000.",
        default_max_renewals: Int = Some("30"); "Default renewals per session, 0-100.",
        default_renewal_reject_window: Int = Some("3600"); "Seconds after a renewal during which a revoke is a rejection, 300-86400.",
        jwt_secret: Str = Some("\"\""); "64 hex characters. Only read at the first start; the database is the source afterwards.",
        max_sessions_per_agent: Int = Some("5"); "Live sessions per agent, 1-50.",
        max_pending_tx: Int = Some("10"); "Queued DELAY/APPROVAL transactions per agent, 1-100.",
        nonce_storage: Str = Some("\"memory\""); "\"memory\" or \"redb\" (survives restarts).",
        nonce_cache_max: Int = Some("1000"); "Nonces kept in memory mode, 100-10000.",
        nonce_cache_ttl: Int = Some("300"); "Nonce lifetime in seconds, 60-600.",
        rate_limit_global_ip_rpm: Int = Some("1000"); "Requests per minute per client IP, 100-10000.",
        rate_limit_session_rpm: Int = Some("300"); "Requests per minute per session, 10-5000.",
        rate_limit_tx_rpm: Int = Some("10"); "Transaction sends per minute per session, 1-100.",
        trust_proxy: Bool = Some("false"); "Rate-limit by the first X-Forwarded-For entry.",
        cors_origins: StrArray = Some("[]"); "Extra allowed CORS origins (scheme://host[:port]).",
        policy_defaults_delay_seconds: Int = Some("300"); "Default DELAY cooldown, 60-3600 seconds.",
        policy_defaults_approval_timeout: Int = Some("3600"); "Default APPROVAL deadline, 300-86400 seconds.",
        kill_switch_recovery_wait_owner: Int = Some("1800"); "Recovery wait when an owner exists, 300-86400 seconds.",
        kill_switch_recovery_cooldown: Int = None; "Another name for kill_switch_recovery_wait_owner (set only one).",
        kill_switch_recovery_wait_no_owner: Int = Some("86400"); "Recovery wait without owners, 3600-604800 seconds.",
        integrity_check_interval: Int = Some("300"); "Seconds between key-file integrity checks: 0 (off) or 60-3600.",
    }
    walletconnect {
        project_id: Str = Some("\"\""); "Passed to owner wallet apps for pairing; the daemon runs no relay client.",
    }
    ledger {
        transport: Str = Some("\"hid\""); "\"hid\" (USB) or \"tcp\" (Speculos, fake device).",
        tcp_address: Str = Some("\"127.0.0.1:9999\""); "host:port for the tcp transport.",
        confirm_timeout: Int = Some("120"); "Seconds to wait for a button press, 10-600.",
        command_timeout: Int = Some("10"); "Seconds for device commands without user interaction, 1-60.",
    }
    owner_console {
        enabled: Bool = Some("true"); "Serve the owner console at /owner/ and its read routes (/v1/owner/me/*, console login).",
    }
    metrics {
        enabled: Bool = Some("false"); "Serve Prometheus metrics (GET /metrics, no auth: aggregates only) on their own port.",
        port: Int = Some("9464"); "The metrics listener's TCP port, 1024-65535, on [daemon].hostname.",
    }
    oracle {
        provider: Str = Some("\"none\""); "\"none\", \"static\" or \"coingecko\".",
        coingecko_base_url: Str = Some("\"https://api.coingecko.com/api/v3\""); "CoinGecko API base URL.",
        price_ttl: Int = Some("60"); "Seconds a price is fresh, 10-3600.",
        stale_limit: Int = Some("600"); "Seconds after which a price is unusable, 60-86400 and >= price_ttl.",
        static_prices: StrArray = Some("[]"); "Entries \"<chain>:<native|address>=<usd>\", e.g. \"solana:native=150.25\".",
    }
}

pub(crate) fn find(section: &str, key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.section == section && k.key == key)
}

/// The fully commented `config.toml` that `init` writes: every key present, commented out at
/// its default, except `[security].jwt_secret`, which is set.
pub(crate) fn commented_config(jwt_secret: &str) -> String {
    let mut out = String::from(
        "# waiaas configuration. Every key is listed with its default; uncomment to change it.\n\
         # Environment variables WAIAAS_<SECTION>_<KEY> override this file (e.g. WAIAAS_DAEMON_PORT=3101).\n\
         # Sections are flat: nested tables such as [rpc.solana] are rejected.\n",
    );
    for section in SECTIONS {
        out.push_str(&format!("\n[{section}]\n"));
        for k in KEYS.iter().filter(|k| k.section == *section) {
            out.push_str(&format!("# {}\n", k.doc));
            match (k.section, k.key, k.default) {
                ("security", "jwt_secret", _) => out.push_str(&format!("jwt_secret = \"{jwt_secret}\"\n")),
                (_, _, Some(d)) => out.push_str(&format!("# {} = {d}\n", k.key)),
                (_, _, None) => out.push_str(&format!("# {} =\n", k.key)),
            }
        }
    }
    out
}
