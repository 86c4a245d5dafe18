//! `system_state`, JWT secret rotation, nonces and the init seed (02-storage.md §3.13, §3.14).

use redb::ReadableTable;
use serde_json::Value;

use crate::audit::{AuditEvent, AuditRecord};
use crate::audit_events::AuditEventType;
use crate::codec::decode;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AuditSeverity, KillSwitchStatus};
use crate::error::StoreError;
use crate::in_tx::{get_state, insert_policy_in, insert_rule_in, set_state, status_in};
use crate::records::*;
use crate::tables::*;

/// Seconds during which the previous JWT secret still verifies (04-auth.md §5).
pub const JWT_ROTATION_OVERLAP: u64 = 300;

/// The JWT secrets as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecrets {
    /// 64 hex characters.
    pub current: String,
    /// Previous secret during the overlap window.
    pub previous: Option<String>,
    /// Time of the last rotation.
    pub rotated_at: Option<u64>,
}

impl std::fmt::Debug for JwtSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSecrets").field("rotated_at", &self.rotated_at).finish_non_exhaustive()
    }
}

/// Result of [`RedbStore::rotate_jwt_secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// Rotated; the previous secret expires at this time.
    Rotated {
        /// `now + 300`.
        previous_expires_at: u64,
    },
    /// The last rotation was less than 300 s ago.
    TooRecent {
        /// Seconds until a rotation is allowed.
        retry_after: u64,
    },
}

/// What `init` seeds into a new database.
#[derive(Debug, Clone)]
pub struct InitSeed {
    /// 64 lowercase hex characters.
    pub jwt_secret: String,
    /// Default policies (07-policy.md §10).
    pub policies: Vec<PolicyRecord>,
    /// Default AutoStop rules (08-killswitch-autostop.md §6.2).
    pub auto_stop_rules: Vec<AutoStopRuleRecord>,
}

