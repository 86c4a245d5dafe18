//! The metrics read off live state at scrape time (12-operations.md §3): transactions by
//! terminal status and the storage counters (both counted by the store since it was opened),
//! the queues, the kill switch, the keystore and the chain adapters. The families recorded as
//! things happen live in `runtime::metrics`; [`App::metrics_text`] encodes both.

use std::borrow::Cow;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use waiaas_storage::{KillSwitchStatus, StatsSnapshot, Tier};

use super::App;
use crate::adapters::chains::AdapterStatus;

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn labels(pairs: &[(&'static str, &'static str)]) -> Labels {
    pairs.iter().map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v))).collect()
}

/// What one scrape reads, taken before encoding (encoding is synchronous).
#[derive(Debug)]
struct Snapshot {
    storage: StatsSnapshot,
    queued: [(Tier, u64); 2],
    kill_switch: KillSwitchStatus,
    keystore_unlocked: bool,
    adapters: Vec<(&'static str, &'static str, bool)>,
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Transactions that reached a terminal status, by their labels.
        let mut m = e.encode_descriptor(
            "transactions",
            "Transactions that reached a terminal status",
            None,
            MetricType::Counter,
        )?;
        for (k, n) in &self.storage.terminal {
            let l = labels(&[
                ("chain", k.chain.as_str()),
                ("network", k.network.as_str()),
                ("type", k.tx_type.as_str()),
                ("tier", k.tier.map_or("none", Tier::as_str)),
                ("status", k.status.as_str()),
            ]);
            ConstCounter::new(*n).encode(m.encode_family(&l)?)?;
        }
        let s = &self.storage;
        let mut m =
            e.encode_descriptor("storage_commits", "Storage write transactions committed", None, MetricType::Counter)?;
        ConstCounter::new(s.fsyncs).encode(m.encode_family(&labels(&[("durability", "immediate")]))?)?;
        ConstCounter::new(s.commits - s.fsyncs).encode(m.encode_family(&labels(&[("durability", "none")]))?)?;
        let m = e.encode_descriptor("storage_fsyncs", "Storage fsyncs (durable commits)", None, MetricType::Counter)?;
        ConstCounter::new(s.fsyncs).encode(m)?;
        let m = e.encode_descriptor(
            "storage_committed_seq",
            "Storage commits made (lazy and durable)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.committed_seq as i64).encode(m)?;
        let m = e.encode_descriptor(
            "storage_durable_seq",
            "The last storage commit known durable (all before it are)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.durable_seq as i64).encode(m)?;
        let mut m = e.encode_descriptor(
            "storage_commit_duration_seconds",
            "Time to commit a storage write transaction",
            None,
            MetricType::Histogram,
        )?;
        // The count is the buckets' sum (read with them, not with `commits`); the encoder
        // accumulates the per-bucket counts itself.
        let count = s.commit_buckets.iter().map(|b| b.1).sum();
        m.encode_histogram::<Labels>(s.commit_seconds, count, &s.commit_buckets, None)?;
        let mut m =
            e.encode_descriptor("queued_transactions", "Transactions waiting in a queue", None, MetricType::Gauge)?;
        for (tier, n) in self.queued {
            ConstGauge::new(n as i64).encode(m.encode_family(&labels(&[("tier", tier.as_str())]))?)?;
        }
        let mut m =
            e.encode_descriptor("kill_switch_state", "1 for the kill switch's current state", None, MetricType::Gauge)?;
        for state in KillSwitchStatus::ALL {
            let v = i64::from(*state == self.kill_switch);
            ConstGauge::new(v).encode(m.encode_family(&labels(&[("state", state.as_str())]))?)?;
        }
        let m = e.encode_descriptor("keystore_unlocked", "1 when the keystore is unlocked", None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(self.keystore_unlocked)).encode(m)?;
        let mut m =
            e.encode_descriptor("adapter_up", "1 when the chain adapter is connected", None, MetricType::Gauge)?;
        for (chain, network, up) in &self.adapters {
            ConstGauge::new(i64::from(*up))
                .encode(m.encode_family(&labels(&[("chain", chain), ("network", network)]))?)?;
        }
        Ok(())
    }
}

impl App {
    /// One scrape of `/metrics` in the OpenMetrics text format.
    pub(crate) async fn metrics_text(&self) -> String {
        let storage = self.db.store().stats();
        let queued = match self.db.call(|s| s.queued_by_tier()).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!("metrics: cannot count the queues: {e}");
                [(Tier::Delay, 0), (Tier::Approval, 0)]
            }
        };
        let snapshot = Snapshot {
            storage,
            queued,
            kill_switch: self.kill_switch.view().status,
            keystore_unlocked: self.signers.keystore.is_unlocked().await,
            adapters: self
                .chains
                .infos()
                .iter()
                .map(|a| (a.chain.as_str(), a.network.as_str(), a.status == AdapterStatus::Connected))
                .collect(),
        };
        let mut registry = crate::runtime::metrics::get().registry();
        registry.register_collector(Box::new(snapshot));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!("metrics: cannot encode: {e}");
        }
        out
    }
}
