//! `/v1/sessions` (04-auth.md §4): creation with constraints, listing, renewal and revocation.
//!
//! The token is returned only by creation and renewal; the database keeps its SHA-256. Renewal
//! is a compare-and-swap on the presented token's hash inside one write transaction, so of two
//! concurrent renewals with the same token exactly one wins.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::App;
use crate::base::clock::iso;
use crate::base::error::ErrorCode;
use crate::domain::sessions::ConstraintRequest;
use crate::http::query::{self, paginate, uuid_param};
use crate::http::{ApiError, Caller, Reply, Req, views};

/// The flat constraint fields repeat `ConstraintRequest` on purpose: `#[serde(flatten)]` does
/// not work together with `deny_unknown_fields`, and unknown keys must stay a validation error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    agent_id: Option<String>,
    agent_name: Option<String>,
    constraints: Option<ConstraintRequest>,
    max_amount_per_tx: Option<String>,
    max_total_amount: Option<String>,
    max_transactions: Option<u64>,
    allowed_operations: Option<Vec<String>>,
    allowed_destinations: Option<Vec<String>>,
    allowed_tokens: Option<Vec<String>>,
    allowed_contracts: Option<Vec<String>>,
    allowed_spenders: Option<Vec<String>>,
    expires_in: Option<u64>,
    max_renewals: Option<u32>,
    renewal_reject_window: Option<u64>,
}

impl CreateBody {
    /// Flat fields overlaid by the nested ones.
    fn merged(&mut self) -> ConstraintRequest {
        let n = self.constraints.take().unwrap_or_default();
        ConstraintRequest {
            max_amount_per_tx: n.max_amount_per_tx.or(self.max_amount_per_tx.take()),
            max_total_amount: n.max_total_amount.or(self.max_total_amount.take()),
            max_transactions: n.max_transactions.or(self.max_transactions),
            allowed_operations: n.allowed_operations.or(self.allowed_operations.take()),
            allowed_destinations: n.allowed_destinations.or(self.allowed_destinations.take()),
            allowed_tokens: n.allowed_tokens.or(self.allowed_tokens.take()),
            allowed_contracts: n.allowed_contracts.or(self.allowed_contracts.take()),
            allowed_spenders: n.allowed_spenders.or(self.allowed_spenders.take()),
            expires_in: n.expires_in.or(self.expires_in),
            max_renewals: n.max_renewals.or(self.max_renewals),
            renewal_reject_window: n.renewal_reject_window.or(self.renewal_reject_window),
        }
    }
}

/// `POST /v1/sessions`.
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let mut b: CreateBody = req.body.json().await?;
    let input = b.merged();
    let agent = match (b.agent_id.take(), b.agent_name.take()) {
        (Some(id), None) => app.agents.load(&id).await?,
        (None, Some(name)) => app.agents.find_by_name(&name).await?,
        _ => {
            return Err(ApiError::validation(
                "agentId",
                "invalid_union",
                "exactly one of agentId and agentName is required",
            ));
        }
    };
    let issued = app.sessions.create(&agent, input, &req.ctx(app)).await?;
    let s = &issued.session;
    Ok(Reply::created(json!({
        "sessionId": s.id,
        "token": issued.token,
        "agentId": agent.id,
        "agentName": agent.name,
        "expiresAt": iso(s.expires_at),
        "absoluteExpiresAt": iso(s.absolute_expires_at),
        "maxRenewals": s.max_renewals,
        "constraints": s.constraints,
    })))
}

fn session_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, format!("Session {id} not found"))
        .detail("resource", "session")
        .detail("id", id.to_string())
}

async fn names(app: &Arc<App>) -> Result<std::collections::HashMap<Uuid, String>, ApiError> {
    Ok(app.db.call(|s| s.list_agents()).await?.into_iter().map(|a| (a.id, a.name)).collect())
}

/// `GET /v1/sessions`: the caller's agent's sessions (session auth) or all (master).
pub(super) async fn list(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (page, filters) = query::parse(req.query_params(), &["agentId", "status"])?;
    let all = match filters.get("status").map(String::as_str) {
        None | Some("active") => false,
        Some("all") => true,
        Some(_) => return Err(ApiError::validation("status", "invalid_enum_value", "status must be active or all")),
    };
    let agent = match &req.caller {
        Caller::Session(s) => Some(s.agent.id),
        _ => filters
            .get("agentId")
            .map(|a| {
                Uuid::parse_str(a)
                    .map_err(|_| ApiError::validation("agentId", "invalid_string", "agentId must be a UUID"))
            })
            .transpose()?,
    };
    let now = app.clock.now();
    let mut sessions = app.db.call(move |s| s.list_sessions(agent)).await?;
    sessions.retain(|s| all || s.is_live(now));
    sessions.sort_by_key(|s| s.id);
    let names = names(app).await?;
    let (items, next) = paginate(sessions, |s| s.id, &page);
    let items: Vec<Value> =
        items.iter().map(|s| views::session(s, names.get(&s.agent_id).map(String::as_str).unwrap_or(""))).collect();
    Ok(Reply::ok(json!({"sessions": items, "nextCursor": next})))
}

/// `GET /v1/sessions/:id`.
pub(super) async fn get(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), session_not_found)?;
    let s = app.db.call(move |s| s.get_session(id)).await?.ok_or_else(|| session_not_found(&id.to_string()))?;
    if let Caller::Session(c) = &req.caller
        && c.agent.id != s.agent_id
    {
        return Err(session_not_found(&id.to_string()));
    }
    let names = names(app).await?;
    Ok(Reply::ok(views::session(&s, names.get(&s.agent_id).map(String::as_str).unwrap_or(""))))
}

/// `PUT /v1/sessions/:id/renew` (session; no body).
pub(super) async fn renew(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = req.session()?.clone();
    let issued = app.sessions.renew(&caller, req.param("id"), &req.ctx(app)).await?;
    let s = &issued.session;
    Ok(Reply::ok(json!({
        "sessionId": s.id,
        "token": issued.token,
        "expiresAt": iso(s.expires_at),
        "renewalCount": s.renewal_count,
        "maxRenewals": s.max_renewals,
        "absoluteExpiresAt": iso(s.absolute_expires_at),
    })))
}

/// `DELETE /v1/sessions/:id`.
pub(super) async fn revoke(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), session_not_found)?;
    let s = app.sessions.revoke(id, &req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "revoked": true,
        "sessionId": id,
        "revokedAt": s.revoked_at.map(iso),
        "trigger": s.revoke_trigger,
    })))
}
