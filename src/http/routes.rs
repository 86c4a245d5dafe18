//! The route table (04-auth.md §1): every route declared once with its auth kind, kill-switch
//! allowance, rate-limit bucket and OpenAPI metadata. The router, the auth layer, the kill-switch
//! guard and the OpenAPI document all read this table, and a test asserts they agree. A path
//! not in the table is 404; there is no default auth.

use crate::domain::auth::owner::OwnerAction;

/// Who may call a route (04-auth.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    /// Public.
    None,
    /// `Authorization: Bearer wai_sess_…`.
    Session,
    /// `X-Master-Password`.
    Master,
    /// A session when the `Authorization` header carries a `wai_sess_` token, else master.
    SessionOrMaster,
    /// An owner signature for this action, bound to the route's target.
    Owner(OwnerAction),
    /// Master always; the handler also demands the owner's signature for this action when the
    /// route's condition holds (e.g. changing a LOCKED agent's owner).
    MasterPlusOwner(OwnerAction),
    /// The owner's signature for this action when the request carries `Authorization`, else
    /// the master password (11-owner-console.md §3.2).
    MasterOrOwner(OwnerAction),
    /// A read-only owner-console token, `Bearer wai_own_…`.
    OwnerToken,
}

impl AuthKind {
    /// The spelling used in the OpenAPI document (`x-waiaas-auth`) and the spec's table.
    pub(crate) fn label(self) -> String {
        match self {
            AuthKind::None => "none".into(),
            AuthKind::Session => "session".into(),
            AuthKind::Master => "master".into(),
            AuthKind::SessionOrMaster => "session|master".into(),
            AuthKind::Owner(a) => format!("owner:{}", a.as_str()),
            AuthKind::MasterPlusOwner(a) => format!("master+owner?:{}", a.as_str()),
            AuthKind::MasterOrOwner(a) => format!("master|owner:{}", a.as_str()),
            AuthKind::OwnerToken => "owner_token".into(),
        }
    }
}

/// The stage-2 rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// `rate_limit_session_rpm` under the caller's key.
    Default,
    /// `rate_limit_tx_rpm` under `<sid>:tx` (transaction sends).
    Tx,
    /// An unauthenticated route with its own per-IP bucket: `owner-message:<ip>`, 30 per 60 s
    /// (11-owner-console.md §4).
    OwnerMessage,
}

/// Handler identity; `http::dispatch` matches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Health,
    Ready,
    Doc,
    Nonce,
    AdminStatus,
    AdminShutdown,
    AuditLog,
    AuditVerify,
    DevClock,
    AdminBackup,
    RotateSecret,
    WalletAddress,
    SessionCreate,
    SessionList,
    SessionGet,
    SessionRenew,
    SessionRevoke,
    AgentCreate,
    AgentList,
    AgentGet,
    AgentUpdate,
    AgentSuspend,
    AgentResume,
    AgentTerminate,
    AgentExport,
    AgentImport,
    OwnerVerify,
    OwnerApprove,
    OwnerReject,
    PendingApprovals,
    OwnerConnect,
    OwnerDisconnect,
    WalletBalance,
    WalletAssets,
    TxSend,
    TxDryRun,
    TxList,
    TxPending,
    TxGet,
    ChannelList,
    ChannelCreate,
    ChannelUpdate,
    ChannelDisable,
    ChannelTest,
    NotificationLog,
    PolicyList,
    PolicyCreate,
    PolicyGet,
    PolicyUpdate,
    PolicyDelete,
    PolicyDryRun,
    KillSwitchActivate,
    OwnerKillSwitch,
    KillSwitchStatus,
    Recover,
    Withdraw,
    RuleList,
    RuleCreate,
    RuleUpdate,
    RuleDelete,
    OwnerStatus,
    OwnerDashboard,
    OwnerSettings,
    // The owner console (11-owner-console.md).
    ConsoleRedirect,
    ConsoleIndex,
    ConsoleAsset,
    OwnerMessage,
    ConsoleLogin,
    MePending,
    MeTransactions,
    MeTransaction,
    MeAgents,
    MePolicies,
    MeChannels,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub(crate) method: &'static str,
    /// Segments starting with `:` are parameters.
    pub(crate) path: &'static str,
    pub(crate) auth: AuthKind,
    /// Passes the kill-switch guard (08-killswitch-autostop.md §3).
    pub(crate) kill_switch_allowed: bool,
    pub(crate) bucket: Bucket,
    pub(crate) op: Op,
    pub(crate) operation_id: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) summary: &'static str,
    /// Exists only in dev mode and is absent from the OpenAPI document.
    pub(crate) dev_only: bool,
    /// Exists only while `[owner_console] enabled` (11-owner-console.md §4).
    pub(crate) console: bool,
    /// Serves the console's page or assets: in the table, never in the OpenAPI document.
    pub(crate) page: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    auth: AuthKind,
    op: Op,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        auth,
        kill_switch_allowed: false,
        bucket: Bucket::Default,
        op,
        operation_id,
        tag,
        summary,
        dev_only: false,
        console: false,
        page: false,
    }
}

