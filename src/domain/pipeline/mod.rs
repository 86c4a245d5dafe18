//! The transaction pipeline (06-pipeline.md): stage 1 receive, stages 2–4 decide, stage 5
//! execute, stage 6 confirm. This module is the orchestration; each stage lives in its own
//! file and every state change is one storage operation (one write transaction).
//!
//! The pipeline takes typed inputs (the authenticated session, the raw body, the idempotency
//! key) and returns a typed [`SendOutcome`] or [`SendError`]; how those become HTTP statuses and
//! bodies is the HTTP layer's business.
//!
//! Commits per INSTANT request (issue #21): request + decision + claim in one lazy commit, the
//! signed checkpoint — the one durable commit, and the only wait before the submit — then the
//! broadcast + outcome and the stored idempotent response, both lazy. A lazy commit is visible
//! at once and made durable by the next durable commit or the idle sync (storage's group
//! commit); a crash leaves a prefix of the commits, and start-up recovery turns a durable
//! checkpoint into SUBMITTED and rebroadcasts its bytes. Answers about rows that will not be
//! signed now (refusals, queued DELAY/APPROVAL) wait for durability before they are sent.

pub(crate) mod confirm;
pub(crate) mod decide;
pub(crate) mod execute;
pub(crate) mod kinds;
#[cfg(feature = "postgres")]
pub(crate) mod nonces;
#[cfg(not(feature = "postgres"))]
#[path = "nonces_none.rs"]
pub(crate) mod nonces;
pub(crate) mod queue;
pub(crate) mod request;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use uuid::Uuid;
use waiaas_backends::seam::SignerError;
use waiaas_storage::{
    AgentRecord, Hash32, IdempotencyClaim, OpCtx, Recorded, StoreError, Tier, TransactionRecord, TxFailure, TxStatus,
};

use crate::adapters::chains::Registry;
use crate::adapters::chains::error::ChainError;
use crate::adapters::chains::types::FeeEstimate;
use crate::adapters::notify::{Message, Notifier, TxParty};
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode, details};
use crate::base::validation::Invalid;
use crate::domain::auth::SessionContext;
use crate::runtime::metrics::Stage;
use crate::runtime::{Db, Settings, Signers};
use decide::{Decided, Refusal};
use execute::{ExecFailure, Timing};
use request::Validated;

/// What a send achieved.
#[derive(Debug)]
pub(crate) enum SendOutcome {
    /// INSTANT/NOTIFY, executed inline: the row as it ended (SUBMITTED, CONFIRMED, or FAILED /
    /// EXPIRED on chain).
    Executed { row: TransactionRecord, estimated_fee: Option<FeeEstimate> },
    /// DELAY/APPROVAL: queued after stage 4.
    Queued { row: TransactionRecord },
    /// The same request was sent before with this idempotency key: its stored response.
    Replayed { status: u16, body: Value },
    /// The same request was sent before with this idempotency key, and the process that took it
    /// died before storing its answer (the record is lazy, issue #21): the row as it is now,
    /// after start-up recovery. Never stored, so each replay shows the row's latest state.
    Recovered { row: TransactionRecord },
}

/// Why a send did not execute. Variants with a transaction id were recorded (the row exists).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("This Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("A request with this Idempotency-Key is still running")]
    IdempotencyInProgress { tx: Option<Uuid> },
    #[error("{refusal}")]
    Refused { tx: Uuid, refusal: Refusal },
    #[error("The kill switch cancelled this request")]
    SystemLocked { tx: Uuid },
    /// A pre-execution check failed (§6.1): the adapter is unavailable or the keystore locked.
    #[error("{cause}")]
    Precheck { tx: Uuid, cause: Precheck },
    #[error("{failure}")]
    Failed { tx: Uuid, failure: ExecFailure },
    #[error("Internal server error")]
    Internal { tx: Option<Uuid> },
    /// PostgreSQL (13-postgres-ha.md §8): the database did not answer in time, or this replica
    /// lost leadership. Retryable; nothing of the failed step committed.
    #[error("{error}")]
    Database { tx: Uuid, error: StoreError },
    /// PostgreSQL, refused before anything was recorded: the agent's Ledger is on another
    /// replica (§6.4), or its nonces wait for a resync with its node (§6.2 step 4).
    #[error("{0}")]
    Unready(Precheck),
}

