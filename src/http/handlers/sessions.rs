//! `/v1/sessions` (04-auth.md §4): creation with constraints, listing, renewal and revocation.
//!
//! The token is returned only by creation and renewal; the database keeps its SHA-256. Renewal
//! is a compare-and-swap on the presented token's hash inside one write transaction, so of two
//! concurrent renewals with the same token exactly one wins.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use waiaas_storage::{
    AgentRecord, AgentStatus, AllowedOperation, Amount, Chain, Hash32, RenewOutcome, RenewalRefusal,
    SessionConstraints, SessionRecord, StoreError, UsageStats,
};

use crate::auth::jwt;
use crate::clock::iso;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::query::{self, paginate, uuid_param};
use crate::http::{Caller, Reply, Req, views};

/// Constraint fields, accepted both flat and under `constraints` (nested wins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConstraintInput {
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

/// The flat constraint fields repeat `ConstraintInput` on purpose: `#[serde(flatten)]` does not
/// work together with `deny_unknown_fields`, and unknown keys must stay a validation error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    agent_id: Option<String>,
    agent_name: Option<String>,
    constraints: Option<ConstraintInput>,
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
    fn merged(&mut self) -> ConstraintInput {
        let n = self.constraints.take().unwrap_or_default();
        ConstraintInput {
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

fn range_check(field: &str, v: Option<u64>, lo: u64, hi: u64) -> Result<(), ApiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => {
            Err(ApiError::validation(field, "out_of_range", format!("{field} must be between {lo} and {hi}")))
        }
        _ => Ok(()),
    }
}

fn amount(field: &str, v: Option<String>) -> Result<Option<Amount>, ApiError> {
    v.map(|s| Amount::parse(&s).map_err(|e| ApiError::validation(field, "invalid_string", format!("{field}: {e}"))))
        .transpose()
}

fn addresses(field: &str, chain: Chain, v: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = v else { return Ok(None) };
    for (i, a) in list.iter().enumerate() {
        if crate::auth::owner::normalize_address(chain, a).is_none() {
            return Err(ApiError::validation(
                &format!("{field}[{i}]"),
                "invalid_string",
                format!("{a} is not a valid {chain} address"),
            ));
        }
    }
    Ok(Some(list))
}

/// Validates and resolves the constraints with every default applied (04-auth.md §4.2).
fn resolve(c: ConstraintInput, chain: Chain, app: &App) -> Result<SessionConstraints, ApiError> {
    let security = app.config().security.clone();
    range_check("expiresIn", c.expires_in, 300, 604_800)?;
    range_check("maxRenewals", c.max_renewals.map(u64::from), 0, 100)?;
    range_check("renewalRejectWindow", c.renewal_reject_window, 300, 86_400)?;
    if c.max_transactions == Some(0) {
        return Err(ApiError::validation("maxTransactions", "too_small", "maxTransactions must be at least 1"));
    }
    let allowed_operations = match c.allowed_operations {
        None => None,
        Some(ops) if ops.is_empty() => {
            return Err(ApiError::validation("allowedOperations", "too_small", "allowedOperations must not be empty"));
        }
        Some(ops) => {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for (i, o) in ops.iter().enumerate() {
                let up = o.to_uppercase();
                let op: AllowedOperation = serde_json::from_value(Value::String(up.clone())).map_err(|_| {
                    ApiError::validation(
                        &format!("allowedOperations[{i}]"),
                        "invalid_enum_value",
                        format!("unknown operation {o}"),
                    )
                })?;
                if !seen.insert(op) {
                    return Err(ApiError::validation(
                        &format!("allowedOperations[{i}]"),
                        "duplicate",
                        format!("{up} is listed twice"),
                    ));
                }
                out.push(op);
            }
            Some(out)
        }
    };
    Ok(SessionConstraints {
        max_amount_per_tx: amount("maxAmountPerTx", c.max_amount_per_tx)?,
        max_total_amount: amount("maxTotalAmount", c.max_total_amount)?,
        max_transactions: c.max_transactions,
        allowed_operations,
        allowed_destinations: addresses("allowedDestinations", chain, c.allowed_destinations)?,
        allowed_tokens: addresses("allowedTokens", chain, c.allowed_tokens)?,
        allowed_contracts: addresses("allowedContracts", chain, c.allowed_contracts)?,
        allowed_spenders: addresses("allowedSpenders", chain, c.allowed_spenders)?,
        expires_in: c.expires_in.unwrap_or(security.session_ttl),
        max_renewals: c.max_renewals.unwrap_or(security.default_max_renewals),
        renewal_reject_window: c.renewal_reject_window.unwrap_or(security.default_renewal_reject_window),
    })
}

