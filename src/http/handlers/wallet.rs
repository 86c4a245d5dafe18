//! `/v1/wallet/*` (09-api.md §5.1–5.3): what an agent may read about its own wallet.

use std::sync::Arc;

use serde_json::json;
use waiaas_storage::{AllowedOperation, PolicyType};

use crate::chains::types::{TokenHint, format_units};
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Reply, Req, SessionCaller, views};

/// `GET /v1/wallet/address`.
pub(super) fn address(req: &Req) -> Result<Reply, ApiError> {
    let a = &req.caller.session().ok_or_else(ApiError::internal)?.agent;
    Ok(Reply::ok(json!({
        "agentId": a.id,
        "address": a.public_key,
        "chain": a.chain.as_str(),
        "network": a.network.as_str(),
        "chainId": a.chain_id,
        "encoding": views::encoding(a.chain),
    })))
}

/// `BALANCE_CHECK`, when `allowedOperations` is set, gates the balance routes (04-auth.md §4.2).
fn balance_allowed(s: &SessionCaller) -> Result<(), ApiError> {
    match &s.session.constraints.allowed_operations {
        Some(ops) if !ops.contains(&AllowedOperation::BalanceCheck) => Err(ApiError::new(
            ErrorCode::SessionLimitExceeded,
            "BALANCE_CHECK is not an allowed operation of this session",
        )
        .detail("code", "SESSION_OPERATION_DENIED")),
        _ => Ok(()),
    }
}

/// `GET /v1/wallet/balance`.
pub(super) async fn balance(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let s = req.caller.session().ok_or_else(ApiError::internal)?;
    balance_allowed(s)?;
    let a = &s.agent;
    let config = app.config();
    let adapter = app.adapters.available(&config, a.chain, a.network, a.chain_id, app.clock.now()).await?;
    let b = adapter.get_balance(&a.public_key).await.map_err(ApiError::from)?;
    Ok(Reply::ok(json!({
        "address": b.address,
        "balance": b.balance.to_string(),
        "decimals": b.decimals,
        "symbol": b.symbol,
        "formatted": format_units(b.balance, b.decimals, &b.symbol),
        "chain": a.chain.as_str(),
        "network": a.network.as_str(),
    })))
}

/// The agent's token hints: the tokens its effective ALLOWED_TOKENS policies list.
async fn hints(app: &Arc<App>, s: &SessionCaller) -> Result<Vec<TokenHint>, ApiError> {
    let policies = app.db_api(|st| st.list_policies()).await?;
    let mut out = Vec::new();
    for (p, _, effective) in crate::policy::scope::for_agent(&s.agent, &policies) {
        if !effective || p.policy_type != PolicyType::AllowedTokens {
            continue;
        }
        for t in p.rules["tokens"].as_array().into_iter().flatten() {
            let chain_ok = t["chain"].as_str().is_none_or(|c| c == s.agent.chain.as_str());
            if let (Some(mint), true) = (t["mint"].as_str(), chain_ok) {
                out.push(TokenHint {
                    address: mint.to_string(),
                    symbol: t["symbol"].as_str().unwrap_or_default().to_string(),
                    decimals: t["decimals"].as_u64().map(|d| d as u8),
                });
            }
        }
    }
    Ok(out)
}

/// `GET /v1/wallet/assets`.
pub(super) async fn assets(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let s = req.caller.session().ok_or_else(ApiError::internal)?;
    balance_allowed(s)?;
    let a = &s.agent;
    let hints = hints(app, s).await?;
    let config = app.config();
    let adapter = app.adapters.available(&config, a.chain, a.network, a.chain_id, app.clock.now()).await?;
    let list = adapter.get_assets(&a.public_key, &hints).await.map_err(ApiError::from)?;
    let assets: Vec<_> = list
        .iter()
        .map(|x| {
            json!({
                "type": x.kind.as_str(),
                "mint": x.token_address,
                "symbol": x.symbol,
                "name": x.name,
                "balance": x.balance.to_string(),
                "decimals": x.decimals,
                "formatted": format_units(x.balance, x.decimals, &x.symbol),
                "usdValue": null,
            })
        })
        .collect();
    Ok(Reply::ok(
        json!({"assets": assets, "totalUsdValue": null, "chain": a.chain.as_str(), "network": a.network.as_str()}),
    ))
}
