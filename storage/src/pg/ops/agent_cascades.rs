//! The agent operations that reach into other tables on PostgreSQL: termination, deletion, the
//! owner lifecycle and AutoStop's suspension. Each holds the agent's lock (several agents: in
//! ascending id order) for the whole cascade.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::super::map_err;
use super::super::rows::{self, lock_agent, lock_agents};
use super::super::store::{Global, PgStore};
use super::super::txrows::{active_tx_ids, end_many, get_tx};
use super::agents::put_agent;
use super::nonces::not_a_fill;
use super::sessions::delete_session_in;
use crate::amount::Amount;
use crate::db::OpCtx;
use crate::enums::{AgentStatus, Chain, OwnerState, Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::min_uuid_v7_at;
use crate::ops::agents::{
    SetOwnerOutcome, TerminationReport, disconnected_event, owner_change_event, owner_changed, terminated,
    terminated_event,
};
use crate::ops::autostop::{auto_suspend_event, auto_suspended};
use crate::ops::sessions::revoked;
use crate::records::*;

/// Revokes every live session of `agent` with `trigger`; the count.
pub(crate) async fn revoke_agent_sessions(
    tx: &Transaction<'_>,
    agent: Uuid,
    trigger: &str,
    now: u64,
) -> Result<u64, StoreError> {
    let live: Vec<SessionRecord> = rows::query(
        tx,
        "sessions",
        "SELECT record::text FROM sessions WHERE agent_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY id",
        &[&agent, &(now as i64)],
    )
    .await?;
    let ctx = OpCtx::new("system", now);
    for old in &live {
        let (new, _) = revoked(old, Some(trigger), &ctx)?;
        rows::update(tx, "sessions", old.id, &new).await?;
    }
    Ok(live.len() as u64)
}

impl PgStore {
    /// Terminates an agent: refuses while one of its rows executes, cancels its PENDING/QUEUED
    /// rows, revokes its sessions, releases its names.
    pub fn terminate_agent(&self, id: Uuid, ctx: &OpCtx) -> Result<TerminationReport, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, id).await?;
            let old = rows::get_agent(tx, id).await?;
            if old.status == AgentStatus::Terminated {
                return Err(StoreError::conflict("not TERMINATED", AgentStatus::Terminated));
            }
            let active = active_tx_ids(tx, id).await?;
            for tid in &active {
                if get_tx(tx, *tid).await?.status == TxStatus::Executing {
                    return Err(StoreError::conflict("no EXECUTING transactions", TxStatus::Executing));
                }
            }
            let cancelled = end_many(
                tx,
                &active,
                &[TxStatus::Pending, TxStatus::Queued],
                TxStatus::Cancelled,
                "AGENT_TERMINATED",
                |_| true,
                ctx.now,
            )
            .await?;
            let revoked = revoke_agent_sessions(tx, id, "agent_terminated", ctx.now).await?;
            put_agent(tx, &terminated(&old, ctx.now), false).await?;
            self.audit(tx, terminated_event(id, revoked, cancelled, ctx), ctx).await?;
            Ok(TerminationReport {
                sessions_revoked: revoked,
                transactions_cancelled: cancelled,
                terminated_at: ctx.now,
            })
        })
    }

    /// Deletes an agent row: restricted by its transactions, cascading to its sessions,
    /// policies and AutoStop rules.
    pub fn delete_agent(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, id).await?;
            rows::get_agent(tx, id).await?;
            if super::super::rows::opt(tx, "SELECT 1 FROM transactions WHERE agent_id = $1 LIMIT 1", &[&id])
                .await?
                .is_some()
            {
                return Err(StoreError::Restricted { reason: "the agent has transactions" });
            }
            for r in super::super::rows::all(tx, "SELECT id FROM sessions WHERE agent_id = $1", &[&id]).await? {
                delete_session_in(tx, r.get(0)).await?;
            }
            super::super::rows::exec(tx, "DELETE FROM policies WHERE agent_id = $1", &[&id]).await?;
            super::super::rows::exec(tx, "DELETE FROM auto_stop_rules WHERE scope = $1", &[&id]).await?;
            rows::delete(tx, "agents", id).await?;
            Ok(())
        })
    }

    /// The owner lifecycle: CAS on the owner state the caller authorised.
    pub fn set_owner(
        &self,
        agent_id: Uuid,
        new_address: Option<&str>,
        expect: OwnerState,
        ctx: &OpCtx,
    ) -> Result<SetOwnerOutcome, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, agent_id).await?;
            let old = rows::get_agent(tx, agent_id).await?;
            let Some(new) = owner_changed(&old, new_address, expect, ctx.now)? else {
                return Ok(SetOwnerOutcome { agent: old, changed: false, approvals_cancelled: 0 });
            };
            put_agent(tx, &new, false).await?;
            let cancelled = if old.owner_address.is_some() {
                let ids = active_tx_ids(tx, agent_id).await?;
                end_many(
                    tx,
                    &ids,
                    &[TxStatus::Queued],
                    TxStatus::Cancelled,
                    "OWNER_ADDRESS_CHANGED",
                    |r| r.tier == Some(Tier::Approval),
                    ctx.now,
                )
                .await?
            } else {
                0
            };
            self.audit(tx, owner_change_event(&old, &new, cancelled, ctx), ctx).await?;
            Ok(SetOwnerOutcome { agent: new, changed: true, approvals_cancelled: cancelled })
        })
    }

    /// The owner's disconnect: their agents' QUEUED APPROVAL rows expire, the wallet
    /// connection goes.
    pub fn disconnect_owner(&self, chain: Chain, address: &str, ctx: &OpCtx) -> Result<(u64, u64), StoreError> {
        let key = owner_key(chain, address);
        self.write(Global::Shared, async |tx| {
            let ids: Vec<Uuid> = super::super::rows::all(
                tx,
                "SELECT id FROM agents WHERE chain = $1 AND owner_key = $2 AND status <> 'TERMINATED' ORDER BY id",
                &[&chain.as_str(), &key],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            if ids.is_empty() {
                return Err(StoreError::not_found("owners", address));
            }
            lock_agents(tx, &ids).await?;
            let mut expired = 0;
            for a in &ids {
                let active = active_tx_ids(tx, *a).await?;
                expired += end_many(
                    tx,
                    &active,
                    &[TxStatus::Queued],
                    TxStatus::Expired,
                    "OWNER_DISCONNECTED",
                    |r| r.tier == Some(Tier::Approval),
                    ctx.now,
                )
                .await?;
            }
            super::super::rows::exec(
                tx,
                "DELETE FROM wallet_connections WHERE owner_key = $1 AND chain = $2",
                &[&key, &chain.as_str()],
            )
            .await?;
            self.audit(tx, disconnected_event(chain, address, ids.len() as u64, expired, ctx), ctx).await?;
            Ok((ids.len() as u64, expired))
        })
    }

    /// AutoStop's SUSPEND_AGENT: ACTIVE → SUSPENDED, sessions revoked; false when not ACTIVE.
    pub fn auto_stop_suspend(&self, agent: Uuid, reason: &str, rule: Uuid, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, agent).await?;
            let a = rows::get_agent(tx, agent).await?;
            if a.status != AgentStatus::Active {
                return Ok(false);
            }
            put_agent(tx, &auto_suspended(&a, reason, ctx.now), false).await?;
            let revoked = revoke_agent_sessions(tx, agent, "auto_stop", ctx.now).await?;
            self.audit(tx, auto_suspend_event(agent, rule, reason, revoked, ctx), ctx).await?;
            Ok(true)
        })
    }

    /// FAILED top-level rows since the most recent CONFIRMED one, newest first, at most `cap`.
    pub fn consecutive_failures(&self, agent: Uuid, cap: u64) -> Result<u64, StoreError> {
        self.read(async |tx| {
            let row = tx
                .query_one(
                    concat!(
                        "SELECT count(*) FROM (
                       SELECT 1 FROM transactions
                       WHERE agent_id = $1 AND parent_id IS NULL AND status = 'FAILED' AND ",
                        not_a_fill!(),
                        "
                         AND id > coalesce((SELECT id FROM transactions
                                            WHERE agent_id = $1 AND parent_id IS NULL AND status = 'CONFIRMED'
                                              AND ",
                        not_a_fill!(),
                        " ORDER BY id DESC LIMIT 1),
                                           '00000000-0000-0000-0000-000000000000'::uuid)
                       LIMIT $2) f"
                    ),
                    &[&agent, &(cap as i64)],
                )
                .await
                .map_err(map_err)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    /// Top-level rows the agent created at or after `since` (by their time-ordered ids), up to `cap`.
    pub fn created_since(&self, agent: Uuid, since: u64, cap: u64) -> Result<u64, StoreError> {
        let from = Uuid::from_u128(min_uuid_v7_at(since));
        self.read(async |tx| {
            let row = super::super::rows::one(
                tx,
                concat!(
                    "SELECT count(*) FROM (SELECT 1 FROM transactions
                       WHERE agent_id = $1 AND parent_id IS NULL AND id >= $2 AND ",
                    not_a_fill!(),
                    " LIMIT $3) c"
                ),
                &[&agent, &from, &(cap as i64)],
            )
            .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    /// Native amount of the agent's CONFIRMED top-level rows created at or after `since`.
    pub fn confirmed_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError> {
        let from = Uuid::from_u128(min_uuid_v7_at(since));
        self.sum_native(
            "SELECT native_amount::text FROM transactions WHERE agent_id = $1 AND parent_id IS NULL
               AND status = 'CONFIRMED' AND id >= $2 AND created_at >= $3",
            &[&agent, &from, &(since as i64)],
        )
    }

    /// DAILY_LIMIT_THRESHOLD's measure: CONFIRMED top-level rows created on the UTC day of `day`
    /// without an owner's approval.
    pub fn autonomous_volume_on_day(&self, agent: Uuid, day: u64) -> Result<Amount, StoreError> {
        let start = day - day % 86_400;
        self.sum_native(
            "SELECT native_amount::text FROM transactions WHERE agent_id = $1 AND parent_id IS NULL
               AND status = 'CONFIRMED' AND tier IS DISTINCT FROM 'APPROVAL'
               AND created_at >= $2 AND created_at < $2 + 86400",
            &[&agent, &(start as i64)],
        )
    }

    /// Sums amounts in Rust (saturating), so an overflow behaves as on redb.
    fn sum_native(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Amount, StoreError> {
        self.read(async |tx| {
            let mut sum = Amount::ZERO;
            for r in super::super::rows::all(tx, sql, params).await? {
                let a: Amount = r
                    .get::<_, &str>(0)
                    .parse()
                    .map_err(|_| StoreError::Invariant("a stored amount is not an integer"))?;
                sum = sum.saturating_add(a);
            }
            Ok(sum)
        })
    }

    /// ANOMALY_PATTERN's measure: autonomous CONFIRMED transfers to `to` since `since`, up to `cap`.
    pub fn autonomous_transfers_to_since(
        &self,
        agent: Uuid,
        to: &str,
        since: u64,
        cap: u64,
    ) -> Result<u64, StoreError> {
        self.read(async |tx| {
            let row = super::super::rows::one(
                tx,
                concat!(
                    "SELECT count(*) FROM (SELECT 1 FROM transactions
                       WHERE agent_id = $1 AND parent_id IS NULL AND status = 'CONFIRMED'
                         AND tier IS DISTINCT FROM 'APPROVAL' AND record->>'to_address' = $2
                         AND created_at >= $3 AND ",
                    not_a_fill!(),
                    " LIMIT $4) c"
                ),
                &[&agent, &to, &(since as i64), &(cap as i64)],
            )
            .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }
}
