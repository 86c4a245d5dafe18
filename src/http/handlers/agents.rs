//! `/v1/agents` (09-api.md §6.3): the operator's agent lifecycle, including the owner changes
//! of 04-auth.md §8 and key export/import (03-keys.md §7).

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use waiaas_backends::keystore::import::ImportSource;
use waiaas_backends::keystore::kdf::KdfParams;
use waiaas_backends::ledger::apps::DerivationPath;
use waiaas_storage::{
    AgentRecord, AgentStatus, AuditEvent, AuditSeverity, Backend, Chain, Network, OwnerState, StoreError,
};

use crate::agents::{self, KeySource};
use crate::auth::owner::{self, OwnerAction, Target};
use crate::clock::iso;
use crate::daemon::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Caller, Reply, Req, views};

fn created(body: Value) -> Reply {
    Reply { status: 201, body, headers: Vec::new() }
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    chain: Option<String>,
    network: Option<String>,
    backend: Option<String>,
    derivation_path: Option<String>,
    owner: Option<String>,
    owner_address: Option<String>,
}

fn parse_chain(v: Option<&str>) -> Result<Chain, ApiError> {
    match v {
        None => Ok(Chain::Solana),
        Some(c) => Chain::from_str(c).map_err(|_| {
            ApiError::validation(
                "chain",
                "invalid_enum_value",
                format!("Unsupported chain '{c}'. Supported: solana, ethereum."),
            )
        }),
    }
}

fn parse_network(chain: Chain, v: Option<&str>) -> Result<Network, ApiError> {
    let network = match v {
        None if chain == Chain::Solana => Network::Devnet,
        None => Network::Testnet,
        Some(n) => Network::from_str(n).map_err(|_| {
            ApiError::validation(
                "network",
                "invalid_enum_value",
                format!("Unsupported network '{n}'. Supported: mainnet, devnet (Solana), testnet."),
            )
        })?,
    };
    if !network.valid_for(chain) {
        return Err(ApiError::validation(
            "network",
            "invalid_enum_value",
            format!("Network '{network}' does not exist on {chain}"),
        ));
    }
    Ok(network)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    waiaas_storage::check_name(name).map_err(|_| {
        ApiError::validation("name", "invalid_string", "name must be 1-100 characters and not shaped like a UUID")
    })
}

/// The agent's EIP-155 chain id: EVM agents need their adapter connected (the chain id binds
/// the agent); Solana agents only need an RPC URL (a missing one is `CHAIN_NOT_SUPPORTED`).
async fn bind_chain(app: &Arc<App>, chain: Chain, network: Network) -> Result<Option<u64>, ApiError> {
    let config = app.config();
    match chain {
        Chain::Ethereum => {
            let adapter = app.adapters.available(&config, chain, network, None, app.clock.now()).await?;
            Ok(adapter.chain_id())
        }
        Chain::Solana => {
            let adapter = app.adapters.get_or_create(&config, chain, network)?;
            if !adapter.is_connected() {
                let now = app.clock.now();
                tokio::spawn(async move {
                    let _ = adapter.connect(now).await;
                });
            }
            Ok(None)
        }
    }
}

fn new_record(app: &App, name: String, chain: Chain, network: Network, chain_id: Option<u64>) -> AgentRecord {
    let now = app.clock.now();
    AgentRecord {
        id: app.clock.new_id(),
        name,
        chain,
        network,
        chain_id,
        backend: Backend::Keystore,
        derivation_path: None,
        public_key: String::new(),
        status: AgentStatus::Active,
        owner_address: None,
        owner_verified: false,
        owner_verified_at: None,
        suspended_at: None,
        suspension_reason: None,
        terminated_at: None,
        created_at: now,
        updated_at: now,
    }
}

async fn name_or_default(app: &Arc<App>, name: Option<String>) -> Result<String, ApiError> {
    let existing = app.db_api(|s| s.list_agents()).await?;
    let name = match name {
        Some(n) => n.trim().to_string(),
        None => agents::free_name(&existing),
    };
    check_name(&name)?;
    if existing.iter().any(|a| a.status != AgentStatus::Terminated && a.name.eq_ignore_ascii_case(&name)) {
        return Err(agents::insert_error(StoreError::Unique { index: "idx_agent_name" }));
    }
    Ok(name)
}

/// Runs key creation and the insert on a blocking thread under the keystore's read lock.
async fn insert_keystore_agent(
    app: &Arc<App>,
    rec: AgentRecord,
    source: KeySource,
    extra: Option<AuditEvent>,
    req: &Req,
) -> Result<AgentRecord, ApiError> {
    let ctx = req.ctx(app);
    let store = app.store.clone();
    app.keystore
        .with(|ks| tokio::task::block_in_place(|| agents::create_keystore_agent(ks, &store, rec, source, extra, &ctx)))
        .await
        .map_err(agents::signer_error)?
}

