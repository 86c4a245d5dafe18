//! `/v1/transactions/*` (09-api.md §5.4–5.8): the agent's send, dry run and reads. The
//! pipeline itself lives in `crate::domain::pipeline`; these handlers turn its typed outcomes into
//! statuses and bodies (06-pipeline.md §11, §13) and store idempotent responses.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use waiaas_storage::{Tier, TransactionRecord, TxStatus};

use crate::adapters::chains::types::FeeEstimate;
use crate::app::App;
use crate::base::clock::iso;
use crate::base::error::{Coded, ErrorCode};
use crate::domain::pipeline::SendOutcome;
use crate::domain::pipeline::decide::Decided;
use crate::http::query::{self, uuid_param};
use crate::http::{ApiError, Reply, Req, status, views};

/// The success body of 06-pipeline.md §11.
fn success_body(rec: &TransactionRecord, estimated: Option<FeeEstimate>) -> Value {
    let mut b = json!({
        "transactionId": rec.id,
        "type": rec.tx_type.as_str(),
        "status": rec.status.as_str(),
        "tier": rec.tier.map(|t| t.as_str()),
        "createdAt": iso(rec.created_at),
    });
    if let Some(h) = &rec.tx_hash {
        b["txHash"] = json!(h);
    }
    if let Some(f) = estimated {
        b["estimatedFee"] = json!(f.total_fee.to_string());
    }
    if let Some(f) = rec.metadata.get("fee") {
        b["fee"] = f.clone();
    }
    for (k, v) in [("contractAddress", &rec.contract_address), ("spenderAddress", &rec.spender_address)] {
        if let Some(x) = v {
            b[k] = json!(x);
        }
    }
    if let Some(m) =
        rec.metadata.get("methodSignature").cloned().or_else(|| rec.method_signature.clone().map(Value::String))
    {
        b["methodSignature"] = m;
    }
    if let Some(a) = rec.approved_amount {
        b["approvedAmount"] = json!(a.to_string());
    }
    if let Some(e) = &rec.error {
        b["error"] = json!(e);
    }
    // What the decision said about a queued (DELAY/APPROVAL) row.
    if let (Some(Tier::Delay | Tier::Approval), Some(d)) = (rec.tier, rec.metadata.get("decision")) {
        b["expiresAt"] = json!(rec.queue_expires_at.map(iso));
        for k in ["delaySeconds", "approvalTimeoutSeconds", "downgraded", "originalTier"] {
            if let Some(v) = d.get(k) {
                b[k] = v.clone();
            }
        }
    }
    b
}

/// A stored response replayed for the same idempotency key (`Idempotent-Replayed: true`).
fn replayed(status: u16, body: Value) -> Result<Reply, ApiError> {
    if status >= 400 {
        let code = body["code"].as_str().and_then(ErrorCode::parse).unwrap_or(ErrorCode::InternalError);
        let mut e = ApiError::new(code, body["message"].as_str().unwrap_or_default().to_string())
            .header("Idempotent-Replayed", "true");
        if let Some(Value::Object(d)) = body.get("details") {
            for (k, v) in d {
                e = e.detail(k, v.clone());
            }
        }
        return Err(e);
    }
    Ok(Reply { status, body, headers: vec![("Idempotent-Replayed", "true".into())] })
}

/// `POST /v1/transactions/send`. `Server-Timing` splits the daemon's time from the node's:
/// `total` is the whole handler, `chain` the part spent waiting on RPCs.
pub(super) async fn send(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let started = Instant::now();
    let body = req.body.json_bytes().await?;
    let caller = req.session()?.clone();
    let idem = req.header("idempotency-key").map(str::to_string);
    let sent = app.pipeline.send(&caller, &body, idem.as_deref()).await;
    let recorded = match &sent.result {
        Ok(SendOutcome::Executed { .. } | SendOutcome::Queued { .. }) => true,
        Ok(SendOutcome::Replayed { .. } | SendOutcome::Recovered { .. }) => false,
        Err(e) => e.transaction().is_some() && !e.left_to_recovery(),
    };
    let reply = match sent.result {
        Ok(SendOutcome::Executed { row, estimated_fee }) => Ok(Reply::ok(success_body(&row, estimated_fee))),
        Ok(SendOutcome::Queued { row }) => {
            Ok(Reply { status: 202, body: success_body(&row, None), headers: Vec::new() })
        }
        Ok(SendOutcome::Replayed { status, body }) => replayed(status, body),
        // Answered as the original request would have been: 202 while the row waits in the
        // queue, otherwise 200 with the row's status (a FAILED row says why).
        Ok(SendOutcome::Recovered { row }) => {
            let waiting = matches!(row.status, TxStatus::Pending | TxStatus::Queued)
                && matches!(row.tier, Some(Tier::Delay | Tier::Approval));
            Ok(Reply {
                status: if waiting { 202 } else { 200 },
                body: success_body(&row, None),
                headers: vec![("Idempotent-Replayed", "true".into())],
            })
        }
        Err(e) => Err(ApiError::from(e)),
    };
    if let (Some(key), true) = (idem, recorded) {
        let (code, stored) = match &reply {
            Ok(r) => (r.status, r.body.clone()),
            Err(e) => {
                (status::status(e.code), json!({"code": e.code.as_str(), "message": e.message, "details": e.details()}))
            }
        };
        app.pipeline.complete_idempotency(caller.agent.id, &key, code, stored).await;
    }
    let timing = format!(
        "total;dur={:.3}, chain;dur={:.3}",
        started.elapsed().as_secs_f64() * 1000.0,
        sent.timing.chain.as_secs_f64() * 1000.0
    );
    match reply {
        Ok(mut r) => {
            r.headers.push(("Server-Timing", timing));
            Ok(r)
        }
        Err(e) => Err(e.header("Server-Timing", timing)),
    }
}

