//! Agent rows: creation with uniqueness, status CAS, termination cascade, owner lifecycle and
//! the restrict/cascade rules of deletion (02-storage.md §3.2, §4, §5, §6).
//!
//! Uniqueness of names (case-insensitive) and public keys holds among non-terminated agents:
//! the unique index entries are checked and written in the same write transaction as the row,
//! and released when the agent is terminated.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AgentStatus, AuditSeverity, Chain, OwnerState, Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{delete_session_in, end_many, mark_owner_verified_in, revoke_agent_sessions};
use crate::records::*;
use crate::rows::{self, get_agent, put_agent};
use crate::tables::*;

/// Counts from [`RedbStore::terminate_agent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminationReport {
    /// Live sessions revoked.
    pub sessions_revoked: u64,
    /// PENDING/QUEUED transactions cancelled.
    pub transactions_cancelled: u64,
    /// Time of termination.
    pub terminated_at: u64,
}

/// Readable agents, and the ids of unreadable rows with their decoding errors.
pub type AgentScan = (Vec<AgentRecord>, Vec<(Uuid, StoreError)>);

/// Result of [`RedbStore::set_owner`].
#[derive(Debug, Clone, PartialEq)]
pub struct SetOwnerOutcome {
    /// The agent after the change.
    pub agent: AgentRecord,
    /// False when the same address was set again (no-op, no audit).
    pub changed: bool,
    /// QUEUED APPROVAL transactions cancelled with `OWNER_ADDRESS_CHANGED`.
    pub approvals_cancelled: u64,
}

/// The name uniqueness key (case-insensitive).
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

fn check_unique(tx: &WriteTransaction, rec: &AgentRecord) -> Result<(), StoreError> {
    if let Some(v) = tx.open_table(IDX_AGENT_NAME)?.get(name_key(&rec.name).as_str())?
        && v.value() != rec.id.as_u128()
    {
        return Err(StoreError::Unique { index: "idx_agent_name" });
    }
    if let Some(v) = tx.open_table(IDX_AGENT_PUBLIC_KEY)?.get(rec.public_key.as_str())?
        && v.value() != rec.id.as_u128()
    {
        return Err(StoreError::Unique { index: "idx_agent_public_key" });
    }
    Ok(())
}

fn set_owner_index(tx: &WriteTransaction, old: &AgentRecord, new: &AgentRecord) -> Result<(), StoreError> {
    let mut idx = tx.open_table(IDX_AGENT_OWNER)?;
    if let Some(k) = old.owner_key() {
        idx.remove((k.as_str(), old.id.as_u128()))?;
    }
    if let Some(k) = new.owner_key() {
        idx.insert((k.as_str(), new.id.as_u128()), ())?;
    }
    Ok(())
}

/// The audit rows of an agent's creation, in order: `AGENT_CREATED`, `OWNER_REGISTERED` with an
/// owner, then the caller's extra row.
pub(crate) fn creation_events(rec: &AgentRecord, extra: Option<AuditEvent>, ctx: &OpCtx) -> Vec<AuditEvent> {
    let mut out = vec![
        AuditEvent::new(AuditEventType::AgentCreated, ctx.actor.clone())
            .agent(rec.id)
            .detail("name", rec.name.clone())
            .detail("chain", rec.chain.as_str())
            .detail("network", rec.network.as_str())
            .detail("backend", rec.backend.as_str())
            .detail("publicKey", rec.public_key.clone()),
    ];
    if let Some(owner) = &rec.owner_address {
        out.push(
            AuditEvent::new(AuditEventType::OwnerRegistered, ctx.actor.clone())
                .agent(rec.id)
                .detail("address", owner.clone()),
        );
    }
    out.extend(extra.map(|ev| ev.agent(rec.id)));
    out
}

/// What a new agent must be before it is written.
pub(crate) fn check_new(rec: &AgentRecord) -> Result<(), StoreError> {
    rec.check()?;
    if rec.status != AgentStatus::Active || rec.owner_verified {
        return Err(StoreError::Invariant("a new agent is ACTIVE with an unverified owner"));
    }
    Ok(())
}