fn agent_state(a: &AgentRecord) -> Result<(), ApiError> {
    match a.status {
        AgentStatus::Active => Ok(()),
        AgentStatus::Suspended => Err(ApiError::new(ErrorCode::AgentSuspended, format!("Agent {} is suspended", a.id))),
        AgentStatus::Terminated => {
            Err(ApiError::new(ErrorCode::AgentTerminated, format!("Agent {} is terminated", a.id)))
        }
    }
}

/// `POST /v1/sessions`.
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let mut b: CreateBody = req.body.json().await?;
    let input = b.merged();
    let agent = match (b.agent_id.take(), b.agent_name.take()) {
        (Some(id), None) => crate::agents::load(app, &id).await?,
        (None, Some(name)) => {
            let n = name.clone();
            app.db_api(move |s| s.find_agent_by_name(&n)).await?.ok_or_else(|| crate::agents::not_found(&name))?
        }
        _ => {
            return Err(ApiError::validation(
                "agentId",
                "invalid_union",
                "exactly one of agentId and agentName is required",
            ));
        }
    };
    agent_state(&agent)?;
    let constraints = resolve(input, agent.chain, app)?;
    let security = app.config().security.clone();
    let now = app.clock.now();
    let id = app.clock.new_id();
    let absolute = now + security.session_absolute_lifetime;
    let exp = (now + constraints.expires_in).min(absolute);
    let token = app.jwt.read().expect("jwt lock").issue(id, agent.id, now, exp);
    let rec = SessionRecord {
        id,
        agent_id: agent.id,
        token_hash: Hash32(jwt::token_hash(&token)),
        max_renewals: constraints.max_renewals,
        constraints,
        usage: UsageStats::default(),
        expires_at: exp,
        absolute_expires_at: absolute,
        renewal_count: 0,
        last_renewed_at: None,
        revoked_at: None,
        revoke_trigger: None,
        created_at: now,
    };
    let ctx = req.ctx(app);
    let max = security.max_sessions_per_agent;
    let r = rec.clone();
    app.db(move |s| s.create_session(&r, max, &ctx)).await.map_err(|e| match e {
        StoreError::Limit { limit, current, .. } => {
            ApiError::new(ErrorCode::SessionLimitExceeded, format!("The agent already has {current} live sessions"))
                .detail("code", "MAX_SESSIONS_PER_AGENT")
                .detail("limit", limit)
                .detail("current", current)
        }
        StoreError::Conflict { actual, .. } if actual == "SUSPENDED" => {
            ApiError::new(ErrorCode::AgentSuspended, format!("Agent {} is suspended", agent.id))
        }
        StoreError::Conflict { .. } => {
            ApiError::new(ErrorCode::AgentTerminated, format!("Agent {} is terminated", agent.id))
        }
        StoreError::NotFound { .. } => crate::agents::not_found(&agent.id.to_string()),
        other => {
            tracing::error!("create_session failed: {other}");
            ApiError::internal()
        }
    })?;
    Ok(Reply {
        status: 201,
        body: json!({
            "sessionId": id,
            "token": token,
            "agentId": agent.id,
            "agentName": agent.name,
            "expiresAt": iso(exp),
            "absoluteExpiresAt": iso(absolute),
            "maxRenewals": rec.max_renewals,
            "constraints": rec.constraints,
        }),
        headers: Vec::new(),
    })
}

fn session_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, format!("Session {id} not found"))
        .detail("resource", "session")
        .detail("id", id.to_string())
}

async fn names(app: &Arc<App>) -> Result<std::collections::HashMap<Uuid, String>, ApiError> {
    Ok(app.db_api(|s| s.list_agents()).await?.into_iter().map(|a| (a.id, a.name)).collect())
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
    let mut sessions = app.db_api(move |s| s.list_sessions(agent)).await?;
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
    let s = app.db_api(move |s| s.get_session(id)).await?.ok_or_else(|| session_not_found(&id.to_string()))?;
    if let Caller::Session(c) = &req.caller
        && c.agent.id != s.agent_id
    {
        return Err(session_not_found(&id.to_string()));
    }
    let names = names(app).await?;
    Ok(Reply::ok(views::session(&s, names.get(&s.agent_id).map(String::as_str).unwrap_or(""))))
}

