//! `/v1/agents` (09-api.md §6.3): request bodies in, agent views out. The rules — defaults,
//! uniqueness, the owner state machine, key handling — live in `crate::domain::agents`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::app::App;
use crate::base::clock::iso;
use crate::base::validation::Invalid;
use crate::domain::agents::{AgentUpdate, NewAgent, parse_backend, parse_chain, parse_network};
use crate::domain::auth::owner;
use crate::http::{ApiError, Caller, Reply, Req, views};

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

/// `POST /v1/agents`.
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: CreateBody = req.body.json().await?;
    let chain = parse_chain(b.chain.as_deref())?;
    let network = parse_network(chain, b.network.as_deref())?;
    let backend = parse_backend(b.backend.as_deref())?;
    let owner = match (b.owner, b.owner_address) {
        (Some(a), Some(o)) if a != o => {
            return Err(Invalid::value("ownerAddress", "owner and ownerAddress differ").into());
        }
        (a, o) => a.or(o),
    };
    let new = NewAgent { name: b.name, chain, network, backend, derivation_path: b.derivation_path, owner };
    let rec = app.agents.create(new, &req.ctx(app)).await?;
    Ok(Reply::created(views::agent(&rec)))
}

/// `GET /v1/agents` (not paginated; terminated agents included).
pub(super) async fn list(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let (agents, activity) = app.db.call(move |s| Ok((s.list_agents()?, s.agent_activity(now)?))).await?;
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
    let agent = app.agents.load(req.param("id")).await?;
    let (id, now) = (agent.id, app.clock.now());
    let (txs, sessions, policies) = app
        .db
        .call(move |s| {
            let (txs, _) = s.list_transactions(id, None, None, 10, true)?;
            Ok((txs, s.list_sessions(Some(id))?, s.list_policies()?))
        })
        .await?;
    let mut v = views::agent(&agent);
    v["recentTransactions"] = txs.iter().map(views::tx_summary).collect();
    v["activeSessions"] = sessions.iter().filter(|s| s.is_live(now)).map(|s| views::session(s, &agent.name)).collect();
    v["policies"] = crate::rules::policy::scope::for_agent(&agent, &policies)
        .into_iter()
        .map(|(p, level, effective)| {
            let mut v = views::policy(p);
            v["level"] = json!(level.as_str());
            v["effective"] = json!(effective);
            v
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

/// `PATCH /v1/agents/:id` (master; plus the current owner's `change_owner` signature when the
/// agent is LOCKED and its owner address changes).
pub(super) async fn update(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: PatchBody = req.body.json().await?;
    let change = AgentUpdate {
        name: b.name,
        owner: b.owner,
        owner_payload: owner::bearer(req.header("authorization")).map(str::to_string),
    };
    let updated = app.agents.update(req.param("id"), change, &req.ctx(app)).await?;
    if let Some(o) = updated.signed_by {
        req.caller = Caller::MasterAndOwner(o);
    }
    Ok(Reply::ok(views::agent(&updated.agent)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    reason: Option<String>,
}

/// `POST /v1/agents/:id/suspend`.
pub(super) async fn suspend(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: SuspendBody = req.body.json().await?;
    let rec = app.agents.suspend(req.param("id"), b.reason.as_deref(), &req.ctx(app)).await?;
    Ok(Reply::ok(views::agent(&rec)))
}

/// `POST /v1/agents/:id/resume`.
pub(super) async fn resume(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let rec = app.agents.resume(req.param("id"), &req.ctx(app)).await?;
    Ok(Reply::ok(views::agent(&rec)))
}

/// `DELETE /v1/agents/:id`: terminate (the key is deleted by the agent service).
pub(super) async fn terminate(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (agent, report) = app.agents.terminate(req.param("id"), &req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "id": agent.id,
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
    let file = app.agents.export(req.param("id"), password.as_bytes(), &req.ctx(app)).await?;
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

/// `POST /v1/agents/import`.
pub(super) async fn import(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: ImportBody = req.body.json().await?;
    let password = zeroize::Zeroizing::new(b.password);
    let rec = app.agents.import(&b.keystore, password, b.name, &req.ctx(app)).await?;
    Ok(Reply::created(views::agent(&rec)))
}
