//! The auth layer (01-daemon.md §8.1 layer 9): applies the route's auth kind from the route
//! table and returns the stage-2 rate-limit key for authenticated callers: the session id, the
//! literal `master`, or `owner:<address>`.

use std::sync::Arc;

use uuid::Uuid;
use waiaas_storage::{AgentStatus, AuditEvent, AuditSeverity};

use super::{Caller, Req, SessionCaller};
use crate::auth::jwt::{self, TokenError};
use crate::auth::master::MasterOutcome;
use crate::auth::owner::{self, OwnerAction, Target};
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::routes::AuthKind;

/// Authenticates `req` per its route; on success sets `req.caller` and returns the stage-2
/// rate-limit key (`None` for public routes).
pub(crate) async fn authenticate(app: &Arc<App>, req: &mut Req) -> Result<Option<String>, ApiError> {
    match req.matched.route.auth {
        AuthKind::None => Ok(None),
        AuthKind::Master | AuthKind::MasterPlusOwner(_) => {
            master(app, req).await?;
            req.caller = Caller::Master;
            Ok(Some("master".into()))
        }
        AuthKind::Session => session_caller(app, req).await,
        AuthKind::SessionOrMaster => {
            let has_token = req.header("authorization").is_some_and(|h| h.starts_with("Bearer wai_sess_"));
            if has_token {
                session_caller(app, req).await
            } else {
                master(app, req).await?;
                req.caller = Caller::Master;
                Ok(Some("master".into()))
            }
        }
        AuthKind::Owner(action) => {
            let raw = owner::bearer(req.header("authorization"))
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "Owner signature required"))?
                .to_string();
            let target = owner_target(app, req, action).await?;
            let o = owner::verify(app, &raw, &target, app.clock.now()).await?;
            let key = format!("owner:{}", o.address);
            req.caller = Caller::Owner(o);
            Ok(Some(key))
        }
    }
}

/// Step 1 of ownerAuth for owner-only routes: the agent the signature must come from.
async fn owner_target(app: &Arc<App>, req: &Req, action: OwnerAction) -> Result<Target, ApiError> {
    match action {
        OwnerAction::VerifyOwner => {
            let agent = agent_with_owner(app, req.matched.param("id").unwrap_or_default()).await?;
            Ok(Target { action, target: format!("agent:{}", agent.id), agent: Some(agent) })
        }
        OwnerAction::ApproveTx => {
            let raw = req.matched.param("txId").unwrap_or_default().to_string();
            let not_found = || {
                ApiError::new(ErrorCode::TxNotFound, format!("Transaction {raw} not found"))
                    .detail("resource", "transaction")
                    .detail("id", raw.clone())
            };
            let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
            let tx = app.db_api(move |s| s.get_transaction(id)).await?.ok_or_else(not_found)?;
            let agent = agent_with_owner(app, &tx.agent_id.to_string()).await?;
            Ok(Target { action, target: format!("tx:{id}"), agent: Some(agent) })
        }
        OwnerAction::ChangeOwner | OwnerAction::Recover => {
            Err(ApiError::internal().detail("reason", "handled by the route"))
        }
    }
}

/// The agent `raw` names, which must have an owner (404 `AGENT_NOT_FOUND` / `NO_OWNER`).
pub(crate) async fn agent_with_owner(app: &Arc<App>, raw: &str) -> Result<waiaas_storage::AgentRecord, ApiError> {
    let agent = crate::agents::load(app, raw).await?;
    if agent.owner_address.is_none() {
        return Err(ApiError::new(ErrorCode::NoOwner, format!("Agent {} has no owner", agent.id)));
    }
    Ok(agent)
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Missing => {
            ApiError::new(ErrorCode::AuthTokenMissing, "Authorization: Bearer wai_sess_… is required")
        }
        TokenError::Invalid => ApiError::new(ErrorCode::AuthTokenInvalid, "The session token is invalid"),
        TokenError::Expired => ApiError::new(ErrorCode::AuthTokenExpired, "The session token has expired"),
    }
}

