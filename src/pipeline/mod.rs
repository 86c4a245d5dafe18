//! The transaction pipeline (06-pipeline.md): stage 1 receive, stages 2–4 decide, stage 5
//! execute, stage 6 confirm. This module is the orchestration; each stage lives in its own
//! file and every state change is one storage operation (one write transaction).
//!
//! Durable commits per INSTANT request: record (1), decide + claim (1), signed checkpoint (1),
//! broadcast + outcome (1) — plus one to store the response when an `Idempotency-Key` was
//! given. The decision and the claim share a transaction because nothing can happen in between
//! that the claim would need to re-check; the broadcast is recorded together with what the
//! inline confirmation wait learned because until then the signed checkpoint already makes a
//! crash recoverable (startup turns it into SUBMITTED and the confirmation worker resolves it).

pub(crate) mod decide;
pub(crate) mod execute;
pub(crate) mod request;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use waiaas_storage::{
    Backend, DecisionOutcome, Hash32, IdempotencyClaim, OpCtx, RecordOutcome, StoreError, Tier, TransactionRecord,
    TxPatch, TxStatus,
};

use crate::chains::ChainAdapter;
use crate::chains::types::{ChainTxStatus, FeeEstimate};
use crate::clock::iso;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Reply, SessionCaller};
use execute::{Job, Timing};
use request::Validated;

/// The row a validated request becomes at stage 1 (and what a dry run decides on).
pub(crate) fn new_row(
    app: &App,
    caller: &SessionCaller,
    v: &Validated,
    idem: Option<&str>,
) -> (TransactionRecord, Vec<TransactionRecord>) {
    let now = app.clock.now();
    let agent = &caller.agent;
    let base = |id, parent: Option<(uuid::Uuid, u32)>, f: &request::RowFields, request: Value| TransactionRecord {
        id,
        agent_id: agent.id,
        session_id: Some(caller.session.id),
        parent_id: parent.map(|p| p.0),
        batch_index: parent.map(|p| p.1),
        chain: agent.chain,
        network: agent.network,
        tx_type: f.kind.unwrap_or(v.kind),
        status: TxStatus::Pending,
        tier: None,
        request,
        amount: f.amount,
        native_amount: f.native_amount,
        to_address: f.to_address.clone(),
        token_mint: f.token_mint.clone(),
        contract_address: f.contract_address.clone(),
        method_signature: f.method_signature.clone(),
        spender_address: f.spender_address.clone(),
        approved_amount: f.approved_amount,
        tx_hash: None,
        reserved_amount: None,
        queued_at: None,
        queue_expires_at: None,
        executed_at: None,
        idempotency_key: None,
        error: None,
        metadata: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let id = app.clock.new_id();
    let mut parent = base(id, None, &v.fields, v.canonical.clone());
    parent.idempotency_key = idem.map(str::to_string);
    let children = v
        .children
        .iter()
        .enumerate()
        .map(|(i, f)| base(app.clock.new_id(), Some((id, i as u32)), f, v.canonical["instructions"][i].clone()))
        .collect();
    (parent, children)
}

/// A finished send: the reply plus where the time went.
pub(crate) struct Sent {
    pub(crate) reply: Result<Reply, ApiError>,
    pub(crate) timing: Timing,
}

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
    b
}

/// Stage 1–6 for one `POST /v1/transactions/send`.
pub(crate) async fn send(app: &Arc<App>, caller: &SessionCaller, body: &[u8], idem_header: Option<&str>) -> Sent {
    let mut timing = Timing::default();
    let reply = send_inner(app, caller, body, idem_header, &mut timing).await;
    Sent { reply, timing }
}

async fn send_inner(
    app: &Arc<App>,
    caller: &SessionCaller,
    body: &[u8],
    idem_header: Option<&str>,
    timing: &mut Timing,
) -> Result<Reply, ApiError> {
    // Stage 1.
    let idem = request::idempotency_key(idem_header)?;
    let v = request::validate(body, &caller.agent)?;
    let (rec, children) = new_row(app, caller, &v, idem.as_deref());
    let id = rec.id;
    let claim = idem.clone().map(|key| IdempotencyClaim { key, request_hash: Hash32(v.request_hash) });
    let ctx = OpCtx::new(format!("agent:{}", caller.agent.id), app.clock.now());
    let (r, c, cl, ctx2) = (rec.clone(), children.clone(), claim.clone(), ctx.clone());
    match app.db_api(move |s| s.record_request(&r, &c, cl.as_ref(), &ctx2)).await? {
        RecordOutcome::Recorded => {}
        RecordOutcome::Existing(existing) => return replay(existing, &v),
    }
    let reply = decide_and_run(app, caller, v, rec, timing).await;
    if let Some(key) = idem {
        let (status, body) = match &reply {
            Ok(r) => (r.status, r.body.clone()),
            Err(e) => (e.code.status(), json!({"code": e.code.as_str(), "message": e.message, "details": e.details()})),
        };
        let agent = caller.agent.id;
        let now = app.clock.now();
        if let Err(e) = app.db(move |s| s.complete_idempotency(agent, &key, status, &body, now)).await {
            tracing::warn!("tx {id}: cannot store the idempotent response: {e}");
        }
    }
    reply
}

/// An idempotency record already exists (06-pipeline.md §2.4).
fn replay(existing: waiaas_storage::IdempotencyRecord, v: &Validated) -> Result<Reply, ApiError> {
    if existing.request_hash.0 != v.request_hash {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was used for a different request",
        ));
    }
    match (existing.completed_at, existing.response_status, existing.response_body) {
        (Some(_), Some(status), Some(body)) => {
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
        _ => {
            Err(ApiError::new(ErrorCode::IdempotencyInProgress, "A request with this Idempotency-Key is still running")
                .detail("transactionId", existing.tx_id.map(|t| t.to_string())))
        }
    }
}

