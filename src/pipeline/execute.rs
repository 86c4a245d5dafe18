//! Stage 5 (06-pipeline.md §6): build → simulate → apply simulation → prepare signing → sign →
//! attach → checkpoint → submit, with the spec's retries, inside one budget measured from the
//! claim; then the inline part of stage 6.
//!
//! Retry rules in one place: TRANSIENT errors retry *the failing step* after 1, 2, 4 s; STALE
//! errors go back to the build once (`EVM_NONCE_TOO_LOW` resets the nonce tracker first);
//! `EVM_GAS_TOO_LOW` rebuilds once with the gas limit × 1.2; at most three retries in all.
//! Nothing is signed before a successful simulation, and the signed bytes are checkpointed
//! (one durable commit) before the first broadcast so a crash can never lose a broadcast
//! transaction or send it twice with different bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use waiaas_backends::seam::{Purpose, SignContext, sign_verified};
use waiaas_storage::{
    AgentRecord, AuditEvent, AuditSeverity, Backend, BroadcastOutcome, Chain, OpCtx, TransactionRecord, TxPatch,
    TxStatus,
};

use crate::chains::ChainAdapter;
use crate::chains::error::{Category, ChainError};
use crate::chains::types::*;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};

/// One claimed (EXECUTING) transaction to run.
pub(crate) struct Job {
    pub(crate) rec: TransactionRecord,
    pub(crate) agent: AgentRecord,
    pub(crate) build: BuildRequest,
    pub(crate) priority: Priority,
    /// The claim time; the budget runs from here.
    pub(crate) claimed: Instant,
    pub(crate) budget: Duration,
}

/// Where time went, for the `Server-Timing` header and the load tool.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timing {
    /// Time inside node RPCs (build, simulate, submit, confirmation polls).
    pub(crate) chain: Duration,
}

/// Why stage 5 stopped before a broadcast.
#[derive(Debug)]
enum Fail {
    Chain(ChainError),
    Signer(ApiError),
    Timeout,
    Internal(String),
}

/// Per-execution bookkeeping.
struct Run<'a> {
    app: &'a Arc<App>,
    adapter: Arc<dyn ChainAdapter>,
    id: uuid::Uuid,
    deadline: Instant,
    started: Instant,
    budget: RetryBudget,
    step: &'static str,
    timing: Timing,
}

const BACKOFF: [u64; 3] = [1, 2, 4];
const MAX_RETRIES: u32 = 3;

/// The retry rules of one execution (06-pipeline.md §5): at most three retries in all, of
/// which at most one STALE rebuild and at most one gas rebuild; TRANSIENT retries wait
/// 1, 2, 4 s. Kept apart from `Run` so the counting can be tested without a chain.
#[derive(Debug, Default)]
struct RetryBudget {
    retries: u32,
    stale_used: bool,
    gas_bumped: bool,
}

impl RetryBudget {
    /// The wait before the next TRANSIENT retry, or `None` when the retries are spent.
    fn next_backoff(&mut self) -> Option<Duration> {
        let wait = Duration::from_secs(*BACKOFF.get(self.retries as usize)?);
        self.retries += 1;
        Some(wait)
    }

    /// Whether a STALE (or gas) rebuild is still allowed; counts it.
    fn take_rebuild(&mut self, gas: bool) -> bool {
        let used = if gas { self.gas_bumped } else { self.stale_used };
        if used || self.retries >= MAX_RETRIES {
            return false;
        }
        if gas {
            self.gas_bumped = true;
        } else {
            self.stale_used = true;
        }
        self.retries += 1;
        true
    }
}

