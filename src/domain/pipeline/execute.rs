//! Stage 5 (06-pipeline.md §6): build → simulate → apply simulation → prepare signing → sign →
//! attach → checkpoint → submit, with the spec's retries, inside one budget measured from the
//! claim.
//!
//! The build request comes from the stored row (`transactions.request`), never from the HTTP
//! request that created it, so the inline path exercises exactly what a later DELAY or APPROVAL
//! execution does.
//!
//! Retry rules in one place: TRANSIENT errors retry *the failing step* after 1, 2, 4 s; STALE
//! errors go back to the build once (`EVM_NONCE_TOO_LOW` resets the nonce tracker first);
//! `EVM_GAS_TOO_LOW` rebuilds once with the gas limit × 1.2; at most three retries in all.
//! Nothing is signed before a successful simulation, and the signed bytes are checkpointed
//! (one durable commit) before the first broadcast so a crash can never lose a broadcast
//! transaction or send it twice with different bytes.

use crate::base::failpoint;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value, json};
use waiaas_backends::seam::{Purpose, SignContext, SignerError, sign_verified};
use waiaas_storage::{
    AgentRecord, Amount, AuditEvent, AuditEventType, Backend, Broadcast, Chain, Checkpoint, OpCtx, Signed,
    TransactionRecord, TxFailure, TxStatus,
};

use super::Pipeline;
use crate::adapters::chains::ChainAdapter;
use crate::adapters::chains::error::{Category, ChainError};
use crate::adapters::chains::types::*;
use crate::base::error::{Coded, ErrorCode};
use crate::runtime::config::Config;
use crate::runtime::metrics::Stage;

/// Where time went, for the `Server-Timing` header, the load tool and the stage metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timing {
    /// Time inside node RPCs (build, simulate, submit, confirmation polls).
    pub(crate) chain: Duration,
    /// Wall time per pipeline stage, by [`Stage`] index (node time included).
    pub(crate) stages: [Duration; 7],
}

impl Timing {
    /// Adds `d` to `stage`.
    pub(crate) fn add(&mut self, stage: Stage, d: Duration) {
        self.stages[stage as usize] += d;
    }

    /// Adds another timing's parts to this one.
    fn absorb(&mut self, other: &Timing) {
        self.chain += other.chain;
        for (a, b) in self.stages.iter_mut().zip(other.stages) {
            *a += b;
        }
    }

    /// Records every stage that ran into `waiaas_pipeline_stage_duration_seconds`.
    pub(crate) fn record(&self) {
        let m = crate::runtime::metrics::get();
        for stage in Stage::ALL {
            let d = self.stages[stage as usize];
            if !d.is_zero() {
                m.stage(stage, d.as_secs_f64());
            }
        }
    }
}

/// The stage a chain step belongs to.
fn stage_of(step: &str) -> Stage {
    match step {
        "build" => Stage::Build,
        "simulate" => Stage::Simulate,
        "prepare_signing" | "refresh_blockhash" => Stage::Sign,
        _ => Stage::Submit,
    }
}

/// Why stage 5 stopped before a broadcast. The row is FAILED by the time a caller sees it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecFailure {
    #[error(transparent)]
    Chain(ChainError),
    #[error(transparent)]
    Signer(SignerError),
    #[error("Execution did not finish within its budget ({0} ms)")]
    Timeout(u128),
    #[error("Internal server error")]
    Internal,
    /// The database was unreachable or this replica no longer leads (13-postgres-ha.md §8): the
    /// execution stopped at a durability gate and the row is left as it is, for the next
    /// leader's recovery. Retryable with the same idempotency key.
    #[error(transparent)]
    Database(waiaas_storage::StoreError),
}

