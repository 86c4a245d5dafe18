//! Session rows (02-storage.md §3.3, 04-auth.md §4).
//!
//! The live-session limit, token-hash uniqueness and the renewal compare-and-swap on the
//! presented token's hash are all decided inside the write transaction that writes the result,
//! so two concurrent renewals with the same token cannot both succeed.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::{OpCtx, RedbStore};
use crate::enums::AgentStatus;
use crate::error::StoreError;
use crate::in_tx::delete_session_in;
use crate::records::*;
use crate::rows::{self, get_agent};
use crate::tables::*;

/// Result of [`RedbStore::cleanup_sessions`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCleanup {
    /// Expired sessions deleted.
    pub expired: u64,
    /// Sessions revoked more than 24 h ago deleted.
    pub revoked: u64,
}

/// Why a renewal was refused by the in-transaction guards (04-auth.md §4.5 guards 3–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalRefusal {
    /// `renewal_count ≥ max_renewals`.
    LimitReached,
    /// The new expiry would pass `absolute_expires_at`.
    AbsoluteLifetimeExceeded,
    /// Less than half of `expiresIn` since the last renewal; renewable at this time.
    TooEarly {
        /// When renewal becomes possible.
        renewable_at: u64,
    },
}

/// Result of [`RedbStore::renew_session`].
#[derive(Debug, Clone, PartialEq)]
pub enum RenewOutcome {
    /// Renewed; the updated row.
    Renewed(Box<SessionRecord>),
    /// A guard refused; nothing was written.
    Refused(RenewalRefusal),
}

/// Evaluates renewal guards 3–5 against a session row.
pub fn renewal_guard(s: &SessionRecord, now: u64) -> Option<RenewalRefusal> {
    let expires_in = s.constraints.expires_in;
    if s.renewal_count >= s.max_renewals {
        return Some(RenewalRefusal::LimitReached);
    }
    if now + expires_in > s.absolute_expires_at {
        return Some(RenewalRefusal::AbsoluteLifetimeExceeded);
    }
    let renewable_at = s.last_renewed_at.unwrap_or(s.created_at) + expires_in / 2;
    if now < renewable_at {
        return Some(RenewalRefusal::TooEarly { renewable_at });
    }
    None
}

fn count_live(tx: &WriteTransaction, agent: Uuid, now: u64) -> Result<u64, StoreError> {
    let mut n = 0;
    for sid in rows::session_ids_of(tx, agent)? {
        if rows::get_session(tx, sid)?.is_live(now) {
            n += 1;
        }
    }
    Ok(n)
}

/// What a new session must be before it is written.
pub(crate) fn check_new_session(rec: &SessionRecord) -> Result<(), StoreError> {
    rec.check()?;
    if rec.revoked_at.is_some() || rec.renewal_count != 0 {
        return Err(StoreError::Invariant("a new session is unrevoked and unrenewed"));
    }
    Ok(())
}

pub(crate) fn issued_event(rec: &SessionRecord, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::SessionIssued, ctx.actor.clone())
        .agent(rec.agent_id)
        .session(Some(rec.id))
        .detail("expiresAt", rec.expires_at)
        .detail("maxRenewals", rec.max_renewals)
}

/// The renewal of `old` (read in the writing transaction; `None` = absent): the CAS on the
/// presented token's hash, the guards, then the new row and its event.
pub(crate) fn renewed(
    id: Uuid,
    old: Option<SessionRecord>,
    expected_hash: &[u8; 32],
    new_hash: [u8; 32],
    new_expires_at: u64,
    ctx: &OpCtx,
) -> Result<Result<(SessionRecord, SessionRecord, AuditEvent), RenewalRefusal>, StoreError> {
    let old = match old {
        Some(s) if s.revoked_at.is_none() => s,
        _ => return Err(StoreError::not_found("sessions", id)),
    };
    if &old.token_hash.0 != expected_hash {
        return Err(StoreError::conflict("the presented token", "a newer token"));
    }
    if let Some(refusal) = renewal_guard(&old, ctx.now) {
        return Ok(Err(refusal));
    }
    let mut new = old.clone();
    new.token_hash = Hash32(new_hash);
    new.expires_at = new_expires_at.min(old.absolute_expires_at);
    new.renewal_count += 1;
    new.last_renewed_at = Some(ctx.now);
    let ev = AuditEvent::new(AuditEventType::SessionRenewed, ctx.actor.clone())
        .agent(new.agent_id)
        .session(Some(id))
        .detail("renewalCount", new.renewal_count)
        .detail("maxRenewals", new.max_renewals)
        .detail("newExpiresAt", new.expires_at);
    Ok(Ok((old, new, ev)))
}

