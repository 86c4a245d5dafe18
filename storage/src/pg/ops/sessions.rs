//! Session rows on PostgreSQL. Creation counts live sessions and renewal compares the token
//! hash under the agent's lock (§5), so neither the limit nor the one-winner renewal depends on
//! isolation level; `UNIQUE(token_hash)` is the backstop.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::super::rows::{self, lock_agent};
use super::super::store::{Global, PgStore};
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::OpCtx;
use crate::enums::AgentStatus;
use crate::error::StoreError;
use crate::ops::sessions::{RenewOutcome, SessionCleanup, check_new_session, issued_event, renewed, revoked};
use crate::records::*;

/// Deletes a session; its transactions keep their rows with `session_id` nulled (§4).
pub(crate) async fn delete_session_in(tx: &Transaction<'_>, id: Uuid) -> Result<(), StoreError> {
    super::super::rows::exec(
        tx,
        "UPDATE transactions SET record = jsonb_set(record, '{session_id}', 'null') WHERE session_id = $1",
        &[&id],
    )
    .await?;
    rows::delete(tx, "sessions", id).await?;
    Ok(())
}

/// The agent of a session, without decoding it (to lock before reading).
async fn agent_of(tx: &Transaction<'_>, id: Uuid) -> Result<Option<Uuid>, StoreError> {
    Ok(super::super::rows::opt(tx, "SELECT agent_id FROM sessions WHERE id = $1", &[&id]).await?.map(|r| r.get(0)))
}

impl PgStore {
    /// Creates a session: the agent must be ACTIVE, below `max_live` live sessions, and the
    /// token hash unused.
    pub fn create_session(&self, rec: &SessionRecord, max_live: u64, ctx: &OpCtx) -> Result<(), StoreError> {
        check_new_session(rec)?;
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, rec.agent_id).await?;
            let agent = rows::get_agent(tx, rec.agent_id).await?;
            if agent.status != AgentStatus::Active {
                return Err(StoreError::conflict(AgentStatus::Active, agent.status));
            }
            let live: i64 = super::super::rows::one(
                tx,
                "SELECT count(*) FROM sessions WHERE agent_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                &[&rec.agent_id, &(ctx.now as i64)],
            )
            .await?
            .get(0);
            let live = live as u64;
            if live >= max_live {
                return Err(StoreError::Limit { what: "sessions per agent", limit: max_live, current: live });
            }
            if rows::exists(tx, "sessions", rec.id).await? {
                return Err(StoreError::Unique { index: "sessions" });
            }
            let hash = hex::encode(rec.token_hash.0);
            if super::super::rows::opt(tx, "SELECT 1 FROM sessions WHERE token_hash = $1", &[&hash]).await?.is_some() {
                return Err(StoreError::Unique { index: "idx_session_token" });
            }
            rows::insert(tx, "sessions", rec.id, rec).await?;
            self.audit(tx, issued_event(rec, ctx), ctx).await?;
            Ok(())
        })
    }

    /// Reads one session.
    pub fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "sessions", id).await)
    }

    /// Looks a session up by the SHA-256 of its token.
    pub fn session_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let hash = hex::encode(hash);
        self.read(async |tx| {
            Ok(rows::query(tx, "sessions", "SELECT record::text FROM sessions WHERE token_hash = $1", &[&hash])
                .await?
                .pop())
        })
    }

    /// Sessions, optionally of one agent, oldest first.
    pub fn list_sessions(&self, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(
                tx,
                "sessions",
                "SELECT record::text FROM sessions WHERE ($1::uuid IS NULL OR agent_id = $1) ORDER BY id",
                &[&agent],
            )
            .await
        })
    }

    /// Renews a session: CAS on the presented token's hash, guards re-checked.
    pub fn renew_session(
        &self,
        id: Uuid,
        expected_hash: &[u8; 32],
        new_hash: [u8; 32],
        new_expires_at: u64,
        ctx: &OpCtx,
    ) -> Result<RenewOutcome, StoreError> {
        self.write(Global::Shared, async |tx| {
            let Some(agent) = agent_of(tx, id).await? else { return Err(StoreError::not_found("sessions", id)) };
            lock_agent(tx, agent).await?;
            let old = rows::get(tx, "sessions", id).await?;
            let (_, new, ev) = match renewed(id, old, expected_hash, new_hash, new_expires_at, ctx)? {
                Ok(r) => r,
                Err(refusal) => return Ok(RenewOutcome::Refused(refusal)),
            };
            rows::update(tx, "sessions", id, &new).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(RenewOutcome::Renewed(Box::new(new)))
        })
    }

    /// Revokes a session and audits `SESSION_REVOKED`.
    pub fn revoke_session(&self, id: Uuid, trigger: Option<&str>, ctx: &OpCtx) -> Result<SessionRecord, StoreError> {
        self.write(Global::Shared, async |tx| {
            let Some(agent) = agent_of(tx, id).await? else { return Err(StoreError::not_found("sessions", id)) };
            lock_agent(tx, agent).await?;
            let old: SessionRecord = rows::must_get(tx, "sessions", id).await?;
            let (new, ev) = revoked(&old, trigger, ctx)?;
            rows::update(tx, "sessions", id, &new).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(new)
        })
    }

    /// Deletes expired sessions (audit each) and sessions revoked over a day ago (one audit
    /// with the count), at most 500 per transaction.
    pub fn cleanup_sessions(&self, now: u64) -> Result<SessionCleanup, StoreError> {
        const BATCH: i64 = 500;
        let mut total = SessionCleanup::default();
        let ctx = OpCtx::new("system", now);
        loop {
            let (batch, more) = self.write(Global::Shared, async |tx| {
                let expired = super::super::rows::all(tx, "SELECT id, agent_id FROM sessions WHERE expires_at < $1 ORDER BY expires_at, id LIMIT $2",
                        &[&(now as i64), &BATCH],).await?;
                let room = BATCH - expired.len() as i64;
                let old_revoked = super::super::rows::all(tx, "SELECT id FROM sessions WHERE revoked_at < $1 AND expires_at >= $2 ORDER BY revoked_at, id LIMIT $3",
                        &[&(now.saturating_sub(86_400) as i64), &(now as i64), &room],).await?;
                let mut done = SessionCleanup::default();
                for r in &expired {
                    let (id, agent): (Uuid, Uuid) = (r.get(0), r.get(1));
                    delete_session_in(tx, id).await?;
                    let ev = AuditEvent::new(AuditEventType::SessionExpired, "system").agent(agent).session(Some(id));
                    self.audit(tx, ev, &ctx).await?;
                    done.expired += 1;
                }
                for r in &old_revoked {
                    delete_session_in(tx, r.get(0)).await?;
                    done.revoked += 1;
                }
                if done.revoked > 0 {
                    let ev = AuditEvent::new(AuditEventType::SessionCleanup, "system").detail("count", done.revoked);
                    self.audit(tx, ev, &ctx).await?;
                }
                Ok((done, expired.len() + old_revoked.len() == BATCH as usize))
            })?;
            total.expired += batch.expired;
            total.revoked += batch.revoked;
            if !more {
                return Ok(total);
            }
        }
    }
}