impl Coded for ExecFailure {
    fn code(&self) -> ErrorCode {
        match self {
            ExecFailure::Chain(e) => e.code(),
            ExecFailure::Signer(e) => e.code(),
            ExecFailure::Timeout(_) => ErrorCode::Stage5Timeout,
            ExecFailure::Internal => ErrorCode::InternalError,
            ExecFailure::Database(e) => e.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            ExecFailure::Chain(e) => e.details(),
            ExecFailure::Signer(e) => e.details(),
            ExecFailure::Database(e) => e.details(),
            _ => Map::new(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ExecFailure::Database(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Why stage 5 stopped, inside the retry loop.
#[derive(Debug)]
enum Fail {
    Chain(ChainError),
    Signer(SignerError),
    Timeout,
    Internal(String),
    /// A storage step hit an unreachable database or was fenced: stop, write nothing more.
    Database(waiaas_storage::StoreError),
}

/// A storage error of a step inside stage 5: losing the database or the leadership stops the
/// execution where it is (the row is recovery's); anything else fails the row.
fn storage_fail(step: &str, e: waiaas_storage::StoreError) -> Fail {
    if e.database_lost() { Fail::Database(e) } else { Fail::Internal(format!("{step}: {e}")) }
}

/// Per-execution bookkeeping.
struct Run<'a> {
    p: &'a Pipeline,
    adapter: Arc<dyn ChainAdapter>,
    id: uuid::Uuid,
    deadline: Instant,
    started: Instant,
    budget: RetryBudget,
    step: &'static str,
    timing: Timing,
    /// PostgreSQL, EVM: the nonce table for this transaction.
    nonces: Option<Arc<super::nonces::DbNonces>>,
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
            let took = t0.elapsed();
            self.timing.chain += took;
            self.timing.add(stage_of(step), took);
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

/// Stage 5 result: what was broadcast, not yet recorded as SUBMITTED — the signed checkpoint
/// covers a crash until `confirm::finish` writes.
pub(crate) struct Executed {
    pub(crate) broadcast: Broadcast,
    pub(crate) estimated_fee: Option<FeeEstimate>,
}

/// Runs stage 5 for a claimed (EXECUTING) row, building from its stored request. On failure the
/// row is FAILED (reservation released, `TX_FAILED` audited) before this returns.
pub(crate) async fn execute(
    p: &Pipeline,
    row: &TransactionRecord,
    agent: &AgentRecord,
    adapter: Arc<dyn ChainAdapter>,
    claimed: Instant,
    deadline: Instant,
    timing: &mut Timing,
) -> Result<Executed, ExecFailure> {
    let mut run = Run {
        p,
        adapter: adapter.clone(),
        id: row.id,
        deadline,
        started: claimed,
        budget: RetryBudget::default(),
        step: "build",
        timing: Timing::default(),
        nonces: super::nonces::DbNonces::for_execution(p, agent, row),
    };
    let _guard = p.nonce_order(agent).await;
    let request = if row.is_nonce_fill() {
        // A 0-value self-transfer, which a send may not ask for (a TRANSFER's amount is > 0).
        let me = agent.public_key.clone();
        Ok((BuildRequest::Transfer { from: me.clone(), to: me, amount: Amount::ZERO, memo: None }, Priority::Medium))
    } else {
        super::request::rebuild(&row.request, agent)
    };
    let result = match request {
        Ok((build, priority)) => stage5(&mut run, agent, &build, priority).await,
        Err(e) => Err(Fail::Internal(format!("the stored request does not rebuild: {e}"))),
    };
    timing.absorb(&run.timing);
    match result {
        Ok((broadcast, fee)) => Ok(Executed { broadcast, estimated_fee: fee }),
        Err(fail) => {
            // A nonce taken for a transaction that was never broadcast is released.
            adapter.reset_nonce_tracker(Some(&agent.public_key));
            // A failed nonce assignment came back as a chain error; it is the database's.
            let fail = match (fail, run.nonces.as_ref().and_then(|n| n.take_error())) {
                (Fail::Chain(_), Some(e)) => storage_fail("nonce", e),
                (f, _) => f,
            };
            if let Fail::Database(e) = fail {
                tracing::warn!("tx {}: execution stopped at a durability gate ({e}); left to recovery", run.id);
                return Err(ExecFailure::Database(e));
            }
            if let Some(n) = &run.nonces {
                n.release(true).await;
            }
            Err(record_failure(&run, agent, fail).await)
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
async fn prepare_and_sign(run: &mut Run<'_>, agent: &AgentRecord, mut unsigned: UnsignedTx) -> Result<Signing, Fail> {
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
        leading(run)?;
        let signed = sign(run, agent, &intent, &unsigned).await?;
        if agent.chain == Chain::Solana && agent.backend == Backend::Ledger {
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

async fn stage5(
    run: &mut Run<'_>,
    agent: &AgentRecord,
    build: &BuildRequest,
    priority: Priority,
) -> Result<(Broadcast, Option<FeeEstimate>), Fail> {
    let mut opts =
        BuildOptions { priority, nonces: run.nonces.as_ref().map(|n| n.source()), ..BuildOptions::default() };
    let adapter = run.adapter.clone();
    let mut reset_done = false;
    let mut fee_bumped = false;
    'build: loop {
        // (a) build, (b) simulate, (c) apply.
        let unsigned = run.chain_step("build", || adapter.build(build, &opts)).await?;
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
        let (signed, unsigned) = match prepare_and_sign(run, agent, unsigned).await? {
            Signing::Signed(s, u) => (s, u),
            Signing::Rebuild => continue 'build,
        };
        failpoint::pass(failpoint::Point::Signed);
        let bytes = encode_signed(agent.chain, &signed.bytes);
        let mut checkpoint = if is_reset {
            Checkpoint { signed: Some(Signed::ApproveReset { bytes }), facts: Default::default() }
        } else {
            Checkpoint::signed(bytes, signed.hash.clone())
        };
        if !is_reset {
            checkpoint.facts.insert("estimatedFee".into(), json!(unsigned.estimated_fee.total_fee.to_string()));
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
                    checkpoint.facts.insert(k.into(), v.clone());
                }
            }
        }
        let (id, now) = (run.id, run.p.clock.now());
        run.p.db.call(move |s| s.checkpoint(id, checkpoint, now)).await.map_err(|e| match e {
            // The kill switch went on after the signature: the keys are locked, and these
            // bytes are never sent.
            waiaas_storage::StoreError::Restricted { .. } => Fail::Signer(SignerError::KeystoreLocked),
            e => storage_fail("checkpoint", e),
        })?;
        failpoint::pass(failpoint::Point::Checkpointed);
        // (i) submit.
        let hash = match submit(run, &signed).await? {
            Submitted::Done { hash, uncertain } => (hash, uncertain),
            Submitted::Rebuild(e) => {
                match e.code {
                    ErrorCode::EvmNonceTooLow => {
                        adapter.reset_nonce_tracker(Some(&agent.public_key));
                        // The chain moved past the nonce: the rebuild takes a new one.
                        if let Some(n) = &run.nonces {
                            n.release(false).await;
                        }
                    }
                    ErrorCode::EvmGasTooLow => opts.gas_limit_multiplier_bump = true,
                    ErrorCode::SolanaInsufficientFee => {
                        // 05-chains.md §3.12: once, ×1.5 (at least 1000), with a fresh blockhash.
                        let old = unsigned.metadata.get("cuPrice").and_then(Value::as_u64).unwrap_or(0);
                        let bumped = ((old as u128 * 3).div_ceil(2) as u64).max(1000);
                        opts.cu_price_override = Some(bumped);
                        fee_bumped = true;
                        let ev = AuditEvent::new(AuditEventType::FeeBumpAttempted, "system")
                            .agent(agent.id)
                            .tx(id)
                            .detail("originalCuPrice", old)
                            .detail("bumpedCuPrice", bumped);
                        let ctx = OpCtx::new("system", run.p.clock.now());
                        if let Err(e) = run.p.db.call(move |s| s.append_audit(ev, &ctx)).await {
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
                from: Some(agent.public_key.clone()),
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
            let now = run.p.clock.now();
            let h = hash.0.clone();
            run.p
                .db
                .call(move |s| {
                    let facts = serde_json::Map::from_iter([("resetTxHash".to_string(), Value::String(h))]);
                    s.checkpoint(id, Checkpoint::facts(facts), now)
                })
                .await
                .map_err(|e| storage_fail("checkpoint", e))?;
            reset_done = true;
            continue 'build;
        }
        let (hash, uncertain) = hash;
        let mut metadata = serde_json::Map::new();
        if let Some(m) = unsigned.metadata.get("methodSignature") {
            metadata.insert("methodSignature".into(), m.clone());
        }
        metadata.insert("retryCount".into(), json!(run.budget.retries));
        return Ok((Broadcast { hash, uncertain, metadata }, Some(fee)));
    }
}

async fn sign(
    run: &mut Run<'_>,
    agent: &AgentRecord,
    intent: &waiaas_backends::seam::SignIntent,
    tx: &UnsignedTx,
) -> Result<SignedTx, Fail> {
    run.step = "sign";
    let remaining = run.remaining().ok_or(Fail::Timeout)?;
    let backend = run.p.signers.backend(agent.backend).ok_or_else(|| {
        Fail::Signer(SignerError::DeviceUnavailable { reason: "No Ledger transport is configured".into() })
    })?;
    let key = crate::domain::agents::key_ref(agent);
    let ctx =
        SignContext { purpose: Purpose::AgentTransaction, tx_id: Some(run.id), deadline: Instant::now() + remaining };
    let t0 = Instant::now();
    let out = sign_verified(backend, &key, intent, &ctx).await.map_err(Fail::Signer);
    run.timing.add(Stage::Sign, t0.elapsed());
    let out = out?;
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

/// PostgreSQL (13-postgres-ha.md §6.4): a replica that stopped leading starts no new sign or
/// submit call. (What it still holds is harmless either way — an unsigned checkpoint is fenced,
/// and signed bytes are the next leader's to rebroadcast — but it asks nothing more of a
/// device or a node.)
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn leading(run: &Run<'_>) -> Result<(), Fail> {
    #[cfg(feature = "postgres")]
    if run.p.db.store().postgres().is_some_and(|pg| pg.epoch() == 0) {
        return Err(Fail::Database(waiaas_storage::StoreError::Fenced { mine: 0, current: 0 }));
    }
    Ok(())
}

/// (i): resends the same bytes on TRANSIENT errors and unknown outcomes; a submit already sent
/// is never abandoned, so the budget only stops the *next* attempt.
async fn submit(run: &mut Run<'_>, signed: &SignedTx) -> Result<Submitted, Fail> {
    run.step = "submit";
    leading(run)?;
    let mut unknown: Option<String> = None;
    loop {
        let t0 = Instant::now();
        let outcome = run.adapter.submit(signed).await;
        run.timing.chain += t0.elapsed();
        run.timing.add(Stage::Submit, t0.elapsed());
        match outcome {
            SubmitOutcome::Accepted { hash } => {
                failpoint::pass(failpoint::Point::Submitted);
                return Ok(Submitted::Done { hash, uncertain: false });
            }
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

/// EXECUTING → FAILED with the failure's error string and its `TX_FAILED` row (one write
/// transaction); returns what the caller reports.
async fn record_failure(run: &Run<'_>, agent: &AgentRecord, fail: Fail) -> ExecFailure {
    let elapsed = run.started.elapsed().as_millis();
    let (error, category, failure) = match fail {
        Fail::Chain(e) => (e.code.as_str().to_string(), e.category().as_str(), ExecFailure::Chain(e)),
        Fail::Signer(e) => (e.code().as_str().to_string(), "PERMANENT", ExecFailure::Signer(e)),
        Fail::Timeout => (format!("STAGE5_TIMEOUT ({elapsed})"), "TRANSIENT", ExecFailure::Timeout(elapsed)),
        Fail::Internal(m) => {
            tracing::error!("tx {}: {m}", run.id);
            ("INTERNAL_ERROR".to_string(), "PERMANENT", ExecFailure::Internal)
        }
        Fail::Database(e) => return ExecFailure::Database(e),
    };
    let id = run.id;
    let failure_row = TxFailure::new(error).at(run.step).retried(category, run.budget.retries);
    let ctx = OpCtx::new("system", run.p.clock.now());
    match run.p.db.call(move |s| s.fail_transaction(id, TxStatus::Executing, &failure_row, &ctx)).await {
        Ok(row) => run.p.notify_outcome(&row, agent),
        Err(e) => tracing::error!("tx {id}: cannot record the failure: {e}"),
    }
    failure
}

/// The budget of an execution: 30 s inline, 60 s in the background, plus the Ledger confirm
/// timeout for Ledger agents (06-pipeline.md §6.1).
pub(crate) fn budget(config: &Config, agent: &AgentRecord, inline: bool) -> Duration {
    let base = Duration::from_secs(if inline { 30 } else { 60 });
    match agent.backend {
        Backend::Ledger => base + Duration::from_secs(config.ledger.confirm_timeout),
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