/// A pre-execution check that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Precheck {
    #[error(transparent)]
    Adapter(ChainError),
    #[error("The keystore is locked")]
    KeystoreLocked,
    /// PostgreSQL: a Ledger agent pinned to another replica, whose host has the device.
    #[error("This agent's Ledger is on replica {replica}, which does not lead now")]
    PinnedElsewhere { replica: String },
}

impl Precheck {
    fn code(&self) -> ErrorCode {
        match self {
            Precheck::Adapter(e) => e.code(),
            Precheck::KeystoreLocked => ErrorCode::KeystoreLocked,
            Precheck::PinnedElsewhere { .. } => ErrorCode::SignerUnavailable,
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            Precheck::Adapter(e) => e.details(),
            Precheck::PinnedElsewhere { replica } => details([("pinnedReplicaId", replica.clone().into())]),
            Precheck::KeystoreLocked => Map::new(),
        }
    }
}

impl SendError {
    /// The recorded transaction, when the request got that far.
    pub(crate) fn transaction(&self) -> Option<Uuid> {
        match self {
            SendError::Refused { tx, .. }
            | SendError::SystemLocked { tx }
            | SendError::Precheck { tx, .. }
            | SendError::Failed { tx, .. } => Some(*tx),
            SendError::Internal { tx } => *tx,
            SendError::Database { tx, .. } => Some(*tx),
            SendError::Invalid(_)
            | SendError::IdempotencyKeyReused
            | SendError::IdempotencyInProgress { .. }
            | SendError::Unready(_) => None,
        }
    }

    /// The database was lost or this replica stopped leading mid-request: the row's fate is the
    /// next recovery's, so the answer must not become the idempotency key's final response —
    /// the client's retry with the same key gets the recovered row instead.
    pub(crate) fn left_to_recovery(&self) -> bool {
        matches!(self, SendError::Database { .. } | SendError::Failed { failure: ExecFailure::Database(_), .. })
    }
}

impl Coded for SendError {
    fn code(&self) -> ErrorCode {
        match self {
            SendError::Invalid(e) => e.code(),
            SendError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            SendError::IdempotencyInProgress { .. } => ErrorCode::IdempotencyInProgress,
            SendError::Refused { refusal, .. } => refusal.code(),
            SendError::SystemLocked { .. } => ErrorCode::SystemLocked,
            SendError::Precheck { cause, .. } | SendError::Unready(cause) => cause.code(),
            SendError::Failed { failure, .. } => failure.code(),
            SendError::Internal { .. } => ErrorCode::InternalError,
            SendError::Database { error, .. } => error.code(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = match self {
            SendError::Invalid(e) => e.details(),
            SendError::Refused { refusal, .. } => refusal.details(),
            SendError::Precheck { cause, .. } | SendError::Unready(cause) => cause.details(),
            SendError::Failed { failure, .. } => failure.details(),
            SendError::IdempotencyInProgress { tx: Some(t) } => details([("transactionId", t.to_string().into())]),
            SendError::Database { error, .. } => error.details(),
            _ => Map::new(),
        };
        if let Some(t) = self.transaction() {
            d.insert("transactionId".into(), t.to_string().into());
        }
        d
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            SendError::Refused { refusal, .. } => refusal.retry_after(),
            SendError::Database { error, .. } => error.retry_after(),
            SendError::Failed { failure, .. } => failure.retry_after(),
            _ => None,
        }
    }
}

/// A finished send: the outcome plus where the time went.
pub(crate) struct Sent {
    pub(crate) result: Result<SendOutcome, SendError>,
    pub(crate) timing: Timing,
}

/// What a dry run found (06-pipeline.md §13).
pub(crate) struct DryRun {
    pub(crate) decided: Decided,
    pub(crate) estimated_fee: Option<FeeEstimate>,
}

/// The pipeline service: what stages 1–6 need, and nothing else.
pub(crate) struct Pipeline {
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    pub(crate) chains: Arc<Registry>,
    pub(crate) signers: Signers,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) oracle: Arc<crate::adapters::oracle::Oracle>,
    /// AutoStop's input: fed after commits, never waited on.
    pub(crate) autostop: crate::domain::emergency::autostop::AutoStopFeed,
    /// Per-agent execution locks: EVM nonces are used in order (06-pipeline.md §6.4).
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// The idempotency keys this process is answering right now: an unanswered record whose
    /// key is not here was left by a process that died (see [`SendOutcome::Recovered`]).
    in_flight: Arc<Mutex<HashMap<(Uuid, String), usize>>>,
    /// PostgreSQL: the EVM accounts awaiting a resync or a NOOP (13-postgres-ha.md §6.2 step 4).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) nonce_upkeep: Arc<nonces::NonceUpkeep>,
}

