//! Notifications (10-notifications-clients.md §1–4): the owner hears about what agents do and
//! about everything that needs them — through Telegram, Discord, ntfy, Slack or signed webhooks.
//!
//! Sending never blocks a response or a state change. [`Notifier::emit`] puts a message on a
//! bounded queue and returns at once; a dispatcher task drains it, delivering each message in
//! its own task. A full queue drops the message, says so in the log and counts it in the status
//! view. The one awaited send is `TX_APPROVAL_REQUEST` ([`Notifier::emit_awaited`], ≤ 10 s).
//!
//! Delivery rules: `notify` walks the enabled channels by priority and stops at the first that
//! delivers; `broadcast` sends to all in parallel within 10 s. Each channel has a token bucket
//! whose last third only WARNING and CRITICAL events may take, and those wait up to 5 s for a
//! token instead of being dropped, so INFO floods never cost the owner an approval request; a
//! 429 is retried once after the service's own wait hint (≤ 10 s). Every attempt is written to
//! the notification log; when nobody heard, an audit row says so.

pub(crate) mod channel;
mod limits;
pub(crate) mod message;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;
use waiaas_storage::{
    AuditEvent, AuditEventType, AuditSeverity, ChannelChange, ChannelRecord, ChannelType, LogQuery, MinChannels,
    NotificationLevel, NotificationLogRecord, NotificationStatus, OpCtx, StoreError,
};

use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::runtime::{Db, Settings};
use channel::{ChannelConfig, SendResult};
use limits::{Dedup, TokenBucket};
pub(crate) use message::{Delivery, Event, Message, TxParty};

/// Messages waiting for delivery.
const QUEUE: usize = 1024;
/// Deliveries in progress at once.
const CONCURRENT: usize = 32;
/// The longest 429 wait that is honoured with a retry.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// The bound of a broadcast and of the awaited approval request.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an urgent message waits for its channel's next token (issue #22): within the
/// 10 s an approval request has to reach the owner, with room for the send itself.
const MAX_TOKEN_WAIT: Duration = Duration::from_secs(5);
/// Consecutive failed health checks that make a channel unhealthy.
const UNHEALTHY_AFTER: u32 = 3;

/// Why a channel operation did not apply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("Notification channel {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The service's health check failed (creation, config change).
    #[error("The channel's health check failed: {0}")]
    Unhealthy(String),
    #[error("Disabling this channel would leave fewer than {0} enabled channels")]
    MinChannels(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for NotifyError {
    fn code(&self) -> ErrorCode {
        match self {
            NotifyError::NotFound(_) => ErrorCode::ChannelNotFound,
            NotifyError::Invalid(e) => e.code(),
            NotifyError::Unhealthy(_) => ErrorCode::InvalidChannelConfig,
            NotifyError::MinChannels(_) => ErrorCode::MinChannelsRequired,
            NotifyError::Store(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            NotifyError::NotFound(id) => details([("resource", "channel".into()), ("id", id.clone().into())]),
            NotifyError::Invalid(e) => e.details(),
            NotifyError::Unhealthy(e) => details([("error", e.clone().into())]),
            NotifyError::MinChannels(n) => details([("minChannels", (*n).into())]),
            NotifyError::Store(_) => Map::new(),
        }
    }
}

/// A new channel.
#[derive(Debug, Clone)]
pub(crate) struct NewChannel {
    pub(crate) kind: ChannelType,
    pub(crate) name: String,
    pub(crate) config: Value,
    pub(crate) priority: i32,
    pub(crate) enabled: bool,
}

/// The queue's state, for the status view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueStatus {
    pub(crate) capacity: usize,
    pub(crate) waiting: usize,
    /// Deliveries being sent right now (at most 32).
    pub(crate) in_flight: usize,
    /// Messages dropped because the queue was full, since start.
    pub(crate) dropped: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
}

/// The notification service.
pub(crate) struct Notifier {
    db: Db,
    clock: Clock,
    settings: Settings,
    http: reqwest::Client,
    buckets: Mutex<HashMap<Uuid, TokenBucket>>,
    dedup: Mutex<Dedup>,
    queue: mpsc::Sender<Message>,
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Channels announced unhealthy (once until they recover).
    unhealthy: Mutex<HashSet<Uuid>>,
    /// Deliveries in progress are bounded by these permits.
    permits: Arc<Semaphore>,
}

fn validate_name(name: &str) -> Result<(), Invalid> {
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(Invalid::field("name", "invalid_string", "name must be 1-100 characters"));
    }
    Ok(())
}