/// `POST /v1/agents`.
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: CreateBody = req.body.json().await?;
    let chain = parse_chain(b.chain.as_deref())?;
    let network = parse_network(chain, b.network.as_deref())?;
    let backend = match b.backend.as_deref() {
        None | Some("keystore") => Backend::Keystore,
        Some("ledger") => Backend::Ledger,
        Some(other) => {
            return Err(ApiError::validation(
                "backend",
                "invalid_enum_value",
                format!("Unsupported backend '{other}'. Supported: keystore, ledger."),
            ));
        }
    };
    if backend == Backend::Keystore && b.derivation_path.is_some() {
        return Err(ApiError::validation(
            "derivationPath",
            "unrecognized_keys",
            "derivationPath is only for ledger agents",
        ));
    }
    let owner = match (b.owner, b.owner_address) {
        (Some(a), Some(o)) if a != o => {
            return Err(ApiError::validation("ownerAddress", "invalid_value", "owner and ownerAddress differ"));
        }
        (a, o) => a.or(o).map(|addr| agents::owner_address(chain, &addr)).transpose()?,
    };
    let path = match backend {
        Backend::Ledger => {
            let text = b.derivation_path.unwrap_or_else(|| {
                match chain {
                    Chain::Ethereum => "44'/60'/0'/0/0",
                    Chain::Solana => "44'/501'/0'/0'",
                }
                .to_string()
            });
            let parsed = DerivationPath::parse(&text).ok_or_else(|| {
                ApiError::validation("derivationPath", "invalid_string", format!("Invalid derivation path {text}"))
            })?;
            Some(parsed)
        }
        Backend::Keystore => None,
    };
    let name = name_or_default(app, b.name).await?;
    let chain_id = bind_chain(app, chain, network).await?;
    let mut rec = new_record(app, name, chain, network, chain_id);
    rec.owner_address = owner;
    let rec = match path {
        None => insert_keystore_agent(app, rec, KeySource::Generate, None, &req).await?,
        Some(path) => {
            let device = app
                .ledger_device()
                .ok_or_else(|| ApiError::new(ErrorCode::SignerUnavailable, "No Ledger transport is configured"))?;
            rec.public_key =
                device.get_address(agents::chain_kind(chain), &path).await.map_err(agents::signer_error)?;
            rec.backend = Backend::Ledger;
            rec.derivation_path = Some(path.to_text());
            let ctx = req.ctx(app);
            let r = rec.clone();
            app.db(move |s| s.insert_agent(&r, &ctx)).await.map_err(agents::insert_error)?;
            rec
        }
    };
    Ok(created(views::agent(&rec)))
}

/// `GET /v1/agents` (not paginated; terminated agents included).
pub(super) async fn list(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let (agents, activity) = app.db_api(move |s| Ok((s.list_agents()?, s.agent_activity(now)?))).await?;
    let items: Vec<Value> = agents
        .iter()
        .map(|a| {
            let mut v = views::agent(a);
            let (sessions, txs) = activity.get(&a.id).copied().unwrap_or_default();
            v["sessionCount"] = json!(sessions);
            v["totalTxCount"] = json!(txs);
            v
        })
        .collect();
    Ok(Reply::ok(json!({"agents": items})))
}

/// `GET /v1/agents/:id`.
pub(super) async fn get(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    let (id, now) = (agent.id, app.clock.now());
    let (txs, sessions, policies) = app
        .db_api(move |s| {
            let (txs, _) = s.list_transactions(id, None, None, 10, true)?;
            Ok((txs, s.list_sessions(Some(id))?, s.list_policies()?))
        })
        .await?;
    let mut v = views::agent(&agent);
    v["recentTransactions"] = txs.iter().map(views::tx_summary).collect();
    v["activeSessions"] = sessions.iter().filter(|s| s.is_live(now)).map(|s| views::session(s, &agent.name)).collect();
    v["policies"] = crate::policy::scope::for_agent(&agent, &policies)
        .into_iter()
        .map(|(p, level, effective)| {
            json!({
                "id": p.id, "agentId": p.agent_id, "chain": p.chain.map(|c| c.as_str()), "type": p.policy_type.as_str(),
                "rules": p.rules, "priority": p.priority, "enabled": p.enabled, "createdAt": iso(p.created_at),
                "updatedAt": iso(p.updated_at), "level": level.as_str(), "effective": effective,
            })
        })
        .collect();
    Ok(Reply::ok(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    owner: Option<Option<String>>,
}

fn state_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::new(
            ErrorCode::InvalidStateTransition,
            "The owner state changed while the request was being authorised; nothing changed",
        ),
        other => {
            tracing::error!("set_owner failed: {other}");
            ApiError::internal()
        }
    }
}

