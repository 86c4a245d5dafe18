//! The operator's metrics (12-operations.md §3): the families that code records into as things
//! happen (requests, pipeline stages, policy decisions, notifications, AutoStop actions, node
//! RPCs). What is read off live state at scrape time (queue depth, kill switch, keystore,
//! adapters, storage counters) is the app's collector (`app::metrics`).
//!
//! Recording is a few atomic operations: no lock is held across an `.await` and nothing is
//! written to the database. With `[metrics] enabled = false` (the default) nothing is recorded.
//!
//! **No label ever carries an address, amount, token, key, session or transaction id.** Every
//! label value is one of a closed set: a route pattern of the route table, an HTTP method and
//! status, an enum's spelling. The types below accept nothing else.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds; from 0.5 ms (a cached read) to 30 s (a send waiting for its confirmation).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A pipeline stage (06-pipeline.md §1) as timed for `waiaas_pipeline_stage_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Stage {
    Validate,
    Decide,
    Build,
    Simulate,
    Sign,
    Submit,
    Confirm,
}

impl Stage {
    pub(crate) const ALL: [Stage; 7] =
        [Stage::Validate, Stage::Decide, Stage::Build, Stage::Simulate, Stage::Sign, Stage::Submit, Stage::Confirm];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Decide => "decide",
            Stage::Build => "build",
            Stage::Simulate => "simulate",
            Stage::Sign => "sign",
            Stage::Submit => "submit",
            Stage::Confirm => "confirm",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    /// The route table's pattern (`/v1/transactions/:id`), `unmatched` for no route.
    pub(crate) route: &'static str,
    pub(crate) method: &'static str,
    pub(crate) status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: &'static str,
    pub(crate) method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabels {
    pub(crate) stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyLabels {
    /// The tier decided, or `none` for a denial.
    pub(crate) tier: &'static str,
    /// `allowed` or `denied`.
    pub(crate) outcome: &'static str,
    /// The denial's kind (its error code), `none` when allowed.
    pub(crate) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NotificationLabels {
    pub(crate) channel_type: &'static str,
    pub(crate) status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AutoStopLabels {
    pub(crate) rule_type: &'static str,
    pub(crate) action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RpcLabels {
    pub(crate) chain: &'static str,
    /// The JSON-RPC method (`eth_sendRawTransaction`, `getLatestBlockhash`, …).
    pub(crate) method: &'static str,
}

/// The recorded families.
pub(crate) struct Metrics {
    /// `[metrics] enabled`: recording is skipped while off.
    enabled: AtomicBool,
    pub(crate) http_requests: Family<HttpLabels, Counter>,
    pub(crate) http_duration: Histograms<RouteLabels>,
    pub(crate) stage_duration: Histograms<StageLabels>,
    pub(crate) policy_decisions: Family<PolicyLabels, Counter>,
    pub(crate) notifications: Family<NotificationLabels, Counter>,
    pub(crate) notification_dropped: Counter,
    pub(crate) connections_refused: Counter,
    pub(crate) autostop_actions: Family<AutoStopLabels, Counter>,
    pub(crate) rpc_duration: Histograms<RpcLabels>,
    pub(crate) build_info: Family<Vec<(&'static str, &'static str)>, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    enabled: AtomicBool::new(false),
    http_requests: Family::default(),
    http_duration: Family::new_with_constructor(latency),
    stage_duration: Family::new_with_constructor(latency),
    policy_decisions: Family::default(),
    notifications: Family::default(),
    notification_dropped: Counter::default(),
    connections_refused: Counter::default(),
    autostop_actions: Family::default(),
    rpc_duration: Family::new_with_constructor(latency),
    build_info: Family::default(),
});

/// The process's metrics.
pub(crate) fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Turns recording on or off (`[metrics] enabled`, set once at start).
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether recording is on; every recording call site checks it first.
    pub(crate) fn on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// A registry holding every recorded family (clones share the values), for one scrape
    /// encoder; the app adds its scrape-time collector.
    pub(crate) fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("waiaas");
        self.build_info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))]).set(1);
        r.register("build_info", "The running build", self.build_info.clone());
        r.register("http_requests", "HTTP requests answered", self.http_requests.clone());
        r.register("http_request_duration_seconds", "Time to answer an HTTP request", self.http_duration.clone());
        r.register(
            "pipeline_stage_duration_seconds",
            "Time a send spent in each pipeline stage",
            self.stage_duration.clone(),
        );
        r.register("policy_decisions", "Policy decisions by tier and outcome", self.policy_decisions.clone());
        r.register("notifications", "Notification deliveries by channel type and outcome", self.notifications.clone());
        r.register(
            "notification_queue_dropped",
            "Notifications dropped because the queue was full",
            self.notification_dropped.clone(),
        );
        r.register(
            "http_connections_refused",
            "Client connections refused over [daemon].max_connections or max_connections_per_ip",
            self.connections_refused.clone(),
        );
        r.register("autostop_actions", "AutoStop actions taken", self.autostop_actions.clone());
        r.register("rpc_duration_seconds", "Node RPC round trips", self.rpc_duration.clone());
        r
    }

    /// One connection refused over the caps.
    pub(crate) fn refused_connection(&self) {
        if self.on() {
            self.connections_refused.inc();
        }
    }

    /// One answered request.
    pub(crate) fn http(&self, route: &'static str, method: &'static str, status: u16, secs: f64) {
        if !self.on() {
            return;
        }
        self.http_requests.get_or_create(&HttpLabels { route, method, status }).inc();
        self.http_duration.get_or_create(&RouteLabels { route, method }).observe(secs);
    }

    /// One stage of one send.
    pub(crate) fn stage(&self, stage: Stage, secs: f64) {
        if !self.on() {
            return;
        }
        self.stage_duration.get_or_create(&StageLabels { stage: stage.as_str() }).observe(secs);
    }

    /// One policy decision.
    pub(crate) fn decision(&self, labels: PolicyLabels) {
        if self.on() {
            self.policy_decisions.get_or_create(&labels).inc();
        }
    }

    /// One notification delivery outcome.
    pub(crate) fn notification(&self, channel_type: &'static str, status: &'static str) {
        if self.on() {
            self.notifications.get_or_create(&NotificationLabels { channel_type, status }).inc();
        }
    }

    /// One notification dropped from a full queue.
    pub(crate) fn notification_dropped(&self) {
        if self.on() {
            self.notification_dropped.inc();
        }
    }

    /// One AutoStop action.
    pub(crate) fn autostop(&self, rule_type: &'static str, action: &'static str) {
        if self.on() {
            self.autostop_actions.get_or_create(&AutoStopLabels { rule_type, action }).inc();
        }
    }

    /// One node RPC.
    pub(crate) fn rpc(&self, chain: &'static str, method: &'static str, secs: f64) {
        if !self.on() {
            return;
        }
        self.rpc_duration.get_or_create(&RpcLabels { chain, method }).observe(secs);
    }
}

/// An HTTP method as a static label (anything unusual is `other`).
pub(crate) fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
