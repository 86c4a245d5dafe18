//! Policy management (07-policy.md §1, 09-api.md §6.4): creating, changing, listing and
//! deleting policies. Every rules document goes through `policy::rules::parse` before anything
//! is written, so the decision only ever reads rules that parse; an agent-specific policy must
//! be for the agent's chain. Each change is one storage operation that writes the row and its
//! audit row together; the next decision reads it (no cache).
//!
//! Inputs are typed ([`NewPolicy`], [`PolicyUpdate`]); errors are [`PolicyError`]. Nothing here
//! knows about HTTP.

use serde_json::{Map, Value};
use uuid::Uuid;
use waiaas_storage::{AgentRecord, Chain, OpCtx, PolicyChange, PolicyRecord, PolicyType, StoreError};

use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::rules::policy::rules;
use crate::runtime::Db;

/// A policy to create.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewPolicy {
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) chain: Option<Chain>,
    pub(crate) kind: PolicyType,
    pub(crate) rules: Value,
    pub(crate) priority: i32,
    pub(crate) enabled: bool,
}

/// A change to a policy's mutable fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PolicyUpdate {
    pub(crate) rules: Option<Value>,
    pub(crate) priority: Option<i32>,
    pub(crate) enabled: Option<bool>,
}

/// Which policies a listing returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyFilter {
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) kind: Option<PolicyType>,
    /// With `agent_id`: also the global policies (default true).
    pub(crate) include_global: bool,
}

/// Why a policy operation did not apply; nothing was written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Agent {0} not found")]
    AgentNotFound(Uuid),
    #[error("Policy {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for PolicyError {
    fn code(&self) -> ErrorCode {
        match self {
            PolicyError::Invalid(e) => e.code(),
            PolicyError::AgentNotFound(_) => ErrorCode::AgentNotFound,
            PolicyError::NotFound(_) => ErrorCode::PolicyNotFound,
            PolicyError::Store(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            PolicyError::Invalid(e) => e.details(),
            PolicyError::AgentNotFound(id) => details([("resource", "agent".into()), ("id", id.to_string().into())]),
            PolicyError::NotFound(id) => details([("resource", "policy".into()), ("id", id.to_string().into())]),
            PolicyError::Store(e) => e.details(),
        }
    }
}

/// The policy service.
pub(crate) struct Policies {
    db: Db,
    clock: Clock,
}

const PRIORITY: std::ops::RangeInclusive<i32> = -1000..=1000;

impl Policies {
    pub(crate) fn new(db: Db, clock: Clock) -> Policies {
        Policies { db, clock }
    }

    async fn agent(&self, id: Uuid) -> Result<AgentRecord, PolicyError> {
        self.db.call(move |s| s.get_agent(id)).await?.ok_or(PolicyError::AgentNotFound(id))
    }

    /// The record `new` would be, validated against its agent (not stored). Used by `create`
    /// and by the owner's dry run of a candidate set.
    pub(crate) async fn validate(&self, new: NewPolicy) -> Result<PolicyRecord, PolicyError> {
        if !PRIORITY.contains(&new.priority) {
            return Err(Invalid::value("priority", "priority must be -1000 to 1000").into());
        }
        // An agent policy's addresses are validated for the agent's chain.
        let chain = match new.agent_id {
            None => new.chain,
            Some(a) => {
                let agent = self.agent(a).await?;
                if new.chain.is_some_and(|c| c != agent.chain) {
                    return Err(Invalid::value(
                        "chain",
                        format!("agent {a} is on {}; an agent policy must be for the agent's chain", agent.chain),
                    )
                    .into());
                }
                Some(agent.chain)
            }
        };
        let (_, rules) = rules::parse(new.kind, &new.rules, chain)?;
        Ok(self.record(new, rules))
    }

    fn record(&self, new: NewPolicy, rules: Value) -> PolicyRecord {
        let now = self.clock.now();
        PolicyRecord {
            agent_id: new.agent_id,
            chain: new.chain,
            priority: new.priority,
            enabled: new.enabled,
            ..PolicyRecord::new(self.clock.new_id(), new.kind, rules, now)
        }
    }

    /// Creates a policy (audit `POLICY_CREATED`).
    pub(crate) async fn create(&self, new: NewPolicy, actor: &str) -> Result<PolicyRecord, PolicyError> {
        let p = self.validate(new).await?;
        let ctx = OpCtx::new(actor, self.clock.now());
        let stored = p.clone();
        self.db.call(move |s| s.insert_policy(&stored, &ctx)).await?;
        Ok(p)
    }

    /// One policy.
    pub(crate) async fn get(&self, id: Uuid) -> Result<PolicyRecord, PolicyError> {
        self.db.call(move |s| s.get_policy(id)).await?.ok_or(PolicyError::NotFound(id))
    }

    /// Changes rules, priority or enabled (audit `POLICY_UPDATED`).
    pub(crate) async fn update(&self, id: Uuid, u: PolicyUpdate, actor: &str) -> Result<PolicyRecord, PolicyError> {
        if u.priority.is_some_and(|p| !PRIORITY.contains(&p)) {
            return Err(Invalid::value("priority", "priority must be -1000 to 1000").into());
        }
        // Type, agent and chain never change, so the rules can be validated against a read.
        let current = self.get(id).await?;
        let rules = match &u.rules {
            None => None,
            Some(r) => {
                let chain = match (current.chain, current.agent_id) {
                    (Some(c), _) => Some(c),
                    (None, Some(a)) => Some(self.agent(a).await?.chain),
                    (None, None) => None,
                };
                Some(rules::parse(current.policy_type, r, chain)?.1)
            }
        };
        let change = PolicyChange { rules, priority: u.priority, enabled: u.enabled };
        let ctx = OpCtx::new(actor, self.clock.now());
        match self.db.call(move |s| s.update_policy(id, &change, &ctx)).await {
            Err(StoreError::NotFound { .. }) => Err(PolicyError::NotFound(id)),
            r => Ok(r?),
        }
    }

    /// Deletes a policy (audit `POLICY_DELETED`).
    pub(crate) async fn delete(&self, id: Uuid, actor: &str) -> Result<PolicyRecord, PolicyError> {
        let ctx = OpCtx::new(actor, self.clock.now());
        match self.db.call(move |s| s.delete_policy(id, &ctx)).await {
            Err(StoreError::NotFound { .. }) => Err(PolicyError::NotFound(id)),
            r => Ok(r?),
        }
    }

    /// Policies matching `f`, oldest first.
    pub(crate) async fn list(&self, f: PolicyFilter) -> Result<Vec<PolicyRecord>, PolicyError> {
        if let Some(a) = f.agent_id {
            self.agent(a).await?;
        }
        let all = self.db.call(|s| s.list_policies()).await?;
        Ok(all
            .into_iter()
            .filter(|p| f.kind.is_none_or(|k| p.policy_type == k))
            .filter(|p| match (f.agent_id, p.agent_id) {
                (None, _) => true,
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => f.include_global,
            })
            .collect())
    }
}