impl Run<'_> {
    fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Runs a chain step: bounded by the budget, TRANSIENT failures retried with backoff.
    async fn chain_step<T, F, Fut>(&mut self, step: &'static str, mut f: F) -> Result<T, Fail>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ChainError>>,
    {
        self.step = step;
        loop {
            let remaining = self.remaining().ok_or(Fail::Timeout)?;
            let t0 = Instant::now();
            let r = tokio::time::timeout(remaining, f()).await;
            self.timing.chain += t0.elapsed();
            match r {
                Err(_) => return Err(Fail::Timeout),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if e.category() == Category::Transient && e.code != ErrorCode::EvmGasTooLow => {
                    self.backoff(&e).await?;
                }
                Ok(Err(e)) => return Err(Fail::Chain(e)),
            }
        }
    }

    /// Sleeps before a TRANSIENT retry, or gives up when retries or budget are spent.
    async fn backoff(&mut self, e: &ChainError) -> Result<(), Fail> {
        let Some(wait) = self.budget.next_backoff() else {
            return Err(Fail::Chain(e.clone()));
        };
        tracing::debug!("tx {} step {}: {e}; retry {} in {wait:?}", self.id, self.step, self.budget.retries);
        if self.remaining().is_none_or(|r| r <= wait) {
            return Err(Fail::Timeout);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn take_rebuild(&mut self, gas: bool) -> bool {
        self.budget.take_rebuild(gas)
    }
}

/// How a signed transaction is stored in the checkpoint.
pub(crate) fn encode_signed(chain: Chain, bytes: &[u8]) -> String {
    match chain {
        Chain::Ethereum => format!("0x{}", hex::encode(bytes)),
        Chain::Solana => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// The checkpointed bytes back.
pub(crate) fn decode_signed(chain: Chain, text: &str, hash: &str) -> Option<SignedTx> {
    let bytes = match chain {
        Chain::Ethereum => hex::decode(text.strip_prefix("0x")?).ok()?,
        Chain::Solana => base64::engine::general_purpose::STANDARD.decode(text).ok()?,
    };
    Some(SignedTx { bytes, hash: hash.to_string() })
}

/// A transaction handed to the node (or possibly handed: `uncertain`), not yet recorded as
/// SUBMITTED — the signed checkpoint covers a crash until [`finish`] writes.
pub(crate) struct Broadcast {
    pub(crate) hash: String,
    pub(crate) uncertain: bool,
    pub(crate) metadata: serde_json::Map<String, Value>,
}

/// Stage 5 result.
pub(crate) struct Executed {
    pub(crate) broadcast: Broadcast,
    pub(crate) timing: Timing,
    pub(crate) estimated_fee: Option<FeeEstimate>,
}

/// Runs stage 5 for `job`. On failure the row is FAILED (reservation released, `TX_FAILED`
/// audited) and the error carries `details.transactionId`.
pub(crate) async fn execute(
    app: &Arc<App>,
    job: Job,
    adapter: Arc<dyn ChainAdapter>,
) -> Result<Executed, (ApiError, Timing)> {
    let id = job.rec.id;
    let mut run = Run {
        app,
        adapter: adapter.clone(),
        id,
        deadline: job.claimed + job.budget,
        started: job.claimed,
        budget: RetryBudget::default(),
        step: "build",
        timing: Timing::default(),
    };
    // EVM nonces must be used in order: build-through-submit is serialised per agent.
    let _guard = match job.agent.chain {
        Chain::Ethereum => Some(app.agent_lock(job.agent.id).lock_owned().await),
        Chain::Solana => None,
    };
    match stage5(&mut run, &job).await {
        Ok((broadcast, fee)) => Ok(Executed { broadcast, timing: run.timing, estimated_fee: fee }),
        Err(fail) => {
            // A nonce taken for a transaction that was never broadcast is released.
            adapter.reset_nonce_tracker(Some(&job.agent.public_key));
            let err = record_failure(app, id, &run, fail).await;
            Err((err, run.timing))
        }
    }
}

/// How the signing part of one build attempt ended.
enum Signing {
    Signed(SignedTx, Box<UnsignedTx>),
    /// The blockhash or the build is too old: go back to (a).
    Rebuild,
}

/// (d)–(g): prepare (the Solana freshness guard), sign, and for Ledger Solana agents guard
/// again after the device answered. `SOLANA_BLOCKHASH_STALE` refreshes the blockhash and signs
/// again; an expired blockhash or build rebuilds — once in all (a STALE retry).
async fn prepare_and_sign(run: &mut Run<'_>, job: &Job, mut unsigned: UnsignedTx) -> Result<Signing, Fail> {
    let adapter = run.adapter.clone();
    loop {
        if unsigned.built_at.elapsed() >= Duration::from_secs(30) {
            return stale(run, ChainError::new(ErrorCode::TransactionExpired, "30 s or more since the build"), true);
        }
        let intent = match run.chain_step("prepare_signing", || adapter.prepare_signing(&unsigned)).await {
            Ok(i) => i,
            Err(Fail::Chain(e)) if e.code == ErrorCode::SolanaBlockhashStale => {
                stale(run, e, false)?;
                unsigned = run.chain_step("refresh_blockhash", || adapter.refresh_blockhash(unsigned.clone())).await?;
                continue;
            }
            Err(Fail::Chain(e))
                if matches!(e.code, ErrorCode::SolanaBlockhashExpired | ErrorCode::TransactionExpired) =>
            {
                return stale(run, e, true);
            }
            Err(f) => return Err(f),
        };
        let signed = sign(run, job, &intent, &unsigned).await?;
        if job.agent.chain == Chain::Solana && job.agent.backend == Backend::Ledger {
            // A slow button press can outlive the blockhash (03-keys.md §11.7).
            match run.chain_step("prepare_signing", || adapter.prepare_signing(&unsigned)).await {
                Ok(_) => {}
                Err(Fail::Chain(e)) if e.code == ErrorCode::SolanaBlockhashStale => {
                    stale(run, e, false)?;
                    unsigned =
                        run.chain_step("refresh_blockhash", || adapter.refresh_blockhash(unsigned.clone())).await?;
                    continue;
                }
                Err(Fail::Chain(e))
                    if matches!(e.code, ErrorCode::SolanaBlockhashExpired | ErrorCode::TransactionExpired) =>
                {
                    return stale(run, e, true);
                }
                Err(f) => return Err(f),
            }
        }
        return Ok(Signing::Signed(signed, Box::new(unsigned)));
    }
}

/// Spends the one STALE retry on `e`, or fails with it.
fn stale(run: &mut Run<'_>, e: ChainError, rebuild: bool) -> Result<Signing, Fail> {
    if run.take_rebuild(false) {
        tracing::debug!("tx {}: {e}; {}", run.id, if rebuild { "rebuilding" } else { "refreshing the blockhash" });
        Ok(Signing::Rebuild)
    } else {
        Err(Fail::Chain(e))
    }
}

async fn stage5(run: &mut Run<'_>, job: &Job) -> Result<(Broadcast, Option<FeeEstimate>), Fail> {
    let mut opts = BuildOptions { priority: job.priority, ..BuildOptions::default() };
    let adapter = run.adapter.clone();
    let mut reset_done = false;
    let mut fee_bumped = false;
    'build: loop {
        // (a) build, (b) simulate, (c) apply.
        let unsigned = run.chain_step("build", || adapter.build(&job.build, &opts)).await?;
        let fee = unsigned.estimated_fee;
        let sim = run.chain_step("simulate", || adapter.simulate(&unsigned)).await?;
        if !sim.success {
            let reason = sim.error.clone().unwrap_or_else(|| "simulation failed".into());
            // After a fee bump the spec calls a failing simulation a failed transaction.
            let code = if fee_bumped { ErrorCode::TransactionFailed } else { ErrorCode::SimulationFailed };
            return Err(Fail::Chain(ChainError::new(code, reason).with_details(json!({"logs": sim.logs}))));
        }
        let unsigned = run.chain_step("simulate", || adapter.apply_simulation(unsigned.clone(), &sim)).await?;
        let is_reset = matches!(&unsigned.inner, UnsignedInner::Evm { approve_reset: Some(_), .. });
        if is_reset && reset_done {
            return Err(Fail::Internal("the allowance is still non-zero after the reset".into()));
        }
        // (d)–(g) prepare, sign, attach; then (h) checkpoint.
        let (signed, unsigned) = match prepare_and_sign(run, job, unsigned).await? {
            Signing::Signed(s, u) => (s, u),
            Signing::Rebuild => continue 'build,
        };
        let key = if is_reset { "resetSignedTx" } else { "signedTx" };
        let mut entries = vec![(key.to_string(), Value::String(encode_signed(job.agent.chain, &signed.bytes)))];
        if !is_reset {
            entries.push(("expectedHash".into(), Value::String(signed.hash.clone())));
            entries.push(("estimatedFee".into(), json!(unsigned.estimated_fee.total_fee.to_string())));
            for k in [
                "nonce",
                "lastValidBlockHeight",
                "blockhash",
                "cuPrice",
                "needCreateAta",
                "tokenProgram",
                "previousDelegate",
                "warnings",
            ] {
                if let Some(v) = unsigned.metadata.get(k) {
                    entries.push((k.into(), v.clone()));
                }
            }
        }
        let (id, now) = (run.id, run.app.clock.now());
        run.app
            .db(move |s| {
                let refs: Vec<(&str, Value)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                s.checkpoint_metadata(id, &refs, now)
            })
            .await
            .map_err(|e| Fail::Internal(format!("checkpoint: {e}")))?;
        // (i) submit.
        let hash = match submit(run, &signed).await? {
            Submitted::Done { hash, uncertain } => (hash, uncertain),
            Submitted::Rebuild(e) => {
                match e.code {
                    ErrorCode::EvmNonceTooLow => adapter.reset_nonce_tracker(Some(&job.agent.public_key)),
                    ErrorCode::EvmGasTooLow => opts.gas_limit_multiplier_bump = true,
                    ErrorCode::SolanaInsufficientFee => {
                        // 05-chains.md §3.12: once, ×1.5 (at least 1000), with a fresh blockhash.
                        let old = unsigned.metadata.get("cuPrice").and_then(Value::as_u64).unwrap_or(0);
                        let bumped = ((old as u128 * 3).div_ceil(2) as u64).max(1000);
                        opts.cu_price_override = Some(bumped);
                        fee_bumped = true;
                        let ev = AuditEvent::new("FEE_BUMP_ATTEMPTED", "system")
                            .agent(job.agent.id)
                            .tx(id)
                            .detail("originalCuPrice", old)
                            .detail("bumpedCuPrice", bumped);
                        let ctx = OpCtx::new("system", run.app.clock.now());
                        if let Err(e) = run.app.db(move |s| s.append_audit(ev, &ctx)).await {
                            tracing::warn!("tx {id}: cannot audit the fee bump: {e}");
                        }
                    }
                    _ => {}
                }
                continue 'build;
            }
        };
        if is_reset {
            // 06-pipeline.md §6.3: the reset must confirm before the real approve is built.
            let ctx = StatusContext {
                nonce: unsigned.metadata.get("nonce").and_then(Value::as_u64),
                from: Some(job.agent.public_key.clone()),
                ..StatusContext::default()
            };
            let remaining = run.remaining().ok_or(Fail::Timeout)?;
            run.step = "approve_reset";
            let t0 = Instant::now();
            let status = adapter.wait_for_confirmation(&hash.0, &ctx, remaining).await;
            run.timing.chain += t0.elapsed();
            match status {
                Ok(ChainTxStatus::Confirmed { .. } | ChainTxStatus::Finalized { .. }) => {}
                Ok(ChainTxStatus::Failed { error, .. }) => return Err(Fail::Chain(error)),
                Ok(_) => return Err(Fail::Timeout),
                Err(e) => return Err(Fail::Chain(e)),
            }
            let now = run.app.clock.now();
            let h = hash.0.clone();
            run.app
                .db(move |s| s.checkpoint_metadata(id, &[("resetTxHash", Value::String(h))], now))
                .await
                .map_err(|e| Fail::Internal(format!("checkpoint: {e}")))?;
            reset_done = true;
            continue 'build;
        }
        let (hash, uncertain) = hash;
        let mut metadata = serde_json::Map::new();
        if uncertain {
            metadata.insert("broadcastUncertain".into(), Value::Bool(true));
        }
        if let Some(m) = unsigned.metadata.get("methodSignature") {
            metadata.insert("methodSignature".into(), m.clone());
        }
        metadata.insert("retryCount".into(), json!(run.budget.retries));
        return Ok((Broadcast { hash, uncertain, metadata }, Some(fee)));
    }
}

async fn sign(
    run: &mut Run<'_>,
    job: &Job,
    intent: &waiaas_backends::seam::SignIntent,
    tx: &UnsignedTx,
) -> Result<SignedTx, Fail> {
    run.step = "sign";
    let remaining = run.remaining().ok_or(Fail::Timeout)?;
    let backend = run.app.signer(job.agent.backend).ok_or_else(|| {
        Fail::Signer(ApiError::new(ErrorCode::SignerUnavailable, "No Ledger transport is configured"))
    })?;
    let key = crate::agents::key_ref(&job.agent);
    let ctx =
        SignContext { purpose: Purpose::AgentTransaction, tx_id: Some(run.id), deadline: Instant::now() + remaining };
    let out =
        sign_verified(backend, &key, intent, &ctx).await.map_err(|e| Fail::Signer(crate::agents::signer_error(e)))?;
    run.step = "attach_signature";
    run.adapter.attach_signature(tx, &out).map_err(Fail::Chain)
}

enum Submitted {
    Done {
        hash: String,
        uncertain: bool,
    },
    /// A STALE or gas error that earns one rebuild.
    Rebuild(ChainError),
}

/// (i): resends the same bytes on TRANSIENT errors and unknown outcomes; a submit already sent
/// is never abandoned, so the budget only stops the *next* attempt.
async fn submit(run: &mut Run<'_>, signed: &SignedTx) -> Result<Submitted, Fail> {
    run.step = "submit";
    let mut unknown: Option<String> = None;
    loop {
        let t0 = Instant::now();
        let outcome = run.adapter.submit(signed).await;
        run.timing.chain += t0.elapsed();
        match outcome {
            SubmitOutcome::Accepted { hash } => return Ok(Submitted::Done { hash, uncertain: false }),
            SubmitOutcome::Unknown { cause, .. } => {
                unknown = Some(cause.clone());
                let e = ChainError::new(ErrorCode::NetworkError, cause);
                if run.backoff(&e).await.is_err() {
                    return Ok(Submitted::Done { hash: signed.hash.clone(), uncertain: true });
                }
            }
            SubmitOutcome::Rejected(e) => match e.category() {
                Category::Transient if e.code == ErrorCode::EvmGasTooLow => {
                    return if run.take_rebuild(true) { Ok(Submitted::Rebuild(e)) } else { Err(Fail::Chain(e)) };
                }
                Category::Transient => {
                    if let Err(f) = run.backoff(&e).await {
                        // Once an attempt may have reached the node, the outcome stays uncertain.
                        return match unknown {
                            Some(_) => Ok(Submitted::Done { hash: signed.hash.clone(), uncertain: true }),
                            None => Err(f),
                        };
                    }
                }
                Category::Stale => {
                    return if run.take_rebuild(false) { Ok(Submitted::Rebuild(e)) } else { Err(Fail::Chain(e)) };
                }
                Category::Permanent => return Err(Fail::Chain(e)),
            },
        }
    }
}

/// EXECUTING → FAILED with the error code; returns the API error for the inline response.
async fn record_failure(app: &Arc<App>, id: uuid::Uuid, run: &Run<'_>, fail: Fail) -> ApiError {
    let elapsed = run.started.elapsed().as_millis();
    let (stored, category, api) = match fail {
        Fail::Chain(e) => {
            let cat = e.category().as_str();
            (e.code.as_str().to_string(), cat, ApiError::from(e))
        }
        Fail::Signer(e) => (e.code.as_str().to_string(), "PERMANENT", e),
        Fail::Timeout => (
            format!("STAGE5_TIMEOUT ({elapsed})"),
            "TRANSIENT",
            ApiError::new(
                ErrorCode::Stage5Timeout,
                format!("Execution did not finish within its budget ({elapsed} ms)"),
            ),
        ),
        Fail::Internal(m) => {
            tracing::error!("tx {id}: {m}");
            ("INTERNAL_ERROR".to_string(), "PERMANENT", ApiError::internal())
        }
    };
    let ev = AuditEvent::new("TX_FAILED", "system")
        .tx(id)
        .severity(AuditSeverity::Warning)
        .detail("code", stored.clone())
        .detail("category", category)
        .detail("step", run.step)
        .detail("retryCount", run.budget.retries);
    let ctx = OpCtx::new("system", app.clock.now());
    let patch = TxPatch::error(stored);
    if let Err(e) =
        app.db(move |s| s.transition(id, TxStatus::Executing, TxStatus::Failed, patch, Some(ev), &ctx)).await
    {
        tracing::error!("tx {id}: cannot record the failure: {e}");
    }
    api.detail("transactionId", id.to_string())
}

/// Stage 6 for a fresh broadcast: waits for confirmation within what is left of the budget,
/// then records the broadcast and whatever the wait learned in one write transaction
/// (06-pipeline.md §9). Returns the row as it ends up.
pub(crate) async fn finish(
    app: &Arc<App>,
    adapter: &Arc<dyn ChainAdapter>,
    rec: &TransactionRecord,
    agent: &AgentRecord,
    broadcast: Broadcast,
    deadline: Instant,
    timing: &mut Timing,
) -> Result<TransactionRecord, ApiError> {
    let mut row = rec.clone();
    row.tx_hash = Some(broadcast.hash.clone());
    row.metadata.extend(broadcast.metadata.clone());
    let ctx = status_context(&row, agent);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let t0 = Instant::now();
    let status = adapter.wait_for_confirmation(&broadcast.hash, &ctx, remaining).await;
    timing.chain += t0.elapsed();
    let outcome = match status {
        Ok(ChainTxStatus::Confirmed { block, fee, .. } | ChainTxStatus::Finalized { block, fee }) => {
            BroadcastOutcome::Confirmed { fee, block }
        }
        Ok(ChainTxStatus::Failed { error, .. }) => BroadcastOutcome::Ended {
            to: TxStatus::Failed,
            error: format!("ONCHAIN_FAILURE: {}", error.code.as_str()),
            event: AuditEvent::new("TX_FAILED", "system")
                .agent(rec.agent_id)
                .tx(rec.id)
                .severity(AuditSeverity::Warning)
                .detail("code", error.code.as_str())
                .detail("message", error.message.clone()),
        },
        Ok(ChainTxStatus::Expired) => BroadcastOutcome::Ended {
            to: TxStatus::Expired,
            error: "BLOCKHASH_EXPIRED".into(),
            event: AuditEvent::new("TX_EXPIRED", "system")
                .agent(rec.agent_id)
                .tx(rec.id)
                .severity(AuditSeverity::Warning),
        },
        Ok(_) => BroadcastOutcome::Pending,
        Err(e) => {
            tracing::debug!("tx {}: confirmation check failed: {e}", rec.id);
            BroadcastOutcome::Pending
        }
    };
    let patch = TxPatch { tx_hash: Some(broadcast.hash.clone()), metadata: broadcast.metadata, ..TxPatch::default() };
    let submitted = AuditEvent::new("TX_SUBMITTED", "system")
        .agent(rec.agent_id)
        .session(rec.session_id)
        .tx(rec.id)
        .detail("txHash", broadcast.hash.clone())
        .detail("broadcastUncertain", broadcast.uncertain);
    let (id, octx) = (rec.id, OpCtx::new("system", app.clock.now()));
    app.db(move |s| s.record_broadcast(id, patch, submitted, outcome, &octx)).await.map_err(|e| {
        tracing::error!("tx {id}: cannot record the broadcast: {e}");
        ApiError::internal().detail("transactionId", id.to_string())
    })
}

/// What the status lookups of this row need.
pub(crate) fn status_context(rec: &TransactionRecord, agent: &AgentRecord) -> StatusContext {
    StatusContext {
        last_valid_block_height: rec.metadata.get("lastValidBlockHeight").and_then(Value::as_u64),
        nonce: rec.metadata.get("nonce").and_then(Value::as_u64),
        from: Some(agent.public_key.clone()),
    }
}

/// Applies a final on-chain status to a SUBMITTED row (CAS: a concurrent writer may have won).
pub(crate) async fn apply_status(
    app: &Arc<App>,
    rec: TransactionRecord,
    status: ChainTxStatus,
) -> Option<TransactionRecord> {
    let id = rec.id;
    let ctx = OpCtx::new("system", app.clock.now());
    let r = match status {
        ChainTxStatus::Confirmed { block, fee, .. } | ChainTxStatus::Finalized { block, fee } => {
            app.db(move |s| s.confirm_transaction(id, fee, Some(block), &ctx)).await
        }
        ChainTxStatus::Failed { error, .. } => {
            let ev = AuditEvent::new("TX_FAILED", "system")
                .agent(rec.agent_id)
                .tx(id)
                .severity(AuditSeverity::Warning)
                .detail("code", error.code.as_str())
                .detail("message", error.message.clone());
            let patch = TxPatch::error(format!("ONCHAIN_FAILURE: {}", error.code.as_str()));
            app.db(move |s| s.transition(id, TxStatus::Submitted, TxStatus::Failed, patch, Some(ev), &ctx)).await
        }
        ChainTxStatus::Expired => {
            let ev =
                AuditEvent::new("TX_EXPIRED", "system").agent(rec.agent_id).tx(id).severity(AuditSeverity::Warning);
            let patch = TxPatch::error("BLOCKHASH_EXPIRED");
            app.db(move |s| s.transition(id, TxStatus::Submitted, TxStatus::Expired, patch, Some(ev), &ctx)).await
        }
        ChainTxStatus::NotFound | ChainTxStatus::Pending => return None,
    };
    match r {
        Ok(rec) => Some(rec),
        Err(waiaas_storage::StoreError::Conflict { .. }) => app.db(move |s| s.get_transaction(id)).await.ok().flatten(),
        Err(e) => {
            tracing::error!("tx {id}: cannot record the on-chain status: {e}");
            None
        }
    }
}

/// The budget of an execution: 30 s inline, 60 s in the background, plus the Ledger confirm
/// timeout for Ledger agents (06-pipeline.md §6.1).
pub(crate) fn budget(app: &App, agent: &AgentRecord, inline: bool) -> Duration {
    let base = Duration::from_secs(if inline { 30 } else { 60 });
    match agent.backend {
        Backend::Ledger => base + Duration::from_secs(app.config().ledger.confirm_timeout),
        Backend::Keystore => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ACC-168: a STALE error rebuilds exactly once; the second one fails the transaction.
    #[test]
    fn a_stale_rebuild_is_allowed_once() {
        let mut b = RetryBudget::default();
        assert!(b.take_rebuild(false));
        assert!(!b.take_rebuild(false), "a second STALE rebuild is refused");
        assert!(b.take_rebuild(true), "the gas rebuild has its own allowance");
        assert!(!b.take_rebuild(true));
        assert_eq!(b.retries, 2);
    }

    // ACC-167: TRANSIENT retries wait 1, 2, 4 s; three retries in all, rebuilds included.
    #[test]
    fn retries_back_off_and_share_one_budget() {
        let mut b = RetryBudget::default();
        let waits: Vec<_> = std::iter::from_fn(|| b.next_backoff()).collect();
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
        assert!(!b.take_rebuild(false), "no rebuild after three retries");

        let mut b = RetryBudget::default();
        assert!(b.take_rebuild(false));
        assert_eq!(b.next_backoff(), Some(Duration::from_secs(2)));
        assert_eq!(b.next_backoff(), Some(Duration::from_secs(4)));
        assert_eq!(b.next_backoff(), None);
    }
}