/// A rename of `old` to `name` at `now`: `None` when the name is unchanged, else the new row and
/// its `AGENT_UPDATED` event. Terminated agents keep their name.
pub(crate) fn renamed(
    old: &AgentRecord,
    name: &str,
    ctx: &OpCtx,
) -> Result<Option<(AgentRecord, AuditEvent)>, StoreError> {
    if old.status == AgentStatus::Terminated {
        return Err(StoreError::conflict("not TERMINATED", old.status));
    }
    if old.name == name {
        return Ok(None);
    }
    let mut new = old.clone();
    new.name = name.to_string();
    new.updated_at = ctx.now;
    let ev = AuditEvent::new(AuditEventType::AgentUpdated, ctx.actor.clone())
        .agent(old.id)
        .detail("previousName", old.name.clone())
        .detail("name", new.name.clone());
    Ok(Some((new, ev)))
}

/// The ACTIVE <-> SUSPENDED compare-and-swap on `old`: the new row and its event.
pub(crate) fn status_changed(
    old: &AgentRecord,
    expected: AgentStatus,
    new_status: AgentStatus,
    reason: Option<String>,
    ctx: &OpCtx,
) -> Result<(AgentRecord, AuditEvent), StoreError> {
    if old.status != expected {
        return Err(StoreError::conflict(expected, old.status));
    }
    let mut new = old.clone();
    new.status = new_status;
    new.updated_at = ctx.now;
    let ev = match (expected, new_status) {
        (AgentStatus::Active, AgentStatus::Suspended) => {
            let reason = reason.unwrap_or_else(|| "manual".into());
            new.suspended_at = Some(ctx.now);
            new.suspension_reason = Some(reason.clone());
            AuditEvent::new(AuditEventType::AgentSuspended, ctx.actor.clone())
                .severity(AuditSeverity::Warning)
                .detail("reason", reason)
        }
        (AgentStatus::Suspended, AgentStatus::Active) => {
            new.suspended_at = None;
            new.suspension_reason = None;
            AuditEvent::new(AuditEventType::AgentResumed, ctx.actor.clone())
        }
        _ => return Err(StoreError::conflict("ACTIVE<->SUSPENDED", format!("{expected}->{new_status}"))),
    };
    Ok((new, ev.agent(old.id)))
}

/// The owner change `set_owner` makes to `old`, after its checks; `None` when the address is
/// the current one (a no-op).
pub(crate) fn owner_changed(
    old: &AgentRecord,
    new_address: Option<&str>,
    expect: OwnerState,
    now: u64,
) -> Result<Option<AgentRecord>, StoreError> {
    if old.status == AgentStatus::Terminated {
        return Err(StoreError::conflict("not TERMINATED", AgentStatus::Terminated));
    }
    let state = old.owner_state();
    if state != expect {
        return Err(StoreError::conflict(expect, state));
    }
    let same = match (&old.owner_address, new_address) {
        (Some(a), Some(b)) => owner_key(old.chain, a) == owner_key(old.chain, b),
        (None, None) => true,
        _ => false,
    };
    if same {
        return Ok(None);
    }
    if new_address.is_none() && state == OwnerState::Locked {
        return Err(StoreError::conflict(OwnerState::Grace, OwnerState::Locked));
    }
    let mut new = old.clone();
    new.owner_address = new_address.map(str::to_string);
    if new_address.is_none() {
        new.owner_verified = false;
        new.owner_verified_at = None;
    }
    new.updated_at = now;
    Ok(Some(new))
}

