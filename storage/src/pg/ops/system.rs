//! `system_state`, JWT secrets, SIWE nonces, the init seed and audit reads on PostgreSQL.

use deadpool_postgres::Transaction;
use serde_json::Value;

use super::super::codec;
use super::super::rows::{self, get_state, set_state};
use super::super::store::{Global, PgStore};
use crate::audit::{AuditEvent, AuditRecord};
use crate::audit_events::AuditEventType;
use crate::db::OpCtx;
use crate::enums::{AuditSeverity, KillSwitchStatus};
use crate::error::StoreError;
use crate::ops::system::{AuditQuery, InitSeed, JWT_ROTATION_OVERLAP, JwtSecrets, RotateOutcome};

async fn read_secrets(tx: &Transaction<'_>) -> Result<Option<JwtSecrets>, StoreError> {
    let Some(Value::String(current)) = get_state(tx, "jwt_secret_current").await? else {
        return Ok(None);
    };
    let previous = match get_state(tx, "jwt_secret_previous").await? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let rotated_at = get_state(tx, "jwt_secret_rotated_at").await?.and_then(|v| v.as_u64());
    Ok(Some(JwtSecrets { current, previous, rotated_at }))
}

pub(crate) async fn status_in(tx: &Transaction<'_>) -> Result<KillSwitchStatus, StoreError> {
    match get_state(tx, "kill_switch_status").await? {
        Some(Value::String(s)) => s.parse().map_err(|_| StoreError::Invariant("invalid kill_switch_status")),
        _ => Ok(KillSwitchStatus::Normal),
    }
}

impl PgStore {
    /// Seeds a new database once: SERIALIZABLE, and a database whose kill switch state exists
    /// is already seeded (two `init`s on one database seed once). Not fenced: no leader exists
    /// before the first `init`.
    pub fn seed_initial(&self, seed: &InitSeed, now: u64) -> Result<(), StoreError> {
        self.unfenced_serializable(async |tx| {
            if get_state(tx, "kill_switch_status").await?.is_some() {
                return Ok(());
            }
            set_state(tx, "jwt_secret_current", Value::String(seed.jwt_secret.clone()), now).await?;
            set_state(tx, "kill_switch_status", Value::String(KillSwitchStatus::Normal.as_str().into()), now).await?;
            set_state(tx, "recovery_failed_attempts", Value::from(0u32), now).await?;
            super::super::rows::exec(
                tx,
                "INSERT INTO meta (key, value) VALUES ('created_at', $1) ON CONFLICT (key) DO NOTHING",
                &[&Value::from(now)],
            )
            .await?;
            for p in &seed.policies {
                super::policies::insert_policy_in(tx, p).await?;
            }
            for r in &seed.auto_stop_rules {
                super::policies::insert_rule_in(tx, r).await?;
            }
            Ok(())
        })
    }

    /// Reads one `system_state` value.
    pub fn system_value(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.read(async |tx| get_state(tx, key).await)
    }

    /// The stored kill-switch status (NORMAL when absent).
    pub fn kill_switch_status(&self) -> Result<KillSwitchStatus, StoreError> {
        self.read(async |tx| status_in(tx).await)
    }

    /// The JWT secrets, if initialised.
    pub fn jwt_secrets(&self) -> Result<Option<JwtSecrets>, StoreError> {
        self.read(async |tx| read_secrets(tx).await)
    }

