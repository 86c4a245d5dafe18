//! `/v1/transactions/*` (09-api.md §5.4–5.8): the agent's send, dry run and reads. The
//! pipeline itself lives in `crate::pipeline`; these handlers only adapt HTTP to it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use waiaas_storage::{DecisionOutcome, Tier, TransactionRecord, TxStatus};

use crate::clock::iso;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::query::{self, uuid_param};
use crate::http::{Reply, Req, SessionCaller, views};
use crate::pipeline::{decide, request};

fn session(req: &Req) -> Result<&SessionCaller, ApiError> {
    req.caller.session().ok_or_else(ApiError::internal)
}

/// `POST /v1/transactions/send`. `Server-Timing` splits the daemon's time from the node's:
/// `total` is the whole handler, `chain` the part spent waiting on RPCs.
pub(super) async fn send(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let started = Instant::now();
    let body = req.body.json_bytes().await?;
    let caller = session(&req)?.clone();
    let idem = req.header("idempotency-key").map(str::to_string);
    let sent = crate::pipeline::send(app, &caller, &body, idem.as_deref()).await;
    let timing = format!(
        "total;dur={:.3}, chain;dur={:.3}",
        started.elapsed().as_secs_f64() * 1000.0,
        sent.timing.chain.as_secs_f64() * 1000.0
    );
    match sent.reply {
        Ok(mut r) => {
            r.headers.push(("Server-Timing", timing));
            Ok(r)
        }
        Err(e) => Err(e.header("Server-Timing", timing)),
    }
}

/// `POST /v1/transactions/dry-run` (06-pipeline.md §13): the decision on a snapshot of a
/// write transaction that is aborted — no row, reservation or audit row.
pub(super) async fn dry_run(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let body = req.body.json_bytes().await?;
    let caller = session(&req)?.clone();
    let v = request::validate(&body, &caller.agent)?;
    let now = app.clock.now();
    // The same rows stage 1 would store, so the dry run decides on exactly what a send would.
    let (rec, children) = crate::pipeline::new_row(app, &caller, &v, None);
    let mut snap = app.db_api(move |s| s.dry_run_snapshot(rec, now)).await?;
    snap.children = children;
    let outcome = decide::evaluate(&snap, "dry-run");
    let config = app.config();
    let a = &caller.agent;
    let estimated = match app.adapters.available(&config, a.chain, a.network, a.chain_id, now).await {
        Ok(adapter) => adapter.estimate_fee(&v.build, v.priority).await.ok().map(|f| f.total_fee.to_string()),
        Err(_) => None,
    };
    let body = match outcome {
        DecisionOutcome::Queue { tier, .. } => json!({
            "allowed": true,
            "tier": tier.as_str(),
            "sessionCheck": {"passed": true},
            "estimatedFee": estimated,
        }),
        DecisionOutcome::Cancel { error, denial, .. } => {
            let e = decide::denial_error(&error, denial.as_ref());
            let session_fail = error.starts_with("SESSION_");
            json!({
                "allowed": false,
                "code": e.code.as_str(),
                "reason": e.message,
                "sessionCheck": if session_fail { json!({"passed": false, "code": error}) } else { json!({"passed": true}) },
                "estimatedFee": estimated,
            })
        }
    };
    Ok(Reply::ok(body))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::TxNotFound, format!("Transaction {id} not found"))
        .detail("resource", "transaction")
        .detail("id", id.to_string())
}

