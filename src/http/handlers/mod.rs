//! Route handlers, dispatched by [`Op`](super::routes::Op).

mod admin;
mod agents;
mod console;
mod killswitch;
mod notify;
mod overview;
mod owner;
mod policies;
mod sessions;
pub(crate) mod system;
mod transactions;
mod wallet;

use std::sync::Arc;

use super::routes::Op;
use super::{ApiError, Reply, Req};
use crate::app::App;

pub(crate) async fn dispatch(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    match req.matched.route.op {
        Op::Health => system::health(app).await,
        Op::Ready => system::ready(app).await,
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
        Op::OwnerApprove => owner::approve(app, req).await,
        Op::OwnerReject => owner::reject(app, req).await,
        Op::PendingApprovals => owner::pending(app, req).await,
        Op::OwnerConnect => owner::connect(app, req).await,
        Op::OwnerDisconnect => owner::disconnect(app, req).await,
        Op::WalletBalance => wallet::balance(app, req).await,
        Op::WalletAssets => wallet::assets(app, req).await,
        Op::TxSend => transactions::send(app, req).await,
        Op::TxDryRun => transactions::dry_run(app, req).await,
        Op::TxList => transactions::list(app, req).await,
        Op::TxPending => transactions::pending(app, req).await,
        Op::TxGet => transactions::get(app, req).await,
        Op::ChannelList => notify::list(app).await,
        Op::ChannelCreate => notify::create(app, req).await,
        Op::ChannelUpdate => notify::update(app, req).await,
        Op::ChannelDisable => notify::disable(app, req).await,
        Op::ChannelTest => notify::test(app, req).await,
        Op::NotificationLog => notify::log(app, req).await,
        Op::PolicyList => policies::list(app, req).await,
        Op::PolicyCreate => policies::create(app, req).await,
        Op::PolicyGet => policies::get(app, req).await,
        Op::PolicyUpdate => policies::update(app, req).await,
        Op::PolicyDelete => policies::delete(app, req).await,
        Op::PolicyDryRun => policies::dry_run(app, req).await,
        Op::KillSwitchActivate => killswitch::activate(app, req, waiaas_storage::KillSwitchActor::Admin).await,
        Op::OwnerKillSwitch => killswitch::activate(app, req, waiaas_storage::KillSwitchActor::Owner).await,
        Op::KillSwitchStatus => killswitch::status(app).await,
        Op::Recover => killswitch::recover(app, req).await,
        Op::Withdraw => killswitch::withdraw(app, req).await,
        Op::RuleList => killswitch::rules(app).await,
        Op::RuleCreate => killswitch::create_rule(app, req).await,
        Op::RuleUpdate => killswitch::update_rule(app, req).await,
        Op::RuleDelete => killswitch::delete_rule(app, req).await,
        Op::OwnerStatus => overview::status(app).await,
        Op::OwnerDashboard => overview::dashboard(app).await,
        Op::OwnerSettings => overview::settings(app).await,
        Op::OwnerMessage => console::message(app, req).await,
        Op::ConsoleLogin => console::login(app, req).await,
        Op::MePending => console::pending(app, req).await,
        Op::MeTransactions => console::transactions(app, req).await,
        Op::MeTransaction => console::transaction(app, req).await,
        Op::MeAgents => console::agents(app, req).await,
        Op::MePolicies => console::policies(app, req).await,
        Op::MeChannels => console::channels(app, req).await,
        // Files, not JSON: `http::console::serve` answers them before dispatch.
        Op::ConsoleRedirect | Op::ConsoleIndex | Op::ConsoleAsset => Err(ApiError::internal()),
    }
}
