//! `/v1/wallet/*` (09-api.md §5.1–5.3): what an agent may read about its own wallet.

use std::sync::Arc;

use serde_json::json;

use crate::adapters::chains::types::TokenHint;
use crate::app::App;
use crate::base::units::format_units;
use crate::domain::pipeline::decide::{Refusal, balance_check};
use crate::http::{ApiError, Reply, Req, views};

/// `GET /v1/wallet/address`.
pub(super) fn address(req: &Req) -> Result<Reply, ApiError> {
    let a = &req.session()?.agent;
    Ok(Reply::ok(json!({
        "agentId": a.id,
        "address": a.public_key,
        "chain": a.chain.as_str(),
        "network": a.network.as_str(),
        "chainId": a.chain_id,
        "encoding": views::encoding(a.chain),
    })))
}

/// `GET /v1/wallet/balance`.
pub(super) async fn balance(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let s = req.session()?;
    balance_check(&s.session.constraints).map_err(Refusal::Session)?;
    let a = &s.agent;
    let adapter = app.chains.for_agent(a).await?;
    let b = adapter.get_balance(&a.public_key).await?;
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

/// `GET /v1/wallet/assets`.
pub(super) async fn assets(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let s = req.session()?;
    balance_check(&s.session.constraints).map_err(Refusal::Session)?;
    let a = &s.agent;
    let policies = app.db.call(|st| st.list_policies()).await?;
    let hints: Vec<TokenHint> = crate::rules::policy::scope::allowed_tokens(a, &policies)
        .into_iter()
        .map(|t| TokenHint { address: t.mint, symbol: t.symbol, decimals: t.decimals })
        .collect();
    let adapter = app.chains.for_agent(a).await?;
    let list = adapter.get_assets(&a.public_key, &hints).await?;
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