/// `GET /v1/transactions/:id`: another agent's transaction is 404.
pub(super) async fn get(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = session(&req)?;
    let id = uuid_param(req.matched.param("id"), not_found)?;
    let agent = caller.agent.id;
    let (rec, children) = app
        .db_api(move |s| match s.get_transaction(id)? {
            Some(r) if r.agent_id == agent => {
                let kids = if r.tx_type == waiaas_storage::TxType::Batch { s.batch_children(id)? } else { Vec::new() };
                Ok(Some((r, kids)))
            }
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| not_found(&id.to_string()))?;
    let mut v = detail(&rec);
    if app.ledger_device().is_some_and(|d| d.is_waiting(id)) {
        v["signerStatus"] = json!("WAITING_FOR_DEVICE");
    }
    if !children.is_empty() {
        v["instructions"] = children
            .iter()
            .map(|c| {
                json!({
                    "index": c.batch_index,
                    "type": c.tx_type.as_str(),
                    "amount": c.amount.to_string(),
                    "toAddress": c.to_address,
                    "tokenMint": c.token_mint,
                    "contractAddress": c.contract_address,
                    "spenderAddress": c.spender_address,
                })
            })
            .collect();
    }
    Ok(Reply::ok(v))
}

/// The full transaction view of 09-api.md §5.6.
fn detail(t: &TransactionRecord) -> Value {
    let m = |k: &str| t.metadata.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": t.id,
        "agentId": t.agent_id,
        "sessionId": t.session_id,
        "type": t.tx_type.as_str(),
        "status": t.status.as_str(),
        "tier": t.tier.map(|x| x.as_str()),
        "chain": t.chain.as_str(),
        "network": t.network.as_str(),
        "amount": t.amount.to_string(),
        "nativeAmount": t.native_amount.to_string(),
        "toAddress": t.to_address,
        "tokenMint": t.token_mint,
        "contractAddress": t.contract_address,
        "methodSignature": t.metadata.get("methodSignature").cloned().unwrap_or_else(|| json!(t.method_signature)),
        "spenderAddress": t.spender_address,
        "approvedAmount": t.approved_amount.map(|a| a.to_string()),
        "txHash": t.tx_hash,
        "fee": m("fee"),
        "blockNumber": m("blockNumber"),
        "error": t.error,
        "reservedAmount": t.reserved_amount.map(|a| a.to_string()),
        "queuedAt": t.queued_at.map(iso),
        "expiresAt": t.queue_expires_at.map(iso),
        "executedAt": t.executed_at.map(iso),
        "createdAt": iso(t.created_at),
        "updatedAt": iso(t.updated_at),
        "downgraded": t.metadata.get("decision").and_then(|d| d.get("downgraded")).cloned().unwrap_or(json!(false)),
        "originalTier": t.metadata.get("decision").and_then(|d| d.get("originalTier")).cloned().unwrap_or(Value::Null),
        "warnings": t.metadata.get("warnings").cloned().unwrap_or(json!([])),
    })
}

/// `GET /v1/transactions`: the caller's top-level rows, newest first by default.
pub(super) async fn list(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = session(&req)?;
    let (page, filters) = query::parse(req.query_params(), &["status"])?;
    let status = filters
        .get("status")
        .map(|s| s.parse::<TxStatus>().map_err(|e| ApiError::validation("status", "invalid_enum_value", e.to_string())))
        .transpose()?;
    let agent = caller.agent.id;
    let (cursor, limit, desc) = (page.cursor, page.limit, page.desc);
    let (rows, more) = app.db_api(move |s| s.list_transactions(agent, status, cursor, limit, desc)).await?;
    let next = if more { rows.last().map(|r| r.id) } else { None };
    Ok(Reply::ok(json!({"transactions": rows.iter().map(views::tx_summary).collect::<Vec<_>>(), "nextCursor": next})))
}

/// `GET /v1/transactions/pending`: QUEUED DELAY/APPROVAL rows of the caller's agent.
pub(super) async fn pending(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = session(&req)?;
    let agent = caller.agent.id;
    let (rows, _) = app.db_api(move |s| s.list_transactions(agent, Some(TxStatus::Queued), None, 1000, false)).await?;
    let items: Vec<Value> = rows
        .iter()
        .filter(|r| matches!(r.tier, Some(Tier::Delay | Tier::Approval)))
        .map(|r| {
            json!({
                "id": r.id, "type": r.tx_type.as_str(), "amount": r.amount.to_string(), "toAddress": r.to_address,
                "tier": r.tier.map(|t| t.as_str()), "status": "QUEUED", "queuedAt": r.queued_at.map(iso),
                "expiresAt": r.queue_expires_at.map(iso),
            })
        })
        .collect();
    Ok(Reply::ok(json!({"transactions": items})))
}
