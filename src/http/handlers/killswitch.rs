//! The emergency controls (08-killswitch-autostop.md, 09-api.md §6.6, §6.8): kill-switch
//! activation, state and recovery, withdraw, and AutoStop rule management.

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use waiaas_storage::{
    AutoStopAction, AutoStopRuleRecord, AutoStopRuleType, KillSwitchActor, KillSwitchStatus, RuleChange,
};

use crate::app::App;
use crate::base::clock::iso;
use crate::base::error::ErrorCode;
use crate::domain::emergency::killswitch::Recovery;
use crate::http::query::uuid_param;
use crate::http::{ApiError, Reply, Req};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

/// `POST /v1/admin/kill-switch` and `POST /v1/owner/kill-switch` `{reason}` (1–500 characters).
pub(super) async fn activate(app: &Arc<App>, mut req: Req, actor: KillSwitchActor) -> Result<Reply, ApiError> {
    let b: ReasonBody = req.body.json().await?;
    let n = b.reason.chars().count();
    if n == 0 || n > 500 {
        return Err(ApiError::validation("reason", "too_big", "reason must be 1-500 characters"));
    }
    let ctx = req.ctx(app);
    let now = ctx.now;
    let r = app.kill_switch.activate(b.reason, actor, ctx).await?;
    Ok(Reply::ok(json!({
        "activated": true,
        "timestamp": iso(now),
        "sessionsRevoked": r.sessions_revoked,
        "transactionsCancelled": r.transactions_cancelled,
        "agentsSuspended": r.agents_suspended,
        "cascadeDurationMs": r.cascade_duration_ms,
    })))
}

