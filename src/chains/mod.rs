//! Chain adapters (05-chains.md): one per (chain, network), created on demand and cached.
//!
//! The registry owns connectivity: connecting (with the EVM chain-id binding of §1.4), health
//! and latency, the fail-soft start (an unreachable node marks its adapter unavailable instead of
//! stopping the daemon) and background reconnects. Everything that needs a node asks the
//! registry for an *available* adapter and gets 503 `ADAPTER_NOT_AVAILABLE` otherwise.

pub(crate) mod error;
pub(crate) mod evm;
pub(crate) mod solana;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use waiaas_storage::{Chain, Network};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use error::ChainError;

/// Connection state of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdapterStatus {
    Connected,
    Disconnected,
    /// A configuration problem (chain-id mismatch): no automatic reconnect until the config changes.
    Error,
}

impl AdapterStatus {
    fn as_str(self) -> &'static str {
        match self {
            AdapterStatus::Connected => "connected",
            AdapterStatus::Disconnected => "disconnected",
            AdapterStatus::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    status: AdapterStatus,
    latency_ms: i64,
    last_error: Option<String>,
    last_check: Option<u64>,
    chain_id: Option<u64>,
}

/// The RPC client of an adapter.
#[derive(Clone)]
pub(crate) enum Rpc {
    Evm(evm::EvmRpc),
    Solana(solana::SolanaRpc),
}

/// One (chain, network) adapter.
pub(crate) struct Adapter {
    pub(crate) chain: Chain,
    pub(crate) network: Network,
    pub(crate) url: String,
    pub(crate) rpc: Rpc,
    expected_chain_id: Option<u64>,
    state: RwLock<State>,
}

impl Adapter {
    fn new(chain: Chain, network: Network, url: String, config: &Config) -> Result<Adapter, ChainError> {
        let timeout = Duration::from_secs(config.rpc.request_timeout);
        let (rpc, expected_chain_id) = match chain {
            Chain::Ethereum => {
                let expected = match network {
                    Network::Mainnet => config.rpc.ethereum_mainnet_chain_id,
                    _ => config.rpc.ethereum_testnet_chain_id,
                };
                (Rpc::Evm(evm::EvmRpc::new(&url, timeout)?), expected)
            }
            Chain::Solana => (Rpc::Solana(solana::SolanaRpc::new(&url, timeout)), None),
        };
        let state = State {
            status: AdapterStatus::Disconnected,
            latency_ms: -1,
            last_error: None,
            last_check: None,
            chain_id: None,
        };
        Ok(Adapter { chain, network, url, rpc, expected_chain_id, state: RwLock::new(state) })
    }

    /// `solana/devnet`, `ethereum/testnet`.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.chain, self.network)
    }

    pub(crate) fn status(&self) -> AdapterStatus {
        self.state.read().expect("adapter state").status
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.status() == AdapterStatus::Connected
    }

    /// EVM chain id read at connect.
    pub(crate) fn chain_id(&self) -> Option<u64> {
        self.state.read().expect("adapter state").chain_id
    }

