//! Agent rows on PostgreSQL: creation, reads, rename, the status CAS and owner verification.
//! Writes take the agent's lock (§5); name and public-key uniqueness among live agents is
//! checked explicitly, like redb, with the partial unique indexes as the backstop.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::super::codec;
use super::super::codec::to_json;
use super::super::rows::{self, lock_agent};
use super::super::store::{Global, PgStore};
use crate::audit::AuditEvent;
use crate::db::OpCtx;
use crate::enums::{AgentStatus, Chain};
use crate::error::StoreError;
use crate::in_tx::owner_verified;
use crate::ops::agents::{AgentScan, check_new, creation_events, name_key, renamed, status_changed};
use crate::records::*;

/// The one writer of agent rows: the record with its two Rust-derived key columns.
pub(crate) async fn put_agent(tx: &Transaction<'_>, rec: &AgentRecord, new: bool) -> Result<(), StoreError> {
    rec.check()?;
    let json = to_json("agents", rec)?;
    let (name, owner) = (name_key(&rec.name), rec.owner_key());
    let sql = if new {
        "INSERT INTO agents (id, record, name_key, owner_key) VALUES ($1, $2, $3, $4)"
    } else {
        "UPDATE agents SET record = $2, name_key = $3, owner_key = $4 WHERE id = $1"
    };
    let n = super::super::rows::exec(tx, sql, &[&rec.id, &json, &name, &owner]).await?;
    if n == 0 {
        return Err(StoreError::not_found("agents", rec.id));
    }
    Ok(())
}

/// Name and public-key uniqueness among live agents other than `rec` itself.
async fn check_unique(tx: &Transaction<'_>, rec: &AgentRecord) -> Result<(), StoreError> {
    let clash = |sql: &'static str, key: String, index: &'static str| async move {
        let row = super::super::rows::opt(tx, sql, &[&key, &rec.id]).await?;
        if row.is_some() { Err(StoreError::Unique { index }) } else { Ok(()) }
    };
    clash(
        "SELECT 1 FROM agents WHERE name_key = $1 AND status <> 'TERMINATED' AND id <> $2",
        name_key(&rec.name),
        "idx_agent_name",
    )
    .await?;
    clash(
        "SELECT 1 FROM agents WHERE public_key = $1 AND status <> 'TERMINATED' AND id <> $2",
        rec.public_key.clone(),
        "idx_agent_public_key",
    )
    .await
}

impl PgStore {
    /// Inserts a new ACTIVE agent and audits its creation.
    pub fn insert_agent(&self, rec: &AgentRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.insert_agent_with(rec, None, ctx)
    }

    /// [`insert_agent`](Self::insert_agent) plus one more audit row in the same transaction.
    pub fn insert_agent_with(
        &self,
        rec: &AgentRecord,
        extra: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        check_new(rec)?;
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, rec.id).await?;
            if rows::exists(tx, "agents", rec.id).await? {
                return Err(StoreError::Unique { index: "agents" });
            }
            check_unique(tx, rec).await?;
            put_agent(tx, rec, true).await?;
            for ev in creation_events(rec, extra.clone(), ctx) {
                self.audit(tx, ev, ctx).await?;
            }
            Ok(())
        })
    }

    /// Per agent: (live sessions, transactions), from one snapshot.
    pub fn agent_activity(&self, now: u64) -> Result<HashMap<Uuid, (u64, u64)>, StoreError> {
        self.read(async |tx| {
            let mut out: HashMap<Uuid, (u64, u64)> = HashMap::new();
            let live = super::super::rows::all(tx, "SELECT agent_id, count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 GROUP BY agent_id",
                    &[&(now as i64)],).await?;
            for r in live {
                out.entry(r.get(0)).or_default().0 = r.get::<_, i64>(1) as u64;
            }
            let txs =
                super::super::rows::all(tx, "SELECT agent_id, count(*) FROM transactions GROUP BY agent_id", &[]).await?;
            for r in txs {
                out.entry(r.get(0)).or_default().1 = r.get::<_, i64>(1) as u64;
            }
            Ok(out)
        })
    }

    /// Reads one agent.
    pub fn get_agent(&self, id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "agents", id).await)
    }

    /// Finds a non-terminated agent by name (case-insensitive).
    pub fn find_agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        let key = name_key(name);
        self.read(async |tx| {
            Ok(rows::query(
                tx,
                "agents",
                "SELECT record::text FROM agents WHERE name_key = $1 AND status <> 'TERMINATED'",
                &[&key],
            )
            .await?
            .pop())
        })
    }

    /// Every agent, oldest first.
    pub fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.read(async |tx| rows::query(tx, "agents", "SELECT record::text FROM agents ORDER BY id", &[]).await)
    }

    /// Every readable agent plus the ids of rows that do not decode.
    pub fn scan_agents(&self) -> Result<AgentScan, StoreError> {
        self.read(async |tx| {
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for r in super::super::rows::all(tx, "SELECT id, record::text FROM agents ORDER BY id", &[]).await? {
                match codec::from_text::<AgentRecord>("agents", r.get(1)) {
                    Ok(a) => ok.push(a),
                    Err(e) => bad.push((r.get(0), e)),
                }
            }
            Ok((ok, bad))
        })
    }

    /// Every agent on `chain` whose current owner is `address`, oldest first.
    pub fn owner_scope(&self, chain: Chain, address: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let key = owner_key(chain, address);
        let mut out: Vec<AgentRecord> = self.read(async |tx| {
            rows::query(
                tx,
                "agents",
                "SELECT record::text FROM agents WHERE chain = $1 AND owner_key = $2",
                &[&chain.as_str(), &key],
            )
            .await
        })?;
        out.sort_by_key(|a| (a.created_at, a.id));
        Ok(out)
    }

    /// Renames an agent; audits `AGENT_UPDATED`.
    pub fn update_agent_name(&self, id: Uuid, name: &str, ctx: &OpCtx) -> Result<AgentRecord, StoreError> {
        check_name(name)?;
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, id).await?;
            let old = rows::get_agent(tx, id).await?;
            let Some((new, ev)) = renamed(&old, name, ctx)? else { return Ok(old) };
            check_unique(tx, &new).await?;
            put_agent(tx, &new, false).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(new)
        })
    }

    /// The ACTIVE <-> SUSPENDED compare-and-swap.
    pub fn set_agent_status(
        &self,
        id: Uuid,
        expected: AgentStatus,
        new_status: AgentStatus,
        reason: Option<String>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, id).await?;
            let old = rows::get_agent(tx, id).await?;
            let (new, ev) = status_changed(&old, expected, new_status, reason.clone(), ctx)?;
            put_agent(tx, &new, false).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(new)
        })
    }

    /// Marks the owner verified (GRACE → LOCKED) once.
    pub fn mark_owner_verified(&self, agent_id: Uuid, address: &str, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(Global::Shared, async |tx| {
            lock_agent(tx, agent_id).await?;
            let old = rows::get_agent(tx, agent_id).await?;
            let Some((new, ev)) = owner_verified(&old, address, ctx) else { return Ok(false) };
            put_agent(tx, &new, false).await?;
            self.audit(tx, ev, ctx).await?;
            Ok(true)
        })
    }
}