fn read_secrets(t: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Option<JwtSecrets>, StoreError> {
    let Some(Value::String(current)) = get_state(t, "jwt_secret_current")? else {
        return Ok(None);
    };
    let previous = match get_state(t, "jwt_secret_previous")? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let rotated_at = get_state(t, "jwt_secret_rotated_at")?.and_then(|v| v.as_u64());
    Ok(Some(JwtSecrets { current, previous, rotated_at }))
}

impl RedbStore {
    /// Seeds a freshly created database (one write transaction): the JWT secret, kill switch
    /// NORMAL, the recovery counter, default policies and default AutoStop rules.
    pub fn seed_initial(&self, seed: &InitSeed, now: u64) -> Result<(), StoreError> {
        self.write(|tx| {
            set_state(tx, "jwt_secret_current", Value::String(seed.jwt_secret.clone()), now)?;
            set_state(tx, "kill_switch_status", Value::String(KillSwitchStatus::Normal.as_str().into()), now)?;
            set_state(tx, "recovery_failed_attempts", Value::from(0u32), now)?;
            for p in &seed.policies {
                insert_policy_in(tx, p)?;
            }
            for r in &seed.auto_stop_rules {
                insert_rule_in(tx, r)?;
            }
            Ok(())
        })
    }

    /// Reads one `system_state` value.
    pub fn system_value(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.read(|tx| get_state(&tx.open_table(SYSTEM_STATE)?, key))
    }

    /// The stored kill-switch status (NORMAL when absent).
    pub fn kill_switch_status(&self) -> Result<KillSwitchStatus, StoreError> {
        self.read(|tx| status_in(&tx.open_table(SYSTEM_STATE)?))
    }

    /// The JWT secrets, if initialised.
    pub fn jwt_secrets(&self) -> Result<Option<JwtSecrets>, StoreError> {
        self.read(|tx| read_secrets(&tx.open_table(SYSTEM_STATE)?))
    }

    /// Stores `secret` as the current JWT secret when none exists (start-up fallback to the
    /// config value, 04-auth.md §5). Returns the secrets in effect.
    pub fn ensure_jwt_secret(&self, secret: &str, now: u64) -> Result<JwtSecrets, StoreError> {
        self.write(|tx| {
            if let Some(s) = read_secrets(&tx.open_table(SYSTEM_STATE)?)? {
                return Ok(s);
            }
            set_state(tx, "jwt_secret_current", Value::String(secret.to_string()), now)?;
            Ok(JwtSecrets { current: secret.to_string(), previous: None, rotated_at: None })
        })
    }

    /// Rotates the JWT secret in one write transaction: refused when the last rotation was less
    /// than 300 s ago; otherwise previous ← current, current ← `new`, rotated_at ← now, audit
    /// `SECRET_ROTATED` (warning).
    pub fn rotate_jwt_secret(&self, new: &str, ctx: &OpCtx) -> Result<RotateOutcome, StoreError> {
        self.write(|tx| {
            let secrets = read_secrets(&tx.open_table(SYSTEM_STATE)?)?.ok_or(StoreError::Invariant("no JWT secret"))?;
            if let Some(at) = secrets.rotated_at
                && ctx.now < at + JWT_ROTATION_OVERLAP
            {
                return Ok(RotateOutcome::TooRecent { retry_after: at + JWT_ROTATION_OVERLAP - ctx.now });
            }
            set_state(tx, "jwt_secret_previous", Value::String(secrets.current), ctx.now)?;
            set_state(tx, "jwt_secret_current", Value::String(new.to_string()), ctx.now)?;
            set_state(tx, "jwt_secret_rotated_at", Value::from(ctx.now), ctx.now)?;
            let ev = AuditEvent::new(AuditEventType::SecretRotated, ctx.actor.clone())
                .severity(AuditSeverity::Warning)
                .detail("previousExpiresAt", ctx.now + JWT_ROTATION_OVERLAP);
            self.audit(tx, ev, ctx)?;
            Ok(RotateOutcome::Rotated { previous_expires_at: ctx.now + JWT_ROTATION_OVERLAP })
        })
    }

    /// Clears a previous secret older than 300 s and audits `PREVIOUS_SECRET_EXPIRED`. Returns
    /// whether it cleared one.
    pub fn expire_previous_secret(&self, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(secrets) = read_secrets(&tx.open_table(SYSTEM_STATE)?)? else { return Ok(false) };
            match (secrets.previous, secrets.rotated_at) {
                (Some(_), Some(at)) if ctx.now >= at + JWT_ROTATION_OVERLAP => {
                    set_state(tx, "jwt_secret_previous", Value::Null, ctx.now)?;
                    set_state(tx, "jwt_secret_rotated_at", Value::Null, ctx.now)?;
                    self.audit(tx, AuditEvent::new(AuditEventType::PreviousSecretExpired, ctx.actor.clone()), ctx)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    /// Records an issued nonce (`nonce_storage = "redb"`); a duplicate is `Unique`.
    pub fn insert_nonce(&self, nonce: &str, expires_at: u64) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(NONCES)?;
            if t.get(nonce)?.is_some() {
                return Err(StoreError::Unique { index: "nonces" });
            }
            t.insert(nonce, expires_at)?;
            tx.open_table(IDX_NONCE_EXPIRY)?.insert((expires_at, nonce), ())?;
            Ok(())
        })
    }

    /// Consumes a nonce atomically: removes the row and returns `true` only if it existed and
    /// `expires_at > now`. A second consumption always returns `false`.
    pub fn consume_nonce(&self, nonce: &str, now: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let removed = tx.open_table(NONCES)?.remove(nonce)?.map(|v| v.value());
            match removed {
                Some(exp) => {
                    tx.open_table(IDX_NONCE_EXPIRY)?.remove((exp, nonce))?;
                    Ok(exp > now)
                }
                None => Ok(false),
            }
        })
    }

    /// Deletes expired nonces (worker); returns the count.
    pub fn cleanup_nonces(&self, now: u64) -> Result<u64, StoreError> {
        self.write(|tx| {
            let keys: Vec<(u64, String)> = tx
                .open_table(IDX_NONCE_EXPIRY)?
                .range((0u64, "")..=(now, ""))?
                .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_string())))
                .collect::<Result<_, _>>()?;
            let mut idx = tx.open_table(IDX_NONCE_EXPIRY)?;
            let mut t = tx.open_table(NONCES)?;
            for (exp, n) in &keys {
                idx.remove((*exp, n.as_str()))?;
                t.remove(n.as_str())?;
            }
            Ok(keys.len() as u64)
        })
    }

    /// Audit rows in `seq` order after `after`, up to `limit` (pagination for the audit API and
    /// tests).
    pub fn audit_rows(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(AUDIT_LOG)?;
            t.range(after + 1..)?
                .take(limit)
                .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("audit_log", v.value())))
                .collect()
        })
    }

    /// Audit rows with one event type, in `seq` order.
    pub fn audit_by_event(&self, event: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let idx = tx.open_table(IDX_AUDIT_EVENT)?;
            let t = tx.open_table(AUDIT_LOG)?;
            let mut out = Vec::new();
            for r in idx.range((event, 0u64)..=(event, u64::MAX))? {
                let (k, _) = r?;
                if let Some(v) = t.get(k.value().1)? {
                    out.push(decode("audit_log", v.value())?);
                }
            }
            Ok(out)
        })
    }
}