    pub(crate) fn latency_ms(&self) -> i64 {
        self.state.read().expect("adapter state").latency_ms
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.write().expect("adapter state"));
    }

    /// Connects (idempotent): EVM reads `eth_chainId` (checked against the configured chain id)
    /// and `eth_blockNumber`; Solana calls `getHealth`, up to 3 attempts with 1 s then 2 s backoff.
    pub(crate) async fn connect(&self, now: u64) -> Result<(), ChainError> {
        let started = Instant::now();
        let result = match &self.rpc {
            Rpc::Evm(rpc) => match rpc.chain_id().await {
                Ok(id) => {
                    if let Some(expected) = self.expected_chain_id.filter(|e| *e != id) {
                        let msg = format!("chain id mismatch: configured {expected}, node reports {id}");
                        self.set(|s| {
                            s.status = AdapterStatus::Error;
                            s.last_error = Some(msg.clone());
                            s.last_check = Some(now);
                            s.chain_id = Some(id);
                        });
                        return Err(ChainError::new(ErrorCode::AdapterNotAvailable, msg));
                    }
                    self.set(|s| s.chain_id = Some(id));
                    rpc.block_number().await.map(|_| ())
                }
                Err(e) => Err(e),
            },
            Rpc::Solana(rpc) => {
                let mut r = rpc.health().await;
                for backoff in [1, 2] {
                    if r.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(backoff)).await;
                    r = rpc.health().await;
                }
                r
            }
        };
        let latency = started.elapsed().as_millis() as i64;
        self.set(|s| {
            s.last_check = Some(now);
            match &result {
                Ok(()) => {
                    s.status = AdapterStatus::Connected;
                    s.latency_ms = latency;
                    s.last_error = None;
                }
                Err(e) => {
                    s.status = AdapterStatus::Disconnected;
                    s.latency_ms = -1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
        result
    }

    /// Records a connect attempt that outlived the start step's timeout.
    pub(crate) fn mark_timeout(&self, now: u64) {
        self.set(|s| {
            s.status = AdapterStatus::Disconnected;
            s.latency_ms = -1;
            s.last_error = Some("connect timed out".into());
            s.last_check = Some(now);
        });
    }

    /// Marks the adapter unavailable after a failed call so the reconnect worker retries it.
    pub(crate) fn mark_down(&self, e: &ChainError, now: u64) {
        if matches!(e.code, ErrorCode::NetworkError) {
            self.set(|s| {
                if s.status == AdapterStatus::Connected {
                    s.status = AdapterStatus::Disconnected;
                    s.latency_ms = -1;
                    s.last_error = Some(e.to_string());
                    s.last_check = Some(now);
                }
            });
        }
    }

    fn view(&self) -> Value {
        let s = self.state.read().expect("adapter state");
        json!({"status": s.status.as_str(), "latencyMs": s.latency_ms, "lastError": s.last_error})
    }

    fn admin_view(&self) -> Value {
        let s = self.state.read().expect("adapter state");
        json!({
            "chain": self.chain.as_str(),
            "network": self.network.as_str(),
            "status": s.status.as_str(),
            "latencyMs": s.latency_ms,
            "chainId": s.chain_id,
            "lastError": s.last_error,
            "lastCheck": s.last_check.map(crate::clock::iso),
        })
    }
}

/// The RPC URL configured for a pair and the config key that holds it.
fn url_for(config: &Config, chain: Chain, network: Network) -> (String, String) {
    let r = &config.rpc;
    let (url, key) = match (chain, network) {
        (Chain::Solana, Network::Mainnet) => (&r.solana_mainnet, "solana_mainnet"),
        (Chain::Solana, Network::Devnet) => (&r.solana_devnet, "solana_devnet"),
        (Chain::Solana, Network::Testnet) => (&r.solana_testnet, "solana_testnet"),
        (Chain::Ethereum, Network::Mainnet) => (&r.ethereum_mainnet, "ethereum_mainnet"),
        (Chain::Ethereum, _) => (&r.ethereum_testnet, "ethereum_testnet"),
    };
    (url.clone(), key.to_string())
}

/// All adapters of the daemon.
#[derive(Default)]
pub(crate) struct Registry {
    adapters: RwLock<HashMap<(Chain, Network), Arc<Adapter>>>,
}

impl Registry {
    /// The adapter for a pair, created (not connected) on first use. An empty URL means the pair
    /// is unsupported: 400 `CHAIN_NOT_SUPPORTED`.
    pub(crate) fn get_or_create(
        &self,
        config: &Config,
        chain: Chain,
        network: Network,
    ) -> Result<Arc<Adapter>, ApiError> {
        if let Some(a) = self.adapters.read().expect("registry").get(&(chain, network)) {
            return Ok(a.clone());
        }
        let (url, key) = url_for(config, chain, network);
        if url.is_empty() {
            return Err(ApiError::new(
                ErrorCode::ChainNotSupported,
                format!("No RPC URL configured for {chain}/{network} ([rpc].{key})"),
            ));
        }
        let adapter = Arc::new(Adapter::new(chain, network, url, config).map_err(ApiError::from)?);
        Ok(self.adapters.write().expect("registry").entry((chain, network)).or_insert(adapter).clone())
    }

    /// A connected adapter whose chain id matches `agent_chain_id` (when given), connecting on
    /// demand; otherwise 503 `ADAPTER_NOT_AVAILABLE`.
    pub(crate) async fn available(
        &self,
        config: &Config,
        chain: Chain,
        network: Network,
        agent_chain_id: Option<u64>,
        now: u64,
    ) -> Result<Arc<Adapter>, ApiError> {
        let adapter = self.get_or_create(config, chain, network)?;
        if adapter.status() == AdapterStatus::Disconnected {
            let _ = adapter.connect(now).await;
        }
        let unavailable = |reason: String| {
            ApiError::new(
                ErrorCode::AdapterNotAvailable,
                format!("The {chain}/{network} adapter is not available: {reason}"),
            )
            .detail("reason", reason)
        };
        if !adapter.is_connected() {
            let why = adapter
                .state
                .read()
                .expect("adapter state")
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected".into());
            return Err(unavailable(why));
        }
        if let (Some(want), Some(have)) = (agent_chain_id, adapter.chain_id())
            && want != have
        {
            return Err(unavailable("chain id mismatch".into()));
        }
        Ok(adapter)
    }

    /// Every adapter.
    pub(crate) fn all(&self) -> Vec<Arc<Adapter>> {
        self.adapters.read().expect("registry").values().cloned().collect()
    }

    /// Retries every disconnected adapter (the adapter-reconnect worker).
    pub(crate) async fn reconnect(&self, now: u64) {
        for a in self.all() {
            if a.status() == AdapterStatus::Disconnected
                && let Err(e) = a.connect(now).await
            {
                tracing::debug!("{} still unavailable: {e}", a.label());
            }
        }
    }

    /// Drops adapters whose `[rpc]` settings changed (SIGHUP); they are recreated on next use.
    pub(crate) fn reload(&self, config: &Config) {
        self.adapters.write().expect("registry").retain(|(chain, network), a| {
            let (url, _) = url_for(config, *chain, *network);
            let keep = url == a.url
                && match chain {
                    Chain::Ethereum => {
                        a.expected_chain_id
                            == if *network == Network::Mainnet {
                                config.rpc.ethereum_mainnet_chain_id
                            } else {
                                config.rpc.ethereum_testnet_chain_id
                            }
                    }
                    Chain::Solana => true,
                };
            if !keep {
                tracing::info!("{} adapter reconfigured; reconnecting", a.label());
            }
            keep
        });
    }

    /// `{"solana/devnet": {status, latencyMs, lastError}}` for `/health`.
    pub(crate) fn health_view(&self) -> Value {
        let mut m = Map::new();
        for a in self.all() {
            m.insert(a.label(), a.view());
        }
        Value::Object(m)
    }

    /// The admin-status array.
    pub(crate) fn admin_view(&self) -> Value {
        Value::Array(self.all().iter().map(|a| a.admin_view()).collect())
    }

    /// Whether every adapter is connected (else `/health` is `degraded`).
    pub(crate) fn all_connected(&self) -> bool {
        self.all().iter().all(|a| a.is_connected())
    }
}
