//! Notification channels and the delivery log (02-storage.md §3.10–3.11,
//! 10-notifications-clients.md §4).
//!
//! Channels are never deleted: "delete" disables. Disabling is refused when it would leave
//! fewer enabled channels than `min_channels` while notifications are enabled — **the count and
//! the update are one write transaction**, so concurrent disables of different channels cannot
//! together go below the minimum.

use redb::{ReadableTable, ReadableTableMetadata};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::codec::decode;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AuditSeverity, NotificationStatus};
use crate::error::StoreError;
use crate::records::*;
use crate::rows;
use crate::tables::*;

/// The minimum-channels rule in force when a channel is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinChannels {
    /// `[notifications].enabled`: the rule applies only while notifications are on.
    pub notifications_enabled: bool,
    /// `[notifications].min_channels`.
    pub min: u64,
}

/// A change to a channel (`PUT /v1/owner/notification-channels/:id`); `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelChange {
    /// New name.
    pub name: Option<String>,
    /// New config (already validated and health-checked by the caller).
    pub config: Option<serde_json::Value>,
    /// New priority.
    pub priority: Option<i32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// What the notification log listing filters on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// Event name.
    pub event: Option<String>,
    /// Delivery status.
    pub status: Option<NotificationStatus>,
    /// Channel.
    pub channel: Option<Uuid>,
    /// The last id of the previous page.
    pub cursor: Option<Uuid>,
    /// Page size.
    pub limit: usize,
    /// Newest first.
    pub desc: bool,
}

pub(crate) fn check_channel(c: &ChannelRecord) -> Result<(), StoreError> {
    let n = c.name.chars().count();
    if n == 0 || n > 100 {
        return Err(StoreError::Invariant("channel name must be 1-100 characters"));
    }
    if !c.config.is_object() {
        return Err(StoreError::Invariant("channel config must be a JSON object"));
    }
    Ok(())
}

fn enabled_count(tx: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let table = tx.open_table(NOTIFICATION_CHANNELS)?;
    let mut n = 0;
    for r in table.iter()? {
        let (_, v) = r?;
        let c: ChannelRecord = decode("notification_channels", v.value())?;
        n += u64::from(c.enabled);
    }
    Ok(n)
}

pub(crate) fn channel_event(name: AuditEventType, c: &ChannelRecord, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(name, ctx.actor.clone())
        .detail("channelId", c.id.to_string())
        .detail("type", c.channel_type.as_str())
        .detail("name", c.name.clone())
}

/// `MinChannels` when disabling one of `enabled()` channels would go below the minimum while
/// notifications are on (the count is read in the caller's transaction).
pub(crate) fn refuse_below_min(
    rule: MinChannels,
    enabled: impl FnOnce() -> Result<u64, StoreError>,
) -> Result<(), StoreError> {
    if rule.notifications_enabled {
        let n = enabled()?;
        if n >= rule.min && n - 1 < rule.min {
            return Err(StoreError::MinChannels);
        }
    }
    Ok(())
}

/// `old` after `change`, checked, and its audit row (DISABLED when it disables).
pub(crate) fn channel_changed(
    old: &ChannelRecord,
    change: &ChannelChange,
    ctx: &OpCtx,
) -> Result<(ChannelRecord, AuditEvent), StoreError> {
    let disabling = old.enabled && change.enabled == Some(false);
    let mut new = old.clone();
    if let Some(n) = &change.name {
        new.name = n.clone();
    }
    if let Some(c) = &change.config {
        new.config = c.clone();
        // A new configuration starts a new health history.
        new.consecutive_health_failures = 0;
    }
    if let Some(p) = change.priority {
        new.priority = p;
    }
    if let Some(e) = change.enabled {
        new.enabled = e;
    }
    new.updated_at = ctx.now;
    check_channel(&new)?;
    let ev = if disabling {
        channel_event(AuditEventType::NotificationChannelDisabled, &new, ctx).severity(AuditSeverity::Warning)
    } else {
        channel_event(AuditEventType::NotificationChannelUpdated, &new, ctx)
    };
    Ok((new, ev))
}

/// One health check's result on `c`.
pub(crate) fn health_recorded(c: &mut ChannelRecord, healthy: bool, now: u64) {
    c.last_health_check = Some(now);
    c.last_health_status = Some(healthy);
    c.consecutive_health_failures = if healthy { 0 } else { c.consecutive_health_failures.saturating_add(1) };
}

impl LogQuery {
    /// Whether a log row passes the filters.
    pub(crate) fn matches(&self, e: &NotificationLogRecord) -> bool {
        !(self.event.as_ref().is_some_and(|x| *x != e.event)
            || self.status.is_some_and(|s| s != e.status)
            || self.channel.is_some_and(|c| Some(c) != e.channel_id))
    }
}

impl RedbStore {
    /// Inserts a channel and audits `NOTIFICATION_CHANNEL_CREATED` (the config is not audited:
    /// it holds secrets) — one write transaction.
    pub fn insert_channel(&self, c: &ChannelRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        check_channel(c)?;
        self.write(|tx| {
            if tx.open_table(NOTIFICATION_CHANNELS)?.get(c.id.as_u128())?.is_some() {
                return Err(StoreError::Unique { index: "notification_channels" });
            }
            rows::put(tx, NOTIFICATION_CHANNELS, "notification_channels", c.id, c)?;
            self.audit(tx, channel_event(AuditEventType::NotificationChannelCreated, c, ctx), ctx)?;
            Ok(())
        })
    }