pub(crate) fn owner_change_event(old: &AgentRecord, new: &AgentRecord, cancelled: u64, ctx: &OpCtx) -> AuditEvent {
    let ev = match (&old.owner_address, &new.owner_address) {
        (Some(prev), Some(a)) => AuditEvent::new(AuditEventType::OwnerAddressChanged, ctx.actor.clone())
            .severity(AuditSeverity::Warning)
            .detail("previousAddress", prev.clone())
            .detail("newAddress", a.clone())
            .detail("approvalsCancelled", cancelled),
        (Some(prev), None) => AuditEvent::new(AuditEventType::OwnerRemoved, ctx.actor.clone())
            .severity(AuditSeverity::Warning)
            .detail("previousAddress", prev.clone())
            .detail("approvalsCancelled", cancelled),
        (None, a) => AuditEvent::new(AuditEventType::OwnerRegistered, ctx.actor.clone()).detail("address", a.clone()),
    };
    ev.agent(old.id)
}

/// `old` terminated at `now`.
pub(crate) fn terminated(old: &AgentRecord, now: u64) -> AgentRecord {
    let mut new = old.clone();
    new.status = AgentStatus::Terminated;
    new.terminated_at = Some(now);
    new.suspended_at = None;
    new.suspension_reason = None;
    new.updated_at = now;
    new
}

pub(crate) fn terminated_event(id: Uuid, revoked: u64, cancelled: u64, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::AgentTerminated, ctx.actor.clone())
        .agent(id)
        .severity(AuditSeverity::Warning)
        .detail("sessionsRevoked", revoked)
        .detail("transactionsCancelled", cancelled)
}

pub(crate) fn disconnected_event(chain: Chain, address: &str, agents: u64, expired: u64, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::OwnerDisconnected, ctx.actor.clone())
        .detail("address", address)
        .detail("chain", chain.as_str())
        .detail("affectedAgents", agents)
        .detail("expiredTransactions", expired)
}

impl RedbStore {
    /// Inserts a new ACTIVE agent: checks name and public-key uniqueness, writes the row and its
    /// indexes and audits `AGENT_CREATED` (+ `OWNER_REGISTERED` with an owner) — one write
    /// transaction.
    pub fn insert_agent(&self, rec: &AgentRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.insert_agent_with(rec, None, ctx)
    }

    /// [`insert_agent`](Self::insert_agent) plus one more audit row in the same transaction
    /// (e.g. `AGENT_KEY_IMPORTED`), attributed to the new agent.
    pub fn insert_agent_with(
        &self,
        rec: &AgentRecord,
        extra: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        check_new(rec)?;
        self.write(|tx| {
            if tx.open_table(AGENTS)?.get(rec.id.as_u128())?.is_some() {
                return Err(StoreError::Unique { index: "agents" });
            }
            check_unique(tx, rec)?;
            put_agent(tx, rec)?;
            tx.open_table(IDX_AGENT_NAME)?.insert(name_key(&rec.name).as_str(), rec.id.as_u128())?;
            tx.open_table(IDX_AGENT_PUBLIC_KEY)?.insert(rec.public_key.as_str(), rec.id.as_u128())?;
            if let Some(k) = rec.owner_key() {
                tx.open_table(IDX_AGENT_OWNER)?.insert((k.as_str(), rec.id.as_u128()), ())?;
            }
            for ev in creation_events(rec, extra, ctx) {
                self.audit(tx, ev, ctx)?;
            }
            Ok(())
        })
    }

    /// Per agent: (live sessions, transactions), in one read transaction.
    pub fn agent_activity(&self, now: u64) -> Result<std::collections::HashMap<Uuid, (u64, u64)>, StoreError> {
        self.read(|tx| {
            let mut out: std::collections::HashMap<Uuid, (u64, u64)> = std::collections::HashMap::new();
            for r in tx.open_table(SESSIONS)?.iter()? {
                let (_, v) = r?;
                let s: SessionRecord = crate::codec::decode("sessions", v.value())?;
                if s.is_live(now) {
                    out.entry(s.agent_id).or_default().0 += 1;
                }
            }
            for r in tx.open_table(IDX_TX_AGENT)?.iter()? {
                let (k, _) = r?;
                out.entry(Uuid::from_u128(k.value().0)).or_default().1 += 1;
            }
            Ok(out)
        })
    }

