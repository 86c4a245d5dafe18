//! Route handlers, dispatched by [`Op`](super::routes::Op).

mod admin;
mod agents;
mod owner;
mod sessions;
pub(crate) mod system;
mod transactions;
mod wallet;

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
        Op::RotateSecret => admin::rotate_secret(app, req).await,
        Op::WalletAddress => wallet::address(&req),
        Op::SessionCreate => sessions::create(app, req).await,
        Op::SessionList => sessions::list(app, req).await,
        Op::SessionGet => sessions::get(app, req).await,
        Op::SessionRenew => sessions::renew(app, req).await,
        Op::SessionRevoke => sessions::revoke(app, req).await,
        Op::AgentCreate => agents::create(app, req).await,
        Op::AgentList => agents::list(app).await,
        Op::AgentGet => agents::get(app, req).await,
        Op::AgentUpdate => agents::update(app, req).await,
        Op::AgentSuspend => agents::suspend(app, req).await,
        Op::AgentResume => agents::resume(app, req).await,
        Op::AgentTerminate => agents::terminate(app, req).await,
        Op::AgentExport => agents::export(app, req).await,
        Op::AgentImport => agents::import(app, req).await,
        Op::OwnerVerify => owner::verify(app, req).await,
        Op::OwnerConnect => owner::connect(app, req).await,
        Op::OwnerDisconnect => owner::disconnect(app, req).await,
        Op::WalletBalance => wallet::balance(app, req).await,
        Op::WalletAssets => wallet::assets(app, req).await,
        Op::TxSend => transactions::send(app, req).await,
        Op::TxDryRun => transactions::dry_run(app, req).await,
        Op::TxList => transactions::list(app, req).await,
        Op::TxPending => transactions::pending(app, req).await,
        Op::TxGet => transactions::get(app, req).await,
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
