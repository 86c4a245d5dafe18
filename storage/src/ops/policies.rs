//! Policies, AutoStop rules and owner wallet connections: plain create/update/delete, each one
//! write transaction writing the row, its index entries and its audit row together.

use redb::ReadableTable;
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::codec::{decode, encode};
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AuditSeverity, Chain};
use crate::error::StoreError;
use crate::in_tx::{insert_policy_in, insert_rule_in, scope};
use crate::records::*;
use crate::rows;
use crate::tables::*;

/// What `update_policy` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyChange {
    /// New rules (validated by the caller).
    pub rules: Option<serde_json::Value>,
    /// New priority.
    pub priority: Option<i32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

pub(crate) fn policy_event(name: AuditEventType, p: &PolicyRecord, ctx: &OpCtx) -> AuditEvent {
    let mut ev = AuditEvent::new(name, ctx.actor.clone())
        .detail("policyId", p.id.to_string())
        .detail("type", p.policy_type.as_str())
        .detail("agentId", p.agent_id.map(|a| a.to_string()))
        .detail("chain", p.chain.map(|c| c.as_str()));
    if let Some(a) = p.agent_id {
        ev = ev.agent(a);
    }
    ev
}

pub(crate) fn rule_event(name: AuditEventType, r: &AutoStopRuleRecord, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(name, ctx.actor.clone()).detail("ruleId", r.id.to_string()).detail("type", r.rule_type.as_str())
}

pub(crate) fn connected_event(rec: &WalletConnectionRecord, ctx: &OpCtx) -> AuditEvent {
    AuditEvent::new(AuditEventType::OwnerConnected, ctx.actor.clone())
        .detail("address", rec.owner_address.clone())
        .detail("chain", rec.chain.as_str())
}

/// Applies a policy change (type, agent and chain are immutable) and checks the result.
pub(crate) fn apply_policy_change(p: &mut PolicyRecord, change: &PolicyChange, now: u64) -> Result<(), StoreError> {
    if let Some(r) = &change.rules {
        p.rules = r.clone();
    }
    if let Some(n) = change.priority {
        p.priority = n;
    }
    if let Some(e) = change.enabled {
        p.enabled = e;
    }
    p.updated_at = now;
    p.check()
}

/// Applies an AutoStop rule change.
pub(crate) fn apply_rule_change(r: &mut AutoStopRuleRecord, change: &RuleChange, now: u64) -> Result<(), StoreError> {
    if let Some(c) = &change.config {
        if !c.is_object() {
            return Err(StoreError::Invariant("AutoStop config must be a JSON object"));
        }
        r.config = c.clone();
    }
    if let Some(a) = change.action {
        r.action = a;
    }
    if let Some(e) = change.enabled {
        r.enabled = e;
    }
    r.updated_at = now;
    Ok(())
}