/// The revocation of `old` with `trigger` (or the operator's, decided against this row).
pub(crate) fn revoked(
    old: &SessionRecord,
    trigger: Option<&str>,
    ctx: &OpCtx,
) -> Result<(SessionRecord, AuditEvent), StoreError> {
    if old.revoked_at.is_some() {
        return Err(StoreError::conflict("not revoked", "revoked"));
    }
    let trigger = trigger.unwrap_or(match old.last_renewed_at {
        Some(at) if ctx.now <= at + old.constraints.renewal_reject_window => "renewal_rejected",
        _ => "manual_revoke",
    });
    let mut new = old.clone();
    new.revoked_at = Some(ctx.now);
    new.revoke_trigger = Some(trigger.to_string());
    let ev = AuditEvent::new(AuditEventType::SessionRevoked, ctx.actor.clone())
        .agent(new.agent_id)
        .session(Some(old.id))
        .detail("trigger", trigger);
    Ok((new, ev))
}

impl RedbStore {
    /// Creates a session in one write transaction: the agent must be ACTIVE (else `Conflict`),
    /// it must have fewer than `max_live` live sessions (else `Limit`), the token hash must be
    /// unused (else `Unique`); inserts the row with its indexes and audits `SESSION_ISSUED`.
    pub fn create_session(&self, rec: &SessionRecord, max_live: u64, ctx: &OpCtx) -> Result<(), StoreError> {
        check_new_session(rec)?;
        self.write(|tx| {
            let agent = get_agent(tx, rec.agent_id)?;
            if agent.status != AgentStatus::Active {
                return Err(StoreError::conflict(AgentStatus::Active, agent.status));
            }
            let live = count_live(tx, rec.agent_id, ctx.now)?;
            if live >= max_live {
                return Err(StoreError::Limit { what: "sessions per agent", limit: max_live, current: live });
            }
            let key = rec.id.as_u128();
            if tx.open_table(SESSIONS)?.get(key)?.is_some() {
                return Err(StoreError::Unique { index: "sessions" });
            }
            let mut tokens = tx.open_table(IDX_SESSION_TOKEN)?;
            if tokens.get(rec.token_hash.0.as_slice())?.is_some() {
                return Err(StoreError::Unique { index: "idx_session_token" });
            }
            tokens.insert(rec.token_hash.0.as_slice(), key)?;
            drop(tokens);
            tx.open_table(IDX_SESSION_AGENT)?.insert((rec.agent_id.as_u128(), key), ())?;
            tx.open_table(IDX_SESSION_EXPIRY)?.insert((rec.expires_at, key), ())?;
            rows::put(tx, SESSIONS, "sessions", rec.id, rec)?;
            self.audit(tx, issued_event(rec, ctx), ctx)?;
            Ok(())
        })
    }