    /// Reads one agent.
    pub fn get_agent(&self, id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(AGENTS)?, "agents", id))
    }

    /// Finds a non-terminated agent by name (case-insensitive).
    pub fn find_agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.read(|tx| match tx.open_table(IDX_AGENT_NAME)?.get(name_key(name).as_str())? {
            Some(id) => rows::get(&tx.open_table(AGENTS)?, "agents", Uuid::from_u128(id.value())),
            None => Ok(None),
        })
    }

    /// Every agent, oldest first (terminated ones included).
    pub fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(AGENTS)?;
            t.iter()?
                .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| crate::codec::decode("agents", v.value())))
                .collect()
        })
    }

    /// Every readable agent plus the ids of rows that do not decode (tampered offline), for the
    /// start sequence: one corrupt row must not keep the daemon from serving the others.
    pub fn scan_agents(&self) -> Result<AgentScan, StoreError> {
        self.read(|tx| {
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for r in tx.open_table(AGENTS)?.iter()? {
                let (k, v) = r?;
                match crate::codec::decode::<AgentRecord>("agents", v.value()) {
                    Ok(a) => ok.push(a),
                    Err(e) => bad.push((Uuid::from_u128(k.value()), e)),
                }
            }
            Ok((ok, bad))
        })
    }

    /// Every agent on `chain` whose current owner is `address` (EVM case-insensitive), the
    /// terminated included, oldest first: what an owner-console token may see
    /// (11-owner-console.md §3.2), re-read on every request.
    pub fn owner_scope(&self, chain: crate::enums::Chain, address: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let key = owner_key(chain, address);
        self.read(|tx| {
            let idx = tx.open_table(IDX_AGENT_OWNER)?;
            let agents = tx.open_table(AGENTS)?;
            let mut out = Vec::new();
            for r in idx.range((key.as_str(), 0u128)..=(key.as_str(), u128::MAX))? {
                let (k, _) = r?;
                let a: AgentRecord = rows::must_get(&agents, "agents", Uuid::from_u128(k.value().1))?;
                if a.chain == chain {
                    out.push(a);
                }
            }
            out.sort_by_key(|a| (a.created_at, a.id));
            Ok(out)
        })
    }

    /// Renames an agent (uniqueness checked in the same transaction); audits `AGENT_UPDATED`.
    pub fn update_agent_name(&self, id: Uuid, name: &str, ctx: &OpCtx) -> Result<AgentRecord, StoreError> {
        check_name(name)?;
        self.write(|tx| {
            let old = get_agent(tx, id)?;
            let Some((new, ev)) = renamed(&old, name, ctx)? else { return Ok(old) };
            check_unique(tx, &new)?;
            put_agent(tx, &new)?;
            let mut idx = tx.open_table(IDX_AGENT_NAME)?;
            idx.remove(name_key(&old.name).as_str())?;
            idx.insert(name_key(&new.name).as_str(), id.as_u128())?;
            drop(idx);
            self.audit(tx, ev, ctx)?;
            Ok(new)
        })
    }

    /// CAS on the agent status between ACTIVE and SUSPENDED; suspension sets `suspended_at` and
    /// `suspension_reason`, resumption clears them. Audits `AGENT_SUSPENDED` (warning) or
    /// `AGENT_RESUMED`. One write transaction.
    pub fn set_agent_status(
        &self,
        id: Uuid,
        expected: AgentStatus,
        new_status: AgentStatus,
        reason: Option<String>,
        ctx: &OpCtx,
    ) -> Result<AgentRecord, StoreError> {
        self.write(|tx| {
            let old = get_agent(tx, id)?;
            let (new, ev) = status_changed(&old, expected, new_status, reason.clone(), ctx)?;
            put_agent(tx, &new)?;
            self.audit(tx, ev, ctx)?;
            Ok(new)
        })
    }

    /// Terminates an agent in one write transaction: refuses (`Conflict`, actual `EXECUTING`)
    /// while any of its transactions executes; cancels its PENDING/QUEUED transactions
    /// (`AGENT_TERMINATED`, reservations released, approvals rejected); revokes its live sessions
    /// (`agent_terminated`); sets TERMINATED; releases its unique index entries; audits
    /// `AGENT_TERMINATED` with the counts. The caller deletes the key file after commit.
    pub fn terminate_agent(&self, id: Uuid, ctx: &OpCtx) -> Result<TerminationReport, StoreError> {
        self.write(|tx| {
            let old = get_agent(tx, id)?;
            if old.status == AgentStatus::Terminated {
                return Err(StoreError::conflict("not TERMINATED", AgentStatus::Terminated));
            }
            let active = rows::active_tx_ids(tx, id)?;
            for tid in &active {
                if rows::get_tx(tx, *tid)?.status == TxStatus::Executing {
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
            )?;
            let revoked = revoke_agent_sessions(tx, id, "agent_terminated", ctx.now)?;
            put_agent(tx, &terminated(&old, ctx.now))?;
            remove_unique_entries(tx, &old)?;
            self.audit(tx, terminated_event(id, revoked, cancelled, ctx), ctx)?;
            Ok(TerminationReport {
                sessions_revoked: revoked,
                transactions_cancelled: cancelled,
                terminated_at: ctx.now,
            })
        })
    }

    /// Deletes an agent row (rollback of a failed creation, tests). **Restrict**: any
    /// transaction of the agent makes it fail with `Restricted`. **Cascade**: its sessions,
    /// policies and AutoStop rules are deleted with their index entries. One write transaction.
    pub fn delete_agent(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(|tx| {
            let rec = get_agent(tx, id)?;
            let a = id.as_u128();
            if tx.open_table(IDX_TX_AGENT)?.range((a, 0u128)..=(a, u128::MAX))?.next().is_some() {
                return Err(StoreError::Restricted { reason: "the agent has transactions" });
            }
            for sid in rows::session_ids_of(tx, id)? {
                delete_session_in(tx, sid)?;
            }
            let policy_ids: Vec<u128> = tx
                .open_table(IDX_POLICY_SCOPE)?
                .range((a, 0u128)..=(a, u128::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for pid in policy_ids {
                tx.open_table(IDX_POLICY_SCOPE)?.remove((a, pid))?;
                tx.open_table(POLICIES)?.remove(pid)?;
            }
            let rules: Vec<(String, u128)> = tx
                .open_table(IDX_AUTO_STOP_SCOPE)?
                .range((a, "")..)?
                .map(|r| r.map(|(k, v)| (k.value().0, k.value().1.to_string(), v.value())))
                .take_while(|r| r.as_ref().map(|(s, _, _)| *s == a).unwrap_or(true))
                .map(|r| r.map(|(_, t, v)| (t, v)))
                .collect::<Result<_, _>>()?;
            for (t, rid) in rules {
                tx.open_table(IDX_AUTO_STOP_SCOPE)?.remove((a, t.as_str()))?;
                tx.open_table(AUTO_STOP_RULES)?.remove(rid)?;
            }
            if rec.status != AgentStatus::Terminated {
                remove_unique_entries(tx, &rec)?;
            }
            tx.open_table(AGENTS)?.remove(a)?;
            Ok(())
        })
    }

    /// Owner lifecycle (04-auth.md §8) in one write transaction: re-reads the owner state and
    /// fails with `Conflict` if it is not `expect` (the state the caller authorised); setting the
    /// current address again is a no-op; a change or removal cancels the agent's QUEUED APPROVAL
    /// transactions with `OWNER_ADDRESS_CHANGED`; LOCKED owners cannot be removed here.
    /// Audits `OWNER_REGISTERED`, `OWNER_ADDRESS_CHANGED` or `OWNER_REMOVED`.
    pub fn set_owner(
        &self,
        agent_id: Uuid,
        new_address: Option<&str>,
        expect: OwnerState,
        ctx: &OpCtx,
    ) -> Result<SetOwnerOutcome, StoreError> {
        self.write(|tx| {
            let old = get_agent(tx, agent_id)?;
            let Some(new) = owner_changed(&old, new_address, expect, ctx.now)? else {
                return Ok(SetOwnerOutcome { agent: old, changed: false, approvals_cancelled: 0 });
            };
            put_agent(tx, &new)?;
            set_owner_index(tx, &old, &new)?;
            let cancelled = if old.owner_address.is_some() {
                let ids = rows::active_tx_ids(tx, agent_id)?;
                end_many(
                    tx,
                    &ids,
                    &[TxStatus::Queued],
                    TxStatus::Cancelled,
                    "OWNER_ADDRESS_CHANGED",
                    |r| r.tier == Some(Tier::Approval),
                    ctx.now,
                )?
            } else {
                0
            };
            self.audit(tx, owner_change_event(&old, &new, cancelled, ctx), ctx)?;
            Ok(SetOwnerOutcome { agent: new, changed: true, approvals_cancelled: cancelled })
        })
    }

    /// `DELETE /v1/owner/disconnect` (04-auth.md §9) in one write transaction: every QUEUED
    /// APPROVAL transaction of the owner's non-terminated agents on `chain` becomes EXPIRED with
    /// `OWNER_DISCONNECTED` (reservations released), DELAY rows are untouched, the matching
    /// wallet connection is deleted and `owner_address` is kept. `NotFound` when the address
    /// owns no agent on that chain. Returns (affected agents, expired transactions).
    pub fn disconnect_owner(&self, chain: Chain, address: &str, ctx: &OpCtx) -> Result<(u64, u64), StoreError> {
        let key = owner_key(chain, address);
        self.write(|tx| {
            let agent_ids: Vec<u128> = tx
                .open_table(IDX_AGENT_OWNER)?
                .range((key.as_str(), 0u128)..=(key.as_str(), u128::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            let mut agents = Vec::new();
            for id in agent_ids {
                let a = get_agent(tx, Uuid::from_u128(id))?;
                if a.chain == chain && a.status != AgentStatus::Terminated {
                    agents.push(a);
                }
            }
            if agents.is_empty() {
                return Err(StoreError::not_found("owners", address));
            }
            let mut expired = 0;
            for a in &agents {
                let ids = rows::active_tx_ids(tx, a.id)?;
                expired += end_many(
                    tx,
                    &ids,
                    &[TxStatus::Queued],
                    TxStatus::Expired,
                    "OWNER_DISCONNECTED",
                    |r| r.tier == Some(Tier::Approval),
                    ctx.now,
                )?;
            }
            let mut idx = tx.open_table(IDX_WALLET_CONNECTION)?;
            if let Some(conn) = idx.remove((key.as_str(), chain.as_str()))?.map(|v| v.value()) {
                tx.open_table(WALLET_CONNECTIONS)?.remove(conn)?;
            }
            drop(idx);
            self.audit(tx, disconnected_event(chain, address, agents.len() as u64, expired, ctx), ctx)?;
            Ok((agents.len() as u64, expired))
        })
    }

    /// GRACE → LOCKED if `address` is still the owner and not yet verified; idempotent (returns
    /// false when nothing changed). Audits `OWNER_VERIFIED` exactly once per agent.
    pub fn mark_owner_verified(&self, agent_id: Uuid, address: &str, ctx: &OpCtx) -> Result<bool, StoreError> {
        self.write(|tx| mark_owner_verified_in(self, tx, agent_id, address, ctx))
    }
}

fn remove_unique_entries(tx: &WriteTransaction, rec: &AgentRecord) -> Result<(), StoreError> {
    let mut names = tx.open_table(IDX_AGENT_NAME)?;
    let nk = name_key(&rec.name);
    if names.get(nk.as_str())?.map(|v| v.value()) == Some(rec.id.as_u128()) {
        names.remove(nk.as_str())?;
    }
    let mut pks = tx.open_table(IDX_AGENT_PUBLIC_KEY)?;
    if pks.get(rec.public_key.as_str())?.map(|v| v.value()) == Some(rec.id.as_u128()) {
        pks.remove(rec.public_key.as_str())?;
    }
    if let Some(k) = rec.owner_key() {
        tx.open_table(IDX_AGENT_OWNER)?.remove((k.as_str(), rec.id.as_u128()))?;
    }
    Ok(())
}
