//! The price oracle (07-policy.md §5, `[oracle]` of 01-daemon.md §2.4): USD prices for the
//! SPENDING_LIMIT USD thresholds, fetched before the decision transaction so the policy engine
//! stays pure.
//!
//! - `none`: no prices.
//! - `static`: `static_prices` from the configuration; never stale, no previous price.
//! - `coingecko`: Solana mainnet and EVM chain id 1 only; native coins from `/simple/price`,
//!   tokens from `/simple/token_price/{platform}`; 5 s timeout. Each asset is cached for
//!   `price_ttl`; when a refresh fails, the cached price is used, marked stale, until it is
//!   older than `stale_limit`. A refresh that moved more than ±50 % from the previous fetched
//!   price marks the quote `moved` while it is in use.
//!
//! The configuration is read on every call, so a reload applies at once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use waiaas_storage::{AgentRecord, Chain, Network};

use crate::base::clock::Clock;
use crate::rules::policy::usd::{Quote, Source};
use crate::runtime::Settings;
use crate::runtime::config::{OracleProvider, PricedAsset};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A cached CoinGecko price.
#[derive(Debug, Clone, Copy)]
struct Entry {
    price: Decimal,
    fetched_at: u64,
    moved: bool,
}

/// The oracle service.
pub(crate) struct Oracle {
    settings: Settings,
    clock: Clock,
    http: reqwest::Client,
    cache: Mutex<HashMap<PricedAsset, Entry>>,
}

/// CoinGecko's platform id for an agent's network, when it has one.
fn platform(agent: &AgentRecord, mainnet_chain_id: Option<u64>) -> Option<&'static str> {
    match (agent.chain, agent.network) {
        (Chain::Solana, Network::Mainnet) => Some("solana"),
        (Chain::Ethereum, Network::Mainnet) if mainnet_chain_id.is_none_or(|id| id == 1) => Some("ethereum"),
        _ => None,
    }
}

fn usd_of(v: &Value) -> Option<Decimal> {
    let n = v.get("usd")?;
    Decimal::from_str(&n.to_string()).ok().filter(|d| *d > Decimal::ZERO)
}

impl Oracle {
    pub(crate) fn new(settings: Settings, clock: Clock) -> Oracle {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build().expect("an HTTP client");
        Oracle { settings, clock, http, cache: Mutex::default() }
    }

    /// Whether prices can exist at all (provider not `none`).
    pub(crate) fn enabled(&self) -> bool {
        self.settings.get().oracle.provider != OracleProvider::None
    }

    /// The USD price of `asset` for `agent`'s network, or `None` when unavailable.
    pub(crate) async fn quote(&self, agent: &AgentRecord, asset: &PricedAsset) -> Option<Quote> {
        let config = self.settings.get();
        match config.oracle.provider {
            OracleProvider::None => None,
            OracleProvider::Static => config
                .oracle
                .static_prices
                .iter()
                .find(|(a, _)| a == asset)
                .map(|(_, price)| Quote { price: *price, stale: false, moved: false, source: Source::Static }),
            OracleProvider::CoinGecko => {
                let platform = platform(agent, config.rpc.ethereum_mainnet_chain_id)?;
                self.coingecko(
                    &config.oracle.coingecko_base_url,
                    platform,
                    asset,
                    config.oracle.price_ttl,
                    config.oracle.stale_limit,
                )
                .await
            }
        }
    }

    async fn coingecko(
        &self,
        base: &str,
        platform: &str,
        asset: &PricedAsset,
        ttl: u64,
        stale_limit: u64,
    ) -> Option<Quote> {
        let now = self.clock.now();
        let cached = self.cache.lock().expect("price cache").get(asset).copied();
        let quote = |e: Entry, stale: bool| Quote { price: e.price, stale, moved: e.moved, source: Source::CoinGecko };
        if let Some(e) = cached
            && now.saturating_sub(e.fetched_at) <= ttl
        {
            return Some(quote(e, false));
        }
        match self.fetch(base, platform, asset).await {
            Some(price) => {
                let moved = cached.is_some_and(|old| {
                    let change = (price - old.price).abs();
                    change * Decimal::TWO > old.price
                });
                let e = Entry { price, fetched_at: now, moved };
                self.cache.lock().expect("price cache").insert(asset.clone(), e);
                Some(quote(e, false))
            }
            None => {
                let e = cached.filter(|e| now.saturating_sub(e.fetched_at) <= stale_limit)?;
                Some(quote(e, true))
            }
        }
    }