async fn session_caller(app: &Arc<App>, req: &mut Req) -> Result<Option<String>, ApiError> {
    let s = session(app, req.header("authorization")).await?;
    let key = s.session.id.to_string();
    req.caller = Caller::Session(Box::new(s));
    Ok(Some(key))
}

/// sessionAuth (04-auth.md §3.2), checks in the spec's order.
pub(crate) async fn session(app: &Arc<App>, header: Option<&str>) -> Result<SessionCaller, ApiError> {
    // 1. Shape.
    let token = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    if !jwt::looks_like_token(token) {
        return Err(token_error(TokenError::Missing));
    }
    // 2. The JWT alone.
    let now = app.clock.now();
    let claims = app.jwt.read().expect("jwt lock").verify(token, now).map_err(token_error)?;
    // 3–4. The database.
    let hash = jwt::token_hash(token);
    let (session, agent) = app
        .db_api(move |s| {
            let Some(session) = s.session_by_token_hash(&hash)? else { return Ok(None) };
            let agent = s.get_agent(session.agent_id)?;
            Ok(Some((session, agent)))
        })
        .await?
        .ok_or_else(|| token_error(TokenError::Invalid))?;
    if session.revoked_at.is_some() {
        return Err(ApiError::new(ErrorCode::SessionRevoked, "The session has been revoked"));
    }
    if session.expires_at <= now {
        return Err(token_error(TokenError::Expired));
    }
    if session.id.to_string() != claims.sid || session.agent_id.to_string() != claims.aid {
        return Err(token_error(TokenError::Invalid));
    }
    let agent = agent.ok_or_else(|| token_error(TokenError::Invalid))?;
    match agent.status {
        AgentStatus::Suspended => {
            return Err(ApiError::new(ErrorCode::AgentSuspended, format!("Agent {} is suspended", agent.id)));
        }
        AgentStatus::Terminated => {
            return Err(ApiError::new(ErrorCode::AgentTerminated, format!("Agent {} is terminated", agent.id)));
        }
        AgentStatus::Active => {}
    }
    Ok(SessionCaller { session, agent, token_hash: hash })
}

/// masterAuth with its audit rows (04-auth.md §2).
pub(crate) async fn master(app: &Arc<App>, req: &Req) -> Result<(), ApiError> {
    let now = app.clock.now();
    match app.master.verify(req.header("x-master-password"), now).await {
        MasterOutcome::Ok => Ok(()),
        MasterOutcome::Required => {
            Err(ApiError::new(ErrorCode::MasterPasswordRequired, "X-Master-Password header is required"))
        }
        MasterOutcome::Locked { retry_after } => {
            Err(ApiError::new(ErrorCode::MasterPasswordLocked, "Too many wrong master passwords; masterAuth is locked")
                .retry_after(retry_after))
        }
        MasterOutcome::Invalid { locked_now } => {
            let ip = req.ip.clone();
            let ctx = waiaas_storage::OpCtx { actor: "system".into(), ip: Some(ip.clone()), now };
            let failed = AuditEvent::new("AUTH_FAILED", "system")
                .severity(AuditSeverity::Warning)
                .detail("method", "master")
                .detail("ip", ip);
            let locked = locked_now.then(|| {
                AuditEvent::new("MASTER_AUTH_LOCKED", "system")
                    .severity(AuditSeverity::Critical)
                    .detail("lockoutSeconds", crate::auth::master::LOCKOUT_SECS)
            });
            app.db(move |s| {
                s.append_audit(failed, &ctx)?;
                if let Some(ev) = locked {
                    s.append_audit(ev, &ctx)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| {
                tracing::error!("cannot audit a failed master login: {e}");
                ApiError::internal()
            })?;
            Err(ApiError::new(ErrorCode::InvalidMasterPassword, "Invalid master password"))
        }
    }
}