/// A send's idempotency claim, counted in [`Pipeline::in_flight`] until the send ends.
struct InFlight {
    claim: IdempotencyClaim,
    map: Arc<Mutex<HashMap<(Uuid, String), usize>>>,
    key: (Uuid, String),
}

impl InFlight {
    fn enter(map: &Arc<Mutex<HashMap<(Uuid, String), usize>>>, agent: Uuid, claim: IdempotencyClaim) -> InFlight {
        let key = (agent, claim.key.clone());
        *map.lock().expect("in-flight keys").entry(key.clone()).or_default() += 1;
        InFlight { claim, map: map.clone(), key }
    }

    /// Whether another send than this one holds the key.
    fn shared(&self) -> bool {
        self.map.lock().expect("in-flight keys").get(&self.key).is_some_and(|n| *n > 1)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("in-flight keys");
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Pipeline {
    pub(crate) fn new(
        db: Db,
        clock: Clock,
        settings: Settings,
        chains: Arc<Registry>,
        signers: Signers,
        notifier: Arc<Notifier>,
        autostop: crate::domain::emergency::autostop::AutoStopFeed,
    ) -> Pipeline {
        // The price oracle is the pipeline's own: only the policy stage asks it.
        let oracle = Arc::new(crate::adapters::oracle::Oracle::new(settings.clone(), clock.clone()));
        Pipeline {
            db,
            clock,
            settings,
            chains,
            signers,
            notifier,
            oracle,
            autostop,
            locks: Mutex::default(),
            in_flight: Arc::default(),
            nonce_upkeep: Arc::default(),
        }
    }

    /// Who moved what, for the owner's messages (the native symbol from the configuration).
    pub(crate) fn party(&self, row: &TransactionRecord, agent: &AgentRecord) -> TxParty {
        let config = self.settings.get();
        TxParty {
            console_base: self.settings.console_base(),
            ..TxParty::of(row, agent, config.native_symbol(agent.chain, agent.network))
        }
    }

    /// How a decided row ended, told to the owner (10-notifications-clients.md §3):
    /// `TX_FAILED` for FAILED or EXPIRED (never for a denial, which is not decided); for the
    /// queued tiers also `TX_CONFIRMED` and `TX_CANCELLED`. CONFIRMED and FAILED also go to
    /// AutoStop, which hears every final outcome here.
    pub(crate) fn notify_outcome(&self, row: &TransactionRecord, agent: &AgentRecord) {
        use crate::domain::emergency::autostop::EventKind;
        match row.status {
            // A NOOP gap fill is the system's: AutoStop does not count it.
            _ if row.is_nonce_fill() => {}
            TxStatus::Confirmed => self.autostop.observe(EventKind::Completed, row),
            TxStatus::Failed => self.autostop.observe(EventKind::Failed, row),
            _ => {}
        }
        let queued_tier = matches!(row.tier, Some(Tier::Delay | Tier::Approval));
        let (who, now) = (self.party(row, agent), self.clock.now());
        match row.status {
            TxStatus::Failed | TxStatus::Expired => self.notifier.emit(Message::tx_failed(row, &who, now)),
            TxStatus::Confirmed if queued_tier => self.notifier.emit(Message::tx_confirmed(row, &who, now)),
            TxStatus::Cancelled if queued_tier => self.notifier.emit(Message::tx_cancelled(row, &who, now)),
            _ => {}
        }
    }

    /// Waits for the agent's execution lock when its chain needs one: EVM nonces must be
    /// used in order, so build-through-submit (a send's, a withdraw's) is serialised per agent;
    /// Solana needs no order. Held until the guard drops.
    pub(crate) async fn nonce_order(&self, agent: &AgentRecord) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match agent.chain {
            waiaas_storage::Chain::Ethereum => {
                let lock = {
                    let mut locks = self.locks.lock().expect("agent locks");
                    prune_locks(&mut locks, agent.id);
                    locks.entry(agent.id).or_default().clone()
                };
                Some(lock.lock_owned().await)
            }
            waiaas_storage::Chain::Solana => None,
        }
    }

    /// The row a validated request becomes at stage 1 (and what a dry run decides on).
    pub(crate) fn new_row(
        &self,
        caller: &SessionContext,
        v: &Validated,
        idem: Option<&str>,
    ) -> (TransactionRecord, Vec<TransactionRecord>) {
        self.rows_for(&caller.agent, Some(caller.session.id), v, idem)
    }

    fn rows_for(
        &self,
        agent: &AgentRecord,
        session: Option<Uuid>,
        v: &Validated,
        idem: Option<&str>,
    ) -> (TransactionRecord, Vec<TransactionRecord>) {
        let now = self.clock.now();
        let row = |id, f: &request::RowFields, request: Value| {
            let mut r = TransactionRecord::pending(id, agent, session, f.kind.unwrap_or(v.kind), request, now);
            r.amount = f.amount;
            r.native_amount = f.native_amount;
            r.to_address = f.to_address.clone();
            r.token_mint = f.token_mint.clone();
            r.contract_address = f.contract_address.clone();
            r.method_signature = f.method_signature.clone();
            r.spender_address = f.spender_address.clone();
            r.approved_amount = f.approved_amount;
            r
        };
        let id = self.clock.new_id();
        let mut parent = row(id, &v.fields, v.canonical.clone());
        parent.idempotency_key = idem.map(str::to_string);
        let children = v
            .children
            .iter()
            .enumerate()
            .map(|(i, f)| row(self.clock.new_id(), f, v.canonical["instructions"][i].clone()).child_of(id, i as u32))
            .collect();
        (parent, children)
    }

    /// Stages 1–6 for one `POST /v1/transactions/send`.
    pub(crate) async fn send(&self, caller: &SessionContext, body: &[u8], idem_header: Option<&str>) -> Sent {
        let mut timing = Timing::default();
        let result = self.send_inner(caller, body, idem_header, &mut timing).await;
        timing.record();
        Sent { result, timing }
    }

    async fn send_inner(
        &self,
        caller: &SessionContext,
        body: &[u8],
        idem_header: Option<&str>,
        timing: &mut Timing,
    ) -> Result<SendOutcome, SendError> {
        // Stage 1.
        let t0 = Instant::now();
        let idem = request::idempotency_key(idem_header)?;
        let v = request::validate(body, &caller.agent)?;
        let (rec, children) = self.new_row(caller, &v, idem.as_deref());
        // Counted before the record can exist, so a concurrent replay always sees it.
        let claim = idem.map(|key| {
            let claim = IdempotencyClaim { key, request_hash: Hash32(v.request_hash) };
            InFlight::enter(&self.in_flight, caller.agent.id, claim)
        });
        timing.add(Stage::Validate, t0.elapsed());
        self.decide_and_run(caller, rec, &children, claim.as_ref(), &v, timing).await
    }

    /// An idempotency record already exists (06-pipeline.md §2.4): its stored answer; while
    /// another request of this process still holds the key, `IDEMPOTENCY_IN_PROGRESS`; when no
    /// answer was stored and nobody holds the key, the process that took it died first — the
    /// row as start-up recovery left it.
    async fn replay(
        &self,
        existing: waiaas_storage::IdempotencyRecord,
        in_flight: Option<&InFlight>,
        v: &Validated,
    ) -> Result<SendOutcome, SendError> {
        if existing.request_hash.0 != v.request_hash {
            return Err(SendError::IdempotencyKeyReused);
        }
        if let (Some(_), Some(status), Some(body)) =
            (existing.completed_at, existing.response_status, existing.response_body)
        {
            return Ok(SendOutcome::Replayed { status, body });
        }
        let in_progress = SendError::IdempotencyInProgress { tx: existing.tx_id };
        let Some(tx) = existing.tx_id else { return Err(in_progress) };
        if in_flight.is_none_or(InFlight::shared) {
            return Err(in_progress);
        }
        match self.db.call(move |s| s.get_transaction(tx)).await {
            Ok(Some(row)) => Ok(SendOutcome::Recovered { row }),
            _ => Err(in_progress),
        }
    }

    /// Stores the final response of an idempotent request, so a replay returns it unchanged.
    pub(crate) async fn complete_idempotency(&self, agent: Uuid, key: &str, status: u16, body: Value) {
        let (key, now) = (key.to_string(), self.clock.now());
        if let Err(e) = self.db.lazy(move |s| s.complete_idempotency(agent, &key, status, &body, now)).await {
            tracing::warn!("cannot store an idempotent response: {e}");
        }
    }

    /// Stages 1 (recording) to 6. The request, its decision and an inline claim are one lazy
    /// commit (issue #21): the first durable commit is the signed checkpoint, the only wait
    /// before submitting. An answer that tells the caller about a row that will not be signed
    /// now — a refusal, a queued DELAY/APPROVAL — waits for the durability barrier first.
    async fn decide_and_run(
        &self,
        caller: &SessionContext,
        rec: TransactionRecord,
        children: &[TransactionRecord],
        in_flight: Option<&InFlight>,
        v: &request::Validated,
        timing: &mut Timing,
    ) -> Result<SendOutcome, SendError> {
        let tx = rec.id;
        let agent = caller.agent.clone();
        // A Ledger agent pinned to another replica is refused before anything is recorded.
        match crate::domain::ledger_pins::elsewhere(&self.db, &agent).await {
            Ok(Some(replica)) => return Err(SendError::Unready(Precheck::PinnedElsewhere { replica })),
            Ok(None) => {}
            // The record below meets the same database and reports it.
            Err(e) => tracing::warn!("tx {tx}: cannot read the Ledger pin: {e}"),
        }
        self.nonces_ready(&agent).await.map_err(SendError::Unready)?;
        // §6.1 pre-execution checks, in memory, before the decision transaction: when they fail
        // the row is decided but not claimed, and then fails.
        let precheck = match self.chains.for_agent(&agent).await {
            Err(e) => Err(Precheck::Adapter(e)),
            Ok(_) if !self.signers.ready(agent.backend).await => Err(Precheck::KeystoreLocked),
            Ok(adapter) => Ok(adapter),
        };
        let rows: Vec<&TransactionRecord> = std::iter::once(&rec).chain(children.iter()).collect();
        let inputs = self.inputs(&agent, &rows, None).await;
        let ctx = OpCtx::new(caller.actor(), self.clock.now());
        let claim_inline = precheck.is_ok();
        let t0 = Instant::now();
        let children = children.to_vec();
        let claim = in_flight.map(|i| i.claim.clone());
        let decided = self
            .db
            .lazy(move |s| {
                let mut decided = None;
                let f = |snap: &waiaas_storage::DecisionSnapshot| {
                    let policies = decide::typed(&snap.policies)?;
                    let d = decide::evaluate(snap, &policies, &inputs);
                    let outcome = d.outcome(snap, &ctx.actor);
                    decided = Some(d);
                    Ok(outcome)
                };
                match s.record_and_decide(&rec, &children, claim.as_ref(), &ctx, claim_inline, f)? {
                    Recorded::Existing(existing) => Ok(Err(existing)),
                    Recorded::Decided(row, _) => {
                        Ok(Ok((*row, decided.ok_or(StoreError::Invariant("the decision ran"))?)))
                    }
                }
            })
            .await;
        let (row, decided) = match decided {
            Ok(Ok(x)) => x,
            Ok(Err(existing)) => return self.replay(existing, in_flight, v).await,
            Err(StoreError::Conflict { .. } | StoreError::Restricted { .. }) => {
                return Err(SendError::SystemLocked { tx });
            }
            Err(e) if e.database_lost() => {
                tracing::warn!("tx {tx}: recording or deciding failed: {e}");
                return Err(SendError::Database { tx, error: e });
            }
            Err(e) => {
                tracing::error!("tx {tx}: recording or deciding failed: {e}");
                return Err(SendError::Internal { tx: Some(tx) });
            }
        };
        timing.add(Stage::Decide, t0.elapsed());
        crate::base::failpoint::pass(crate::base::failpoint::Point::Decided);
        record_decision(&decided);
        let allow = match decided {
            Decided::Refused(refusal) => {
                self.durable(tx).await?;
                if matches!(refusal, Refusal::Policy(_)) {
                    self.autostop.observe(crate::domain::emergency::autostop::EventKind::PolicyViolation, &row);
                }
                return Err(SendError::Refused { tx, refusal });
            }
            Decided::Allowed(a) => a,
        };
        let tier = allow.tier;
        if !matches!(tier, Tier::Instant | Tier::Notify) {
            self.durable(tx).await?;
            self.announce_queued(&row, &agent, &allow).await;
            return Ok(SendOutcome::Queued { row });
        }
        let adapter = match precheck {
            Ok(a) => a,
            Err(cause) => {
                let failure = TxFailure::new(cause.code().as_str()).at("claim");
                let ctx = OpCtx::new("system", self.clock.now());
                match self.db.call(move |s| s.fail_transaction(tx, TxStatus::Queued, &failure, &ctx)).await {
                    Ok(failed) => self.notify_outcome(&failed, &agent),
                    Err(e) => tracing::warn!("tx {tx}: cannot record the failed pre-check: {e}"),
                }
                return Err(SendError::Precheck { tx, cause });
            }
        };
        let claimed = Instant::now();
        let deadline = claimed + execute::budget(&self.settings.get(), &agent, true);
        let executed = execute::execute(self, &row, &agent, adapter.clone(), claimed, deadline, timing)
            .await
            .map_err(|failure| SendError::Failed { tx, failure })?;
        let t0 = Instant::now();
        let done = confirm::finish(self, &adapter, &row, &agent, executed.broadcast, deadline, timing).await;
        timing.add(Stage::Confirm, t0.elapsed());
        match done {
            Ok(row) => {
                if tier == Tier::Notify && matches!(row.status, TxStatus::Submitted | TxStatus::Confirmed) {
                    self.notifier.emit(Message::tx_notify(&row, &self.party(&row, &agent), self.clock.now()));
                }
                Ok(SendOutcome::Executed { row, estimated_fee: executed.estimated_fee })
            }
            Err(error) if error.database_lost() => Err(SendError::Database { tx, error }),
            Err(_) => Err(SendError::Internal { tx: Some(tx) }),
        }
    }

    /// The durability barrier before an answer about row `tx`: every commit so far (its own
    /// included) is durable when this returns.
    async fn durable(&self, tx: Uuid) -> Result<(), SendError> {
        self.db.call(|s| s.sync()).await.map_err(|e| {
            tracing::error!("tx {tx}: cannot make the decision durable: {e}");
            SendError::Internal { tx: Some(tx) }
        })
    }

    /// What the decision reads besides the snapshot, for a request of `agent`: the
    /// configuration, and the prices when the agent's SPENDING_LIMIT (from the stored
    /// policies, or `candidates` in an owner's dry run) has USD thresholds.
    async fn inputs(
        &self,
        agent: &AgentRecord,
        rows: &[&TransactionRecord],
        candidates: Option<&[waiaas_storage::PolicyRecord]>,
    ) -> decide::Inputs {
        let prices =
            if self.oracle.enabled() { self.prices(agent, rows, candidates).await } else { Default::default() };
        let c = self.settings.get();
        decide::Inputs {
            defaults: crate::rules::policy::Defaults {
                delay_seconds: c.security.policy_defaults_delay_seconds,
                approval_timeout: c.security.policy_defaults_approval_timeout,
            },
            notifications_enabled: c.notifications.enabled,
            min_channels: c.notifications.min_channels,
            max_pending_tx: c.security.max_pending_tx,
            prices,
        }
    }

    /// 07-policy.md §5: the prices of the assets `rows` move, fetched before the decision
    /// transaction. Token decimals come from the request, then the ALLOWED_TOKENS entry, then
    /// the chain; a token whose decimals or price are unknown stays unpriced (NOTIFY).
    async fn prices(
        &self,
        agent: &AgentRecord,
        rows: &[&TransactionRecord],
        candidates: Option<&[waiaas_storage::PolicyRecord]>,
    ) -> crate::rules::policy::usd::Prices {
        use crate::runtime::config::PricedAsset;
        let effective = match candidates {
            Some(c) => waiaas_storage::scope::effective(agent, c),
            None => {
                let a = agent.clone();
                match self.db.call(move |s| Ok(waiaas_storage::scope::effective(&a, &s.list_policies()?))).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("prices: cannot read policies: {e}");
                        return Default::default();
                    }
                }
            }
        };
        let typed = decide::typed(&effective).unwrap_or_default();
        let usd = typed
            .iter()
            .any(|p| matches!(&p.rules, crate::rules::policy::rules::Rules::SpendingLimit(s) if s.usd.is_some()));
        if !usd {
            return Default::default();
        }
        let mut prices = crate::rules::policy::usd::Prices::default();
        if rows.first().is_some_and(|r| !r.native_amount.is_zero()) {
            prices.native = self.oracle.quote(agent, &PricedAsset::Native(agent.chain)).await;
        }
        for r in rows.iter().filter(|r| r.tx_type == waiaas_storage::TxType::TokenTransfer) {
            let Some(mint) = r.token_mint.clone() else { continue };
            if prices.token(agent.chain, &mint).is_some() {
                continue;
            }
            let listed = typed.iter().find_map(|p| match &p.rules {
                crate::rules::policy::rules::Rules::AllowedTokens(a) => {
                    a.tokens.iter().find(|t| t.mint.names(agent.chain, &mint)).and_then(|t| t.decimals)
                }
                _ => None,
            });
            let decimals = match r.request["token"]["decimals"].as_u64().map(|d| d as u8).or(listed) {
                Some(d) => Some(d),
                None => match self.chains.for_agent(agent).await {
                    Ok(adapter) => adapter.token_decimals(&mint).await.ok(),
                    Err(_) => None,
                },
            };
            let Some(decimals) = decimals else { continue };
            if let Some(q) = self.oracle.quote(agent, &PricedAsset::Token(agent.chain, mint.clone())).await {
                prices.tokens.push((mint, q, decimals));
            }
        }
        prices
    }

    /// After a DELAY or APPROVAL decision: tell the owner (10-notifications-clients.md §3).
    /// An approval request is awaited (at most 10 s); its failure is audited by the notifier
    /// and the request still answers 202.
    async fn announce_queued(
        &self,
        row: &TransactionRecord,
        agent: &AgentRecord,
        allow: &crate::rules::policy::engine::Allow,
    ) {
        let (who, now) = (self.party(row, agent), self.clock.now());
        let due = row.queue_expires_at.unwrap_or(now);
        match allow.tier {
            Tier::Delay if allow.downgraded => self.notifier.emit(Message::tx_downgraded_delay(row, &who, due, now)),
            Tier::Delay => self.notifier.emit(Message::tx_delay_queued(row, &who, due, now)),
            Tier::Approval => {
                self.notifier.emit_awaited(Message::tx_approval_request(row, &who, due, now)).await;
            }
            Tier::Instant | Tier::Notify => {}
        }
    }

    /// `POST /v1/transactions/dry-run` (06-pipeline.md §13): the decision on a snapshot of a
    /// write transaction that is aborted — no row, reservation or audit row.
    pub(crate) async fn dry_run(&self, caller: &SessionContext, body: &[u8]) -> Result<DryRun, SendError> {
        let v = request::validate(body, &caller.agent)?;
        // The same rows stage 1 would store, so the dry run decides on exactly what a send would.
        let (rec, children) = self.new_row(caller, &v, None);
        self.dry_run_rows(&caller.agent, rec, children, &v, None).await
    }

    /// `POST /v1/owner/policies/dry-run`: the decision an agent's request would get from the
    /// stored policies, or from a candidate set (`candidates`, already validated) — no session,
    /// nothing written.
    pub(crate) async fn owner_dry_run(
        &self,
        agent: &AgentRecord,
        body: &[u8],
        candidates: Option<Vec<waiaas_storage::PolicyRecord>>,
    ) -> Result<DryRun, SendError> {
        let v = request::validate(body, agent)?;
        let (rec, children) = self.rows_for(agent, None, &v, None);
        self.dry_run_rows(agent, rec, children, &v, candidates).await
    }

    async fn dry_run_rows(
        &self,
        agent: &AgentRecord,
        rec: TransactionRecord,
        children: Vec<TransactionRecord>,
        v: &Validated,
        candidates: Option<Vec<waiaas_storage::PolicyRecord>>,
    ) -> Result<DryRun, SendError> {
        let now = self.clock.now();
        let rows: Vec<&TransactionRecord> = std::iter::once(&rec).chain(children.iter()).collect();
        let inputs = self.inputs(agent, &rows, candidates.as_deref()).await;
        let mut snap = self.db.call(move |s| s.dry_run_snapshot(rec, now)).await.map_err(|e| {
            tracing::error!("dry run snapshot failed: {e}");
            SendError::Internal { tx: None }
        })?;
        snap.children = children;
        let records = match &candidates {
            Some(c) => waiaas_storage::scope::effective(agent, c),
            None => snap.policies.clone(),
        };
        let policies = decide::typed(&records).map_err(|e| {
            tracing::error!("dry run: {e}");
            SendError::Internal { tx: None }
        })?;
        let decided = decide::evaluate(&snap, &policies, &inputs);
        let estimated_fee = match self.chains.for_agent(agent).await {
            Ok(adapter) => adapter
                .estimate_fee(
                    &v.build,
                    &crate::adapters::chains::types::BuildOptions { priority: v.priority, ..Default::default() },
                )
                .await
                .ok(),
            Err(_) => None,
        };
        Ok(DryRun { decided, estimated_fee })
    }
}

