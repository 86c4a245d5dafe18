//! `/v1/wallet/*` (09-api.md §5.1–5.3): what an agent may read about its own wallet.

use serde_json::json;

use crate::error::ApiError;
use crate::http::{Reply, Req, views};

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
