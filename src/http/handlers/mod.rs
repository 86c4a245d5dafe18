//! Route handlers, dispatched by [`Op`](super::routes::Op).

mod admin;
mod system;

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
    }
}