/// Past this many entries the execution-lock map drops the locks nobody holds or waits for.
const LOCKS_KEPT: usize = 256;

/// Drops the per-agent locks that no task holds or waits for (their only reference is the
/// map's), once the map has grown past [`LOCKS_KEPT`]: the map then stays the size of the agents
/// sending at the moment, however many agents ever sent. A lock is dropped only while nobody has
/// a clone, so no two tasks can ever hold different locks for one agent.
fn prune_locks(locks: &mut HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>, keep: Uuid) {
    if locks.len() >= LOCKS_KEPT {
        locks.retain(|id, l| *id == keep || Arc::strong_count(l) > 1);
    }
}

/// Signer failures surface unchanged.
impl From<SignerError> for ExecFailure {
    fn from(e: SignerError) -> Self {
        ExecFailure::Signer(e)
    }
}

/// `waiaas_policy_decisions_total`: the tier, or the denial's code.
fn record_decision(d: &Decided) {
    use crate::base::error::Coded;
    let labels = match d {
        Decided::Allowed(a) => {
            crate::runtime::metrics::PolicyLabels { tier: a.tier.as_str(), outcome: "allowed", reason: "none" }
        }
        Decided::Refused(r) => {
            crate::runtime::metrics::PolicyLabels { tier: "none", outcome: "denied", reason: r.code().as_str() }
        }
    };
    crate::runtime::metrics::get().decision(labels);
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    /// Issue #21: the execution-lock map does not keep a lock per agent that ever sent; a
    /// held lock is never dropped.
    #[tokio::test]
    async fn the_lock_map_is_pruned_but_never_drops_a_held_lock() {
        let mut locks: HashMap<Uuid, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
        let held_id = Uuid::now_v7();
        let held = locks.entry(held_id).or_default().clone().lock_owned().await;
        for _ in 0..10_000 {
            let id = Uuid::now_v7();
            prune_locks(&mut locks, id);
            let guard = locks.entry(id).or_default().clone().lock_owned().await;
            drop(guard);
        }
        assert!(locks.len() <= LOCKS_KEPT, "{} locks kept", locks.len());
        assert!(locks.contains_key(&held_id), "the held lock stays");
        drop(held);
    }
}