/// `POST /v1/transactions/dry-run` (06-pipeline.md §13).
pub(super) async fn dry_run(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let body = req.body.json_bytes().await?;
    let caller = req.session()?.clone();
    let d = app.pipeline.dry_run(&caller, &body).await?;
    Ok(Reply::ok(dry_run_body(d, true)))
}

/// The dry-run body (06-pipeline.md §13); the owner's dry run has `sessionCheck: null`.
pub(super) fn dry_run_body(d: crate::domain::pipeline::DryRun, session: bool) -> serde_json::Value {
    let estimated = d.estimated_fee.map(|f| f.total_fee.to_string());
    let mut body = match d.decided {
        Decided::Allowed(a) => {
            let mut v = crate::domain::pipeline::decide::decision_json(&a);
            v["allowed"] = json!(true);
            v["sessionCheck"] = json!({"passed": true});
            v
        }
        Decided::Refused(refusal) => {
            let mut v = json!({
                "allowed": false,
                "code": refusal.code().as_str(),
                "reason": refusal.to_string(),
                "sessionCheck": match refusal.session_code() {
                    Some(code) => json!({"passed": false, "code": code}),
                    None => json!({"passed": true}),
                },
            });
            for (k, x) in refusal.details() {
                if matches!(
                    k.as_str(),
                    "policyId" | "policyType" | "violations" | "retryAfter" | "tier" | "window" | "limit"
                ) {
                    v[k.as_str()] = x;
                }
            }
            v
        }
    };
    body["estimatedFee"] = json!(estimated);
    if !session {
        body["sessionCheck"] = serde_json::Value::Null;
    }
    body
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::TxNotFound, format!("Transaction {id} not found"))
        .detail("resource", "transaction")
        .detail("id", id.to_string())
}

/// `GET /v1/transactions/:id`: another agent's transaction is 404.
pub(super) async fn get(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = req.session()?;
    let id = uuid_param(req.matched.param("id"), not_found)?;
    let agent = caller.agent.id;
    let (rec, children) = app
        .db
        .call(move |s| match s.get_transaction(id)? {
            Some(r) if r.agent_id == agent => {
                let kids = if r.tx_type == waiaas_storage::TxType::Batch { s.batch_children(id)? } else { Vec::new() };
                Ok(Some((r, kids)))
            }
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| not_found(&id.to_string()))?;
    let mut v = detail(&rec);
    if app.signers.ledger_device().is_some_and(|d| d.is_waiting(id)) {
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
    let caller = req.session()?;
    let (page, filters) = query::parse(req.query_params(), &["status"])?;
    let status = filters
        .get("status")
        .map(|s| s.parse::<TxStatus>().map_err(|e| ApiError::validation("status", "invalid_enum_value", e.to_string())))
        .transpose()?;
    let agent = caller.agent.id;
    let (cursor, limit, desc) = (page.cursor, page.limit, page.desc);
    let (rows, more) = app.db.call(move |s| s.list_transactions(agent, status, cursor, limit, desc)).await?;
    let next = if more { rows.last().map(|r| r.id) } else { None };
    Ok(Reply::ok(json!({"transactions": rows.iter().map(views::tx_summary).collect::<Vec<_>>(), "nextCursor": next})))
}

/// `GET /v1/transactions/pending`: QUEUED DELAY/APPROVAL rows of the caller's agent.
pub(super) async fn pending(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let caller = req.session()?;
    let agent = caller.agent.id;
    let (rows, _) = app.db.call(move |s| s.list_transactions(agent, Some(TxStatus::Queued), None, 1000, false)).await?;
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
