//! Public routes: health, the OpenAPI document and nonces.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use waiaas_storage::KillSwitchStatus;

use crate::app::App;
use crate::base::clock::iso;
use crate::http::{ApiError, Reply, views};

/// `GET /health`, `GET /v1/health` (01-daemon.md §8.7). Always 200.
pub(super) async fn health(app: &Arc<App>) -> Result<Reply, ApiError> {
    let db_ok = app.db.call(|s| s.kill_switch_status()).await.is_ok();
    let ks = app.kill_switch.view();
    let keystore = &app.signers.keystore;
    let keys_loaded = keystore.keys_loaded().await;
    let keystore_status = if keystore.is_unlocked().await { "unlocked" } else { "locked" };
    let status = if ks.status != KillSwitchStatus::Normal {
        "locked"
    } else if !db_ok || keystore_status != "unlocked" {
        "unhealthy"
    } else if !app.chains.all_connected() {
        "degraded"
    } else {
        "healthy"
    };
    let adapters: Map<String, Value> =
        app.chains.infos().iter().map(|a| (format!("{}/{}", a.chain, a.network), views::adapter_health(a))).collect();
    Ok(Reply::ok(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": app.uptime(),
        "timestamp": iso(app.clock.now()),
        "services": {
            "database": database_health(app, db_ok).await,
            "keystore": {"status": keystore_status, "keysLoaded": keys_loaded},
            "adapters": adapters,
            "ledger": {"status": "not_used"},
        },
        "killSwitch": views::kill_switch(&ks),
    })))
}

/// `services.database` of `/health`: the engine, and under PostgreSQL who leads
/// (13-postgres-ha.md §6.3).
async fn database_health(app: &Arc<App>, db_ok: bool) -> Value {
    // A PostgreSQL size is a round trip: off the async thread like every storage call.
    let size = app.db.call(|s| Ok(s.size_bytes())).await.unwrap_or(0);
    let mut out = json!({
        "status": if db_ok { "ok" } else { "error" },
        "backend": app.db.store().backend_name(),
        "sizeBytes": size,
    });
    if let Some(replica) = app.leadership.replica_id() {
        use crate::app::leadership::Role;
        let (role, epoch) = match app.leadership.role() {
            Role::Leader { epoch } => ("leader", epoch),
            Role::Standby { epoch, .. } => ("standby", epoch),
            Role::Single => ("leader", 0),
        };
        let (leader, _) = app.leadership.leader_hint();
        out["ha"] = json!({"role": role, "replicaId": replica, "epoch": epoch, "leaderReplicaId": leader});
    }
    out
}

/// `GET /ready` (12-operations.md §4): 200 `{ready: true}`, or 503 with every reason.
pub(crate) async fn ready(app: &Arc<App>) -> Result<Reply, ApiError> {
    let reasons = app.readiness().await;
    let mut body = if reasons.is_empty() {
        json!({"ready": true})
    } else {
        let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        json!({"ready": false, "reasons": reasons})
    };
    if let Some(replica) = app.leadership.replica_id() {
        let (leader, epoch) = app.leadership.leader_hint();
        body["role"] = json!(if app.leadership.is_standby() { "standby" } else { "leader" });
        body["replicaId"] = json!(replica);
        body["epoch"] = json!(epoch);
        body["leaderReplicaId"] = json!(leader);
    }
    let status = if body["ready"] == json!(true) { 200 } else { 503 };
    Ok(Reply { status, body, headers: Vec::new() })
}

/// `GET /doc`: the OpenAPI 3.1 document.
pub(super) fn doc(app: &Arc<App>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(crate::http::openapi::document(app.settings.port, app.settings.console)))
}

/// `GET /v1/nonce`, `GET /v1/auth/nonce` (04-auth.md §6).
pub(super) async fn nonce(app: &Arc<App>) -> Result<Reply, ApiError> {
    let (nonce, expires_at) = app.nonces.issue().await?;
    Ok(Reply::ok(json!({"nonce": nonce, "expiresAt": iso(expires_at)})))
}