    async fn fetch(&self, base: &str, platform: &str, asset: &PricedAsset) -> Option<Decimal> {
        let result = match asset {
            PricedAsset::Native(_) => {
                let url = format!("{base}/simple/price?ids=solana,ethereum&vs_currencies=usd");
                self.get(&url).await.and_then(|v| usd_of(v.get(platform)?))
            }
            PricedAsset::Token(_, token) => {
                let url = format!("{base}/simple/token_price/{platform}?contract_addresses={token}&vs_currencies=usd");
                self.get(&url).await.and_then(|v| {
                    let obj = v.as_object()?;
                    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(token)).and_then(|(_, p)| usd_of(p))
                })
            }
        };
        if result.is_none() {
            tracing::warn!("price oracle: no USD price for {asset:?} from {base}");
        }
        result
    }

    async fn get(&self, url: &str) -> Option<Value> {
        let resp = self.http.get(url).header("accept", "application/json").send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A CoinGecko stand-in answering `/simple/price` with the price at `prices[n]` for the
    /// n-th request (the last one repeated), or 500 when that price is negative.
    async fn mock(prices: Vec<f64>) -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api/v3", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let i = counter.fetch_add(1, Ordering::SeqCst);
                let p = prices[i.min(prices.len() - 1)];
                let (status, body) = if p < 0.0 {
                    ("500 Internal Server Error", "{}".to_string())
                } else if req.starts_with("GET /api/v3/simple/price?ids=solana,ethereum&vs_currencies=usd ") {
                    ("200 OK", format!("{{\"solana\":{{\"usd\":{p}}},\"ethereum\":{{\"usd\":{}}}}}", p * 20.0))
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        (base, hits)
    }

    fn oracle(base: &str) -> (Oracle, Clock) {
        let text = format!(
            "[oracle]\nprovider = \"coingecko\"\ncoingecko_base_url = \"{base}\"\nprice_ttl = 60\nstale_limit = 600\n"
        );
        let (dir, file) = (std::path::Path::new("/data"), std::path::Path::new("/data/config.toml"));
        let c = crate::runtime::config::load_from(dir, file, Some(&text), &Default::default(), &[]).unwrap();
        let clock = Clock::default();
        (Oracle::new(Settings::new(c), clock.clone()), clock)
    }

    fn mainnet_sol() -> AgentRecord {
        let mut a = AgentRecord::new(uuid::Uuid::nil(), "a".into(), Chain::Solana, Network::Mainnet, None, 0);
        a.public_key = "x".into();
        a
    }

    #[tokio::test]
    async fn coingecko_caches_goes_stale_then_unavailable_and_flags_moves() {
        // Fetches: 100, then (after the TTL) a failure, then 160 (+60 %), then 170.
        let (base, hits) = mock(vec![100.0, -1.0, 160.0, 170.0]).await;
        let (o, clock) = oracle(&base);
        let agent = mainnet_sol();
        let sol = PricedAsset::Native(Chain::Solana);
        let q = o.quote(&agent, &sol).await.unwrap();
        assert_eq!((q.price, q.stale, q.moved, q.source), (Decimal::from(100), false, false, Source::CoinGecko));
        // Within the TTL: cached, no request.
        clock.advance(59);
        assert_eq!(o.quote(&agent, &sol).await.unwrap().price, Decimal::from(100));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // Past the TTL the refresh fails: the cached price, stale.
        clock.advance(2);
        let q = o.quote(&agent, &sol).await.unwrap();
        assert_eq!((q.price, q.stale), (Decimal::from(100), true));
        // The next refresh moved +60 %: flagged.
        let q = o.quote(&agent, &sol).await.unwrap();
        assert_eq!((q.price, q.stale, q.moved), (Decimal::from(160), false, true));
        // +6 % next time: not flagged.
        clock.advance(61);
        let q = o.quote(&agent, &sol).await.unwrap();
        assert_eq!((q.price, q.moved), (Decimal::from(170), false));
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        // Devnet has no CoinGecko price.
        let mut devnet = mainnet_sol();
        devnet.network = Network::Devnet;
        assert_eq!(o.quote(&devnet, &sol).await, None);
    }

    #[tokio::test]
    async fn a_price_past_the_stale_limit_is_unavailable() {
        let (base, _) = mock(vec![100.0, -1.0]).await;
        let (o, clock) = oracle(&base);
        let agent = mainnet_sol();
        let sol = PricedAsset::Native(Chain::Solana);
        assert!(o.quote(&agent, &sol).await.is_some());
        clock.advance(601);
        assert_eq!(o.quote(&agent, &sol).await, None);
    }
}
