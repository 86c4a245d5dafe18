//! `/v1/owner/*` routes of this scope: owner verification (GRACE → LOCKED) and the wallet
//! connection cache (04-auth.md §8, §9).

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use waiaas_storage::Chain;

use crate::app::App;
use crate::base::clock::iso;
use crate::http::{ApiError, Caller, Reply, Req};

/// `POST /v1/owner/agents/:id/verify` (owner `verify_owner`): step 9 of ownerAuth is this
/// route's whole effect. Idempotent for an agent that is already LOCKED.
pub(super) async fn verify(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let Caller::Owner(owner) = &req.caller else { return Err(ApiError::internal()) };
    let agent = app.agents.load(req.param("id")).await?;
    let agent = app.agents.mark_verified(&agent, owner, &req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "agentId": agent.id,
        "ownerAddress": agent.owner_address,
        "ownerState": "LOCKED",
        "verifiedAt": agent.owner_verified_at.map(iso),
    })))
}

/// `POST /v1/owner/approve/:txId` (06-pipeline.md §8.2): ownerAuth already verified the
/// signature against this transaction (and its summary, when the message carries one).
pub(super) async fn approve(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let Caller::Owner(owner) = req.caller.clone() else { return Err(ApiError::internal()) };
    let _: serde_json::Map<String, serde_json::Value> = req.body.json().await?;
    let id = crate::http::query::uuid_param(req.matched.param("txId"), tx_not_found)?;
    // The signed message and signature are kept with the consumed approval.
    let payload = crate::domain::auth::owner::bearer(req.header("authorization"))
        .and_then(|b| crate::domain::auth::owner::decode(b).ok())
        .map(|p| json!({"message": p.message, "signature": p.signature, "nonce": p.nonce}));
    let row = app.pipeline.approve(id, &owner, payload, req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "transactionId": row.id,
        "status": "EXECUTING",
        "approvedAt": iso(row.updated_at),
        "approvedBy": owner.address,
    })))
}

fn tx_not_found(id: &str) -> ApiError {
    ApiError::new(crate::base::error::ErrorCode::TxNotFound, format!("Transaction {id} not found"))
        .detail("resource", "transaction")
        .detail("id", id.to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

/// `POST /v1/owner/reject/:txId` (06-pipeline.md §8.3), master or the owner's `reject_tx`
/// signature (11-owner-console.md §4); the reason is never part of what was signed.
pub(super) async fn reject(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let owner = match &req.caller {
        Caller::Owner(o) => Some(o.clone()),
        _ => None,
    };
    let id = crate::http::query::uuid_param(req.matched.param("txId"), tx_not_found)?;
    let b: RejectBody = req.body.json().await?;
    let reason = b.reason.unwrap_or_else(|| "OWNER_REJECTED".to_string());
    if reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "too_big", "reason must be at most 500 characters"));
    }
    let row = app.pipeline.reject(id, &reason, owner.as_ref(), req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "transactionId": row.id,
        "status": "CANCELLED",
        "rejectedAt": iso(row.updated_at),
        "rejectedBy": owner.map_or_else(|| "admin".to_string(), |o| o.address),
        "reason": reason,
    })))
}

/// `GET /v1/owner/pending-approvals?agentId&cursor&limit` (06-pipeline.md §8.5), each item with
/// the approval summary an `approve_tx` message may carry, and `ownerNotified`: whether some
/// channel delivered the request's notification (TX_APPROVAL_REQUEST, or the DELAY notices) —
/// an owner who sees `false` knows the agent is waiting on a request nobody was told about.
pub(super) async fn pending(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (page, filters) = crate::http::query::parse(req.query_params(), &["agentId"])?;
    let agent = filters
        .get("agentId")
        .map(|a| {
            uuid::Uuid::parse_str(a)
                .map_err(|_| ApiError::validation("agentId", "invalid_string", "agentId must be a UUID"))
        })
        .transpose()?;
    let (rows, agents) = app.db.call(move |s| Ok((s.queued_rows(agent)?, s.list_agents()?))).await?;
    let mut rows = rows;
    if page.desc {
        rows.reverse();
    }
    let start = match page.cursor {
        Some(c) => rows.iter().position(|r| r.id == c).map_or(rows.len(), |i| i + 1),
        None => 0,
    };
    let slice: Vec<_> = rows.iter().skip(start).take(page.limit).collect();
    let more = start + slice.len() < rows.len();
    let ids: Vec<String> = slice.iter().map(|r| r.id.to_string()).collect();
    let notified: Vec<bool> = app.db.read(|s| {
        ids.iter()
            .map(|id| {
                for event in crate::adapters::notify::Event::QUEUED_NOTICES {
                    if s.was_delivered(event.as_str(), id)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .collect()
    })?;
    let config = app.settings.get();
    let items: Vec<serde_json::Value> = slice
        .iter()
        .zip(notified)
        .map(|(r, notified)| {
            let a = agents.iter().find(|a| a.id == r.agent_id);
            let symbol = a.map_or("", |a| config.native_symbol(a.chain, a.network));
            json!({
                "txId": r.id, "agentId": r.agent_id, "agentName": a.map(|a| a.name.clone()),
                "type": r.tx_type.as_str(), "amount": r.amount.to_string(), "toAddress": r.to_address,
                "chain": r.chain.as_str(), "network": r.network.as_str(), "tier": r.tier.map(|t| t.as_str()),
                "queuedAt": r.queued_at.map(iso), "expiresAt": r.queue_expires_at.map(iso),
                "summary": crate::rules::summary::approval_summary(r, symbol),
                "ownerNotified": notified,
            })
        })
        .collect();
    let next = if more { slice.last().map(|r| r.id) } else { None };
    Ok(Reply::ok(json!({"transactions": items, "nextCursor": next})))
}

fn chain(v: &str) -> Result<Chain, ApiError> {
    Chain::from_str(v)
        .map_err(|_| ApiError::validation("chain", "invalid_enum_value", "chain must be solana or ethereum"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConnectBody {
    address: String,
    chain: String,
    wc_session_topic: Option<String>,
    wc_pairing_topic: Option<String>,
}

/// `POST /v1/owner/connect`.
pub(super) async fn connect(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: ConnectBody = req.body.json().await?;
    let chain = chain(&b.chain)?;
    let rec =
        app.agents.connect_wallet(chain, &b.address, b.wc_session_topic, b.wc_pairing_topic, &req.ctx(app)).await?;
    Ok(Reply::created(json!({
        "connectionId": rec.id,
        "address": rec.owner_address,
        "chain": chain.as_str(),
        "connectedAt": iso(rec.connected_at),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    address: String,
    chain: String,
}

/// `DELETE /v1/owner/disconnect`.
pub(super) async fn disconnect(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: DisconnectBody = req.body.json().await?;
    let chain = chain(&b.chain)?;
    let ctx = req.ctx(app);
    let (agents, expired) = app.agents.disconnect_owner(chain, &b.address, &ctx).await?;
    Ok(Reply::ok(json!({
        "disconnected": true,
        "disconnectedAt": iso(ctx.now),
        "affectedAgents": agents,
        "expiredTransactions": expired,
    })))
}