/// Filters for [`RedbStore::query_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only rows about this agent.
    pub agent: Option<uuid::Uuid>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this severity.
    pub severity: Option<crate::enums::AuditSeverity>,
    /// Only rows at or after this time.
    pub since: Option<u64>,
    /// Only rows at or before this time.
    pub until: Option<u64>,
    /// Continue after this seq (exclusive), in the chosen order.
    pub cursor: Option<u64>,
    /// Page size.
    pub limit: usize,
    /// Newest first.
    pub desc: bool,
}

impl RedbStore {
    /// A page of audit rows matching `q`; returns the rows and the cursor of the next page.
    /// Uses the agent or event index when that filter is given.
    pub fn query_audit(&self, q: &AuditQuery) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        self.read(|tx| {
            let log = tx.open_table(AUDIT_LOG)?;
            let (lo, hi) = match (q.cursor, q.desc) {
                (Some(c), true) => (1u64, c.saturating_sub(1)),
                (Some(c), false) => (c + 1, u64::MAX),
                (None, _) => (1, u64::MAX),
            };
            let seqs: Box<dyn Iterator<Item = Result<u64, StoreError>>> = if let Some(agent) = q.agent {
                let idx = tx.open_table(IDX_AUDIT_AGENT)?;
                let a = agent.as_u128();
                let r = idx.range((a, lo)..=(a, hi))?;
                let v: Vec<_> = r.map(|e| e.map(|(k, _)| k.value().1).map_err(StoreError::from)).collect();
                Box::new(if q.desc {
                    Box::new(v.into_iter().rev()) as Box<dyn Iterator<Item = _>>
                } else {
                    Box::new(v.into_iter())
                })
            } else if let Some(ev) = &q.event_type {
                let idx = tx.open_table(IDX_AUDIT_EVENT)?;
                let r = idx.range((ev.as_str(), lo)..=(ev.as_str(), hi))?;
                let v: Vec<_> = r.map(|e| e.map(|(k, _)| k.value().1).map_err(StoreError::from)).collect();
                Box::new(if q.desc {
                    Box::new(v.into_iter().rev()) as Box<dyn Iterator<Item = _>>
                } else {
                    Box::new(v.into_iter())
                })
            } else {
                let r = log.range(lo..=hi)?;
                if q.desc {
                    Box::new(r.rev().map(|e| e.map(|(k, _)| k.value()).map_err(StoreError::from)))
                } else {
                    Box::new(r.map(|e| e.map(|(k, _)| k.value()).map_err(StoreError::from)))
                }
            };
            let mut out: Vec<AuditRecord> = Vec::new();
            for seq in seqs {
                let seq = seq?;
                let Some(v) = log.get(seq)? else { continue };
                let rec: AuditRecord = decode("audit_log", v.value())?;
                if q.event_type.as_ref().is_some_and(|e| *e != rec.event_type)
                    || q.severity.is_some_and(|s| s != rec.severity)
                    || q.since.is_some_and(|t| rec.timestamp < t)
                    || q.until.is_some_and(|t| rec.timestamp > t)
                {
                    continue;
                }
                if out.len() == q.limit {
                    let next = out.last().map(|r| r.seq);
                    return Ok((out, next));
                }
                out.push(rec);
            }
            Ok((out, None))
        })
    }
}
