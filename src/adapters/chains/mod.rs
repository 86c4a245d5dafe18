//! Chain adapters (05-chains.md): one per (chain, network), created on demand and cached.
//!
//! The registry owns connectivity: connecting (with the EVM chain-id binding of §1.4), the
//! fail-soft start (an unreachable node marks its adapter unavailable instead of stopping the
//! daemon) and background reconnects. Everything that needs a node asks the registry for an
//! *available* adapter and gets an `ADAPTER_NOT_AVAILABLE` [`ChainError`] otherwise.

pub(crate) mod adapter;
pub(crate) mod error;
pub(crate) mod evm;
mod rpc_timing;
pub(crate) mod solana;
pub(crate) mod types;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::json;
use waiaas_storage::{AgentRecord, Chain, Network};

use crate::base::clock::Clock;
use crate::base::error::ErrorCode;
use crate::runtime::Settings;
use crate::runtime::config::Config;
pub(crate) use adapter::{AdapterInfo, AdapterStatus, ChainAdapter};
use error::ChainError;

/// The RPC URL configured for a pair and the config key that holds it.
fn url_for(config: &Config, chain: Chain, network: Network) -> (String, &'static str) {
    let r = &config.rpc;
    let (url, key) = match (chain, network) {
        (Chain::Solana, Network::Mainnet) => (&r.solana_mainnet, "solana_mainnet"),
        (Chain::Solana, Network::Devnet) => (&r.solana_devnet, "solana_devnet"),
        (Chain::Solana, Network::Testnet) => (&r.solana_testnet, "solana_testnet"),
        (Chain::Ethereum, Network::Mainnet) => (&r.ethereum_mainnet, "ethereum_mainnet"),
        (Chain::Ethereum, _) => (&r.ethereum_testnet, "ethereum_testnet"),
    };
    (url.clone(), key)
}

fn expected_chain_id(config: &Config, chain: Chain, network: Network) -> Option<u64> {
    match (chain, network) {
        (Chain::Ethereum, Network::Mainnet) => config.rpc.ethereum_mainnet_chain_id,
        (Chain::Ethereum, _) => config.rpc.ethereum_testnet_chain_id,
        (Chain::Solana, _) => None,
    }
}

struct Entry {
    adapter: Arc<dyn ChainAdapter>,
    expected_chain_id: Option<u64>,
}

/// All adapters of the daemon.
pub(crate) struct Registry {
    adapters: RwLock<HashMap<(Chain, Network), Entry>>,
    clock: Clock,
    settings: Settings,
}

impl Registry {
    pub(crate) fn new(clock: Clock, settings: Settings) -> Registry {
        Registry { adapters: RwLock::new(HashMap::new()), clock, settings }
    }

    /// The adapter for a pair, created (not connected) on first use. An empty URL means the pair
    /// is unsupported: `CHAIN_NOT_SUPPORTED`.
    pub(crate) fn get_or_create(&self, chain: Chain, network: Network) -> Result<Arc<dyn ChainAdapter>, ChainError> {
        if let Some(e) = self.adapters.read().expect("registry").get(&(chain, network)) {
            return Ok(e.adapter.clone());
        }
        let config = self.settings.get();
        let config: &Config = &config;
        let (url, key) = url_for(config, chain, network);
        if url.is_empty() {
            return Err(ChainError::new(
                ErrorCode::ChainNotSupported,
                format!("No RPC URL configured for {chain}/{network} ([rpc].{key})"),
            ));
        }
        let timeout = Duration::from_secs(config.rpc.request_timeout);
        let expected = expected_chain_id(config, chain, network);
        let adapter: Arc<dyn ChainAdapter> = match chain {
            Chain::Ethereum => {
                let symbol = match network {
                    Network::Mainnet => config.rpc.ethereum_mainnet_symbol.clone(),
                    _ => config.rpc.ethereum_testnet_symbol.clone(),
                };
                Arc::new(evm::EvmAdapter::new(network, &url, timeout, expected, symbol, self.clock.clone())?)
            }
            Chain::Solana => Arc::new(solana::SolanaAdapter::new(network, &url, timeout, self.clock.clone())),
        };
        let mut map = self.adapters.write().expect("registry");
        let entry = map.entry((chain, network)).or_insert(Entry { adapter, expected_chain_id: expected });
        Ok(entry.adapter.clone())
    }

