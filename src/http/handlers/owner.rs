//! `/v1/owner/*` routes of this scope: owner verification (GRACE → LOCKED) and the wallet
//! connection cache (04-auth.md §8, §9).

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use waiaas_storage::{Chain, OwnerState, StoreError, WalletConnectionRecord};

use crate::clock::iso;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Caller, Reply, Req};

/// `POST /v1/owner/agents/:id/verify` (owner `verify_owner`): step 9 of ownerAuth is this
/// route's whole effect. Idempotent for an agent that is already LOCKED.
pub(super) async fn verify(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let Caller::Owner(owner) = &req.caller else { return Err(ApiError::internal()) };
    let agent = crate::agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    let (ctx, id, address) = (req.ctx(app), agent.id, owner.address.clone());
    let agent = app
        .db_api(move |s| {
            s.mark_owner_verified(id, &address, &ctx)?;
            s.get_agent(id)
        })
        .await?
        .ok_or_else(|| crate::agents::not_found(&id.to_string()))?;
    if agent.owner_state() != OwnerState::Locked {
        // The owner changed between the signature check and the write.
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "The agent's owner changed; nothing was verified",
        ));
    }
    Ok(Reply::ok(json!({
        "agentId": agent.id,
        "ownerAddress": agent.owner_address,
        "ownerState": "LOCKED",
        "verifiedAt": agent.owner_verified_at.map(iso),
    })))
}

fn chain_and_address(chain: &str, address: &str) -> Result<(Chain, String), ApiError> {
    let chain = Chain::from_str(chain)
        .map_err(|_| ApiError::validation("chain", "invalid_enum_value", "chain must be solana or ethereum"))?;
    let address = crate::agents::owner_address(chain, address)
        .map_err(|_| ApiError::validation("address", "invalid_string", format!("Invalid {chain} address")))?;
    Ok((chain, address))
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
    let (chain, address) = chain_and_address(&b.chain, &b.address)?;
    let now = app.clock.now();
    let rec = WalletConnectionRecord {
        id: app.clock.new_id(),
        owner_address: address.clone(),
        chain,
        wc_session_topic: b.wc_session_topic,
        wc_pairing_topic: b.wc_pairing_topic,
        connected_at: now,
        last_active_at: now,
        metadata: json!({}),
    };
    let (ctx, r) = (req.ctx(app), rec.clone());
    app.db_api(move |s| s.connect_wallet(&r, &ctx)).await?;
    Ok(Reply {
        status: 201,
        body: json!({"connectionId": rec.id, "address": address, "chain": chain.as_str(), "connectedAt": iso(now)}),
        headers: Vec::new(),
    })
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
    let (chain, address) = chain_and_address(&b.chain, &b.address)?;
    let ctx = req.ctx(app);
    let now = ctx.now;
    let a = address.clone();
    let (agents, expired) = app.db(move |s| s.disconnect_owner(chain, &a, &ctx)).await.map_err(|e| match e {
        StoreError::NotFound { .. } => {
            ApiError::new(ErrorCode::OwnerNotFound, format!("No {chain} agent is owned by {address}"))
        }
        other => {
            tracing::error!("disconnect_owner failed: {other}");
            ApiError::internal()
        }
    })?;
    Ok(Reply::ok(json!({
        "disconnected": true,
        "disconnectedAt": iso(now),
        "affectedAgents": agents,
        "expiredTransactions": expired,
    })))
}
