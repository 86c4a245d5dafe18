//! The auth layer (01-daemon.md §8.1 layer 9): applies the route's auth kind from the route
//! table and returns the stage-2 rate-limit key for authenticated callers: the session id, the
//! literal `master`, or `owner:<address>`.

use std::sync::Arc;

use waiaas_storage::{AgentStatus, AuditEvent, AuditEventType, AuditSeverity};

use super::{ApiError, Caller, Req};
use crate::app::App;
use crate::base::error::ErrorCode;
use crate::domain::auth::SessionContext;
use crate::domain::auth::jwt::{self, TokenError};
use crate::domain::auth::master::MasterOutcome;
use crate::domain::auth::owner::{self, OwnerAction, OwnerAuthError};
use crate::http::routes::AuthKind;

/// Authenticates `req` per its route; on success sets `req.caller` and returns the stage-2
/// rate-limit key (`None` for public routes).
pub(crate) async fn authenticate(app: &Arc<App>, req: &mut Req) -> Result<Option<String>, ApiError> {
    match req.matched.route.auth {
        AuthKind::None => Ok(None),
        // Recovery checks the password itself, from the header or the body, with its own
        // persistent counter, after checking the state (08-killswitch-autostop.md §4).
        AuthKind::MasterPlusOwner(OwnerAction::Recover) => {
            req.caller = Caller::Master;
            Ok(Some("recover".into()))
        }
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
        AuthKind::Owner(action) => owner_caller(app, req, action).await,
        AuthKind::MasterOrOwner(action) => {
            if req.header("authorization").is_some() {
                owner_caller(app, req, action).await
            } else {
                master(app, req).await?;
                req.caller = Caller::Master;
                Ok(Some("master".into()))
            }
        }
        AuthKind::OwnerToken => {
            let token = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
            if token.starts_with(jwt::PREFIX) {
                // A session token is a credential, just not this one.
                return Err(ApiError::new(ErrorCode::AuthTokenInvalid, "A session token is not an owner token"));
            }
            let claims = app.tokens.verify_owner(token, app.clock.now()).map_err(|e| match e {
                TokenError::Missing => {
                    ApiError::new(ErrorCode::AuthTokenMissing, "Authorization: Bearer wai_own_… is required")
                }
                TokenError::Invalid => ApiError::new(ErrorCode::AuthTokenInvalid, "The owner token is invalid"),
                TokenError::Expired => ApiError::new(ErrorCode::AuthTokenExpired, "The owner token has expired"),
            })?;
            let chain = claims.chn.parse().map_err(|_| ApiError::internal())?;
            let key = format!("owner:{}", claims.sub);
            req.caller = Caller::OwnerToken(owner::Owner { chain, address: claims.sub });
            Ok(Some(key))
        }
    }
}

/// ownerAuth for `action` on this route (04-auth.md §7.3): step 0 (a bearer that is a session
/// or owner-console token is no owner payload), step 1 (the route's target), steps 2–8.
async fn owner_caller(app: &Arc<App>, req: &mut Req, action: OwnerAction) -> Result<Option<String>, ApiError> {
    let raw = owner::bearer(req.header("authorization")).ok_or(OwnerAuthError::Missing)?.to_string();
    let target = match action {
        OwnerAction::VerifyOwner => app.owner_auth.verify_owner_target(req.param("id")).await?,
        OwnerAction::ApproveTx => app.owner_auth.approve_target(req.param("txId")).await?,
        OwnerAction::RejectTx => app.owner_auth.reject_target(req.param("txId")).await?,
        OwnerAction::KillSwitch => owner::OwnerAuth::kill_switch_target(),
        OwnerAction::ConsoleLogin => {
            let p = owner::decode(&raw)?;
            let chain = p.chain.parse().map_err(|_| OwnerAuthError::InvalidSignature("chain".into()))?;
            owner::OwnerAuth::console_login_target(chain, &p.address)?
        }
        OwnerAction::ChangeOwner | OwnerAction::Recover => {
            // These routes are master+owner: their handlers verify the signature.
            return Err(ApiError::internal());
        }
    };
    let o = app.owner_auth.verify(&raw, &target).await?;
    let key = format!("owner:{}", o.address);
    req.caller = Caller::Owner(o);
    Ok(Some(key))
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
pub(crate) async fn session(app: &Arc<App>, header: Option<&str>) -> Result<SessionContext, ApiError> {
    // 1. Shape.
    let token = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    if !jwt::looks_like_token(token) {
        return Err(token_error(TokenError::Missing));
    }
    // 2. The JWT alone.
    let now = app.clock.now();
    let claims = app.tokens.verify(token, now).map_err(token_error)?;
    // 3–4. The database.
    let hash = jwt::token_hash(token);
    let (session, agent) = app
        .db
        .read(|s| {
            let Some(session) = s.session_by_token_hash(&hash)? else { return Ok(None) };
            let agent = s.get_agent(session.agent_id)?;
            Ok(Some((session, agent)))
        })?
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
    Ok(SessionContext { session, agent, token_hash: hash })
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
            let failed = AuditEvent::new(AuditEventType::AuthFailed, "system")
                .severity(AuditSeverity::Warning)
                .detail("method", "master")
                .detail("ip", ip);
            let locked = locked_now.then(|| {
                AuditEvent::new(AuditEventType::MasterAuthLocked, "system")
                    .severity(AuditSeverity::Critical)
                    .detail("lockoutSeconds", crate::domain::auth::master::LOCKOUT_SECS)
            });
            app.db
                .call(move |s| {
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
