//! `/v1/owner/*` routes of this scope: owner verification (GRACE → LOCKED) and the wallet
//! connection cache (04-auth.md §8, §9).

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use waiaas_storage::Chain;

use crate::app::App;
use crate::clock::iso;
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