    /// A connected adapter whose chain id matches `agent_chain_id` (when given), connecting on
    /// demand; otherwise `ADAPTER_NOT_AVAILABLE`.
    pub(crate) async fn available(
        &self,
        chain: Chain,
        network: Network,
        agent_chain_id: Option<u64>,
    ) -> Result<Arc<dyn ChainAdapter>, ChainError> {
        let adapter = self.get_or_create(chain, network)?;
        if adapter.conn().status() == AdapterStatus::Disconnected {
            let _ = adapter.connect(self.clock.now()).await;
        }
        let unavailable = |reason: String| {
            ChainError::new(
                ErrorCode::AdapterNotAvailable,
                format!("The {chain}/{network} adapter is not available: {reason}"),
            )
            .with_details(json!({"reason": reason}))
        };
        if !adapter.is_connected() {
            return Err(unavailable(adapter.conn().last_error().unwrap_or_else(|| "not connected".into())));
        }
        if let (Some(want), Some(have)) = (agent_chain_id, adapter.chain_id())
            && want != have
        {
            return Err(unavailable("chain id mismatch".into()));
        }
        Ok(adapter)
    }

    /// The available adapter of an agent (its chain, network and bound chain id).
    pub(crate) async fn for_agent(&self, agent: &AgentRecord) -> Result<Arc<dyn ChainAdapter>, ChainError> {
        self.available(agent.chain, agent.network, agent.chain_id).await
    }

    /// Every adapter.
    pub(crate) fn all(&self) -> Vec<Arc<dyn ChainAdapter>> {
        let map = self.adapters.read().expect("registry");
        let mut v: Vec<_> = map.values().map(|e| e.adapter.clone()).collect();
        v.sort_by_key(|a| (a.chain().as_str(), a.network().as_str()));
        v
    }

    /// The adapter-reconnect worker: retries every disconnected adapter and health-checks the
    /// connected ones, so a node that went away is noticed even without traffic.
    pub(crate) async fn reconnect(&self) {
        let now = self.clock.now();
        for a in self.all() {
            match a.conn().status() {
                AdapterStatus::Disconnected => {
                    if let Err(e) = a.connect(now).await {
                        tracing::debug!("{}/{} still unavailable: {e}", a.chain(), a.network());
                    }
                }
                AdapterStatus::Connected => {
                    let h = a.health().await;
                    if h.healthy {
                        a.conn().connected(h.latency_ms, now);
                    } else {
                        tracing::warn!(
                            "{}/{} stopped answering; reconnecting in the background",
                            a.chain(),
                            a.network()
                        );
                        a.conn().down("health check failed".into(), now);
                    }
                }
                AdapterStatus::Error => {}
            }
        }
    }

    /// Drops adapters whose `[rpc]` settings changed (SIGHUP); they are recreated on next use.
    pub(crate) fn reload(&self) {
        let config = self.settings.get();
        let config: &Config = &config;
        self.adapters.write().expect("registry").retain(|(chain, network), e| {
            let keep = url_for(config, *chain, *network).0 == e.adapter.url()
                && expected_chain_id(config, *chain, *network) == e.expected_chain_id;
            if !keep {
                tracing::info!("{chain}/{network} adapter reconfigured; reconnecting");
            }
            keep
        });
    }

    /// Disconnects everything (shutdown).
    pub(crate) async fn disconnect_all(&self) {
        for a in self.all() {
            a.disconnect().await;
        }
    }

    /// The connection state of every adapter, for the status views.
    pub(crate) fn infos(&self) -> Vec<AdapterInfo> {
        self.all().iter().map(|a| a.conn().info(a.chain(), a.network(), a.chain_id())).collect()
    }

    /// Whether every adapter is connected (else `/health` is `degraded`).
    pub(crate) fn all_connected(&self) -> bool {
        self.all().iter().all(|a| a.is_connected())
    }
}
