//! `/v1/owner/policies` (09-api.md §6.4): the policy service behind master auth, and the owner's
//! dry run.

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use waiaas_storage::{Chain, PolicyType};

use crate::app::App;
use crate::base::error::ErrorCode;
use crate::domain::policy_admin::{NewPolicy, PolicyFilter, PolicyUpdate};
use crate::http::query::uuid_param;
use crate::http::{ApiError, Reply, Req, views};

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::PolicyNotFound, format!("Policy {id} not found"))
        .detail("resource", "policy")
        .detail("id", id.to_string())
}

fn policy_type(path: &str, v: &str) -> Result<PolicyType, ApiError> {
    PolicyType::from_str(v).map_err(|_| {
        let all: Vec<&str> = PolicyType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::validation(path, "invalid_enum_value", format!("type must be one of {}", all.join(", ")))
    })
}

fn agent_id(path: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| ApiError::validation(path, "invalid_string", format!("{path} must be a UUID")))
}

/// The body of `POST /v1/owner/policies` (and each candidate of a dry run).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    agent_id: Option<String>,
    chain: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    rules: Value,
    priority: Option<i32>,
    enabled: Option<bool>,
}

impl CreateBody {
    fn into_new(self, prefix: &str) -> Result<NewPolicy, ApiError> {
        let at = |f: &str| if prefix.is_empty() { f.to_string() } else { format!("{prefix}.{f}") };
        Ok(NewPolicy {
            agent_id: self.agent_id.as_deref().map(|a| agent_id(&at("agentId"), a)).transpose()?,
            chain: self
                .chain
                .as_deref()
                .map(|c| {
                    Chain::from_str(c).map_err(|_| {
                        ApiError::validation(&at("chain"), "invalid_enum_value", "chain must be solana or ethereum")
                    })
                })
                .transpose()?,
            kind: policy_type(&at("type"), &self.kind)?,
            rules: self.rules,
            priority: self.priority.unwrap_or(0),
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// `GET /v1/owner/policies?agentId&type&includeGlobal`.
pub(super) async fn list(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let mut f = PolicyFilter { include_global: true, ..PolicyFilter::default() };
    for (k, v) in req.query_params() {
        match k.as_str() {
            "agentId" => f.agent_id = Some(agent_id("agentId", &v)?),
            "type" => f.kind = Some(policy_type("type", &v)?),
            "includeGlobal" => {
                f.include_global = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::validation(
                            "includeGlobal",
                            "invalid_type",
                            "includeGlobal must be true or false",
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::validation(
                    other,
                    "unrecognized_keys",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    let policies = app.policies.list(f).await?;
    Ok(Reply::ok(json!({"policies": policies.iter().map(views::policy).collect::<Vec<_>>()})))
}

/// `POST /v1/owner/policies`: 201 with the stored policy (rules normalised).
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: CreateBody = req.body.json().await?;
    let p = app.policies.create(b.into_new("")?, &req.caller.actor()).await?;
    Ok(Reply::created(views::policy(&p)))
}

/// `GET /v1/owner/policies/:id`.
pub(super) async fn get(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), not_found)?;
    Ok(Reply::ok(views::policy(&app.policies.get(id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    rules: Option<Value>,
    priority: Option<i32>,
    enabled: Option<bool>,
}

/// `PUT /v1/owner/policies/:id`: type, agent and chain are immutable.
pub(super) async fn update(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), not_found)?;
    let b: UpdateBody = req.body.json().await?;
    let u = PolicyUpdate { rules: b.rules, priority: b.priority, enabled: b.enabled };
    Ok(Reply::ok(views::policy(&app.policies.update(id, u, &req.caller.actor()).await?)))
}

/// `DELETE /v1/owner/policies/:id`.
pub(super) async fn delete(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), not_found)?;
    let p = app.policies.delete(id, &req.caller.actor()).await?;
    Ok(Reply::ok(json!({"deleted": true, "id": p.id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DryRunBody {
    agent_id: String,
    transaction: Value,
    /// A candidate policy set, evaluated instead of the stored policies (validated like
    /// `POST /v1/owner/policies`, never stored).
    policies: Option<Vec<Value>>,
}

/// `POST /v1/owner/policies/dry-run` `{agentId, transaction, policies?}`: what the agent's
/// request would get now — from the stored policies, or from the candidate set when given.
pub(super) async fn dry_run(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: DryRunBody = req.body.json().await?;
    let id = agent_id("agentId", &b.agent_id)?;
    let agent = app.agents.load(&id.to_string()).await?;
    let candidates = match b.policies {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for (i, v) in list.into_iter().enumerate() {
                let path = format!("policies[{i}]");
                let body: CreateBody = crate::base::validation::from_value(&v).map_err(|e| e.under(&path))?;
                let new = body.into_new(&path)?;
                // Candidates are scoped like stored policies: another agent's or another chain's
                // do not apply.
                let p = app.policies.validate(new).await.map_err(|e| match e {
                    crate::domain::policy_admin::PolicyError::Invalid(i) => {
                        crate::domain::policy_admin::PolicyError::Invalid(i.under(&path))
                    }
                    e => e,
                })?;
                out.push(p);
            }
            Some(out)
        }
    };
    let tx = serde_json::to_vec(&b.transaction).unwrap_or_default();
    let d = app.pipeline.owner_dry_run(&agent, &tx, candidates).await.map_err(|e| match e {
        crate::domain::pipeline::SendError::Invalid(i) => {
            crate::domain::pipeline::SendError::Invalid(i.under("transaction"))
        }
        e => e,
    })?;
    Ok(Reply::ok(super::transactions::dry_run_body(d, false)))
}
