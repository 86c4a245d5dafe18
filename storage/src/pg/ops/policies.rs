//! Policies, AutoStop rules and wallet connections on PostgreSQL. Configuration writes hold G
//! exclusive (§5): rare, and `decide` then always sees one consistent configuration.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::super::codec::to_json;
use super::super::rows;
use super::super::store::{Global, PgStore};
use crate::audit_events::AuditEventType;
use crate::db::OpCtx;
use crate::enums::{AuditSeverity, Chain};
use crate::error::StoreError;
use crate::ops::policies::{
    PolicyChange, RuleChange, apply_policy_change, apply_rule_change, connected_event, policy_event, rule_event,
};
use crate::records::*;

/// Inserts a policy after the checks of redb's `insert_policy_in`.
pub(crate) async fn insert_policy_in(tx: &Transaction<'_>, p: &PolicyRecord) -> Result<(), StoreError> {
    p.check()?;
    if let Some(agent) = p.agent_id {
        let a = rows::get_agent(tx, agent).await?;
        if p.chain.is_some_and(|c| c != a.chain) {
            return Err(StoreError::Invariant("an agent policy's chain must be the agent's chain"));
        }
    }
    if rows::exists(tx, "policies", p.id).await? {
        return Err(StoreError::Unique { index: "policies" });
    }
    rows::insert(tx, "policies", p.id, p).await
}

/// Inserts an AutoStop rule after the checks of redb's `insert_rule_in`.
pub(crate) async fn insert_rule_in(tx: &Transaction<'_>, r: &AutoStopRuleRecord) -> Result<(), StoreError> {
    if !r.config.is_object() {
        return Err(StoreError::Invariant("AutoStop config must be a JSON object"));
    }
    if let Some(agent) = r.agent_id {
        rows::get_agent(tx, agent).await?;
    }
    let taken = super::super::rows::opt(
        tx,
        "SELECT 1 FROM auto_stop_rules WHERE scope = coalesce($1::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
               AND rule_type = $2",
        &[&r.agent_id, &r.rule_type.as_str()],
    )
    .await?;
    if taken.is_some() {
        return Err(StoreError::Unique { index: "idx_auto_stop_scope" });
    }
    rows::insert(tx, "auto_stop_rules", r.id, r).await
}

impl PgStore {
    /// Inserts a policy and audits `POLICY_CREATED`.
    pub fn insert_policy(&self, p: &PolicyRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.write(Global::Exclusive, async |tx| {
            insert_policy_in(tx, p).await?;
            self.audit(tx, policy_event(AuditEventType::PolicyCreated, p, ctx), ctx).await?;
            Ok(())
        })
    }