/// Stages 2–6 after the row is recorded.
async fn decide_and_run(
    app: &Arc<App>,
    caller: &SessionCaller,
    v: Validated,
    rec: TransactionRecord,
    timing: &mut Timing,
) -> Result<Reply, ApiError> {
    let id = rec.id;
    let agent = caller.agent.clone();
    let with_id = |e: ApiError| e.detail("transactionId", id.to_string());
    // §6.1 pre-execution checks, in memory, before the decision transaction: when they fail the
    // row is decided but not claimed, and then fails.
    let config = app.config();
    let adapter = app.adapters.available(&config, agent.chain, agent.network, agent.chain_id, app.clock.now()).await;
    let keystore_ok = agent.backend != Backend::Keystore || app.keystore.is_unlocked().await;
    let precheck: Option<ApiError> = match (&adapter, keystore_ok) {
        (Err(e), _) => Some(e.clone()),
        (Ok(_), false) => Some(ApiError::new(ErrorCode::KeystoreLocked, "The keystore is locked")),
        (Ok(_), true) => None,
    };
    let ctx = OpCtx::new(format!("agent:{}", agent.id), app.clock.now());
    let actor = ctx.actor.clone();
    let claim_inline = precheck.is_none();
    let decided = app
        .db(move |s| {
            let f = |snap: &waiaas_storage::DecisionSnapshot| Ok(decide::evaluate(snap, &actor));
            if claim_inline { s.decide_and_claim(id, &ctx, f) } else { s.decide_transaction(id, &ctx, f) }
        })
        .await;
    let (rec, outcome) = match decided {
        Ok(x) => x,
        Err(StoreError::Conflict { .. }) => {
            return Err(with_id(ApiError::new(ErrorCode::SystemLocked, "The kill switch cancelled this request")));
        }
        Err(e) => {
            tracing::error!("tx {id}: decision failed: {e}");
            return Err(with_id(ApiError::internal()));
        }
    };
    let tier = match outcome {
        DecisionOutcome::Cancel { error, denial, .. } => {
            return Err(with_id(decide::denial_error(&error, denial.as_ref())));
        }
        DecisionOutcome::Queue { tier, .. } => tier,
    };
    if !matches!(tier, Tier::Instant | Tier::Notify) {
        // DELAY / APPROVAL: 202 after stage 4.
        return Ok(Reply { status: 202, body: success_body(&rec, None), headers: Vec::new() });
    }
    if let Some(e) = precheck {
        let ctx = OpCtx::new("system", app.clock.now());
        let code = e.code.as_str().to_string();
        let ev = waiaas_storage::AuditEvent::new("TX_FAILED", "system")
            .tx(id)
            .detail("code", code.clone())
            .detail("step", "claim");
        let _ = app
            .db(move |s| s.transition(id, TxStatus::Queued, TxStatus::Failed, TxPatch::error(code), Some(ev), &ctx))
            .await;
        return Err(with_id(e));
    }
    let adapter: Arc<dyn ChainAdapter> = adapter.expect("prechecked");
    let claimed = Instant::now();
    let budget = execute::budget(app, &agent, true);
    let job = Job { rec: rec.clone(), agent: agent.clone(), build: v.build, priority: v.priority, claimed, budget };
    let executed = match execute::execute(app, job, adapter.clone()).await {
        Ok(x) => x,
        Err((e, t)) => {
            timing.chain += t.chain;
            return Err(e);
        }
    };
    let mut t = executed.timing;
    let done = execute::finish(app, &adapter, &rec, &agent, executed.broadcast, claimed + budget, &mut t).await;
    timing.chain += t.chain;
    Ok(Reply::ok(success_body(&done?, executed.estimated_fee)))
}

/// The confirmation worker's pass (06-pipeline.md §9): every SUBMITTED row whose adapter is
/// available is looked up; a final status is recorded, and a row the node does not know is
/// rebroadcast from its checkpoint (same bytes, same hash).
pub(crate) async fn confirmation_pass(app: &Arc<App>) -> Result<(), String> {
    let rows = app.db(|s| s.active_in_status(TxStatus::Submitted, 200)).await.map_err(|e| e.to_string())?;
    for rec in rows {
        let agent_id = rec.agent_id;
        let Some(agent) = app.db(move |s| s.get_agent(agent_id)).await.map_err(|e| e.to_string())? else { continue };
        let config = app.config();
        let Ok(adapter) =
            app.adapters.available(&config, agent.chain, agent.network, agent.chain_id, app.clock.now()).await
        else {
            continue;
        };
        let Some(hash) = rec.tx_hash.clone() else { continue };
        let ctx = execute::status_context(&rec, &agent);
        match adapter.get_transaction_status(&hash, &ctx).await {
            Ok(ChainTxStatus::NotFound) => rebroadcast(&adapter, &rec).await,
            Ok(ChainTxStatus::Pending) => {}
            Ok(s) => {
                execute::apply_status(app, rec, s).await;
            }
            Err(e) => tracing::debug!("tx {}: status lookup failed: {e}", rec.id),
        }
    }
    Ok(())
}

async fn rebroadcast(adapter: &Arc<dyn ChainAdapter>, rec: &TransactionRecord) {
    let (Some(Value::String(signed)), Some(hash)) = (rec.metadata.get("signedTx"), rec.tx_hash.as_deref()) else {
        return;
    };
    if let Some(tx) = execute::decode_signed(rec.chain, signed, hash) {
        let outcome = adapter.submit(&tx).await;
        tracing::info!("tx {}: rebroadcast {hash}: {outcome:?}", rec.id);
    }
}
