//! Notification channels and the delivery log on PostgreSQL. Channel changes hold G exclusive
//! (configuration, §5): the minimum-channels count and the disable are one serialised step.

use uuid::Uuid;

use super::super::codec::to_json;
use super::super::rows;
use super::super::store::{Global, PgStore};
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::OpCtx;
use crate::enums::NotificationStatus;
use crate::error::StoreError;
use crate::ops::notify::{
    ChannelChange, LogQuery, MinChannels, channel_changed, channel_event, check_channel, health_recorded,
    refuse_below_min,
};
use crate::records::*;

impl PgStore {
    /// Inserts a channel and audits `NOTIFICATION_CHANNEL_CREATED`.
    pub fn insert_channel(&self, c: &ChannelRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        check_channel(c)?;
        self.write(Global::Exclusive, async |tx| {
            if rows::exists(tx, "notification_channels", c.id).await? {
                return Err(StoreError::Unique { index: "notification_channels" });
            }
            rows::insert(tx, "notification_channels", c.id, c).await?;
            self.audit(tx, channel_event(AuditEventType::NotificationChannelCreated, c, ctx), ctx).await?;
            Ok(())
        })
    }

    /// Applies `change` under the minimum-channels rule.
    pub fn update_channel(
        &self,
        id: Uuid,
        change: &ChannelChange,
        rule: MinChannels,
        ctx: &OpCtx,
    ) -> Result<ChannelRecord, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let old: ChannelRecord = rows::must_get(tx, "notification_channels", id).await?;
            if old.enabled && change.enabled == Some(false) {
                let n: i64 = super::super::rows::one(
                    tx,
                    "SELECT count(*) FROM notification_channels WHERE (record->>'enabled')::boolean",
                    &[],
                )
                .await?
                .get(0);
                refuse_below_min(rule, || Ok(n as u64))?;
            }
            let (new, ev) = channel_changed(&old, change, ctx)?;
            rows::update(tx, "notification_channels", id, &new).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(new)
        })
    }

    /// One channel.
    pub fn get_channel(&self, id: Uuid) -> Result<Option<ChannelRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "notification_channels", id).await)
    }

    /// Every channel, oldest first.
    pub fn list_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(tx, "notification_channels", "SELECT record::text FROM notification_channels ORDER BY id", &[])
                .await
        })
    }

    /// Records one health check (not configuration: G shared, row lock).
    pub fn record_channel_health(&self, id: Uuid, healthy: bool, now: u64) -> Result<ChannelRecord, StoreError> {
        self.write(Global::Shared, async |tx| {
            let row = super::super::rows::opt(
                tx,
                "SELECT record::text FROM notification_channels WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("notification_channels", id))?;
            let mut c: ChannelRecord = super::super::codec::from_text("notification_channels", row.get(0))?;
            health_recorded(&mut c, healthy, now);
            rows::update(tx, "notification_channels", id, &c).await?;
            Ok(c)
        })
    }

    /// The log rows of one delivery, and its audit row when given.
    pub fn record_notifications(
        &self,
        entries: &[NotificationLogRecord],
        audit: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            for e in entries {
                super::super::rows::exec(
                    tx,
                    "INSERT INTO notification_log (id, record) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                    &[&e.id, &to_json("notification_log", e)?],
                )
                .await?;
                if let (NotificationStatus::Delivered, Some(r)) = (e.status, &e.reference_id) {
                    super::super::rows::exec(
                        tx,
                        "INSERT INTO notification_delivered (event, reference_id, log_id) VALUES ($1, $2, $3)
                         ON CONFLICT (event, reference_id) DO UPDATE SET log_id = EXCLUDED.log_id",
                        &[&e.event, r, &e.id],
                    )
                    .await?;
                }
            }
            if let Some(ev) = audit.clone() {
                self.audit(tx, ev, ctx).await?;
            }
            Ok(())
        })
    }

    /// Whether `event` for `reference` was ever delivered.
    pub fn was_delivered(&self, event: &str, reference: &str) -> Result<bool, StoreError> {
        self.read(async |tx| {
            Ok(super::super::rows::opt(
                tx,
                "SELECT 1 FROM notification_delivered WHERE event = $1 AND reference_id = $2",
                &[&event, &reference],
            )
            .await?
            .is_some())
        })
    }

    /// A page of the notification log; the rows and whether more exist.
    pub fn list_notification_log(&self, q: &LogQuery) -> Result<(Vec<NotificationLogRecord>, bool), StoreError> {
        let (cmp, order) = if q.desc { ("<", "DESC") } else { (">", "ASC") };
        let sql = format!(
            "SELECT record::text FROM notification_log
             WHERE ($1::uuid IS NULL OR id {cmp} $1) AND ($2::text IS NULL OR event = $2)
               AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR (record->>'channel_id')::uuid = $4)
             ORDER BY id {order} LIMIT $5"
        );
        let status = q.status.map(|s| s.as_str());
        let mut rows: Vec<NotificationLogRecord> = self.read(async |tx| {
            rows::query(
                tx,
                "notification_log",
                &sql,
                &[&q.cursor, &q.event, &status, &q.channel, &super::super::rows::sql_limit(q.limit.saturating_add(1))],
            )
            .await
        })?;
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        debug_assert!(rows.iter().all(|e| q.matches(e)));
        Ok((rows, more))
    }

    /// Deletes log rows sent before `before`, 1,000 per transaction; "delivered once" stays.
    pub fn prune_notification_log(&self, before: u64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.write(Global::Shared, async |tx| {
                super::super::rows::exec(
                    tx,
                    "DELETE FROM notification_log WHERE id IN
                       (SELECT id FROM notification_log WHERE sent_at < $1 ORDER BY id LIMIT 1000)",
                    &[&(before as i64)],
                )
                .await
            })?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    /// Rows in the notification log.
    pub fn notification_log_len(&self) -> Result<u64, StoreError> {
        self.read(async |tx| {
            Ok(super::super::rows::one(tx, "SELECT count(*) FROM notification_log", &[]).await?.get::<_, i64>(0) as u64)
        })
    }
}