    /// Changes a policy's mutable fields and audits `POLICY_UPDATED`.
    pub fn update_policy(&self, id: Uuid, change: &PolicyChange, ctx: &OpCtx) -> Result<PolicyRecord, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let mut p: PolicyRecord = rows::must_get(tx, "policies", id).await?;
            apply_policy_change(&mut p, change, ctx.now)?;
            rows::update(tx, "policies", id, &p).await?;
            self.audit(tx, policy_event(AuditEventType::PolicyUpdated, &p, ctx), ctx).await?;
            Ok(p)
        })
    }

    /// One policy.
    pub fn get_policy(&self, id: Uuid) -> Result<Option<PolicyRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "policies", id).await)
    }

    /// Deletes a policy and audits `POLICY_DELETED` (warning).
    pub fn delete_policy(&self, id: Uuid, ctx: &OpCtx) -> Result<PolicyRecord, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let p: PolicyRecord = rows::must_get(tx, "policies", id).await?;
            rows::delete(tx, "policies", id).await?;
            let ev = policy_event(AuditEventType::PolicyDeleted, &p, ctx).severity(AuditSeverity::Warning);
            self.audit(tx, ev, ctx).await?;
            Ok(p)
        })
    }

    /// Every policy, oldest first.
    pub fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.read(async |tx| rows::query(tx, "policies", "SELECT record::text FROM policies ORDER BY id", &[]).await)
    }

    /// Inserts an AutoStop rule and audits `AUTO_STOP_RULE_CREATED`.
    pub fn insert_auto_stop_rule(&self, r: &AutoStopRuleRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        self.write(Global::Exclusive, async |tx| {
            insert_rule_in(tx, r).await?;
            self.audit(tx, rule_event(AuditEventType::AutoStopRuleCreated, r, ctx), ctx).await?;
            Ok(())
        })
    }

    /// Every AutoStop rule, oldest first.
    pub fn list_auto_stop_rules(&self) -> Result<Vec<AutoStopRuleRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(tx, "auto_stop_rules", "SELECT record::text FROM auto_stop_rules ORDER BY id", &[]).await
        })
    }

    /// Records an owner wallet connection, replacing one for the same (owner, chain).
    pub fn connect_wallet(&self, rec: &WalletConnectionRecord, ctx: &OpCtx) -> Result<(), StoreError> {
        let key = owner_key(rec.chain, &rec.owner_address);
        let json = to_json("wallet_connections", rec)?;
        self.write(Global::Exclusive, async |tx| {
            super::super::rows::exec(
                tx,
                "DELETE FROM wallet_connections WHERE owner_key = $1 AND chain = $2",
                &[&key, &rec.chain.as_str()],
            )
            .await?;
            super::super::rows::exec(
                tx,
                "INSERT INTO wallet_connections (id, record, owner_key) VALUES ($1, $2, $3)",
                &[&rec.id, &json, &key],
            )
            .await?;
            self.audit(tx, connected_event(rec, ctx), ctx).await?;
            Ok(())
        })
    }

    /// Every wallet connection, by id.
    pub fn list_wallet_connections(&self) -> Result<Vec<WalletConnectionRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(tx, "wallet_connections", "SELECT record::text FROM wallet_connections ORDER BY id", &[]).await
        })
    }

    /// The wallet connection of `(address, chain)`, if any.
    pub fn wallet_connection(&self, chain: Chain, address: &str) -> Result<Option<WalletConnectionRecord>, StoreError> {
        let key = owner_key(chain, address);
        self.read(async |tx| {
            Ok(rows::query(
                tx,
                "wallet_connections",
                "SELECT record::text FROM wallet_connections WHERE owner_key = $1 AND chain = $2",
                &[&key, &chain.as_str()],
            )
            .await?
            .pop())
        })
    }

    /// One AutoStop rule.
    pub fn get_auto_stop_rule(&self, id: Uuid) -> Result<Option<AutoStopRuleRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "auto_stop_rules", id).await)
    }

    /// Changes a rule's config, action or enabled flag and audits `AUTO_STOP_RULE_UPDATED`.
    pub fn update_auto_stop_rule(
        &self,
        id: Uuid,
        change: &RuleChange,
        ctx: &OpCtx,
    ) -> Result<AutoStopRuleRecord, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let mut r: AutoStopRuleRecord = rows::must_get(tx, "auto_stop_rules", id).await?;
            apply_rule_change(&mut r, change, ctx.now)?;
            rows::update(tx, "auto_stop_rules", id, &r).await?;
            self.audit(tx, rule_event(AuditEventType::AutoStopRuleUpdated, &r, ctx), ctx).await?;
            Ok(r)
        })
    }

    /// Deletes a rule and audits `AUTO_STOP_RULE_DELETED` (warning).
    pub fn delete_auto_stop_rule(&self, id: Uuid, ctx: &OpCtx) -> Result<AutoStopRuleRecord, StoreError> {
        self.write(Global::Exclusive, async |tx| {
            let r: AutoStopRuleRecord = rows::must_get(tx, "auto_stop_rules", id).await?;
            rows::delete(tx, "auto_stop_rules", id).await?;
            let ev = rule_event(AuditEventType::AutoStopRuleDeleted, &r, ctx).severity(AuditSeverity::Warning);
            self.audit(tx, ev, ctx).await?;
            Ok(r)
        })
    }
}
