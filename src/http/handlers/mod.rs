//! Route handlers, dispatched by [`Op`](super::routes::Op).

mod admin;
pub(crate) mod system;

use std::sync::Arc;

use super::routes::Op;
use super::{Reply, Req};
use crate::daemon::App;
use crate::error::ApiError;

pub(crate) async fn dispatch(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    match req.matched.route.op {
        Op::Health => system::health(app).await,
        Op::Doc => system::doc(app),
        Op::Nonce => system::nonce(app).await,
        Op::AdminStatus => admin::status(app).await,
        Op::AdminShutdown => admin::shutdown(app, req).await,
        Op::AuditLog => admin::audit_log(app, req).await,
        Op::AuditVerify => admin::audit_verify(app).await,
        Op::DevClock => admin::dev_clock(app, req).await,
        Op::AdminBackup => admin::backup(app, req).await,
    }
}

/// Creates a backup archive of the running daemon and audits `BACKUP_CREATED`.
pub(crate) async fn create_backup(
    app: &Arc<App>,
    automatic: bool,
    actor: &str,
) -> Result<crate::backup::Created, ApiError> {
    let (store, layout, now) = (app.store.clone(), app.layout.clone(), app.clock.now());
    let created =
        tokio::task::spawn_blocking(move || crate::backup::create(&layout, now, automatic, |p| store.snapshot_to(p)))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| {
                tracing::error!("backup failed: {e}");
                ApiError::internal()
            })?;
    let ev = waiaas_storage::AuditEvent::new("BACKUP_CREATED", actor)
        .detail("path", created.path.display().to_string())
        .detail("agentCount", created.agent_count)
        .detail("automatic", automatic);
    let ctx = waiaas_storage::OpCtx::new(actor, now);
    app.db_api(move |s| s.append_audit(ev, &ctx)).await?;
    Ok(created)
}