    /// Applies `change` to a channel in one write transaction. Disabling an enabled channel
    /// counts the enabled channels in the same transaction and refuses (`MinChannels`) when
    /// notifications are enabled, the count is at least `min` and disabling would go below it.
    /// Audits `NOTIFICATION_CHANNEL_DISABLED` (warning) when it disables, else
    /// `NOTIFICATION_CHANNEL_UPDATED`.
    pub fn update_channel(
        &self,
        id: Uuid,
        change: &ChannelChange,
        rule: MinChannels,
        ctx: &OpCtx,
    ) -> Result<ChannelRecord, StoreError> {
        self.write(|tx| {
            let old: ChannelRecord =
                rows::must_get(&tx.open_table(NOTIFICATION_CHANNELS)?, "notification_channels", id)?;
            let disabling = old.enabled && change.enabled == Some(false);
            if disabling {
                refuse_below_min(rule, || enabled_count(tx))?;
            }
            let (new, ev) = channel_changed(&old, change, ctx)?;
            rows::put(tx, NOTIFICATION_CHANNELS, "notification_channels", id, &new)?;
            self.audit(tx, ev, ctx)?;
            Ok(new)
        })
    }

    /// One channel.
    pub fn get_channel(&self, id: Uuid) -> Result<Option<ChannelRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(NOTIFICATION_CHANNELS)?, "notification_channels", id))
    }

    /// Every channel, oldest first.
    pub fn list_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(|tx| {
            let mut out = Vec::new();
            for r in tx.open_table(NOTIFICATION_CHANNELS)?.iter()? {
                let (_, v) = r?;
                out.push(decode("notification_channels", v.value())?);
            }
            Ok(out)
        })
    }

    /// Records one health check of a channel: time, result and the consecutive-failure count
    /// (reset by a success). Returns the channel after the change. No audit row: health checks
    /// change no security-relevant state.
    pub fn record_channel_health(&self, id: Uuid, healthy: bool, now: u64) -> Result<ChannelRecord, StoreError> {
        self.write(|tx| {
            let mut c: ChannelRecord =
                rows::must_get(&tx.open_table(NOTIFICATION_CHANNELS)?, "notification_channels", id)?;
            health_recorded(&mut c, healthy, now);
            rows::put(tx, NOTIFICATION_CHANNELS, "notification_channels", id, &c)?;
            Ok(c)
        })
    }

    /// Writes the log rows of one delivery (and its `ALL_FAILED` / `BROADCAST_FAILED` audit row
    /// when given) in one write transaction; a DELIVERED row also becomes the latest delivery of
    /// its (event, reference) in `idx_notification_delivered`.
    pub fn record_notifications(
        &self,
        entries: &[NotificationLogRecord],
        audit: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            for e in entries {
                rows::put(tx, NOTIFICATION_LOG, "notification_log", e.id, e)?;
                if let (NotificationStatus::Delivered, Some(r)) = (e.status, &e.reference_id) {
                    tx.open_table(IDX_NOTIFICATION_DELIVERED)?
                        .insert((e.event.as_str(), r.as_str()), e.id.as_u128())?;
                }
            }
            if let Some(ev) = audit {
                self.audit(tx, ev, ctx)?;
            }
            Ok(())
        })
    }

    /// Whether `event` for `reference` was ever delivered (once-per-session events).
    pub fn was_delivered(&self, event: &str, reference: &str) -> Result<bool, StoreError> {
        self.read(|tx| Ok(tx.open_table(IDX_NOTIFICATION_DELIVERED)?.get((event, reference))?.is_some()))
    }

    /// A page of the notification log; returns the rows and whether more exist.
    pub fn list_notification_log(&self, q: &LogQuery) -> Result<(Vec<NotificationLogRecord>, bool), StoreError> {
        self.read(|tx| {
            let table = tx.open_table(NOTIFICATION_LOG)?;
            let (lo, hi) = match (q.cursor, q.desc) {
                (Some(c), true) => (0u128, c.as_u128().saturating_sub(1)),
                (Some(c), false) => (c.as_u128().saturating_add(1), u128::MAX),
                (None, _) => (0, u128::MAX),
            };
            let range = table.range(lo..=hi)?;
            let iter: Box<dyn Iterator<Item = _>> = if q.desc { Box::new(range.rev()) } else { Box::new(range) };
            let mut out = Vec::new();
            for r in iter {
                let (_, v) = r?;
                let e: NotificationLogRecord = decode("notification_log", v.value())?;
                if !q.matches(&e) {
                    continue;
                }
                if out.len() == q.limit {
                    return Ok((out, true));
                }
                out.push(e);
            }
            Ok((out, false))
        })
    }

    /// Deletes notification-log rows sent before `before`, at most 1000 rows per write
    /// transaction (the key order is time order), until none remain. Returns how many.
    /// `idx_notification_delivered` keeps its entries: "delivered once per session" must hold
    /// after the row that proved it is gone.
    pub fn prune_notification_log(&self, before: u64) -> Result<u64, StoreError> {
        const BATCH: usize = 1000;
        let mut total = 0;
        loop {
            let n = self.write(|tx| {
                let mut table = tx.open_table(NOTIFICATION_LOG)?;
                let mut doomed = Vec::new();
                for r in table.iter()? {
                    let (k, v) = r?;
                    let e: NotificationLogRecord = decode("notification_log", v.value())?;
                    if e.sent_at >= before || doomed.len() == BATCH {
                        break;
                    }
                    doomed.push(k.value());
                }
                for k in &doomed {
                    table.remove(*k)?;
                }
                Ok(doomed.len())
            })?;
            total += n as u64;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    /// Rows in the notification log (tests, status).
    pub fn notification_log_len(&self) -> Result<u64, StoreError> {
        self.read(|tx| Ok(tx.open_table(NOTIFICATION_LOG)?.len()?))
    }
}