impl RedbStore {
    /// Inserts a policy (an agent policy's agent must exist) and audits `POLICY_CREATED`.
    pub fn insert_policy(&self, p: &PolicyRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_policy_in(tx, p)?;
            self.audit(tx, policy_event(AuditEventType::PolicyCreated, p, ctx), ctx)?;
            Ok(())
        })
    }

    /// Changes a policy's mutable fields (rules, priority, enabled — type, agent and chain are
    /// immutable) in one write transaction that reads the current row, applies the change and
    /// audits `POLICY_UPDATED`. Returns the new row.
    pub fn update_policy(&self, id: Uuid, change: &PolicyChange, ctx: &OpCtx) -> Result<PolicyRecord, StoreError> {
        self.write(|tx| {
            let mut p: PolicyRecord = rows::must_get(&tx.open_table(POLICIES)?, "policies", id)?;
            apply_policy_change(&mut p, change, ctx.now)?;
            rows::put(tx, POLICIES, "policies", p.id, &p)?;
            self.audit(tx, policy_event(AuditEventType::PolicyUpdated, &p, ctx), ctx)?;
            Ok(p)
        })
    }

    /// One policy.
    pub fn get_policy(&self, id: Uuid) -> Result<Option<PolicyRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(POLICIES)?, "policies", id))
    }

    /// Deletes a policy and audits `POLICY_DELETED` (warning).
    pub fn delete_policy(&self, id: Uuid, ctx: &OpCtx) -> Result<PolicyRecord, StoreError> {
        self.write(|tx| {
            let p: PolicyRecord = rows::must_get(&tx.open_table(POLICIES)?, "policies", id)?;
            tx.open_table(POLICIES)?.remove(id.as_u128())?;
            tx.open_table(IDX_POLICY_SCOPE)?.remove((scope(p.agent_id), id.as_u128()))?;
            self.audit(tx, policy_event(AuditEventType::PolicyDeleted, &p, ctx).severity(AuditSeverity::Warning), ctx)?;
            Ok(p)
        })
    }

    /// Every policy, oldest first.
    pub fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.read(|tx| {
            tx.open_table(POLICIES)?
                .iter()?
                .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("policies", v.value())))
                .collect()
        })
    }

    /// Inserts an AutoStop rule; a second rule for the same (agent or global, type) is `Unique`.
    /// Audits `AUTO_STOP_RULE_CREATED`.
    pub fn insert_auto_stop_rule(&self, r: &AutoStopRuleRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_rule_in(tx, r)?;
            self.audit(tx, rule_event(AuditEventType::AutoStopRuleCreated, r, ctx), ctx)?;
            Ok(())
        })
    }

    /// Every AutoStop rule, oldest first.
    pub fn list_auto_stop_rules(&self) -> Result<Vec<AutoStopRuleRecord>, StoreError> {
        self.read(|tx| {
            tx.open_table(AUTO_STOP_RULES)?
                .iter()?
                .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("auto_stop_rules", v.value())))
                .collect()
        })
    }

    /// Records an owner wallet connection; one for the same (owner, chain) is replaced.
    /// Audits `OWNER_CONNECTED`.
    pub fn connect_wallet(&self, rec: &WalletConnectionRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.write(|tx| {
            let key = owner_key(rec.chain, &rec.owner_address);
            let mut idx = tx.open_table(IDX_WALLET_CONNECTION)?;
            if let Some(old) = idx.get((key.as_str(), rec.chain.as_str()))?.map(|v| v.value()) {
                tx.open_table(WALLET_CONNECTIONS)?.remove(old)?;
            }
            idx.insert((key.as_str(), rec.chain.as_str()), rec.id.as_u128())?;
            drop(idx);
            tx.open_table(WALLET_CONNECTIONS)?
                .insert(rec.id.as_u128(), encode("wallet_connections", rec)?.as_slice())?;
            self.audit(tx, connected_event(rec, ctx), ctx)?;
            Ok(())
        })
    }

    /// Every wallet connection.
    pub fn list_wallet_connections(&self) -> Result<Vec<WalletConnectionRecord>, StoreError> {
        self.read(|tx| {
            tx.open_table(WALLET_CONNECTIONS)?
                .iter()?
                .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode("wallet_connections", v.value())))
                .collect()
        })
    }

    /// The wallet connection of `(address, chain)`, if any.
    pub fn wallet_connection(&self, chain: Chain, address: &str) -> Result<Option<WalletConnectionRecord>, StoreError> {
        let key = owner_key(chain, address);
        self.read(|tx| match tx.open_table(IDX_WALLET_CONNECTION)?.get((key.as_str(), chain.as_str()))? {
            Some(id) => {
                rows::get(&tx.open_table(WALLET_CONNECTIONS)?, "wallet_connections", Uuid::from_u128(id.value()))
            }
            None => Ok(None),
        })
    }
}

/// What `update_auto_stop_rule` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleChange {
    /// New config (validated by the caller).
    pub config: Option<serde_json::Value>,
    /// New action.
    pub action: Option<crate::enums::AutoStopAction>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

impl RedbStore {
    /// One AutoStop rule.
    pub fn get_auto_stop_rule(&self, id: Uuid) -> Result<Option<AutoStopRuleRecord>, StoreError> {
        self.read(|tx| rows::get(&tx.open_table(AUTO_STOP_RULES)?, "auto_stop_rules", id))
    }

    /// Changes a rule's config, action or enabled flag in one write transaction with its audit
    /// row (`AUTO_STOP_RULE_UPDATED`). `NotFound` for an unknown id.
    pub fn update_auto_stop_rule(
        &self,
        id: Uuid,
        change: &RuleChange,
        ctx: &OpCtx,
    ) -> Result<AutoStopRuleRecord, StoreError> {
        self.write(|tx| {
            let mut r: AutoStopRuleRecord = rows::must_get(&tx.open_table(AUTO_STOP_RULES)?, "auto_stop_rules", id)?;
            apply_rule_change(&mut r, change, ctx.now)?;
            rows::put(tx, AUTO_STOP_RULES, "auto_stop_rules", r.id, &r)?;
            self.audit(tx, rule_event(AuditEventType::AutoStopRuleUpdated, &r, ctx), ctx)?;
            Ok(r)
        })
    }

    /// Deletes a rule (and its scope index entry) with its audit row (`AUTO_STOP_RULE_DELETED`).
    pub fn delete_auto_stop_rule(&self, id: Uuid, ctx: &OpCtx) -> Result<AutoStopRuleRecord, StoreError> {
        self.write(|tx| {
            let r: AutoStopRuleRecord = rows::must_get(&tx.open_table(AUTO_STOP_RULES)?, "auto_stop_rules", id)?;
            tx.open_table(AUTO_STOP_RULES)?.remove(id.as_u128())?;
            tx.open_table(IDX_AUTO_STOP_SCOPE)?.remove((scope(r.agent_id), r.rule_type.as_str()))?;
            let ev = rule_event(AuditEventType::AutoStopRuleDeleted, &r, ctx).severity(AuditSeverity::Warning);
            self.audit(tx, ev, ctx)?;
            Ok(r)
        })
    }
}