/// `PATCH /v1/agents/:id` (master; plus the current owner's `change_owner` signature when the
/// agent is LOCKED and its owner address changes).
pub(super) async fn update(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: PatchBody = req.body.json().await?;
    let mut agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    agents::not_terminated(&agent)?;
    if let Some(name) = &b.name {
        check_name(name.trim())?;
    }
    let mut actor = req.caller.clone();
    if let Some(new_owner) = b.owner {
        let new_owner = new_owner.map(|a| agents::owner_address(agent.chain, &a)).transpose()?;
        let state = agent.owner_state();
        let same = new_owner.as_deref().map(|n| agent.owner_key() == Some(waiaas_storage::owner_key(agent.chain, n)));
        match (state, &new_owner) {
            (OwnerState::Locked, None) => {
                return Err(ApiError::new(ErrorCode::OwnerLocked, "A verified owner cannot be removed"));
            }
            (OwnerState::Locked, Some(addr)) if same != Some(true) => {
                let raw = owner::bearer(req.header("authorization"))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::OwnerAuthRequired,
                            "Changing a verified owner needs the current owner's signature",
                        )
                    })?
                    .to_string();
                let target = Target {
                    action: OwnerAction::ChangeOwner,
                    target: format!("agent:{}:owner:{addr}", agent.id),
                    agent: Some(agent.clone()),
                };
                let o = owner::verify(app, &raw, &target, app.clock.now()).await?;
                actor = Caller::MasterAndOwner(o);
            }
            _ => {}
        }
        let mut ctx = req.ctx(app);
        ctx.actor = actor.actor();
        let id = agent.id;
        let out = app.db(move |s| s.set_owner(id, new_owner.as_deref(), state, &ctx)).await.map_err(state_conflict)?;
        agent = out.agent;
    }
    if let Some(name) = b.name {
        let ctx = req.ctx(app);
        let id = agent.id;
        let name = name.trim().to_string();
        agent = app.db(move |s| s.update_agent_name(id, &name, &ctx)).await.map_err(|e| match e {
            StoreError::Unique { .. } => agents::insert_error(e),
            StoreError::Conflict { .. } => ApiError::new(ErrorCode::AgentTerminated, "The agent is terminated"),
            other => {
                tracing::error!("rename failed: {other}");
                ApiError::internal()
            }
        })?;
    }
    Ok(Reply::ok(views::agent(&agent)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    reason: Option<String>,
}

/// `POST /v1/agents/:id/suspend`.
pub(super) async fn suspend(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: SuspendBody = req.body.json().await?;
    if b.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::validation("reason", "too_big", "reason must be at most 500 characters"));
    }
    let agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    agents::not_terminated(&agent)?;
    let reason = match b.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => format!("manual: {r}"),
        _ => "manual".to_string(),
    };
    let (ctx, id) = (req.ctx(app), agent.id);
    let rec = app
        .db(move |s| s.set_agent_status(id, AgentStatus::Active, AgentStatus::Suspended, Some(reason), &ctx))
        .await
        .map_err(|e| status_conflict(e, id))?;
    Ok(Reply::ok(views::agent(&rec)))
}

/// `POST /v1/agents/:id/resume`.
pub(super) async fn resume(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    agents::not_terminated(&agent)?;
    let (ctx, id) = (req.ctx(app), agent.id);
    let rec = app
        .db(move |s| s.set_agent_status(id, AgentStatus::Suspended, AgentStatus::Active, None, &ctx))
        .await
        .map_err(|e| status_conflict(e, id))?;
    Ok(Reply::ok(views::agent(&rec)))
}

fn status_conflict(e: StoreError, id: uuid::Uuid) -> ApiError {
    match e {
        StoreError::Conflict { actual, .. } if actual == "SUSPENDED" => {
            ApiError::new(ErrorCode::AgentSuspended, format!("Agent {id} is already suspended"))
        }
        StoreError::Conflict { actual, .. } if actual == "TERMINATED" => {
            ApiError::new(ErrorCode::AgentTerminated, format!("Agent {id} is terminated"))
        }
        StoreError::Conflict { actual, .. } => ApiError::new(
            ErrorCode::InvalidStateTransition,
            format!("Agent {id} is {actual}; only a SUSPENDED agent can be resumed"),
        ),
        other => {
            tracing::error!("agent status change failed: {other}");
            ApiError::internal()
        }
    }
}