    /// Reads one session.
    pub fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(SESSIONS)?, "sessions", id))
    }

    /// Looks a session up by the SHA-256 of its token.
    pub fn session_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|tx| match tx.open_table(IDX_SESSION_TOKEN)?.get(hash.as_slice())? {
            Some(id) => rows::get(&tx.open_table(SESSIONS)?, "sessions", Uuid::from_u128(id.value())),
            None => Ok(None),
        })
    }

    /// Sessions, optionally of one agent, oldest first.
    pub fn list_sessions(&self, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            match agent {
                Some(a) => {
                    let idx = tx.open_table(IDX_SESSION_AGENT)?;
                    let k = a.as_u128();
                    for r in idx.range((k, 0u128)..=(k, u128::MAX))? {
                        let (key, _) = r?;
                        out.push(rows::must_get(&t, "sessions", Uuid::from_u128(key.value().1))?);
                    }
                }
                None => {
                    for r in t.iter()? {
                        let (_, v) = r?;
                        out.push(crate::codec::decode("sessions", v.value())?);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Renews a session in one write transaction: it must exist and be unrevoked (`NotFound`),
    /// its stored token hash must equal `expected_hash` (`Conflict`: another renewal won), and
    /// guards 3–5 are re-checked; then the hash, expiry (index moved), `renewal_count` and
    /// `last_renewed_at` are updated and `SESSION_RENEWED` audited.
    pub fn renew_session(
        &self,
        id: Uuid,
        expected_hash: &[u8; 32],
        new_hash: [u8; 32],
        new_expires_at: u64,
        ctx: &OpCtx,
    ) -> Result<RenewOutcome, StoreError> {
        self.write(|tx| {
            let old = rows::get::<SessionRecord>(&tx.open_table(SESSIONS)?, "sessions", id)?;
            let (old, new, ev) = match renewed(id, old, expected_hash, new_hash, new_expires_at, ctx)? {
                Ok(r) => r,
                Err(refusal) => return Ok(RenewOutcome::Refused(refusal)),
            };
            rows::update_session(tx, &old, &new)?;
            self.audit(tx, ev, ctx)?;
            Ok(RenewOutcome::Renewed(Box::new(new)))
        })
    }

    /// Revokes a session (`Conflict` if already revoked) and audits `SESSION_REVOKED`. With no
    /// `trigger` the operator's trigger is decided here, against the row this transaction reads:
    /// `renewal_rejected` when the session was renewed within its `renewalRejectWindow`, else
    /// `manual_revoke` (04-auth.md §4.4).
    pub fn revoke_session(&self, id: Uuid, trigger: Option<&str>, ctx: &OpCtx) -> Result<SessionRecord, StoreError> {
        self.write(|tx| {
            let old = rows::get_session(tx, id)?;
            let (new, ev) = revoked(&old, trigger, ctx)?;
            rows::update_session(tx, &old, &new)?;
            self.audit(tx, ev, ctx)?;
            Ok(new)
        })
    }

    /// Cleanup worker (04-auth.md §4.6): deletes sessions with `expires_at < now` (audit
    /// `SESSION_EXPIRED` each) and sessions revoked before `now − 86400` (audit `SESSION_CLEANUP`
    /// with the count), nulling `session_id` on their transactions; at most 500 sessions per
    /// write transaction, repeated until none remain.
    pub fn cleanup_sessions(&self, now: u64) -> Result<SessionCleanup, StoreError> {
        const BATCH: usize = 500;
        let mut total = SessionCleanup::default();
        let ctx = OpCtx::new("system", now);
        loop {
            let (batch, more) = self.write(|tx| {
                let expired: Vec<(u64, u128)> = tx
                    .open_table(IDX_SESSION_EXPIRY)?
                    .range((0u64, 0u128)..(now, 0u128))?
                    .take(BATCH)
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?;
                let room = BATCH - expired.len();
                let old_revoked: Vec<(u64, u128)> = tx
                    .open_table(IDX_SESSION_REVOKED)?
                    .range((0u64, 0u128)..(now.saturating_sub(86_400), 0u128))?
                    .take(room)
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?;
                let mut done = SessionCleanup::default();
                for (_, key) in &expired {
                    let id = Uuid::from_u128(*key);
                    let s = rows::get_session(tx, id)?;
                    delete_session_in(tx, id)?;
                    let ev =
                        AuditEvent::new(AuditEventType::SessionExpired, "system").agent(s.agent_id).session(Some(id));
                    self.audit(tx, ev, &ctx)?;
                    done.expired += 1;
                }
                for (_, key) in &old_revoked {
                    let id = Uuid::from_u128(*key);
                    // Already deleted above when it was also expired.
                    if tx.open_table(SESSIONS)?.get(*key)?.is_some() {
                        delete_session_in(tx, id)?;
                        done.revoked += 1;
                    }
                }
                if done.revoked > 0 {
                    let ev = AuditEvent::new(AuditEventType::SessionCleanup, "system").detail("count", done.revoked);
                    self.audit(tx, ev, &ctx)?;
                }
                Ok((done, expired.len() + old_revoked.len() == BATCH))
            })?;
            total.expired += batch.expired;
            total.revoked += batch.revoked;
            if !more {
                return Ok(total);
            }
        }
    }
}