fn refusal(r: RenewalRefusal) -> ApiError {
    match r {
        RenewalRefusal::LimitReached => {
            ApiError::new(ErrorCode::RenewalLimitReached, "The session has reached its renewal limit")
        }
        RenewalRefusal::AbsoluteLifetimeExceeded => ApiError::new(
            ErrorCode::SessionAbsoluteLifetimeExceeded,
            "Renewing would pass the session's absolute lifetime",
        ),
        RenewalRefusal::TooEarly { renewable_at } => {
            ApiError::new(ErrorCode::RenewalTooEarly, "Renew after half of the session lifetime")
                .detail("renewableAt", iso(renewable_at))
        }
    }
}

/// `PUT /v1/sessions/:id/renew` (session; no body).
pub(super) async fn renew(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = req.caller.session().ok_or_else(ApiError::internal)?.clone();
    let raw = req.matched.param("id").unwrap_or_default();
    // 1. Only the caller's own session.
    if raw != caller.session.id.to_string() {
        return Err(ApiError::new(ErrorCode::SessionRenewalMismatch, "A session can only renew itself"));
    }
    let id = caller.session.id;
    // 2–5. The current row and the guards (re-checked inside the write transaction).
    let s = app
        .db_api(move |s| s.get_session(id))
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or_else(|| session_not_found(raw))?;
    let now = app.clock.now();
    if let Some(r) = waiaas_storage::renewal_guard(&s, now) {
        return Err(with_retry(refusal(r), now));
    }
    // 6. A new token with the same sid/jti/aid and the original lifetime.
    let exp = now + s.constraints.expires_in;
    let token = app.jwt.read().expect("jwt lock").issue(id, s.agent_id, now, exp);
    let new_hash = jwt::token_hash(&token);
    // 7. Compare-and-swap on the presented token's hash.
    let ctx = req.ctx(app);
    let expected = caller.token_hash;
    let outcome =
        app.db(move |st| st.renew_session(id, &expected, new_hash, exp, &ctx)).await.map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::new(ErrorCode::RenewalConflict, "Another renewal of this session won")
            }
            StoreError::NotFound { .. } => session_not_found(&id.to_string()),
            other => {
                tracing::error!("renew_session failed: {other}");
                ApiError::internal()
            }
        })?;
    let s = match outcome {
        RenewOutcome::Renewed(s) => s,
        RenewOutcome::Refused(r) => return Err(with_retry(refusal(r), now)),
    };
    Ok(Reply::ok(json!({
        "sessionId": id,
        "token": token,
        "expiresAt": iso(s.expires_at),
        "renewalCount": s.renewal_count,
        "maxRenewals": s.max_renewals,
        "absoluteExpiresAt": iso(s.absolute_expires_at),
    })))
}

/// `RENEWAL_TOO_EARLY` carries `Retry-After` = seconds until renewable.
fn with_retry(e: ApiError, now: u64) -> ApiError {
    let at = e
        .details()
        .and_then(|d| d.get("renewableAt"))
        .and_then(Value::as_str)
        .and_then(crate::auth::siwe::parse_time)
        .map(|t| (t as u64).saturating_sub(now).max(1));
    match at {
        Some(secs) => e.retry_after(secs),
        None => e,
    }
}

/// `DELETE /v1/sessions/:id`.
pub(super) async fn revoke(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), session_not_found)?;
    let ctx = req.ctx(app);
    let s = app.db(move |s| s.revoke_session(id, None, &ctx)).await.map_err(|e| match e {
        StoreError::NotFound { .. } => session_not_found(&id.to_string()),
        StoreError::Conflict { .. } => {
            ApiError::new(ErrorCode::SessionAlreadyRevoked, format!("Session {id} is already revoked"))
        }
        other => {
            tracing::error!("revoke_session failed: {other}");
            ApiError::internal()
        }
    })?;
    Ok(Reply::ok(json!({
        "revoked": true,
        "sessionId": id,
        "revokedAt": s.revoked_at.map(iso),
        "trigger": s.revoke_trigger,
    })))
}