    /// Stores `secret` as the current JWT secret when none exists.
    pub fn ensure_jwt_secret(&self, secret: &str, now: u64) -> Result<JwtSecrets, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            if let Some(s) = read_secrets(tx).await? {
                return Ok(s);
            }
            set_state(tx, "jwt_secret_current", Value::String(secret.to_string()), now).await?;
            Ok(JwtSecrets { current: secret.to_string(), previous: None, rotated_at: None })
        })
    }

    /// Rotates the JWT secret (refused within 300 s of the last rotation).
    pub fn rotate_jwt_secret(&self, new: &str, ctx: &OpCtx) -> Result<RotateOutcome, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let secrets = read_secrets(tx).await?.ok_or(StoreError::Invariant("no JWT secret"))?;
            if let Some(at) = secrets.rotated_at
                && ctx.now < at + JWT_ROTATION_OVERLAP
            {
                return Ok(RotateOutcome::TooRecent { retry_after: at + JWT_ROTATION_OVERLAP - ctx.now });
            }
            set_state(tx, "jwt_secret_previous", Value::String(secrets.current), ctx.now).await?;
            set_state(tx, "jwt_secret_current", Value::String(new.to_string()), ctx.now).await?;
            set_state(tx, "jwt_secret_rotated_at", Value::from(ctx.now), ctx.now).await?;
            let ev = AuditEvent::new(AuditEventType::SecretRotated, ctx.actor.clone())
                .severity(AuditSeverity::Warning)
                .detail("previousExpiresAt", ctx.now + JWT_ROTATION_OVERLAP);
            self.audit(tx, ev, ctx).await?;
            Ok(RotateOutcome::Rotated { previous_expires_at: ctx.now + JWT_ROTATION_OVERLAP })
        })
    }

    /// Clears a previous secret older than 300 s.
    pub fn expire_previous_secret(&self, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let Some(secrets) = read_secrets(tx).await? else { return Ok(false) };
            match (secrets.previous, secrets.rotated_at) {
                (Some(_), Some(at)) if ctx.now >= at + JWT_ROTATION_OVERLAP => {
                    set_state(tx, "jwt_secret_previous", Value::Null, ctx.now).await?;
                    set_state(tx, "jwt_secret_rotated_at", Value::Null, ctx.now).await?;
                    self.audit(tx, AuditEvent::new(AuditEventType::PreviousSecretExpired, ctx.actor.clone()), ctx)
                        .await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    /// Records an issued SIWE nonce; a duplicate is `Unique { index: "nonces" }`.
    pub fn insert_nonce(&self, nonce: &str, expires_at: u64) -> Result<(), StoreError> {
        codec::to_json("nonces", &nonce)?;
        self.write(Global::Shared, async |tx| {
            let n = super::super::rows::exec(
                tx,
                "INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&nonce, &(expires_at as i64)],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::Unique { index: "nonces" });
            }
            Ok(())
        })
    }

    /// Consumes a nonce once: `DELETE … RETURNING`, valid only if it had not expired.
    pub fn consume_nonce(&self, nonce: &str, now: u64) -> Result<bool, StoreError> {
        self.write(Global::Shared, async |tx| {
            let row =
                super::super::rows::opt(tx, "DELETE FROM nonces WHERE nonce = $1 RETURNING expires_at", &[&nonce])
                    .await?;
            Ok(row.is_some_and(|r| r.get::<_, i64>(0) as u64 > now))
        })
    }

    /// Deletes expired nonces.
    pub fn cleanup_nonces(&self, now: u64) -> Result<u64, StoreError> {
        self.write(Global::Shared, async |tx| {
            super::super::rows::exec(tx, "DELETE FROM nonces WHERE expires_at <= $1", &[&(now as i64)]).await
        })
    }

    /// Audit rows in `seq` order after `after`, up to `limit`.
    pub fn audit_rows(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(
                tx,
                "audit_log",
                "SELECT record::text FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&(after as i64), &super::super::rows::sql_limit(limit)],
            )
            .await
        })
    }

    /// Audit rows with one event type, in `seq` order.
    pub fn audit_by_event(&self, event: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(
                tx,
                "audit_log",
                "SELECT record::text FROM audit_log WHERE event_type = $1 ORDER BY seq",
                &[&event],
            )
            .await
        })
    }

    /// A page of audit rows matching `q`, and the cursor of the next page.
    pub fn query_audit(&self, q: &AuditQuery) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        let (lo, hi) = match (q.cursor, q.desc) {
            (Some(c), true) => (1u64, c.saturating_sub(1)),
            (Some(c), false) => (c + 1, i64::MAX as u64),
            (None, _) => (1, i64::MAX as u64),
        };
        let order = if q.desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT record::text FROM audit_log
             WHERE seq BETWEEN $1 AND $2
               AND ($3::uuid IS NULL OR agent_id = $3)
               AND ($4::text IS NULL OR event_type = $4)
               AND ($5::text IS NULL OR record->>'severity' = $5)
               AND ($6::bigint IS NULL OR timestamp >= $6)
               AND ($7::bigint IS NULL OR timestamp <= $7)
             ORDER BY seq {order} LIMIT $8"
        );
        let severity = q.severity.map(|s| s.as_str().to_string());
        let since = q.since.map(|t| t as i64);
        let until = q.until.map(|t| t as i64);
        // One row more than the page tells whether a next page exists.
        let mut rows: Vec<AuditRecord> = self.read(async |tx| {
            rows::query(
                tx,
                "audit_log",
                &sql,
                &[
                    &(lo as i64),
                    &(hi as i64),
                    &q.agent,
                    &q.event_type,
                    &severity,
                    &since,
                    &until,
                    &super::super::rows::sql_limit(q.limit.saturating_add(1)),
                ],
            )
            .await
        })?;
        if rows.len() > q.limit {
            rows.truncate(q.limit);
            let next = rows.last().map(|r| r.seq);
            return Ok((rows, next));
        }
        Ok((rows, None))
    }
}