/// `DELETE /v1/agents/:id`: terminate, then forget and delete the key.
pub(super) async fn terminate(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    agents::not_terminated(&agent)?;
    let (ctx, id) = (req.ctx(app), agent.id);
    let report = app.db(move |s| s.terminate_agent(id, &ctx)).await.map_err(|e| match e {
        StoreError::Conflict { actual, .. } if actual == "EXECUTING" => ApiError::new(
            ErrorCode::AgentHasActiveTransactions,
            "A transaction of this agent is executing; try again when it finishes",
        ),
        StoreError::Conflict { .. } => ApiError::new(ErrorCode::AgentTerminated, format!("Agent {id} is terminated")),
        other => {
            tracing::error!("terminate failed: {other}");
            ApiError::internal()
        }
    })?;
    if agent.backend == Backend::Keystore {
        // A failure here is only logged: the next start deletes key files of TERMINATED agents.
        match app.keystore.with(|ks| tokio::task::block_in_place(|| ks.remove(id))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot delete the key file of terminated agent {id}: {e}"),
            Err(_) => {
                let path = waiaas_backends::keystore::key_path(&app.layout.keystore(), id);
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!("cannot delete {}: {e}", path.display());
                }
            }
        }
    }
    Ok(Reply::ok(json!({
        "id": id,
        "status": "TERMINATED",
        "terminatedAt": iso(report.terminated_at),
        "sessionsRevoked": report.sessions_revoked,
        "transactionsCancelled": report.transactions_cancelled,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    password: String,
}

/// `POST /v1/agents/:id/export`.
pub(super) async fn export(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: ExportBody = req.body.json().await?;
    let password = zeroize::Zeroizing::new(b.password);
    if !(12..=128).contains(&password.chars().count()) {
        return Err(ApiError::validation("password", "too_small", "password must be 12-128 characters"));
    }
    let agent = agents::load(app, req.matched.param("id").unwrap_or_default()).await?;
    agents::not_terminated(&agent)?;
    if agent.backend != Backend::Keystore {
        return Err(ApiError::new(ErrorCode::BackendOperationUnsupported, "Ledger keys never leave the device"));
    }
    let k = app.config().keystore.clone();
    let params = KdfParams { memory_kib: k.argon2_memory, time: k.argon2_time, parallelism: k.argon2_parallelism };
    let id = agent.id;
    let file = app
        .keystore
        .with(|ks| tokio::task::block_in_place(|| ks.export(id, password.as_bytes(), params)))
        .await
        .map_err(agents::signer_error)?
        .map_err(agents::keystore_error)?;
    let ev = AuditEvent::new("AGENT_KEY_EXPORTED", req.caller.actor()).agent(id).severity(AuditSeverity::Warning);
    let ctx = req.ctx(app);
    app.db_api(move |s| s.append_audit(ev, &ctx)).await?;
    let value = serde_json::to_value(&file).map_err(|_| ApiError::internal())?;
    Ok(Reply::ok(json!({"keystore": value})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    keystore: Value,
    password: String,
    name: Option<String>,
}

/// `POST /v1/agents/import`: a waiaas v1 key file, an Ethereum V3 keystore or a Solana CLI
/// keypair becomes a new keystore agent (new id; the key re-encrypted under the master KEK).
pub(super) async fn import(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: ImportBody = req.body.json().await?;
    let password = zeroize::Zeroizing::new(b.password);
    let source = ImportSource::detect(&b.keystore).map_err(agents::keystore_error)?;
    let chain = match source.chain().map_err(agents::keystore_error)? {
        waiaas_backends::seam::ChainKind::Ethereum => Chain::Ethereum,
        waiaas_backends::seam::ChainKind::Solana => Chain::Solana,
    };
    let decrypted = tokio::task::spawn_blocking(move || source.decrypt(password.as_bytes()))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(agents::keystore_error)?;
    let network = parse_network(chain, decrypted.network.as_deref())?;
    let name = name_or_default(app, b.name.or(decrypted.name.clone())).await?;
    let chain_id = bind_chain(app, chain, network).await?;
    let rec = new_record(app, name, chain, network, chain_id);
    let ev = AuditEvent::new("AGENT_KEY_IMPORTED", req.caller.actor()).severity(AuditSeverity::Warning);
    let rec = insert_keystore_agent(app, rec, KeySource::Import(decrypted.secret), Some(ev), &req).await?;
    Ok(created(views::agent(&rec)))
}
