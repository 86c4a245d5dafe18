//! The auth layer (01-daemon.md §8.1 layer 9): applies the route's auth kind from the route
//! table and returns the stage-2 rate-limit key for authenticated callers.

use std::sync::Arc;

use waiaas_storage::{AuditEvent, AuditSeverity};

use super::{Caller, Req};
use crate::auth::master::MasterOutcome;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::routes::AuthKind;

/// Authenticates `req` per its route; on success sets `req.caller` and returns the stage-2
/// rate-limit key (`None` for public routes).
pub(crate) async fn authenticate(app: &Arc<App>, req: &mut Req) -> Result<Option<String>, ApiError> {
    match req.matched.route.auth {
        AuthKind::None => Ok(None),
        AuthKind::Master => {
            master(app, req).await?;
            req.caller = Caller::Master;
            Ok(Some("master".into()))
        }
    }
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