/// `GET /v1/admin/kill-switch` (§3): the state, and while it is not NORMAL the recovery
/// progress, the owners who can sign and a fresh nonce for their `recover` signature.
pub(super) async fn status(app: &Arc<App>) -> Result<Reply, ApiError> {
    let s = app.kill_switch.state().await?;
    let mut v = json!({
        "status": s.status.as_str(),
        "activatedAt": s.activated_at.map(iso),
        "reason": s.reason,
        "actor": s.actor,
    });
    if s.status != KillSwitchStatus::Normal {
        let now = app.clock.now();
        let signers = app.kill_switch.signers_for_recovery().await?;
        let has_owner = s.recovery_has_owner.unwrap_or(!signers.is_empty());
        v["recovery"] = json!({
            "hasOwner": has_owner,
            "waitSeconds": s.recovery_wait_seconds.unwrap_or(app.kill_switch.recovery_wait(has_owner)),
            "eligibleAt": s.recovery_eligible_at.map(iso),
            "remainingSeconds": s.recovery_eligible_at.map(|e| e.saturating_sub(now)),
            "failedAttempts": s.failed_attempts,
            "lockoutUntil": s.lockout_until.filter(|u| *u > now).map(iso),
        });
        let owners: Vec<Value> = signers
            .iter()
            .map(|o| {
                let field = if o.chain == waiaas_storage::Chain::Ethereum { "chainIds" } else { "networks" };
                json!({"address": o.address, "chain": o.chain.as_str(), field: o.chain_ids})
            })
            .collect();
        v["owners"] = Value::Array(owners);
        let (nonce, expires) = app.nonces.issue().await?;
        v["recoveryNonce"] = json!({"nonce": nonce, "expiresAt": iso(expires)});
    }
    Ok(Reply::ok(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RecoverBody {
    master_password: Option<String>,
}

/// `POST /v1/admin/recover` (§4): the password from `X-Master-Password`, else the body.
pub(super) async fn recover(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: RecoverBody = req.body.json().await?;
    let password = req.header("x-master-password").map(str::to_string).or(b.master_password);
    let owner = crate::domain::auth::owner::bearer(req.header("authorization")).map(str::to_string);
    match app.kill_switch.recover(password.as_deref(), owner.as_deref()).await? {
        Recovery::Started { eligible_at, wait, has_owner } => Ok(Reply {
            status: 202,
            body: json!({"status": "RECOVERING", "recoveryEligibleAt": iso(eligible_at), "waitSeconds": wait, "hasOwner": has_owner}),
            headers: Vec::new(),
        }),
        Recovery::Completed { agents_reactivated, at } => {
            Ok(Reply::ok(json!({"recovered": true, "timestamp": iso(at), "agentsReactivated": agents_reactivated})))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    scope: Option<String>,
    /// EVM: ERC-20 addresses to sweep besides the ALLOWED_TOKENS hints.
    tokens: Option<Vec<String>>,
}

/// `POST /v1/owner/agents/:id/withdraw` (§6.6): 200, or 207 when some part failed.
pub(super) async fn withdraw(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: WithdrawBody = req.body.json().await?;
    let scope = match b.scope.as_deref() {
        None | Some("all") => crate::domain::emergency::withdraw::Scope::All,
        Some("native") => crate::domain::emergency::withdraw::Scope::Native,
        Some(_) => return Err(ApiError::validation("scope", "invalid_enum_value", "scope must be all or native")),
    };
    let password = req.header("x-master-password").unwrap_or_default().to_string();
    let actor = req.caller.actor();
    let w = app.withdrawals.withdraw(req.param("id"), scope, b.tokens.unwrap_or_default(), &password, &actor).await?;
    let body = json!({
        "agentId": w.agent_id,
        "destination": w.destination,
        "scope": scope.as_str(),
        "totalTransactions": w.tx_hashes.len(),
        "nativeRecovered": w.native_recovered.to_string(),
        "tokensRecovered": w.tokens_recovered.iter().map(|(m, s, a)| json!({"mint": m, "symbol": s, "amount": a.to_string()})).collect::<Vec<_>>(),
        "rentRecovered": w.rent_recovered.to_string(),
        "failed": w.failed.iter().map(|(m, e)| json!({"mint": m, "error": e})).collect::<Vec<_>>(),
        "txHashes": w.tx_hashes,
    });
    Ok(Reply { status: if w.partial() { 207 } else { 200 }, body, headers: Vec::new() })
}

fn rule_view(r: &AutoStopRuleRecord) -> Value {
    json!({
        "id": r.id, "agentId": r.agent_id, "type": r.rule_type.as_str(), "config": r.config,
        "action": r.action.as_str(), "enabled": r.enabled, "createdAt": iso(r.created_at), "updatedAt": iso(r.updated_at),
    })
}

fn rule_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::RuleNotFound, format!("Rule {id} not found"))
        .detail("resource", "auto_stop_rule")
        .detail("id", id.to_string())
}

fn action(v: &str) -> Result<AutoStopAction, ApiError> {
    AutoStopAction::from_str(v).map_err(|_| {
        ApiError::validation("action", "invalid_enum_value", "action must be WARN, SUSPEND_AGENT or KILL_SWITCH")
    })
}

/// `GET /v1/admin/auto-stop/rules`.
pub(super) async fn rules(app: &Arc<App>) -> Result<Reply, ApiError> {
    let rules = app.autostop.list().await?;
    Ok(Reply::ok(json!({"rules": rules.iter().map(rule_view).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleBody {
    agent_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    config: Value,
    action: String,
    enabled: Option<bool>,
}

/// `POST /v1/admin/auto-stop/rules`: 201.
pub(super) async fn create_rule(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: RuleBody = req.body.json().await?;
    let kind = AutoStopRuleType::from_str(&b.kind).map_err(|_| {
        ApiError::validation(
            "type",
            "invalid_enum_value",
            "type must be CONSECUTIVE_FAILURES, TIME_RESTRICTION, DAILY_LIMIT_THRESHOLD, HOURLY_RATE or ANOMALY_PATTERN",
        )
    })?;
    let agent_id = b
        .agent_id
        .map(|a| {
            uuid::Uuid::parse_str(&a)
                .map_err(|_| ApiError::validation("agentId", "invalid_string", "agentId must be a UUID"))
        })
        .transpose()?;
    let new = crate::domain::emergency::autostop::NewRule {
        agent_id,
        kind,
        config: b.config,
        action: action(&b.action)?,
        enabled: b.enabled.unwrap_or(true),
    };
    let r = app.autostop.create(new, &req.caller.actor()).await?;
    Ok(Reply::created(rule_view(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleUpdateBody {
    config: Option<Value>,
    action: Option<String>,
    enabled: Option<bool>,
}

/// `PUT /v1/admin/auto-stop/rules/:id`.
pub(super) async fn update_rule(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), rule_not_found)?;
    let b: RuleUpdateBody = req.body.json().await?;
    let change =
        RuleChange { config: b.config, action: b.action.as_deref().map(action).transpose()?, enabled: b.enabled };
    Ok(Reply::ok(rule_view(&app.autostop.update(id, change, &req.caller.actor()).await?)))
}

/// `DELETE /v1/admin/auto-stop/rules/:id`.
pub(super) async fn delete_rule(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = uuid_param(req.matched.param("id"), rule_not_found)?;
    let r = app.autostop.delete(id, &req.caller.actor()).await?;
    Ok(Reply::ok(json!({"deleted": true, "id": r.id})))
}