fn validate_priority(p: i32) -> Result<(), Invalid> {
    if !(-1000..=1000).contains(&p) {
        return Err(Invalid::field("priority", "out_of_range", "priority must be between -1000 and 1000"));
    }
    Ok(())
}

impl Notifier {
    /// The service and its dispatcher task.
    pub(crate) fn start(db: Db, clock: Clock, settings: Settings) -> Arc<Notifier> {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let http = reqwest::Client::builder()
            .user_agent(concat!("waiaas/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS-capable HTTP client");
        let n = Arc::new(Notifier {
            db,
            clock,
            settings,
            http,
            buckets: Mutex::default(),
            dedup: Mutex::new(Dedup::new()),
            queue: tx,
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unhealthy: Mutex::default(),
            permits: Arc::new(Semaphore::new(CONCURRENT)),
        });
        let me = Arc::downgrade(&n);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let Some(n) = me.upgrade() else { return };
                let Ok(permit) = n.permits.clone().acquire_owned().await else { return };
                tokio::spawn(async move {
                    n.deliver(m).await;
                    drop(permit);
                });
            }
        });
        n
    }

    fn enabled(&self) -> bool {
        self.settings.get().notifications.enabled
    }

    /// Whether `m` is new enough to send (§4 deduplication).
    fn first_time(&self, m: &Message) -> bool {
        let Some(key) = m.dedup_key() else { return true };
        let ttl = Duration::from_secs(self.settings.get().notifications.dedup_ttl);
        self.dedup.lock().expect("dedup lock").first(&key, ttl, Instant::now())
    }

    /// Queues `m` for delivery and returns at once. Nothing is sent while notifications are
    /// disabled; a duplicate within `dedup_ttl` is skipped; a full queue drops it (logged).
    pub(crate) fn emit(&self, m: Message) {
        if !self.enabled() || !self.first_time(&m) {
            return;
        }
        if let Err(e) = self.queue.try_send(m) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            crate::runtime::metrics::get().notification_dropped();
            let event = match &e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m.event.as_str(),
            };
            tracing::warn!("notification queue full ({QUEUE}): dropped {event} ({n} dropped since start)");
        }
    }

    /// Delivers `m` now and waits for the result, at most 10 s (`TX_APPROVAL_REQUEST`). Returns
    /// whether some channel delivered it.
    #[allow(dead_code)] // TX_APPROVAL_REQUEST, when approvals land
    pub(crate) async fn emit_awaited(&self, m: Message) -> bool {
        if !self.enabled() || !self.first_time(&m) {
            return false;
        }
        tokio::time::timeout(BROADCAST_TIMEOUT + Duration::from_secs(1), self.deliver(m)).await.unwrap_or(false)
    }

    /// The queue's state.
    pub(crate) fn status(&self) -> QueueStatus {
        QueueStatus {
            capacity: QUEUE,
            waiting: QUEUE - self.queue.capacity(),
            in_flight: CONCURRENT - self.permits.available_permits(),
            dropped: self.dropped.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    async fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let mut all = self.db.call(|s| s.list_channels()).await?;
        all.retain(|c| c.enabled);
        // Highest priority first, then the oldest.
        all.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.id));
        Ok(all)
    }

    /// Delivers one message as its event says; writes the log (and audit) rows.
    async fn deliver(&self, m: Message) -> bool {
        if m.event == Event::SessionExpiringSoon
            && let Some(r) = m.reference_id.clone()
            && self.db.call(move |s| s.was_delivered("SESSION_EXPIRING_SOON", &r)).await.unwrap_or(false)
        {
            return false;
        }
        let channels = match self.channels().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("notification {}: cannot read the channels: {e}", m.event.as_str());
                return false;
            }
        };
        match m.delivery() {
            Delivery::Notify => self.notify(&m, &channels, None).await,
            Delivery::Broadcast => self.broadcast(&m, &channels).await,
        }
    }

    fn log_row(
        &self,
        m: &Message,
        channel: Option<&ChannelRecord>,
        status: NotificationStatus,
        error: Option<String>,
        retries: u32,
    ) -> NotificationLogRecord {
        let channel_type = channel.map_or("none", |c| c.channel_type.as_str());
        crate::runtime::metrics::get().notification(channel_type, status.as_str());
        NotificationLogRecord {
            id: self.clock.new_id(),
            channel_id: channel.map(|c| c.id),
            event: m.event.as_str().to_string(),
            level: m.level,
            reference_id: m.reference_id.clone(),
            status,
            error,
            retry_count: retries,
            sent_at: self.clock.now(),
        }
    }

    async fn record(&self, rows: Vec<NotificationLogRecord>, audit: Option<AuditEvent>) {
        for r in &rows {
            let counter = if r.status == NotificationStatus::Delivered { &self.delivered } else { &self.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let ctx = OpCtx::new("system", self.clock.now());
        if let Err(e) = self.db.call(move |s| s.record_notifications(&rows, audit, &ctx)).await {
            tracing::warn!("cannot write the notification log: {e}");
        }
    }

    /// One channel: the bucket, the send, one retry after a 429 with a wait of at most 10 s.
    async fn attempt(&self, ch: &ChannelRecord, m: &Message) -> NotificationLogRecord {
        let cfg = match ChannelConfig::parse(ch.channel_type, &ch.config) {
            Ok(c) => c,
            Err(e) => return self.log_row(m, Some(ch), NotificationStatus::Failed, Some(e.message), 0),
        };
        // WARNING and CRITICAL events — TX_APPROVAL_REQUEST among them — may take the bucket's
        // reserve, and wait (bounded) for a token rather than be dropped (issue #22).
        let urgent = m.level != NotificationLevel::Info;
        let waited_since = Instant::now();
        loop {
            let taken = self
                .buckets
                .lock()
                .expect("bucket lock")
                .entry(ch.id)
                .or_insert_with(|| TokenBucket::for_kind(ch.channel_type))
                .take(Instant::now(), urgent);
            match taken {
                Ok(()) => break,
                Err(wait) if urgent && waited_since.elapsed() + wait <= MAX_TOKEN_WAIT => {
                    tokio::time::sleep(wait).await;
                }
                Err(_) => return self.log_row(m, Some(ch), NotificationStatus::RateLimited, None, 0),
            }
        }
        let mut retries = 0;
        loop {
            match cfg.send(&self.http, m, Uuid::new_v4(), self.clock.now()).await {
                SendResult::Delivered => {
                    return self.log_row(m, Some(ch), NotificationStatus::Delivered, None, retries);
                }
                SendResult::RateLimited { retry_after } if retries == 0 && retry_after <= MAX_RETRY_WAIT => {
                    retries = 1;
                    tokio::time::sleep(retry_after).await;
                }
                SendResult::RateLimited { retry_after } => {
                    let e = format!("HTTP 429 (retry after {} s)", retry_after.as_secs_f64());
                    return self.log_row(m, Some(ch), NotificationStatus::Failed, Some(e), retries);
                }
                SendResult::Failed(e) => {
                    return self.log_row(m, Some(ch), NotificationStatus::Failed, Some(e), retries);
                }
            }
        }
    }

    /// §4 `notify()`: the first channel by priority that delivers; `ALL_FAILED` when none does.
    async fn notify(&self, m: &Message, channels: &[ChannelRecord], skip: Option<Uuid>) -> bool {
        let mut rows = Vec::new();
        for ch in channels.iter().filter(|c| Some(c.id) != skip) {
            let row = self.attempt(ch, m).await;
            let done = row.status == NotificationStatus::Delivered;
            rows.push(row);
            if done {
                self.record(rows, None).await;
                return true;
            }
        }
        rows.push(self.log_row(m, None, NotificationStatus::AllFailed, Some("no channel delivered".into()), 0));
        let ev = AuditEvent::new(AuditEventType::NotificationAllFailed, "system")
            .severity(AuditSeverity::Critical)
            .detail("event", m.event.as_str())
            .detail("referenceId", m.reference_id.clone())
            .detail("channelsTried", rows.len() as u64 - 1);
        self.record(rows, Some(ev)).await;
        false
    }

    /// §4 `broadcast()`: every enabled channel in parallel within 10 s.
    async fn broadcast(&self, m: &Message, channels: &[ChannelRecord]) -> bool {
        let attempts = channels.iter().map(|ch| async move {
            match tokio::time::timeout(BROADCAST_TIMEOUT, self.attempt(ch, m)).await {
                Ok(row) => row,
                Err(_) => self.log_row(m, Some(ch), NotificationStatus::Failed, Some("timed out".into()), 0),
            }
        });
        let rows = futures_util::future::join_all(attempts).await;
        let any = rows.iter().any(|r| r.status == NotificationStatus::Delivered);
        let audit = (!any).then(|| {
            AuditEvent::new(AuditEventType::NotificationBroadcastFailed, "system")
                .severity(AuditSeverity::Critical)
                .detail("event", m.event.as_str())
                .detail("referenceId", m.reference_id.clone())
                .detail("channels", rows.len() as u64)
        });
        self.record(rows, audit).await;
        any
    }

    // --- Channel management ------------------------------------------------------------------

    async fn check_health(&self, kind: ChannelType, config: &Value) -> Result<(), NotifyError> {
        let cfg = ChannelConfig::parse(kind, config)?;
        cfg.health_check(&self.http, self.clock.now()).await.map_err(NotifyError::Unhealthy)
    }

    /// Creates a channel after its health check passed; audits `NOTIFICATION_CHANNEL_CREATED`.
    pub(crate) async fn create_channel(&self, new: NewChannel, ctx: &OpCtx) -> Result<ChannelRecord, NotifyError> {
        validate_name(&new.name)?;
        validate_priority(new.priority)?;
        self.check_health(new.kind, &new.config).await?;
        let now = self.clock.now();
        let rec = ChannelRecord {
            id: self.clock.new_id(),
            channel_type: new.kind,
            name: new.name,
            config: new.config,
            priority: new.priority,
            enabled: new.enabled,
            last_health_check: Some(now),
            last_health_status: Some(true),
            consecutive_health_failures: 0,
            created_at: now,
            updated_at: now,
        };
        let (r, ctx) = (rec.clone(), ctx.clone());
        self.db.call(move |s| s.insert_channel(&r, &ctx)).await?;
        Ok(rec)
    }

    /// One channel.
    pub(crate) async fn channel(&self, raw: &str) -> Result<ChannelRecord, NotifyError> {
        let id = Uuid::parse_str(raw).map_err(|_| NotifyError::NotFound(raw.to_string()))?;
        self.db.call(move |s| s.get_channel(id)).await?.ok_or_else(|| NotifyError::NotFound(raw.to_string()))
    }

    fn min_rule(&self) -> MinChannels {
        let n = self.settings.get().notifications.clone();
        MinChannels { notifications_enabled: n.enabled, min: n.min_channels }
    }

    /// Updates a channel: a new config is validated and health-checked first; disabling follows
    /// the minimum-channels rule inside the write transaction.
    pub(crate) async fn update_channel(
        &self,
        raw: &str,
        change: ChannelChange,
        ctx: &OpCtx,
    ) -> Result<ChannelRecord, NotifyError> {
        let current = self.channel(raw).await?;
        if let Some(n) = &change.name {
            validate_name(n)?;
        }
        if let Some(p) = change.priority {
            validate_priority(p)?;
        }
        if let Some(c) = &change.config {
            self.check_health(current.channel_type, c).await?;
        }
        let (id, rule, ctx) = (current.id, self.min_rule(), ctx.clone());
        self.db.call(move |s| s.update_channel(id, &change, rule, &ctx)).await.map_err(|e| match e {
            StoreError::MinChannels => NotifyError::MinChannels(rule.min),
            StoreError::NotFound { .. } => NotifyError::NotFound(id.to_string()),
            other => other.into(),
        })
    }

    /// Disables a channel (there is no physical delete).
    pub(crate) async fn disable_channel(&self, raw: &str, ctx: &OpCtx) -> Result<ChannelRecord, NotifyError> {
        self.update_channel(raw, ChannelChange { enabled: Some(false), ..ChannelChange::default() }, ctx).await
    }

    /// Sends a `TEST` message through this channel only; `Err` says why it was not delivered.
    /// An explicit operator test is sent even while notifications are disabled.
    pub(crate) async fn test_channel(&self, raw: &str) -> Result<Result<(), String>, NotifyError> {
        let ch = self.channel(raw).await?;
        let m = Message::test(ch.id, &ch.name, self.clock.now());
        let row = self.attempt(&ch, &m).await;
        let result = match row.status {
            NotificationStatus::Delivered => Ok(()),
            NotificationStatus::RateLimited => Err("rate limited".to_string()),
            _ => Err(row.error.clone().unwrap_or_else(|| "not delivered".into())),
        };
        self.record(vec![row], None).await;
        Ok(result)
    }

    /// A page of the notification log.
    pub(crate) async fn log(&self, q: LogQuery) -> Result<(Vec<NotificationLogRecord>, bool), StoreError> {
        self.db.call(move |s| s.list_notification_log(&q)).await
    }

    // --- Workers -----------------------------------------------------------------------------

    /// The channel-health worker: checks every enabled channel, records the result, and after
    /// three failures in a row tells the owner through the other channels — once, until the
    /// channel recovers. Channels are never disabled automatically.
    pub(crate) async fn health_pass(&self) -> Result<(), StoreError> {
        let channels = self.channels().await?;
        for ch in &channels {
            let healthy = match ChannelConfig::parse(ch.channel_type, &ch.config) {
                Ok(cfg) => cfg.health_check(&self.http, self.clock.now()).await.is_ok(),
                Err(_) => false,
            };
            let (id, now) = (ch.id, self.clock.now());
            let after = self.db.call(move |s| s.record_channel_health(id, healthy, now)).await?;
            if healthy {
                self.unhealthy.lock().expect("unhealthy lock").remove(&ch.id);
                continue;
            }
            let announce = after.consecutive_health_failures >= UNHEALTHY_AFTER
                && self.unhealthy.lock().expect("unhealthy lock").insert(ch.id);
            if announce && self.enabled() {
                tracing::warn!("notification channel {} ({}) is unhealthy", ch.name, ch.id);
                let m = Message::channel_unhealthy(ch.id, &ch.name, self.clock.now());
                let others: Vec<ChannelRecord> = channels.iter().filter(|c| c.id != ch.id).cloned().collect();
                self.notify(&m, &others, Some(ch.id)).await;
            }
        }
        Ok(())
    }

    /// The retention worker: deletes log rows older than `log_retention_days`.
    pub(crate) async fn retention_pass(&self) -> Result<u64, StoreError> {
        let days = self.settings.get().notifications.log_retention_days;
        let before = self.clock.now().saturating_sub(days * 86_400);
        self.db.call(move |s| s.prune_notification_log(before)).await
    }
}
