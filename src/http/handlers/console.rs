//! The owner console's API (11-owner-console.md §4): the message an owner signs, the console
//! sign-in, and the read-only `/v1/owner/me/*` reads under a `wai_own_` token. The page itself
//! is served by `http::console`.

use std::sync::Arc;

use serde_json::{Value, json};
use waiaas_storage::TxStatus;

use crate::app::App;
use crate::base::clock::iso;
use crate::domain::auth::owner::{MessageRequest, Owner};
use crate::domain::owner_console::{ConsoleDetail, ConsoleRow};
use crate::http::{ApiError, Caller, Reply, Req, query, views};

/// `POST /v1/owner/message` `{action, target, chain, address}` → the text to sign.
pub(super) async fn message(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let body: MessageRequest = req.body.json().await?;
    // The host guard has let this Host through: it is loopback or the public URL's authority.
    let host = req.header("host").unwrap_or_default().to_string();
    let m = app.owner_auth.message(&body, &host).await?;
    Ok(Reply::ok(json!({
        "message": m.message,
        "nonce": m.nonce,
        "issuedAt": iso(m.issued_at),
        "expirationTime": iso(m.expiration_time),
    })))
}

/// `POST /v1/owner/console/login` (owner `console_login`) → a read-only 15-minute token.
pub(super) async fn login(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let Caller::Owner(owner) = req.caller.clone() else { return Err(ApiError::internal()) };
    let _: serde_json::Map<String, Value> = req.body.json().await?;
    let (token, exp) = app.console.login(&owner, req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "token": token,
        "expiresAt": iso(exp),
        "address": owner.address,
        "chain": owner.chain.as_str(),
    })))
}

fn token_owner(req: &Req) -> Result<&Owner, ApiError> {
    match &req.caller {
        Caller::OwnerToken(o) => Ok(o),
        _ => Err(ApiError::internal()),
    }
}

/// **ConsoleTx** (§4.2).
fn console_tx(c: &ConsoleRow) -> Value {
    let t = &c.row;
    let decision = t.metadata.get("decision").map(|d| {
        json!({
            "policyId": d.get("policyId").cloned().unwrap_or(Value::Null),
            "policyType": d.get("policyType").cloned().unwrap_or(Value::Null),
            "reason": d.get("reason").cloned().unwrap_or(Value::Null),
            "downgraded": d.get("downgraded").cloned().unwrap_or(json!(false)),
            "originalTier": d.get("originalTier").cloned().unwrap_or(Value::Null),
        })
    });
    json!({
        "id": t.id,
        "agentId": t.agent_id,
        "agentName": c.agent_name,
        "type": t.tx_type.as_str(),
        "status": t.status.as_str(),
        "tier": t.tier.map(|x| x.as_str()),
        "chain": t.chain.as_str(),
        "network": t.network.as_str(),
        "chainId": c.chain_id,
        "amount": t.amount.to_string(),
        "nativeAmount": t.native_amount.to_string(),
        "formatted": c.amount.formatted,
        "symbol": c.amount.symbol,
        "decimals": c.amount.decimals,
        "toAddress": t.to_address,
        "newRecipient": c.new_recipient,
        "tokenMint": t.token_mint,
        "contractAddress": t.contract_address,
        "methodSignature": t.metadata.get("methodSignature").cloned().unwrap_or_else(|| json!(t.method_signature)),
        "spenderAddress": t.spender_address,
        "summary": c.summary,
        "decision": decision,
        "txHash": t.tx_hash,
        "error": t.error,
        "queuedAt": t.queued_at.map(iso),
        "expiresAt": t.queue_expires_at.map(iso),
        "executedAt": t.executed_at.map(iso),
        "createdAt": iso(t.created_at),
    })
}

