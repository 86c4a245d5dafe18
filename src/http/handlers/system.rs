//! Public routes: health, the OpenAPI document and nonces.

use std::sync::Arc;

use serde_json::{Value, json};
use waiaas_storage::KillSwitchStatus;

use crate::clock::iso;
use crate::daemon::App;
use crate::error::ApiError;
use crate::http::Reply;

/// `GET /health`, `GET /v1/health` (01-daemon.md §8.7). Always 200.
pub(super) async fn health(app: &Arc<App>) -> Result<Reply, ApiError> {
    let db_ok = app.db(|s| s.kill_switch_status()).await.is_ok();
    let ks = app.kill_switch();
    let keys_loaded = app.keystore.keys_loaded().await;
    let keystore_status = if app.keystore.is_unlocked().await { "unlocked" } else { "locked" };
    let status = if ks.status != KillSwitchStatus::Normal {
        "locked"
    } else if !db_ok || keystore_status != "unlocked" {
        "unhealthy"
    } else if !app.adapters.all_connected() {
        "degraded"
    } else {
        "healthy"
    };
    Ok(Reply::ok(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": app.uptime(),
        "timestamp": iso(app.clock.now()),
        "services": {
            "database": {"status": if db_ok { "ok" } else { "error" }, "sizeBytes": app.store.size_bytes()},
            "keystore": {"status": keystore_status, "keysLoaded": keys_loaded},
            "adapters": app.adapters.health_view(),
            "ledger": {"status": "not_used"},
        },
        "killSwitch": kill_switch_json(app),
    })))
}

pub(crate) fn kill_switch_json(app: &App) -> Value {
    let ks = app.kill_switch();
    json!({
        "active": ks.status != KillSwitchStatus::Normal,
        "status": ks.status.as_str(),
        "activatedAt": ks.activated_at.map(iso),
        "reason": ks.reason,
    })
}

/// `GET /doc`: the OpenAPI 3.1 document.
pub(super) fn doc(app: &Arc<App>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(crate::http::openapi::document(app.port)))
}

/// `GET /v1/nonce`, `GET /v1/auth/nonce` (04-auth.md §6).
pub(super) async fn nonce(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let app2 = app.clone();
    let (nonce, expires_at) = app.db_api(move |s| app2.nonces.issue(s, now)).await?;
    Ok(Reply::ok(json!({"nonce": nonce, "expiresAt": iso(expires_at)})))
}