const fn console(mut r: Route) -> Route {
    r.console = true;
    r
}

const fn page(mut r: Route) -> Route {
    r.console = true;
    r.page = true;
    r
}

const fn ks(mut r: Route) -> Route {
    r.kill_switch_allowed = true;
    r
}

const fn owner_message_bucket(mut r: Route) -> Route {
    r.bucket = Bucket::OwnerMessage;
    r
}

const fn tx_bucket(mut r: Route) -> Route {
    r.bucket = Bucket::Tx;
    r
}

const fn dev(mut r: Route) -> Route {
    r.dev_only = true;
    r
}

pub(crate) const ROUTES: &[Route] = &[
    ks(route("GET", "/health", AuthKind::None, Op::Health, "get_health", "system", "Daemon health")),
    ks(route("GET", "/v1/health", AuthKind::None, Op::Health, "get_health_v1", "system", "Daemon health")),
    // Answered ahead of the shutdown guard and the rate limits (`http::pipeline`): a probe must
    // see "shutting down", and an orchestrator probes often from one address.
    ks(route("GET", "/ready", AuthKind::None, Op::Ready, "get_ready", "system", "Whether the daemon takes traffic")),
    route("GET", "/doc", AuthKind::None, Op::Doc, "get_openapi_document", "system", "This OpenAPI document"),
    route(
        "GET",
        "/v1/nonce",
        AuthKind::None,
        Op::Nonce,
        "get_nonce",
        "system",
        "Issue a single-use nonce for an owner signature",
    ),
    route(
        "GET",
        "/v1/auth/nonce",
        AuthKind::None,
        Op::Nonce,
        "get_auth_nonce",
        "system",
        "Issue a single-use nonce (alias)",
    ),
    ks(route(
        "GET",
        "/v1/admin/status",
        AuthKind::Master,
        Op::AdminStatus,
        "get_admin_status",
        "admin",
        "Operator status with counts",
    )),
    route(
        "POST",
        "/v1/admin/shutdown",
        AuthKind::Master,
        Op::AdminShutdown,
        "shutdown_daemon",
        "admin",
        "Shut the daemon down gracefully",
    ),
    route(
        "POST",
        "/v1/admin/backup",
        AuthKind::Master,
        Op::AdminBackup,
        "create_backup",
        "admin",
        "Create a backup archive",
    ),
    route(
        "GET",
        "/v1/admin/audit-log",
        AuthKind::Master,
        Op::AuditLog,
        "list_audit_log",
        "admin",
        "Page through the audit log",
    ),
    route(
        "GET",
        "/v1/admin/audit-log/verify",
        AuthKind::Master,
        Op::AuditVerify,
        "verify_audit_log",
        "admin",
        "Verify the audit hash chain",
    ),
    route(
        "POST",
        "/v1/admin/rotate-secret",
        AuthKind::Master,
        Op::RotateSecret,
        "rotate_jwt_secret",
        "admin",
        "Rotate the session-token secret (5-minute overlap)",
    ),
    route(
        "GET",
        "/v1/wallet/address",
        AuthKind::Session,
        Op::WalletAddress,
        "get_wallet_address",
        "wallet",
        "The agent's address",
    ),
    route(
        "GET",
        "/v1/wallet/balance",
        AuthKind::Session,
        Op::WalletBalance,
        "get_wallet_balance",
        "wallet",
        "The agent's native balance",
    ),
    route(
        "GET",
        "/v1/wallet/assets",
        AuthKind::Session,
        Op::WalletAssets,
        "get_wallet_assets",
        "wallet",
        "The agent's native and token balances",
    ),
    tx_bucket(route(
        "POST",
        "/v1/transactions/send",
        AuthKind::Session,
        Op::TxSend,
        "send_transaction",
        "transactions",
        "Send a transaction through the pipeline",
    )),
    route(
        "POST",
        "/v1/transactions/dry-run",
        AuthKind::Session,
        Op::TxDryRun,
        "dry_run_transaction",
        "transactions",
        "What a send would be decided now, without writing anything",
    ),
    route(
        "GET",
        "/v1/transactions",
        AuthKind::Session,
        Op::TxList,
        "list_transactions",
        "transactions",
        "The agent's transactions",
    ),
    route(
        "GET",
        "/v1/transactions/pending",
        AuthKind::Session,
        Op::TxPending,
        "list_pending_transactions",
        "transactions",
        "The agent's queued DELAY and APPROVAL transactions",
    ),
    route(
        "GET",
        "/v1/transactions/:id",
        AuthKind::Session,
        Op::TxGet,
        "get_transaction",
        "transactions",
        "One of the agent's transactions",
    ),
    route(
        "POST",
        "/v1/sessions",
        AuthKind::Master,
        Op::SessionCreate,
        "create_session",
        "sessions",
        "Create a session",
    ),
    route(
        "GET",
        "/v1/sessions",
        AuthKind::SessionOrMaster,
        Op::SessionList,
        "list_sessions",
        "sessions",
        "List sessions",
    ),
    route(
        "GET",
        "/v1/sessions/:id",
        AuthKind::SessionOrMaster,
        Op::SessionGet,
        "get_session",
        "sessions",
        "Get a session",
    ),
    route(
        "PUT",
        "/v1/sessions/:id/renew",
        AuthKind::Session,
        Op::SessionRenew,
        "renew_session",
        "sessions",
        "Renew the caller's session",
    ),
    route(
        "DELETE",
        "/v1/sessions/:id",
        AuthKind::Master,
        Op::SessionRevoke,
        "revoke_session",
        "sessions",
        "Revoke a session",
    ),
    route("POST", "/v1/agents", AuthKind::Master, Op::AgentCreate, "create_agent", "agents", "Create an agent"),
    route("GET", "/v1/agents", AuthKind::Master, Op::AgentList, "list_agents", "agents", "List agents"),
    route(
        "POST",
        "/v1/agents/import",
        AuthKind::Master,
        Op::AgentImport,
        "import_agent",
        "agents",
        "Import a key as a new agent",
    ),
    route("GET", "/v1/agents/:id", AuthKind::Master, Op::AgentGet, "get_agent", "agents", "Get an agent"),
    route(
        "PATCH",
        "/v1/agents/:id",
        AuthKind::MasterPlusOwner(OwnerAction::ChangeOwner),
        Op::AgentUpdate,
        "update_agent",
        "agents",
        "Rename an agent or change its owner",
    ),
    route(
        "POST",
        "/v1/agents/:id/suspend",
        AuthKind::Master,
        Op::AgentSuspend,
        "suspend_agent",
        "agents",
        "Suspend an agent",
    ),
    route(
        "POST",
        "/v1/agents/:id/resume",
        AuthKind::Master,
        Op::AgentResume,
        "resume_agent",
        "agents",
        "Resume a suspended agent",
    ),
    route(
        "DELETE",
        "/v1/agents/:id",
        AuthKind::Master,
        Op::AgentTerminate,
        "terminate_agent",
        "agents",
        "Terminate an agent",
    ),
    route(
        "POST",
        "/v1/agents/:id/export",
        AuthKind::Master,
        Op::AgentExport,
        "export_agent",
        "agents",
        "Export an agent's key file",
    ),
    route(
        "POST",
        "/v1/owner/agents/:id/verify",
        AuthKind::Owner(OwnerAction::VerifyOwner),
        Op::OwnerVerify,
        "verify_owner",
        "owner",
        "Prove control of the owner address (GRACE to LOCKED)",
    ),
    route(
        "POST",
        "/v1/owner/approve/:txId",
        AuthKind::Owner(OwnerAction::ApproveTx),
        Op::OwnerApprove,
        "approve_transaction",
        "owner",
        "Approve an APPROVAL-tier transaction with the owner's signature",
    ),
    route(
        "POST",
        "/v1/owner/reject/:txId",
        AuthKind::MasterOrOwner(OwnerAction::RejectTx),
        Op::OwnerReject,
        "reject_transaction",
        "owner",
        "Reject a queued DELAY or APPROVAL transaction",
    ),
    route(
        "GET",
        "/v1/owner/pending-approvals",
        AuthKind::Master,
        Op::PendingApprovals,
        "list_pending_approvals",
        "owner",
        "Queued DELAY and APPROVAL transactions of every agent",
    ),
    route(
        "POST",
        "/v1/owner/connect",
        AuthKind::Master,
        Op::OwnerConnect,
        "connect_owner_wallet",
        "owner",
        "Remember an owner wallet pairing",
    ),
    route(
        "DELETE",
        "/v1/owner/disconnect",
        AuthKind::Master,
        Op::OwnerDisconnect,
        "disconnect_owner_wallet",
        "owner",
        "Forget an owner wallet and expire its pending approvals",
    ),
    route(
        "GET",
        "/v1/owner/notification-channels",
        AuthKind::Master,
        Op::ChannelList,
        "list_notification_channels",
        "notifications",
        "List notification channels (secrets masked)",
    ),
    route(
        "POST",
        "/v1/owner/notification-channels",
        AuthKind::Master,
        Op::ChannelCreate,
        "create_notification_channel",
        "notifications",
        "Add a notification channel (health-checked first)",
    ),
    route(
        "PUT",
        "/v1/owner/notification-channels/:id",
        AuthKind::Master,
        Op::ChannelUpdate,
        "update_notification_channel",
        "notifications",
        "Change a notification channel",
    ),
    route(
        "DELETE",
        "/v1/owner/notification-channels/:id",
        AuthKind::Master,
        Op::ChannelDisable,
        "disable_notification_channel",
        "notifications",
        "Disable a notification channel (channels are never deleted)",
    ),
    route(
        "POST",
        "/v1/owner/notification-channels/:id/test",
        AuthKind::Master,
        Op::ChannelTest,
        "test_notification_channel",
        "notifications",
        "Send a TEST message through one channel",
    ),
    route(
        "GET",
        "/v1/owner/notification-log",
        AuthKind::Master,
        Op::NotificationLog,
        "list_notification_log",
        "notifications",
        "Page through the notification log",
    ),
    route(
        "GET",
        "/v1/owner/policies",
        AuthKind::Master,
        Op::PolicyList,
        "list_policies",
        "policies",
        "List policies (by agent, type, with or without the global ones)",
    ),
    route(
        "POST",
        "/v1/owner/policies",
        AuthKind::Master,
        Op::PolicyCreate,
        "create_policy",
        "policies",
        "Create a policy (rules validated per type)",
    ),
    route(
        "POST",
        "/v1/owner/policies/dry-run",
        AuthKind::Master,
        Op::PolicyDryRun,
        "dry_run_policies",
        "policies",
        "Evaluate a request for an agent against its policies or a candidate set, storing nothing",
    ),
    route("GET", "/v1/owner/policies/:id", AuthKind::Master, Op::PolicyGet, "get_policy", "policies", "One policy"),
    route(
        "PUT",
        "/v1/owner/policies/:id",
        AuthKind::Master,
        Op::PolicyUpdate,
        "update_policy",
        "policies",
        "Change a policy's rules, priority or enabled flag",
    ),
    route(
        "DELETE",
        "/v1/owner/policies/:id",
        AuthKind::Master,
        Op::PolicyDelete,
        "delete_policy",
        "policies",
        "Delete a policy",
    ),
    route(
        "POST",
        "/v1/admin/kill-switch",
        AuthKind::Master,
        Op::KillSwitchActivate,
        "activate_kill_switch",
        "kill-switch",
        "Activate the kill switch: revoke sessions, cancel queued work, suspend agents, lock keys",
    ),
    route(
        "POST",
        "/v1/owner/kill-switch",
        AuthKind::MasterOrOwner(OwnerAction::KillSwitch),
        Op::OwnerKillSwitch,
        "owner_kill_switch",
        "kill-switch",
        "Activate the kill switch (owner-facing)",
    ),
    ks(route(
        "GET",
        "/v1/admin/kill-switch",
        AuthKind::Master,
        Op::KillSwitchStatus,
        "kill_switch_status",
        "kill-switch",
        "Kill-switch state, recovery progress and a recovery nonce",
    )),
    ks(route(
        "POST",
        "/v1/admin/recover",
        AuthKind::MasterPlusOwner(OwnerAction::Recover),
        Op::Recover,
        "recover",
        "kill-switch",
        "Recover from the kill switch (two steps; the owner signs step 1 when one exists)",
    )),
    ks(route(
        "POST",
        "/v1/owner/agents/:id/withdraw",
        AuthKind::Master,
        Op::Withdraw,
        "withdraw",
        "owner",
        "Move an agent's funds to its owner (allowed during the kill switch)",
    )),
    route(
        "GET",
        "/v1/owner/status",
        AuthKind::Master,
        Op::OwnerStatus,
        "owner_status",
        "owner",
        "Owner connections, system state and counts",
    ),
    route(
        "GET",
        "/v1/owner/dashboard",
        AuthKind::Master,
        Op::OwnerDashboard,
        "owner_dashboard",
        "owner",
        "Every agent with its balance, today's transactions and volume",
    ),
    route(
        "GET",
        "/v1/owner/settings",
        AuthKind::Master,
        Op::OwnerSettings,
        "owner_settings",
        "owner",
        "The effective settings, secrets redacted",
    ),
    route(
        "GET",
        "/v1/admin/auto-stop/rules",
        AuthKind::Master,
        Op::RuleList,
        "list_auto_stop_rules",
        "auto-stop",
        "List AutoStop rules",
    ),
    route(
        "POST",
        "/v1/admin/auto-stop/rules",
        AuthKind::Master,
        Op::RuleCreate,
        "create_auto_stop_rule",
        "auto-stop",
        "Create an AutoStop rule",
    ),
    route(
        "PUT",
        "/v1/admin/auto-stop/rules/:id",
        AuthKind::Master,
        Op::RuleUpdate,
        "update_auto_stop_rule",
        "auto-stop",
        "Change an AutoStop rule",
    ),
    route(
        "DELETE",
        "/v1/admin/auto-stop/rules/:id",
        AuthKind::Master,
        Op::RuleDelete,
        "delete_auto_stop_rule",
        "auto-stop",
        "Delete an AutoStop rule",
    ),
    // The owner console (11-owner-console.md §4): the page and its assets pass the kill-switch
    // guard (the locked state is shown by the page itself).
    ks(page(route("GET", "/owner", AuthKind::None, Op::ConsoleRedirect, "console_redirect", "console", "The console"))),
    ks(page(route("GET", "/owner/", AuthKind::None, Op::ConsoleIndex, "console_index", "console", "The console page"))),
    ks(page(route(
        "GET",
        "/owner/assets/:file",
        AuthKind::None,
        Op::ConsoleAsset,
        "console_asset",
        "console",
        "A console asset",
    ))),
    owner_message_bucket(route(
        "POST",
        "/v1/owner/message",
        AuthKind::None,
        Op::OwnerMessage,
        "build_owner_message",
        "owner",
        "The exact text an owner signs for an action (a nonce issued with it)",
    )),
    console(route(
        "POST",
        "/v1/owner/console/login",
        AuthKind::Owner(OwnerAction::ConsoleLogin),
        Op::ConsoleLogin,
        "console_login",
        "console",
        "Sign in to the owner console: a read-only token for 15 minutes",
    )),
    console(route(
        "GET",
        "/v1/owner/me/pending",
        AuthKind::OwnerToken,
        Op::MePending,
        "owner_pending",
        "console",
        "The owner's queued DELAY and APPROVAL transactions",
    )),
    console(route(
        "GET",
        "/v1/owner/me/transactions",
        AuthKind::OwnerToken,
        Op::MeTransactions,
        "owner_transactions",
        "console",
        "The owner's transactions",
    )),
    console(route(
        "GET",
        "/v1/owner/me/transactions/:id",
        AuthKind::OwnerToken,
        Op::MeTransaction,
        "owner_transaction",
        "console",
        "One of the owner's transactions",
    )),
    console(route(
        "GET",
        "/v1/owner/me/agents",
        AuthKind::OwnerToken,
        Op::MeAgents,
        "owner_agents",
        "console",
        "The owner's agents",
    )),
    console(route(
        "GET",
        "/v1/owner/me/policies",
        AuthKind::OwnerToken,
        Op::MePolicies,
        "owner_policies",
        "console",
        "The policies that apply to the owner's agents",
    )),
    console(route(
        "GET",
        "/v1/owner/me/channels",
        AuthKind::OwnerToken,
        Op::MeChannels,
        "owner_channels",
        "console",
        "The notification channels, without their configs",
    )),
    // Passes the guard: recovery waits (1,800 s / 86,400 s) are crossed with it in dev mode.
    ks(dev(route(
        "POST",
        "/v1/admin/dev/clock",
        AuthKind::Master,
        Op::DevClock,
        "advance_dev_clock",
        "admin",
        "Advance the dev-mode clock",
    ))),
];