/// `GET /v1/owner/me/pending`.
pub(super) async fn pending(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let rows = app.console.pending(token_owner(&req)?).await?;
    Ok(Reply::ok(json!({
        "serverTime": iso(app.console.now()),
        "transactions": rows.iter().map(console_tx).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/owner/me/transactions?agentId&status&cursor&limit&order`.
pub(super) async fn transactions(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (page, filters) = query::parse(req.query_params(), &["agentId", "status"])?;
    let status = filters
        .get("status")
        .map(|s| s.parse::<TxStatus>().map_err(|e| ApiError::validation("status", "invalid_enum_value", e.to_string())))
        .transpose()?;
    let agent = filters.get("agentId").map(String::as_str);
    let (rows, next) =
        app.console.transactions(token_owner(&req)?, agent, status, page.cursor, page.limit, page.desc).await?;
    Ok(Reply::ok(json!({"transactions": rows.iter().map(console_tx).collect::<Vec<_>>(), "nextCursor": next})))
}

/// `GET /v1/owner/me/transactions/:id`.
pub(super) async fn transaction(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let ConsoleDetail { row, approval, children } =
        app.console.transaction(token_owner(&req)?, req.param("id")).await?;
    let mut v = console_tx(&row);
    let m = |k: &str| row.row.metadata.get(k).cloned().unwrap_or(Value::Null);
    v["serverTime"] = json!(iso(app.console.now()));
    v["fee"] = m("fee");
    v["blockNumber"] = m("blockNumber");
    v["warnings"] = row.row.metadata.get("warnings").cloned().unwrap_or(json!([]));
    if !children.is_empty() {
        v["instructions"] = children
            .iter()
            .map(|c| {
                json!({
                    "index": c.batch_index, "type": c.tx_type.as_str(), "amount": c.amount.to_string(),
                    "toAddress": c.to_address, "tokenMint": c.token_mint, "contractAddress": c.contract_address,
                    "spenderAddress": c.spender_address,
                })
            })
            .collect();
    }
    v["approval"] = match approval {
        Some(a) => json!({
            "approvedAt": a.approved_at.map(iso),
            "approvedBy": a.approved_by,
            "rejectedAt": a.rejected_at.map(iso),
            "expiredAt": a.expired_at.map(iso),
            "message": a.owner_payload.as_ref().and_then(|p| p.get("message")).cloned().unwrap_or(Value::Null),
        }),
        None => Value::Null,
    };
    Ok(Reply::ok(v))
}

/// `GET /v1/owner/me/agents`.
pub(super) async fn agents(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let agents = app.console.agents(token_owner(&req)?).await?;
    Ok(Reply::ok(json!({"agents": agents.iter().map(views::agent).collect::<Vec<_>>()})))
}

/// `GET /v1/owner/me/policies?agentId`.
pub(super) async fn policies(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (_, filters) = query::parse(req.query_params(), &["agentId"])?;
    let list = app.console.policies(token_owner(&req)?, filters.get("agentId").map(String::as_str)).await?;
    let agents: Vec<Value> = list
        .iter()
        .map(|(a, policies)| {
            let policies: Vec<Value> = policies
                .iter()
                .map(|(p, level, effective)| {
                    let mut v = views::policy(p);
                    v["level"] = json!(level.as_str());
                    v["effective"] = json!(effective);
                    v
                })
                .collect();
            json!({"agentId": a.id, "agentName": a.name, "policies": policies})
        })
        .collect();
    Ok(Reply::ok(json!({"agents": agents})))
}

/// `GET /v1/owner/me/channels`: never a channel's config, not even masked.
pub(super) async fn channels(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    token_owner(&req)?;
    let c = app.console.channels().await?;
    let channels: Vec<Value> = c
        .channels
        .iter()
        .map(|ch| {
            json!({
                "id": ch.id, "type": ch.channel_type.as_str(), "name": ch.name, "priority": ch.priority,
                "enabled": ch.enabled, "lastHealthCheck": ch.last_health_check.map(iso),
                "lastHealthStatus": ch.last_health_status,
            })
        })
        .collect();
    Ok(Reply::ok(json!({
        "notificationsEnabled": c.enabled,
        "minChannels": c.min_channels,
        "channels": channels,
    })))
}