/// A matched route and its path parameters.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub(crate) route: &'static Route,
    pub(crate) params: Vec<(&'static str, String)>,
}

impl Matched {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Result of routing a request.
#[derive(Debug, Clone)]
pub(crate) enum Routing {
    Found(Matched),
    /// The path exists with other methods (405 with `Allow`).
    WrongMethod(Vec<&'static str>),
    NotFound,
}

fn match_path(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(g)) if p.starts_with(':') && !g.is_empty() => params.push((&p[1..], g.to_string())),
            (Some(p), Some(g)) if p == g => {}
            _ => return None,
        }
    }
}

/// Routes `method path`. Literal segments beat parameters (`/v1/transactions/pending` over
/// `/v1/transactions/:id`) because the table is searched for an exact literal match first.
pub(crate) fn route_request(method: &str, path: &str, dev_mode: bool, console: bool) -> Routing {
    // `/owner/` is its own route (the page); elsewhere a trailing slash is ignored.
    let path = if path.len() > 1 && path != "/owner/" { path.trim_end_matches('/') } else { path };
    let visible = || ROUTES.iter().filter(|r| (dev_mode || !r.dev_only) && (console || !r.console));
    let literal = visible().filter(|r| !r.path.contains(':')).find(|r| r.method == method && r.path == path);
    if let Some(r) = literal {
        return Routing::Found(Matched { route: r, params: Vec::new() });
    }
    let literal_path_exists = visible().any(|r| !r.path.contains(':') && r.path == path);
    if !literal_path_exists {
        for r in visible().filter(|r| r.method == method) {
            if let Some(params) = match_path(r.path, path) {
                return Routing::Found(Matched { route: r, params });
            }
        }
    }
    let mut allowed: Vec<&'static str> = visible()
        .filter(|r| if literal_path_exists { r.path == path } else { match_path(r.path, path).is_some() })
        .map(|r| r.method)
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    if allowed.is_empty() { Routing::NotFound } else { Routing::WrongMethod(allowed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_finds_methods_params_and_405s() {
        assert!(matches!(route_request("GET", "/health", false, true), Routing::Found(m) if m.route.op == Op::Health));
        assert!(matches!(route_request("GET", "/v1/admin/status/", false, true), Routing::Found(_)));
        assert!(matches!(route_request("POST", "/health", false, true), Routing::WrongMethod(m) if m == vec!["GET"]));
        assert!(matches!(route_request("GET", "/nope", false, true), Routing::NotFound));
        assert!(matches!(route_request("POST", "/v1/admin/dev/clock", false, true), Routing::NotFound));
        assert!(matches!(route_request("POST", "/v1/admin/dev/clock", true, true), Routing::Found(_)));
    }

    #[test]
    fn every_route_is_unique_and_only_public_routes_lack_auth() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.path)), "duplicate {} {}", r.method, r.path);
            assert!(r.operation_id.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
            if r.auth == AuthKind::None {
                assert!(
                    ["/health", "/v1/health", "/ready", "/doc", "/v1/nonce", "/v1/auth/nonce", "/v1/owner/message"]
                        .contains(&r.path)
                        || r.page,
                    "{} is public",
                    r.path
                );
            }
        }
    }

    /// ACC-055: no route updates or deletes audit rows.
    #[test]
    fn no_route_changes_the_audit_log() {
        for r in ROUTES.iter().filter(|r| r.path.contains("audit")) {
            assert_eq!(r.method, "GET", "{} {}", r.method, r.path);
        }
    }
}
